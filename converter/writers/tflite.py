"""TFLite (``.tflite``) files for LiteRT and LiteRT.js, written by TensorFlow's own converter.

``tf.lite.TFLiteConverter`` does the conversion (the owner of a format writes
it); this module adds what it lacks:

* TFLite builtin ops only by default: an op that needs TensorFlow kernels (or has
  no kernel at all) is a one-line ``UnsupportedOpError`` naming every op and
  node; ``tflite_select_tf_ops`` allows Select TF ops, with a warning that
  LiteRT.js cannot run the result;
* ``quantize_float16`` stores every float weight as float16 (dequantized on
  load); the dynamic batch dimension of the inputs (``-1``) is kept unless
  ``tflite_batch_size`` fixes it (LiteRT.js refuses to feed a ``[-1, ...]``
  input from a ``[1, ...]`` buffer, so a dynamic batch draws a warning saying so,
  as do outputs of a run-time shape with every input fixed, which LiteRT.js cannot
  allocate);
* refusals of dtypes TFLite has no tensor type for (quantized types), naming
  every node, and of models over the 2 GiB a flatbuffer can hold;
* byte-reproducible files: the bytes depend only on the SavedModel's graph and
  weights, never on its path, the process's function-name counters or the run:
  the converter runs in a fresh process (converter/writers/isolated.py) and
  ``normalize`` names internal tensors by position and serializes Flex ops'
  NodeDefs deterministically (see its doc);
* atomic output (``converter.output.atomic_file``): a failure leaves the
  previous file untouched.

Keras sources (``.h5``, ``.keras``) are first exported to a temporary SavedModel
by ``export_keras_saved_model``, so every source takes the same path.
"""

import contextlib
import os
import re
import sys
import tempfile
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from converter import request as rq
from converter.errors import ConversionError, InvalidModelError, UnsupportedOpError, UsageError
from converter.output import atomic_file
from converter.tf_logs import native_stderr_silenced

PROG = "tfjs_converter"
SIGNATURE_KEY = "serving_default"
# What a Select TF op costs: LiteRT.js (and LiteRT builds without the Flex
# delegate) cannot run such a model.
_FLEX_WARNING = ("LiteRT.js and LiteRT builds without the Flex delegate cannot run it")
# ConverterErrorData error codes (tensorflow/lite/python/metrics/converter_error_data.proto).
_NEEDS_FLEX = "ERROR_NEEDS_FLEX_OPS"
_NEEDS_CUSTOM = "ERROR_NEEDS_CUSTOM_OPS"
_MAX_LISTED = 20
# A flatbuffer addresses its contents with 32-bit signed offsets: a .tflite
# (and LiteRT.js, which reads it whole) holds at most 2 GiB.
TFLITE_MAX_BYTES = 2 ** 31 - 1
# The converter pass that lowers TensorList ops (RNN loops) to builtins; it
# needs every list's element shape known.
_TENSOR_LIST_PASS = "LowerStaticTensorListPass"
_CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")

# Runs on the written temporary file before it replaces the previous output.
Check = Callable[[str], str]


def warn(message: str) -> None:
    """One warning line on stderr (the CLI's and worker's convention for notices)."""
    print("%s: warning: %s" % (PROG, " ".join(message.split())), file=sys.stderr)


def tag_list(tags: str) -> Optional[List[str]]:
    return [t for t in tags.split(",") if t] or None


def load_signature(saved_model_dir: str, signature_key: str, tags: str, where: str):
    """``(loaded SavedModel, its signature function)``.

    Raises:
      InvalidModelError: TensorFlow cannot load the SavedModel.
      UsageError: it has no such signature.
    """
    import tensorflow as tf
    try:
        with native_stderr_silenced():
            loaded = tf.saved_model.load(saved_model_dir, tags=tag_list(tags))
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as e:
        raise InvalidModelError("%s: TensorFlow cannot load this SavedModel: %s"
                                % (where, _first_line(e))) from None
    if signature_key not in loaded.signatures:
        raise UsageError("%s: no signature %r (has %s); choose one with --signature_name"
                         % (where, signature_key, ", ".join(sorted(loaded.signatures)) or "none"))
    return loaded, loaded.signatures[signature_key]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def input_specs(func) -> Dict[str, object]:
    """``{input key: tf.TensorSpec}`` of a signature function."""
    _, kwargs = func.structured_input_signature
    return dict(sorted(kwargs.items()))


