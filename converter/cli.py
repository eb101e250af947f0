"""The ``tfjs_converter`` command line, flag-compatible with ``tensorflowjs_converter``.

Same positional arguments, flag names and format names, with the official
tool's parsing bugs fixed: boolean flags take ``true``/``false`` (or no value),
a quantize flag given without a value never swallows a positional path, paths
with spaces are kept whole, and the input format is detected when omitted.
Errors print one line and exit 2 (usage) or 1 (conversion); ``--debug`` adds
the traceback.
"""

import argparse
import os
import sys
import traceback
from typing import List, Optional, Sequence

from converter import __version__
from converter import request as rq
from converter import tf_logs
from converter.errors import ConversionError, UsageError
from converter.weights import format as wf

PROG = "tfjs_converter"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
# Every boolean request field is a flag that may stand alone ("--verify" = true).
_BOOL_FLAGS = tuple(sorted("--" + name for name, (kind, _) in rq.field_kinds().items()
                           if kind == "bool")) + ("--experiments", "--debug")
_QUANTIZE_FLAGS = tuple("--quantize_" + d for d in rq.QUANTIZE_DTYPES)
_VALUE_FLAGS = ("--input_format", "--output_format", "--signature_name", "--saved_model_tags",
                "--weight_shard_size_bytes", "--output_node_names", "--metadata",
                "--quantization_bytes", "--verify_backends", "--tflite_batch_size", "--onnx_opset")


# The defaults of the flags that are request fields: the request's own.
_DEFAULTS = rq.field_defaults()


