#!/usr/bin/env bash
# Runs the whole test suite (all tiers, slow ones included) after setting up.
# Extra arguments go to pytest, e.g. tools/test.sh -m "not slow" -x.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
# loadfile: a module's batched TF.js fixture runs once, on one worker.
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