def fixed_batch_function(func, batch_size: int, where: str):
    """The signature ``func`` traced again with every input's batch dimension fixed.

    Scalar inputs have no batch dimension and stay as they are.

    Raises:
      UsageError: an input's batch dimension is fixed to another size, its rank
        is unknown, or no input has a batch dimension.
    """
    import tensorflow as tf
    specs = {}
    for key, spec in input_specs(func).items():
        if spec.shape.rank is None:
            raise UsageError("%s: --tflite_batch_size %d cannot apply to input %r of unknown "
                             "rank; omit the flag" % (where, batch_size, key))
        dims = spec.shape.as_list()
        if dims and dims[0] is not None and dims[0] != batch_size:
            raise UsageError("%s: input %r has a fixed batch of %d, --tflite_batch_size %d "
                             "cannot change it; omit the flag or give %d"
                             % (where, key, dims[0], batch_size, dims[0]))
        shape = [batch_size] + dims[1:] if dims else []
        specs[key] = tf.TensorSpec(shape, spec.dtype, name=key)
    if all(not s.shape.rank for s in specs.values()):
        raise UsageError("%s: --tflite_batch_size %d: no input has a batch dimension (all are "
                         "scalars); omit the flag" % (where, batch_size))

    def serve(**kwargs):
        return func(**kwargs)

    return tf.function(serve, autograph=False).get_concrete_function(**specs)


def _float16_everything(request: rq.ConversionRequest) -> bool:
    patterns = request.quantize_float16
    if patterns is None:
        return False
    if tuple(patterns) not in (rq.ALL_WEIGHTS, ("*",)):
        raise UsageError("--quantize_float16 takes no weight patterns for a tflite output "
                         "(TFLite stores every float weight as float16 or none); got %s, "
                         "give --quantize_float16 without a value" % ",".join(patterns))
    return True


def _node_of(location) -> str:
    """The TF node name of a ConverterErrorData location (``name@function`` -> ``name``).

    A call-site location lists the node first, then the calls that reach it.
    """
    calls = list(getattr(location, "call", ()))
    name = calls[0].name if calls else getattr(location, "name", "")
    return name.split("@")[0] if name else "?"


def _op_errors(error) -> List[Tuple[str, str, str]]:
    """``[(op, node, error code)]`` of the ops a ConverterError refused, in report order.

    A TensorList op whose element shape is unknown (an RNN loop over a dynamic
    batch) counts as needing TF kernels: that is what lets it convert.
    """
    found = []
    for data in getattr(error, "errors", None) or []:
        code = data.ErrorCode.Name(data.error_code) if hasattr(data, "ErrorCode") else ""
        op = data.operator.name
        node = _node_of(data.location)
        if data.subcomponent == _TENSOR_LIST_PASS and op and node != "?":
            code = _NEEDS_FLEX  # the pass's summary entry has no location: skipped
        if code not in (_NEEDS_FLEX, _NEEDS_CUSTOM) or not op:
            continue
        op = op[3:] if op.startswith("tf.") else op
        entry = (op, node, code)
        if entry not in found:
            found.append(entry)
    return found


def _unsupported_ops_message(where: str, ops: Sequence[Tuple[str, str, str]],
                             select_tf_ops: bool) -> str:
    flex = [(op, node) for op, node, code in ops if code == _NEEDS_FLEX]
    custom = [(op, node) for op, node, code in ops if code == _NEEDS_CUSTOM]

    def listed(pairs):
        text = ", ".join("%s (node %s)" % p for p in pairs[:_MAX_LISTED])
        return text + (", ..." if len(pairs) > _MAX_LISTED else "")

    parts = []
    if flex and not select_tf_ops:
        parts.append("%d op(s) need TensorFlow kernels, not TFLite builtins: %s; "
                     "--tflite_select_tf_ops allows them (%s)" % (len(flex), listed(flex),
                                                                  _FLEX_WARNING))
    if custom:
        parts.append("%d op(s) have no TFLite or Select TF kernel: %s"
                     % (len(custom), listed(custom)))
    return "%s: cannot convert to TFLite: %s" % (where, "; ".join(parts))


