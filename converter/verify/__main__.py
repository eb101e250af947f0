"""The verifier's command line.

``python -m converter.verify install [DIR]``
    installs the pinned TF.js npm packages (default ``<sys.prefix>/tfjs_js``,
    where ``--verify`` looks for them).
``python -m converter.verify check SOURCE MODEL [flags]``
    runs SOURCE in TensorFlow/Keras and the converted MODEL in real TF.js and
    compares them (``converter/verify/check.py``); exit 0 with a one-line
    summary, 1 with the report, 2 for usage errors.
"""

import argparse
import os
import sys

# Run as a script in isolated mode (-I, as Bazel tests do), the repository root is not
# on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from converter import request as rq  # noqa: E402
from converter.errors import ConversionError, UsageError  # noqa: E402

PROG = "converter.verify"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    install = sub.add_parser("install", help="install the pinned TF.js npm packages")
    install.add_argument("dir", nargs="?")
    check = sub.add_parser("check", help="compare a converted model with its source")
    check.add_argument("source", help="the source model")
    check.add_argument("model", help="the converted model (TF.js dir / model.json, or Keras file)")
    check.add_argument("--input_format", choices=rq.INPUT_FORMATS,
                       help="format of SOURCE (detected when omitted)")
    check.add_argument("--output_format", choices=rq.OUTPUT_FORMATS,
                       help="format of MODEL (from model.json / the extension when omitted)")
    check.add_argument("--inputs", help=".npy (one-input models) or .npz keyed by input name")
    check.add_argument("--backends", default=",".join(rq.VERIFY_BACKENDS),
                       help="comma-separated subset of %s" % ",".join(rq.ALL_VERIFY_BACKENDS))
    check.add_argument("--signature_name")
    check.add_argument("--saved_model_tags", default="serve")
    check.add_argument("--output_node_names")
    check.add_argument("--seed", type=int, default=0)
    check.add_argument("--atol", type=float, help="absolute tolerance (times max(1, max|y|))")
    check.add_argument("--rtol", type=float, default=None)
    check.add_argument("--debug", action="store_true",
                       help="show TensorFlow's start-up log lines (silenced otherwise)")
    return p


def _output_format(model: str) -> str:
    if model.endswith(".keras"):
        return rq.KERAS_KERAS
    if model.endswith((".h5", ".hdf5")):
        return rq.KERAS
    from converter.verify import check
    from converter.weights import format as wf
    doc = check._load_json(check.model_json_path(model))  # pylint: disable=protected-access
    return rq.TFJS_GRAPH_MODEL if doc.get(wf.FORMAT) == wf.GRAPH_MODEL_FORMAT else \
        rq.TFJS_LAYERS_MODEL


def _check(args) -> int:
    from converter.readers.detect import detect_input_format
    from converter.verify import check
    backends = tuple(b for b in args.backends.split(",") if b)
    unknown = [b for b in backends if b not in rq.ALL_VERIFY_BACKENDS]
    if unknown or not backends:
        raise UsageError("--backends got %r, want a comma-separated subset of %s"
                         % (args.backends, ",".join(rq.ALL_VERIFY_BACKENDS)))
    source = check.Source(args.source, args.input_format or detect_input_format(args.source),
                          args.signature_name, args.saved_model_tags, args.output_node_names)
    report = check.verify(source, args.model, args.output_format or _output_format(args.model),
                          backends=backends, inputs_path=args.inputs, seed=args.seed,
                          atol=args.atol, rtol=check.RTOL if args.rtol is None else args.rtol)
    print("%s: %s matches %s: %s" % (PROG, args.model, args.source, report.summary()))
    return 0


def main(argv) -> int:
    try:
        args = _parser().parse_args(argv)
        if args.command == "install":
            from converter.verify import runtime
            try:
                print(runtime.install(args.dir, quiet=True))
            except runtime.TfjsHarnessError as error:
                raise ConversionError(str(error)) from None
            return 0
        from converter import tf_logs
        with tf_logs.quiet(args.debug):
            return _check(args)
    except ConversionError as error:
        # The report may span several outputs; it stays one line per problem.
        print("%s: error: %s" % (PROG, str(error).replace(" | ", "\n  ")), file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
