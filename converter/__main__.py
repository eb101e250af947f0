"""``python -m converter``: the tfjs_converter command line."""

import sys

from converter.cli import main

sys.exit(main())