def graph_nodes(func) -> Iterator[Tuple[str, object]]:
    """``(function name or "", NodeDef)`` of a concrete function's graph and its library."""
    graph_def = func.graph.as_graph_def()
    for node in graph_def.node:
        yield "", node
    for function in graph_def.library.function:
        for node in function.node_def:
            yield function.signature.name, node


def node_dtypes(node) -> Iterator[object]:
    """The DataType values of a NodeDef's type attributes (``T``, ``dtype``, lists ...)."""
    for key in sorted(node.attr):
        value = node.attr[key]
        kind = value.WhichOneof("value")
        if kind == "type":
            yield value.type
        elif kind == "list":
            yield from value.list.type


def refuse_dtypes(func, has_type: Callable[[object], bool], fmt: str, where: str) -> None:
    """Raises naming every node that holds a dtype ``fmt`` has no tensor type for.

    Raises:
      UnsupportedOpError: one line listing node, op and dtype of each.
    """
    import tensorflow as tf
    bad: List[Tuple[str, str, str]] = []
    for _, node in graph_nodes(func):
        if node.op in _CALL_OPS:
            continue  # a call passes its callee's dtypes on; the callee's nodes are listed
        for dtype in node_dtypes(node):
            if not has_type(dtype):
                entry = (node.name, node.op, tf.dtypes.as_dtype(dtype).name)
                if entry not in bad:
                    bad.append(entry)
    if bad:
        listed = ", ".join("node %s (op %s) has dtype %s" % b for b in bad[:_MAX_LISTED])
        raise UnsupportedOpError("%s: cannot convert to %s: %d node(s) use a dtype with no %s "
                                 "tensor type: %s%s" % (where, fmt, len(bad), fmt, listed,
                                                        ", ..." if len(bad) > _MAX_LISTED
                                                        else ""))


def tflite_has_type(dtype) -> bool:
    """TFLite's schema has a tensor type of this TensorFlow DataType (by its name)."""
    import tensorflow as tf
    from tensorflow.lite.python import schema_py_generated as schema
    name = tf.dtypes.as_dtype(dtype).name.upper()
    return hasattr(schema.TensorType, name)


def saved_model_bytes(saved_model_dir: str) -> int:
    """What the SavedModel's graph and variables weigh on disk."""
    total = 0
    for root, _, files in os.walk(saved_model_dir):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def _refuse_oversized(saved_model_dir: str, request: rq.ConversionRequest, where: str) -> None:
    size = saved_model_bytes(saved_model_dir)
    estimate = size // 2 if _float16_everything(request) else size
    if estimate > TFLITE_MAX_BYTES:
        raise ConversionError(
            "%s: cannot convert to TFLite: the model's graph and weights take %d bytes%s; a "
            ".tflite flatbuffer holds at most %d (2 GiB); convert to onnx (external data) or "
            "tf_saved_model instead" % (where, size, " (about %d as float16)" % estimate
                                        if estimate != size else "", TFLITE_MAX_BYTES))


def _make_converter(saved_model_dir: str, request: rq.ConversionRequest, signature_key: str,
                    tags: str, where: str):
    import tensorflow as tf
    loaded, func = load_signature(saved_model_dir, signature_key, tags, where)
    refuse_dtypes(func, tflite_has_type, "TFLite", where)
    if request.tflite_batch_size is None:
        converter = tf.lite.TFLiteConverter.from_saved_model(
            saved_model_dir, signature_keys=[signature_key], tags=set(tag_list(tags) or []))
    else:
        fixed = fixed_batch_function(func, request.tflite_batch_size, where)
        converter = tf.lite.TFLiteConverter.from_concrete_functions([fixed], loaded)
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if request.tflite_select_tf_ops:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
        # Keeps TensorList ops whose element shape is unknown as TF ops instead
        # of failing to lower them (the converter's documented switch for it).
        converter._experimental_lower_tensor_list_ops = False  # pylint: disable=protected-access
    converter.target_spec.supported_ops = ops
    if _float16_everything(request):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    return converter


