"""``python -m converter.verify install [DIR]``: installs the pinned TF.js npm packages.

DIR defaults to ``<sys.prefix>/tfjs_js``, where ``--verify`` looks for them.
"""

import sys

from converter.verify import runtime


def main(argv) -> int:
    if len(argv) not in (1, 2) or argv[0] != "install":
        sys.stderr.write("usage: python -m converter.verify install [DIR]\n")
        return 2
    try:
        root = runtime.install(argv[1] if len(argv) == 2 else None, quiet=True)
    except runtime.TfjsHarnessError as error:
        sys.stderr.write("converter.verify: %s\n" % error)
        return 1
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
