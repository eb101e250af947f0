#!/usr/bin/env python3
"""Generates converter/graph/tfjs_ops.json from the @tensorflow/tfjs-converter npm package.

The TF.js graph executor knows exactly the ops its op mappers list: one file per
category under ``dist/operations/op_list/`` whose entries carry ``tfOpName``.
This script reads those files from an installed package (by default the one the
verifier installs in <venv>/tfjs_js/node_modules) and writes the sorted op names
per category with the package version, so the converter's op check follows the
runtime instead of a hand-copied list.

Usage: tools/gen_tfjs_ops.py [--package DIR] [--output FILE] [--check]
"""

import argparse
import json
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_PACKAGE = (pathlib.Path(sys.prefix) / "tfjs_js" / "node_modules" / "@tensorflow"
                   / "tfjs-converter")
DEFAULT_OUTPUT = ROOT / "converter" / "graph" / "tfjs_ops.json"
OP_LIST_DIR = pathlib.Path("dist") / "operations" / "op_list"

_OP_NAME = re.compile(r"""['"]tfOpName['"]\s*:\s*['"]([A-Za-z0-9_]+)['"]""")
_KEY = re.compile(r"""['"]tfOpName['"]""")


def derive(package_dir: pathlib.Path) -> dict:
    """The op list document of the tfjs-converter package in ``package_dir``.

    Raises:
      SystemExit: the package or its op lists are missing, or an entry cannot be read.
    """
    manifest = package_dir / "package.json"
    op_dir = package_dir / OP_LIST_DIR
    if not manifest.is_file() or not op_dir.is_dir():
        raise SystemExit("%s: not an installed @tensorflow/tfjs-converter (want package.json "
                         "and %s)" % (package_dir, OP_LIST_DIR))
    version = json.loads(manifest.read_text())["version"]
    categories = {}
    for path in sorted(op_dir.glob("*.js")):
        text = path.read_text()
        names = _OP_NAME.findall(text)
        if len(names) != len(_KEY.findall(text)):
            raise SystemExit("%s: %d tfOpName keys but %d readable names; the file format "
                             "changed" % (path, len(_KEY.findall(text)), len(names)))
        categories[path.stem] = sorted(set(names))
    if not categories:
        raise SystemExit("%s: no op list files" % op_dir)
    return {
        "generated_by": "tools/gen_tfjs_ops.py",
        "package": "@tensorflow/tfjs-converter",
        "version": version,
        "categories": categories,
    }


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, sort_keys=True) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", type=pathlib.Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="fail if --output differs instead of writing it")
    args = parser.parse_args(argv)
    text = dumps(derive(args.package))
    if args.check:
        if not args.output.is_file() or args.output.read_text() != text:
            print("%s is out of date; run tools/gen_tfjs_ops.py" % args.output, file=sys.stderr)
            return 1
        return 0
    tmp = args.output.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, args.output)
    n = sum(len(v) for v in json.loads(text)["categories"].values())
    print("wrote %s: %d ops" % (args.output, n))
    return 0


if __name__ == "__main__":
    sys.exit(main())