def convert_saved_model(saved_model_dir: str, request: rq.ConversionRequest,
                        where: Optional[str] = None, signature_key: Optional[str] = None,
                        tags: Optional[str] = None) -> bytes:
    """The normalized ``.tflite`` bytes of a SavedModel signature.

    Args:
      saved_model_dir: the SavedModel.
      request: its tflite fields (``tflite_select_tf_ops``, ``tflite_batch_size``,
        ``quantize_float16``) apply.
      where: what messages call the source (default ``request.input_path``).
      signature_key: default ``request.signature_name`` or ``serving_default``.
      tags: default ``request.saved_model_tags``.

    Raises:
      UnsupportedOpError: an op has no TFLite builtin (or no kernel at all).
      ConversionError: the TFLite converter fails otherwise (its first error).
    """
    import tensorflow as tf
    from tensorflow.lite.python.convert_phase import ConverterError
    where = where or request.input_path
    signature_key = signature_key or request.signature_name or SIGNATURE_KEY
    tags = request.saved_model_tags if tags is None else tags
    converter = _make_converter(saved_model_dir, request, signature_key, tags, where)
    try:
        with native_stderr_silenced():
            data = converter.convert()
    except ConverterError as e:
        ops = _op_errors(e)
        blocking = [o for o in ops if o[2] == _NEEDS_CUSTOM or not request.tflite_select_tf_ops]
        if blocking:
            raise UnsupportedOpError(_unsupported_ops_message(where, ops,
                                                              request.tflite_select_tf_ops)
                                     ) from None
        raise ConversionError("%s: the TFLite converter failed: %s"
                              % (where, _converter_message(e))) from None
    except (ValueError, tf.errors.OpError) as e:
        raise ConversionError("%s: the TFLite converter failed: %s"
                              % (where, _first_line(e))) from None
    return normalize(bytes(data))


def _converter_message(error) -> str:
    """The first ``error:`` of the converter's MLIR diagnostics, without location noise."""
    text = str(error)
    match = re.search(r"error: (?:loc\(.*?\)\): )?(.+?)(?:\n|$)", text)
    return match.group(1) if match else _first_line(error)


# -- normalization ---------------------------------------------------------------------

def normalize(data: bytes) -> bytes:
    """``data`` with the run-dependent names of a TFLite flatbuffer made canonical.

    The converter names tensors after TensorFlow nodes, and those names are
    not a function of the model: traced functions carry a process-wide counter
    (``__inference_serve_123``), and when TensorFlow merges equal nodes the
    survivor's name depends on hash-map order, seeded per process. So every
    tensor that is not an input or output of its subgraph is renamed
    ``<subgraph>/t<index>``, and every subgraph but the first (loop and
    branch bodies) ``subgraph_<index>``. Inputs and outputs keep their names
    (signatures map their keys to them). Everything else the converter writes
    (ops, buffers, the CONVERSION_METADATA and min_runtime_version entries)
    depends only on the graph, weights, options and TensorFlow version.
    """
    from tensorflow.lite.python import schema_py_generated as schema
    import flatbuffers
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0))
    flex = {i for i, code in enumerate(model.operatorCodes or [])
            if code.customCode and bytes(code.customCode).startswith(b"Flex")}
    for s, subgraph in enumerate(model.subgraphs or []):
        visible = set(_as_list(subgraph.inputs)) | set(_as_list(subgraph.outputs))
        if s:
            subgraph.name = b"subgraph_%d" % s
        for i, tensor in enumerate(subgraph.tensors or []):
            if i not in visible:
                tensor.name = b"%d/t%d" % (s, i)
        for op in subgraph.operators or []:
            if op.opcodeIndex in flex and op.customOptions is not None:
                op.customOptions = list(_deterministic_flex_options(bytes(
                    bytearray(int(b) for b in op.customOptions))))
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _deterministic_flex_options(options: bytes) -> bytes:
    """A Flex op's options with its NodeDef serialized deterministically.

    The options are a flexbuffer vector ``[op name, serialized NodeDef]``; the
    converter serializes the NodeDef's attr map in hash-map order, so the same
    op got other bytes from run to run. The deterministic serialization has
    the same fields, so the same length, and replaces the old bytes in place.
    """
    from flatbuffers import flexbuffers
    from tensorflow.core.framework import node_def_pb2
    entries = flexbuffers.GetRoot(options).AsVector
    if len(entries) != 2 or not entries[1].IsString:
        return options
    old = entries[1].AsStringBytes
    node = node_def_pb2.NodeDef.FromString(old)
    new = node.SerializeToString(deterministic=True)
    if len(new) != len(old) or options.count(old) != 1:
        return options
    return options.replace(old, new)