def _add_bool(p: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """A boolean flag for request field ``name``, with the field's default."""
    p.add_argument("--" + name, type=parse_bool, default=_DEFAULTS[name], metavar="[BOOL]",
                   **kwargs)


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse_bool(value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError("want true or false, got %r" % value)


def _patterns(value: str):
    pats = tuple(p.strip() for p in value.split(",") if p.strip())
    if not pats:
        raise argparse.ArgumentTypeError("want comma-separated weight-name patterns, got %r" % value)
    return pats


def parse_metadata(value: str):
    """``key:path.json[,key2:path2.json]``; a path may hold ``:`` (``C:\\m.json``)."""
    entries = []
    for item in value.split(","):
        key, sep, path = item.partition(":")
        if not sep or not key.strip() or not path.strip():
            raise argparse.ArgumentTypeError("want key:path.json entries, got %r" % item)
        entries.append((key.strip(), path.strip()))
    return tuple(entries)


def _shard_size(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("want a positive integer, got %r" % value) from None
    if n <= 0:
        raise argparse.ArgumentTypeError("want a positive integer, got %r" % value)
    return n


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description=(
        "Converts TensorFlow and Keras models to TensorFlow.js (flags and formats of "
        "tensorflowjs_converter). Boolean flags take true/false or no value."))
    p.add_argument("input_path", nargs="?", help="source model: .h5, .keras, SavedModel dir, "
                   "model.json, .pb")
    p.add_argument("output_path", nargs="?", help="output directory (TF.js) or file (Keras)")
    p.add_argument("--input_format", choices=rq.INPUT_FORMATS,
                   help="detected from the input when omitted")
    p.add_argument("--output_format", choices=rq.OUTPUT_FORMATS,
                   help="inferred from the input format when omitted")
    for dtype in rq.QUANTIZE_DTYPES:
        p.add_argument("--quantize_" + dtype, type=_patterns, metavar="PATTERNS",
                       help="quantize weights matching these comma-separated wildcards to %s; "
                       "without a value, every weight no other flag claims" % dtype)
    p.add_argument("--quantization_bytes", type=int, choices=(1, 2),
                   help="deprecated: 1 = --quantize_uint8, 2 = --quantize_uint16")
    p.add_argument("--weight_shard_size_bytes", type=_shard_size,
                   help="shard size of TF.js outputs (default %d)" % wf.DEFAULT_SHARD_SIZE_BYTES)
    _add_bool(p, "content_hash_shards",
              help="name shards groupG-shardIofN.<hash>.bin by their content (TF.js "
              "outputs): cache-friendly URLs; model.json references them")
    _add_bool(p, "split_weights_by_layer")
    p.add_argument("--metadata", type=parse_metadata, default=_DEFAULTS["metadata"],
                   help="key:path.json[,key2:path2.json] into userDefinedMetadata")
    p.add_argument("--signature_name")
    p.add_argument("--saved_model_tags", default=_DEFAULTS["saved_model_tags"])
    p.add_argument("--output_node_names")
    _add_bool(p, "strip_debug_ops")
    _add_bool(p, "control_flow_v2")
    _add_bool(p, "skip_op_check")
    _add_bool(p, "use_structured_outputs_names")
    p.add_argument("--experiments", type=parse_bool, default=False, metavar="[BOOL]",
                   help="accepted for compatibility; has no effect")
    _add_bool(p, "verify",
              help="run the output in real TF.js against the source in TensorFlow on "
              "seeded inputs; fail (previous output kept) beyond the tolerance")
    p.add_argument("--verify_backends", type=_backends, default=_DEFAULTS["verify_backends"],
                   metavar="BACKENDS", help="comma-separated TF.js backends for --verify "
                   "(default %s; webgl runs in headless Chromium)" % ",".join(rq.VERIFY_BACKENDS))
    _add_bool(p, "tflite_select_tf_ops",
              help="tflite output: allow TensorFlow ops where no TFLite builtin exists "
              "(LiteRT.js cannot run the result)")
    p.add_argument("--tflite_batch_size", type=_shard_size, metavar="N",
                   help="tflite output: fix the inputs' batch dimension to N (LiteRT.js needs "
                   "static input shapes); default keeps it dynamic")
    p.add_argument("--onnx_opset", type=_shard_size, metavar="N",
                   help="onnx output: the ONNX opset (default: the writer's)")
    _add_bool(p, "onnx_external_data",
              help="onnx output: weights in <output>.data beside the .onnx, always (true) or "
              "never (false: refuse a model over 2 GB); default only over 2 GB")
    _add_bool(p, "dequantize",
              help="TF.js input and output: write quantized weights as float32")
    p.add_argument("--version", "-v", action="store_true", help="print versions and exit")
    p.add_argument("--debug", type=parse_bool, default=False, metavar="[BOOL]",
                   help="print the traceback of an error, and TensorFlow's start-up log "
                   "lines (silenced otherwise)")
    return p


def _backends(value: str):
    backends = tuple(b.strip() for b in value.split(",") if b.strip())
    unknown = [b for b in backends if b not in rq.ALL_VERIFY_BACKENDS]
    if unknown or not backends:
        raise argparse.ArgumentTypeError("got %r, want a comma-separated subset of %s"
                                         % (value, ",".join(rq.ALL_VERIFY_BACKENDS)))
    return backends


def _flag_name(token: str) -> str:
    return token.split("=", 1)[0]


def normalize_argv(argv: Sequence[str]) -> List[str]:
    """Attaches flag values with ``=`` so that no flag can swallow a positional.

    A boolean flag takes the next argument only if it is a boolean word. A bare
    quantize flag takes the next argument as its patterns only while two
    positional paths remain without it; otherwise it means "all weights".
    """
    out: List[str] = []
    quantize_at: List[int] = []  # indices in out of bare quantize flags
    argv = list(argv)
    i = 0
    while i < len(argv):
        tok = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else None
        if tok == "--":
            out.extend(argv[i:])
            break
        if tok in _BOOL_FLAGS:
            takes_next = nxt is not None and nxt.strip().lower() in _TRUE + _FALSE
            out.append(tok + "=" + (nxt if takes_next else "true"))
            i += 2 if takes_next else 1
        elif tok in _VALUE_FLAGS and nxt is not None:
            out.append(tok + "=" + nxt)
            i += 2
        else:
            if tok in _QUANTIZE_FLAGS:
                quantize_at.append(len(out))
            out.append(tok)
            i += 1
    candidates = [j for j in quantize_at if j + 1 < len(out) and not out[j + 1].startswith("-")]
    positionals = sum(1 for t in out if not t.startswith("-")) - len(candidates)
    # Give candidates back as positionals, the last first, until two paths remain.
    keep = set(candidates[:max(0, len(candidates) - max(0, 2 - positionals))])
    result: List[str] = []
    j = 0
    while j < len(out):
        if j in keep:
            result.append(out[j] + "=" + out[j + 1])
            j += 2
            continue
        result.append(out[j] + "=" + rq.ALL_WEIGHTS_FLAG_VALUE if j in quantize_at else out[j])
        j += 1
    return result


def request_from_args(args: argparse.Namespace) -> rq.ConversionRequest:
    quantize = {d: getattr(args, "quantize_" + d) for d in rq.QUANTIZE_DTYPES}
    quantize = {d: (rq.ALL_WEIGHTS if v == (rq.ALL_WEIGHTS_FLAG_VALUE,) else v)
                for d, v in quantize.items()}
    if args.quantization_bytes is not None:
        if any(v is not None for v in quantize.values()):
            raise UsageError("--quantization_bytes cannot be combined with --quantize_* flags")
        quantize["uint8" if args.quantization_bytes == 1 else "uint16"] = rq.ALL_WEIGHTS
    if args.input_path is None or args.output_path is None:
        raise UsageError("want input_path and output_path (see --help)")
    return rq.ConversionRequest(
        input_path=args.input_path,
        output_path=args.output_path,
        input_format=args.input_format,
        output_format=args.output_format,
        quantize_float16=quantize["float16"],
        quantize_uint8=quantize["uint8"],
        quantize_uint16=quantize["uint16"],
        weight_shard_size_bytes=args.weight_shard_size_bytes,
        content_hash_shards=args.content_hash_shards,
        split_weights_by_layer=args.split_weights_by_layer,
        metadata=args.metadata,
        signature_name=args.signature_name,
        saved_model_tags=args.saved_model_tags,
        output_node_names=args.output_node_names,
        strip_debug_ops=args.strip_debug_ops,
        control_flow_v2=args.control_flow_v2,
        skip_op_check=args.skip_op_check,
        use_structured_outputs_names=args.use_structured_outputs_names,
        verify=args.verify,
        verify_backends=args.verify_backends,
        tflite_select_tf_ops=args.tflite_select_tf_ops,
        tflite_batch_size=args.tflite_batch_size,
        onnx_opset=args.onnx_opset,
        onnx_external_data=args.onnx_external_data,
        dequantize=args.dequantize,
    )


def written_text(result) -> str:
    """What the "wrote" line says of an output: weights and groups for a TF.js model or
    a Keras / SavedModel one, bytes for a one-file format (.tflite, .onnx and its data)."""
    if result.output_format in (rq.TFLITE, rq.ONNX):
        from converter.writers.onnx import EXTERNAL_DATA_SUFFIX
        text = "%s, %d bytes" % (result.output_format, os.path.getsize(result.output_path))
        data = result.output_path + EXTERNAL_DATA_SUFFIX
        if result.output_format == rq.ONNX and os.path.isfile(data):
            text += " + %d bytes of external data in %s" % (os.path.getsize(data),
                                                             os.path.basename(data))
        return text
    return "%s, %d weights in %d group%s" % (result.output_format, result.num_weights,
                                             result.num_groups,
                                             "" if result.num_groups == 1 else "s")


def version_text() -> str:
    """The converter's version and those of its dependencies, read from installed metadata.

    TensorFlow is named by the distribution that provides the ``tensorflow``
    module, whatever it is called (tensorflow, tensorflow-cpu, tf-nightly,
    tensorflow-intel, ...); nothing is imported.
    """
    from converter import extras  # importlib.metadata: only for --version
    parts = []
    for module in ("numpy", "h5py", "tensorflow", "keras", "tf_keras"):
        dists = extras.distributions_of(module)
        if dists:
            parts += ["%s %s" % (d, extras.distribution_version(d)) for d in dists]
        elif extras.is_importable(module):
            parts.append("%s (no distribution metadata)" % module)
        elif module in ("numpy", "h5py"):
            parts.append("%s not installed" % module)
        elif module == "tensorflow":
            parts.append("TensorFlow not installed (graph paths need it: %s)"
                         % extras.install_hint("tf"))
    return "%s %s (%s)" % (PROG, __version__, ", ".join(parts))


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = any(_flag_name(t) == "--debug" and not t.endswith(("=false", "=0", "=no", "=off"))
                for t in argv)
    try:
        args = build_parser().parse_args(normalize_argv(argv))
        if args.version:
            print(version_text())
            return 0
        from converter.api import run
        with tf_logs.quiet(debug):
            result = run(request_from_args(args))
    except ConversionError as e:
        if debug:
            traceback.print_exc()
        print("%s: error: %s" % (PROG, e), file=sys.stderr)
        return e.exit_code
    print("%s: wrote %s (%s)" % (PROG, result.output_path, written_text(result)))
    if result.verification:
        print("%s: verified: %s" % (PROG, result.verification))
    return 0


if __name__ == "__main__":
    sys.exit(main())
