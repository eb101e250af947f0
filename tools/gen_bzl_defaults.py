#!/usr/bin/env python3
"""Generates tfjs_rules/private/generated_formats.bzl from converter/request.py.

converter/request.py is the one place where format names, the output format
inferred per input format, and every option's name, kind, default and allowed
values live. The rules cannot import Python, so this script writes them as
Starlark constants: tfjs_model takes its attribute defaults and its checks from
them, and tests/test_generated_bzl.py fails when the checked-in file differs
from what this script writes now. Mappings are sorted by key; sequences keep
request.py's order (it is the order messages and --help list them in). The
layout is buildifier's: one element per line, trailing commas, double quotes.

Usage: tools/gen_bzl_defaults.py [--output FILE] [--check]
"""

import argparse
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from converter import request as rq  # noqa: E402
from converter.weights import format as wf  # noqa: E402

DEFAULT_OUTPUT = ROOT / "tfjs_rules" / "private" / "generated_formats.bzl"

_HEADER = '''"""Format names and option defaults of the converter, for the rules.

Generated from converter/request.py by tools/gen_bzl_defaults.py; do not edit.
Regenerate with `.venv/bin/python tools/gen_bzl_defaults.py` after changing
request.py (tests/test_generated_bzl.py fails while this file is out of date).
"""
'''


def starlark(value, indent: int = 0) -> str:
    """``value`` (str, bool, int, None, list, tuple or dict) as buildifier-formatted Starlark.

    Raises:
      TypeError: a value of another type.
    """
    pad = " " * (indent + 4)
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # double quotes; escapes Starlark reads the same way
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[\n" + "".join("%s%s,\n" % (pad, starlark(v, indent + 4)) for v in value) + \
            " " * indent + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{\n" + "".join("%s%s: %s,\n" % (pad, starlark(k), starlark(value[k], indent + 4))
                               for k in sorted(value)) + " " * indent + "}"
    raise TypeError("no Starlark spelling for %r" % (value,))


def _format_constants():
    """``{NAME: value}`` of request.py's format-name constants."""
    names = set(rq.INPUT_FORMATS) | set(rq.OUTPUT_FORMATS)
    return {k: v for k, v in vars(rq).items()
            if k.isupper() and isinstance(v, str) and v in names}


def derive() -> str:
    """The text of generated_formats.bzl for the current converter/request.py."""
    defaults = rq.field_defaults()
    rule_defaults = dict(defaults)
    unknown = sorted(set(rq.RULE_DEFAULT_OVERRIDES) - set(defaults))
    if unknown:
        raise SystemExit("RULE_DEFAULT_OVERRIDES names no optional field: %s" % ", ".join(unknown))
    rule_defaults.update(rq.RULE_DEFAULT_OVERRIDES)
    kinds = rq.field_kinds()
    sections = [
        ("Format names, as the official tensorflowjs_converter spells them.", None),
    ]
    sections += [(None, (k, v)) for k, v in sorted(_format_constants().items())]
    sections += [
        ("Every input format (--input_format), in request.py's order.",
         ("INPUT_FORMATS", rq.INPUT_FORMATS)),
        ("Every output format (--output_format), in request.py's order.",
         ("OUTPUT_FORMATS", rq.OUTPUT_FORMATS)),
        ("The output formats that are TF.js models (a model.json and shards).",
         ("TFJS_OUTPUTS", rq.TFJS_OUTPUTS)),
        ("The output format the converter infers when none is given, per input format.",
         ("DEFAULT_OUTPUT_FORMAT", rq.DEFAULT_OUTPUT_FORMAT)),
        ("The dtypes of the quantize_<dtype> options.", ("QUANTIZE_DTYPES", rq.QUANTIZE_DTYPES)),
        ("TF.js backends: verify's default, those that run in Node, and all verify knows.",
         ("VERIFY_BACKENDS", rq.VERIFY_BACKENDS)),
        (None, ("NODE_VERIFY_BACKENDS", rq.NODE_VERIFY_BACKENDS)),
        (None, ("ALL_VERIFY_BACKENDS", rq.ALL_VERIFY_BACKENDS)),
        ("weight_shard_size_bytes = None (the default) means this size.",
         ("DEFAULT_SHARD_SIZE_BYTES", wf.DEFAULT_SHARD_SIZE_BYTES)),
        ("Every request field (a request file's keys) and its kind.",
         ("OPTION_KINDS", {k: v[0] for k, v in kinds.items()})),
        ("The fields that take None (null in a request file).",
         ("NULLABLE_OPTIONS", sorted(k for k, v in kinds.items() if v[1]))),
        ("The values a field (each element of a list field) may take.",
         ("OPTION_CHOICES", rq.FIELD_CHOICES)),
        ("The default of every optional field.", ("DEFAULTS", defaults)),
        ("The defaults of tfjs_model: DEFAULTS with request.py's RULE_DEFAULT_OVERRIDES.",
         ("RULE_DEFAULTS", rule_defaults)),
    ]
    out = [_HEADER]
    for comment, assignment in sections:
        if comment:
            out.append("\n# %s\n" % comment)
        if assignment:
            name, value = assignment
            out.append("%s = %s\n" % (name, starlark(value)))
    return "".join(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=pathlib.Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--check", action="store_true",
                        help="fail if --output differs instead of writing it")
    args = parser.parse_args(argv)
    text = derive()
    if args.check:
        if not args.output.is_file() or args.output.read_text(encoding="utf-8") != text:
            print("%s is out of date; run tools/gen_bzl_defaults.py" % args.output,
                  file=sys.stderr)
            return 1
        return 0
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, args.output)
    print("wrote %s" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