def _as_list(values) -> List[int]:
    return [] if values is None else [int(v) for v in values]


def _signature_shapes(data: bytes, side: str) -> List[Tuple[str, List[int]]]:
    """``[(key, shape signature)]`` of the first signature's ``side`` ("Inputs" or
    "Outputs"), sorted by key (the names callers feed and read)."""
    from tensorflow.lite.python import schema_py_generated as schema
    model = schema.Model.GetRootAsModel(data, 0)
    if not model.SignatureDefsLength():
        return []
    signature = model.SignatureDefs(0)
    graph = model.Subgraphs(signature.SubgraphIndex())
    found = []
    for i in range(getattr(signature, side + "Length")()):
        entry = getattr(signature, side)(i)
        tensor = graph.Tensors(entry.TensorIndex())
        shape = [int(tensor.ShapeSignature(d)) for d in range(tensor.ShapeSignatureLength())]
        found.append((entry.Name().decode("utf-8"), shape))
    return sorted(found)


def dynamic_batch_inputs(data: bytes) -> List[Tuple[str, List[int]]]:
    """``[(input key, shape signature)]`` of the inputs whose batch dimension is ``-1``."""
    return [(k, s) for k, s in _signature_shapes(data, "Inputs") if s and s[0] == -1]


def dynamic_outputs(data: bytes) -> List[Tuple[str, List[int]]]:
    """``[(output key, shape signature)]`` of the outputs with a ``-1`` dimension."""
    return [(k, s) for k, s in _signature_shapes(data, "Outputs") if -1 in s]


class MismatchError(ConversionError):
    """A ``.tflite`` computes something other than the SavedModel it came from."""

    def __init__(self, message: str, why: str):
        super().__init__(message)
        self.why = why


# What matches_saved_model allows: float32 weights reproduce TensorFlow to
# rounding; float16 ones (--quantize_float16) are off by their rounding, far
# below what a wrong shape gives (other elements, zeros, or a run-time error).
_MATCH_TOLERANCE = {False: (1e-4, 1e-4), True: (1e-2, 1e-2)}
_MATCH_SEED = 20261207


def matches_saved_model(saved_model_dir: str, batch: int, float16: bool,
                        signature_key: str = SIGNATURE_KEY) -> Check:
    """A check (see write_tflite) that runs the ``.tflite`` in LiteRT's interpreter and
    the SavedModel's signature in TensorFlow on the same seeded inputs (batch
    ``batch``; converter.verify.check.seeded_inputs: other unknown dimensions 8,
    floats standard normal, integers in [0, 8)) and raises MismatchError unless every output matches within
    ``_MATCH_TOLERANCE`` (abs + rel of TensorFlow's value; NaN where TensorFlow
    has NaN). Returns a one-line summary.
    """
    def check(path: str) -> str:
        import numpy as np
        import tensorflow as tf
        from ai_edge_litert.interpreter import Interpreter
        from converter.verify.check import InputSpec, seeded_inputs
        function = tf.saved_model.load(saved_model_dir).signatures[signature_key]
        signature = function.structured_input_signature[1]
        specs = []
        for key in sorted(signature):
            spec = signature[key]
            if not (spec.dtype.is_floating or spec.dtype.is_integer or spec.dtype.is_bool):
                why = "cannot be checked (input %s is %s)" % (key, spec.dtype.name)
                raise MismatchError("%s: %s" % (path, why), why)
            dims = spec.shape.as_list() if spec.shape.rank is not None else []
            if dims and dims[0] is None:
                dims[0] = batch
            kind = (np.float32 if spec.dtype.is_floating
                    else np.bool_ if spec.dtype.is_bool else np.int32)
            specs.append(InputSpec(key, kind, tuple(dims)))
        inputs = {key: value.astype(signature[key].dtype.as_numpy_dtype)
                  for key, value in seeded_inputs(specs, _MATCH_SEED).items()}
        try:
            want = {k: v.numpy() for k, v in function(**{k: tf.constant(v)
                                                         for k, v in inputs.items()}).items()}
            with native_stderr_silenced():  # LiteRT's "Created ... XNNPACK delegate" line
                got = Interpreter(model_path=path).get_signature_runner(signature_key)(**inputs)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            why = "do not run (%s)" % _first_line(e)
            raise MismatchError("%s: %s" % (path, why), why) from None
        atol, rtol = _MATCH_TOLERANCE[float16]
        worst = 0.0
        for key in sorted(want):
            w = np.asarray(want[key])
            g = np.asarray(got.get(key)) if key in got else None
            if g is None or g.shape != w.shape:
                why = "give output %s the shape %s, TensorFlow %s" % (
                    key, None if g is None else list(g.shape), list(w.shape))
                raise MismatchError("%s: %s" % (path, why), why)
            if w.dtype.kind not in "fc":
                ok = np.array_equal(g, w)
                error = 0.0 if ok else float("inf")
            else:
                w64, g64 = w.astype(np.float64), g.astype(np.float64)
                ok = bool(np.all(np.isclose(g64, w64, rtol=rtol, atol=atol, equal_nan=True)))
                finite = np.isfinite(w64) & np.isfinite(g64)
                error = float(np.max(np.abs(g64 - w64)[finite])) if finite.any() else 0.0
            if not ok:
                why = ("do not reproduce TensorFlow on output %s (max abs error %.3g, over %g + "
                       "%g|y|)" % (key, error, atol, rtol))
                raise MismatchError("%s: %s" % (path, why), why)
            worst = max(worst, error)
        return "LiteRT vs TensorFlow at batch %d: max abs error %.3g" % (batch, worst)
    return check


def write_tflite(saved_model_dir: str, output_path: str, request: rq.ConversionRequest,
                 check: Optional[Check] = None, where: Optional[str] = None) -> str:
    """Writes the ``.tflite`` of a SavedModel to ``output_path`` (atomically).

    Args:
      saved_model_dir: the SavedModel (the input, or a temporary export of it).
      output_path: the ``.tflite`` file; replaced only when everything succeeded.
      request: the conversion request (its tflite fields apply).
      check: runs on the written temporary file (``--verify``); raising keeps
        the previous output.
      where: what messages call the source (default ``request.input_path``).

    Returns:
      What ``check`` returned ("" without one).

    Raises:
      ConversionError: see ``convert_saved_model``; output errors name the output.
    """
    from converter.writers import isolated
    where = where or request.input_path
    _refuse_oversized(saved_model_dir, request, where)
    # In a fresh process: TensorFlow's function-name counters reach the bytes.
    data = isolated.call("converter.writers.tflite", "convert_saved_model",
                         saved_model_dir, request, where)
    dynamic = dynamic_batch_inputs(data)
    if dynamic and request.tflite_batch_size is None:
        warn("%s keeps a dynamic batch on input(s) %s; LiteRT.js refuses to feed a -1 "
             "dimension (from a [1, ...] buffer too): convert with --tflite_batch_size=1 "
             "(or the batch you run) for LiteRT.js"
             % (output_path, ", ".join("%s %s" % (n, s) for n, s in dynamic)))
    flex = request.tflite_select_tf_ops and _uses_flex(data)
    if not dynamic and not flex and dynamic_outputs(data):
        # Every input fixed, yet an output's shape is computed at run time (a
        # while loop's result, NMS): LiteRT.js 2.5 allocates output buffers from
        # the static shapes and fails at run time (litert_tensor_buffer.h).
        warn("%s has output(s) %s whose shape is only known at run time (every input is "
             "fixed); LiteRT.js cannot allocate them and fails when run; LiteRT "
             "(ai-edge-litert) runs it"
             % (output_path, ", ".join("%s %s" % (n, s) for n, s in dynamic_outputs(data))))
    if flex:
        warn("%s uses Select TF ops (Flex); %s" % (output_path, _FLEX_WARNING))
    summary = ""
    with atomic_file(output_path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
        if check is not None:
            summary = check(tmp)
    return summary


def _uses_flex(data: bytes) -> bool:
    from tensorflow.lite.python import schema_py_generated as schema
    model = schema.Model.GetRootAsModel(data, 0)
    for i in range(model.OperatorCodesLength()):
        custom = model.OperatorCodes(i).CustomCode()
        if custom and custom.startswith(b"Flex"):
            return True
    return False


# -- Keras sources ---------------------------------------------------------------------


def _unique_keys(names, fallback: str) -> List[str]:
    keys: List[str] = []
    for i, name in enumerate(names):
        keys.append(name if name and name not in keys else "%s_%d" % (fallback, i))
    return keys


def keras_signature_keys(model) -> Tuple[List[str], List[str]]:
    """``(input keys, output keys)`` of a Keras model's exported signature.

    Input keys are the model's input-layer names, output keys its output names
    (``input_<i>`` / ``output_<i>`` when unnamed or repeated), as the
    graph-model path names them.
    """
    import tensorflow as tf
    from converter.graph.keras import input_layer_name
    in_keys = _unique_keys([input_layer_name(t) for t in model.inputs], "input")
    out_names = list(getattr(model, "output_names", None) or [])
    num_outputs = len(tf.nest.flatten(model.outputs))
    if len(out_names) != num_outputs:
        out_names = [None] * num_outputs
    return in_keys, _unique_keys(out_names, "output")


def export_keras_saved_model(keras_path: str, directory: str,
                             batch: Optional[int] = None) -> None:
    """Exports a Keras ``.h5`` / ``.keras`` file as a SavedModel with a ``serving_default``.

    Keys as ``keras_signature_keys`` names them. The model is loaded by the
    Keras that wrote it (converter.graph.keras). ``batch`` (``tflite_batch_size``)
    fixes every unknown batch dimension in the traced signature, so what Keras
    builds from the batch is static too (an RNN's TensorList element shapes,
    which TFLite needs to lower them to builtins).
    """
    import tensorflow as tf
    from converter.graph.keras import load_keras_model
    with native_stderr_silenced():
        model = load_keras_model(keras_path)
    inputs = list(model.inputs)
    in_keys, out_keys = keras_signature_keys(model)

    def shape(t):
        dims = list(t.shape)
        if batch is not None and dims and dims[0] is None:
            dims[0] = batch
        return dims

    specs = {k: tf.TensorSpec(shape(t), t.dtype, name=k) for k, t in zip(in_keys, inputs)}

    def serve(**kwargs):
        args = [kwargs[k] for k in in_keys]
        outputs = model(args if len(args) > 1 else args[0], training=False)
        return {k: tf.identity(o, name=k) for k, o in zip(out_keys, tf.nest.flatten(outputs))}

    module = tf.Module()
    module.model = model
    # Keras 3 variables wrap tf.Variables that tf.Module does not see through.
    module.model_variables = [getattr(v, "value", v) for v in model.variables]
    func = tf.function(serve, autograph=False).get_concrete_function(**specs)
    with native_stderr_silenced():
        tf.saved_model.save(module, directory, signatures={SIGNATURE_KEY: func})


@contextlib.contextmanager
def source_saved_model(request: rq.ConversionRequest, in_fmt: str) -> Iterator[str]:
    """The SavedModel of a Keras / SavedModel source (a temporary export for Keras files)."""
    if in_fmt in (rq.TF_SAVED_MODEL, rq.KERAS_SAVED_MODEL):
        if os.path.exists(os.path.join(request.input_path, "keras_metadata.pb")):
            from converter.readers.code_check import refuse_code_in_file
            refuse_code_in_file(request.input_path)
        yield request.input_path
        return
    if in_fmt not in (rq.KERAS, rq.KERAS_KERAS):
        raise UsageError("converting %s to a TFLite/ONNX file is not supported" % in_fmt)
    with tempfile.TemporaryDirectory(prefix="tfjs_keras_saved_model_") as tmp:
        directory = os.path.join(tmp, "saved_model")
        export_keras_saved_model(request.input_path, directory, request.tflite_batch_size)
        yield directory
