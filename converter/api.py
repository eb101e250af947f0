"""The Python API: ``convert`` runs one ConversionRequest end to end.

Data flows one way: reader -> in-memory model -> transforms -> writer. The
supported (input, output) pairs are the keys of the reader and writer tables,
not an if/elif chain.
"""

import dataclasses
import os
import re
from typing import Callable, Dict, List, Tuple

from converter import request as rq
from converter.errors import (InvalidModelError, UnsupportedLayerError, UnsupportedOpError,
                              UsageError)
from converter.model import LayersModel
from converter.output import atomic_directory, atomic_file
from converter.readers.detect import detect_input_format
from converter.transforms import layers as lt


def _read_keras_h5(path: str) -> LayersModel:
    from converter.readers.keras_h5 import read_keras_h5
    return read_keras_h5(path)


def _read_keras_v3(path: str) -> LayersModel:
    from converter.readers.keras_v3 import read_keras_v3
    return read_keras_v3(path)


def _read_tfjs_layers(path: str) -> LayersModel:
    from converter.readers.tfjs_layers import read_tfjs_layers
    return read_tfjs_layers(path)


def _read_keras_saved_model(path: str) -> LayersModel:
    from converter.readers.keras_saved_model import read_keras_saved_model_as_layers
    return read_keras_saved_model_as_layers(path)


def _write_tfjs_layers(model: LayersModel, path: str, request: rq.ConversionRequest,
                       check: "Check") -> str:
    from converter.writers.tfjs_layers import write_tfjs_layers
    with atomic_directory(path) as tmp:
        write_tfjs_layers(model, tmp, request.shard_size(), request.content_hash_shards)
        return check(tmp)


def _write_keras_h5(model: LayersModel, path: str, request: rq.ConversionRequest,
                    check: "Check") -> str:
    from converter.writers.keras import write_keras_h5
    with atomic_file(path) as tmp:
        write_keras_h5(model, tmp)
        return check(tmp)


def _write_keras_v3(model: LayersModel, path: str, request: rq.ConversionRequest,
                    check: "Check") -> str:
    from converter.writers.keras import write_keras_v3
    with atomic_file(path) as tmp:
        write_keras_v3(model, tmp)
        return check(tmp)


# Readers and writers of the layers path; every reader pairs with every writer.
# Imports are lazy so a conversion loads only the modules it uses.
_LAYERS_READERS: Dict[str, Callable[[str], LayersModel]] = {
    rq.KERAS: _read_keras_h5,
    rq.KERAS_KERAS: _read_keras_v3,
    rq.TFJS_LAYERS_MODEL: _read_tfjs_layers,
    rq.KERAS_SAVED_MODEL: _read_keras_saved_model,
}
_LAYERS_WRITERS = {
    rq.TFJS_LAYERS_MODEL: _write_tfjs_layers,
    rq.KERAS: _write_keras_h5,
    rq.KERAS_KERAS: _write_keras_v3,
}

def _graph_saved_model(request: rq.ConversionRequest):
    from converter.graph.saved_model import read_saved_model
    if os.path.exists(os.path.join(request.input_path, "keras_metadata.pb")):
        from converter.readers.code_check import refuse_code_in_file
        refuse_code_in_file(request.input_path)
    return read_saved_model(request.input_path, request.signature_name, request.saved_model_tags,
                            request.control_flow_v2, request.use_structured_outputs_names)


def _graph_hub(request: rq.ConversionRequest):
    from converter.graph.saved_model import HUB_DEFAULT_SIGNATURE, read_saved_model
    if os.path.exists(os.path.join(request.input_path, "tfhub_module.pb")):
        raise UsageError("%s is a TF1 hub module (tfhub_module.pb); only TF2 SavedModel hub "
                         "modules convert. Re-export it with TF2" % request.input_path)
    return read_saved_model(request.input_path, request.signature_name, request.saved_model_tags,
                            request.control_flow_v2, request.use_structured_outputs_names,
                            default_signature=HUB_DEFAULT_SIGNATURE)


def _graph_frozen(request: rq.ConversionRequest):
    from converter.graph.frozen import read_frozen_model
    return read_frozen_model(request.input_path, request.output_node_names)


def _graph_keras(request: rq.ConversionRequest):
    from converter.graph.keras import read_keras_as_graph
    return read_keras_as_graph(request.input_path, request.control_flow_v2,
                               request.use_structured_outputs_names)


def _graph_tfjs_layers(request: rq.ConversionRequest):
    from converter.graph.keras import read_tfjs_layers_as_graph
    return read_tfjs_layers_as_graph(request.input_path, request.control_flow_v2,
                                     request.use_structured_outputs_names)


# Readers of the graph path: each freezes its source into a GraphModel.
_GRAPH_READERS = {
    rq.TF_SAVED_MODEL: _graph_saved_model,
    rq.KERAS_SAVED_MODEL: _graph_saved_model,
    rq.TF_HUB: _graph_hub,
    rq.TF_FROZEN_MODEL: _graph_frozen,
    rq.KERAS: _graph_keras,
    rq.KERAS_KERAS: _graph_keras,
    rq.TFJS_LAYERS_MODEL: _graph_tfjs_layers,
}

def _graph_pipeline(i: str, o: str) -> bool:
    """The forward graph pipeline runs (a graph-model input is copied, not re-frozen)."""
    return o == rq.TFJS_GRAPH_MODEL and i != rq.TFJS_GRAPH_MODEL


_GRAPH_PIPELINE = "--output_format tfjs_graph_model from a TensorFlow, Keras or layers model"

# Options that only mean something for some formats: (field, applies?, what it needs).
_SCOPED_OPTIONS: List[Tuple[str, Callable[[str, str], bool], str]] = [
    ("weight_shard_size_bytes", lambda i, o: o in rq.TFJS_OUTPUTS, "a TF.js output format"),
    ("content_hash_shards", lambda i, o: o in rq.TFJS_OUTPUTS, "a TF.js output format"),
    ("split_weights_by_layer", lambda i, o: o == rq.TFJS_LAYERS_MODEL, "--output_format tfjs_layers_model"),
    ("metadata", lambda i, o: o in rq.TFJS_OUTPUTS, "a TF.js output format"),
    ("quantize_float16", lambda i, o: o in rq.TFJS_OUTPUTS or o == rq.TFLITE,
     "a TF.js output format or --output_format tflite"),
    ("quantize_uint8", lambda i, o: o in rq.TFJS_OUTPUTS, "a TF.js output format"),
    ("quantize_uint16", lambda i, o: o in rq.TFJS_OUTPUTS, "a TF.js output format"),
    ("signature_name", lambda i, o: i in (rq.TF_SAVED_MODEL, rq.TF_HUB),
     "--input_format tf_saved_model or tf_hub"),
    ("output_node_names", lambda i, o: i == rq.TF_FROZEN_MODEL, "--input_format tf_frozen_model"),
    ("control_flow_v2", _graph_pipeline, _GRAPH_PIPELINE),
    ("saved_model_tags", lambda i, o: i in (rq.TF_SAVED_MODEL, rq.TF_HUB, rq.KERAS_SAVED_MODEL),
     "--input_format tf_saved_model or tf_hub"),
    ("strip_debug_ops", _graph_pipeline, _GRAPH_PIPELINE),
    ("use_structured_outputs_names", _graph_pipeline, _GRAPH_PIPELINE),
    ("skip_op_check", _graph_pipeline, _GRAPH_PIPELINE),
    ("tflite_select_tf_ops", lambda i, o: o == rq.TFLITE, "--output_format tflite"),
    ("tflite_batch_size", lambda i, o: o == rq.TFLITE, "--output_format tflite"),
    ("onnx_opset", lambda i, o: o == rq.ONNX, "--output_format onnx"),
    ("onnx_external_data", lambda i, o: o == rq.ONNX, "--output_format onnx"),
    ("dequantize", lambda i, o: o in rq.TFJS_OUTPUTS and i in (rq.TFJS_LAYERS_MODEL,
                                                             rq.TFJS_GRAPH_MODEL),
     "a TF.js input and output format"),
    # A graph-model source has no reference runner yet, and a SavedModel output
    # no runner: --verify there would be silently ignored, so it is refused.
    ("verify", lambda i, o: (o in rq.TFJS_OUTPUTS and i != rq.TFJS_GRAPH_MODEL)
     or (i == rq.TFJS_LAYERS_MODEL and o in (rq.KERAS, rq.KERAS_KERAS)),
     "a TF.js input or output (one side must run in TF.js; not yet a tfjs_graph_model input "
     "or a SavedModel output)"),
]
_DEFAULTS = rq.field_defaults()


def resolve_formats(request: rq.ConversionRequest) -> Tuple[str, str]:
    """The (input, output) format pair of ``request``, detected or inferred when omitted."""
    in_fmt = request.input_format or detect_input_format(request.input_path)
    if in_fmt not in rq.INPUT_FORMATS:
        raise UsageError("unknown --input_format %r (choose from %s)" % (in_fmt, ", ".join(rq.INPUT_FORMATS)))
    out_fmt = request.output_format or rq.DEFAULT_OUTPUT_FORMAT[in_fmt]
    if out_fmt not in rq.OUTPUT_FORMATS:
        raise UsageError("unknown --output_format %r (choose from %s)" % (out_fmt, ", ".join(rq.OUTPUT_FORMATS)))
    return in_fmt, out_fmt


def supported_pairs() -> List[Tuple[str, str]]:
    return ([(i, o) for i in _LAYERS_READERS for o in _LAYERS_WRITERS]
            + [(i, rq.TFJS_GRAPH_MODEL) for i in _GRAPH_READERS]
            + list(_OTHER_PAIRS))


def _check_options(request: rq.ConversionRequest, in_fmt: str, out_fmt: str) -> None:
    for name, applies, needs in _SCOPED_OPTIONS:
        if getattr(request, name) != _DEFAULTS[name] and not applies(in_fmt, out_fmt):
            raise UsageError("--%s applies only with %s (converting %s to %s)"
                             % (name, needs, in_fmt, out_fmt))
    if request.weight_shard_size_bytes is not None:
        from converter.weights.writer import check_shard_size
        check_shard_size(request.weight_shard_size_bytes)
    _check_output_is_not_input(request.input_path, request.output_path)


def _check_output_is_not_input(input_path: str, output_path: str) -> None:
    """Refuses an output that is, contains or sits inside the input (by resolved path)."""
    source = os.path.realpath(input_path)
    target = os.path.realpath(output_path)
    same = source == target or (os.path.exists(input_path) and os.path.exists(output_path)
                                and os.path.samefile(input_path, output_path))
    if same:
        raise UsageError("output path %s is the input %s (the same file); choose another"
                         % (output_path, input_path))
    if source.startswith(target + os.sep):
        raise UsageError("output %s contains the input %s, which the conversion would replace; "
                         "choose another output path" % (output_path, input_path))
    if os.path.isdir(source) and target.startswith(source + os.sep):
        raise UsageError("output %s is inside the input directory %s; choose a path outside it"
                         % (output_path, input_path))


@dataclasses.dataclass(frozen=True)
class ConversionResult:
    """What a conversion produced."""

    input_format: str
    output_format: str
    output_path: str
    num_weights: int
    num_groups: int
    verification: str = ""


# Runs on the written output (a temporary path) before it replaces the previous
# one; returns a one-line summary. Raising leaves the previous output untouched.
Check = Callable[[str], str]


def _no_check(path: str) -> str:
    return ""


def _checker(request: rq.ConversionRequest, in_fmt: str, out_fmt: str) -> Check:
    """What runs on the written output: ``--verify``, or nothing."""
    if not request.verify:
        return _no_check
    from converter.verify import check as vc

    def verify(path: str) -> str:
        report = vc.verify(vc.source_of(request, in_fmt), path, out_fmt,
                           backends=request.verify_backends, output_name=request.output_path)
        return report.summary()
    return verify


def _convert_layers(request: rq.ConversionRequest, in_fmt: str, out_fmt: str) -> ConversionResult:
    model = _LAYERS_READERS[in_fmt](request.input_path)
    patterns = request.quantization_patterns()
    # The transforms, in order:
    # 1. Dequantize when the output is a Keras file (float weights only) or when
    #    requantizing, so new quantization starts from the values TF.js sees.
    if out_fmt not in rq.TFJS_OUTPUTS or patterns or request.dequantize:
        model = lt.dequantize(model)
    # 2. Quantize before grouping: grouping only moves tensors.
    if patterns:
        model = lt.quantize_weights(model, patterns, request.input_path)
    # 3. Group: by layer on request, else one group (a TF.js input may come split).
    if out_fmt == rq.TFJS_LAYERS_MODEL:
        model = lt.split_by_layer(model) if request.split_weights_by_layer else lt.merge_groups(model)
    # 4. Metadata last: it never depends on weights.
    model = lt.add_metadata(model, lt.load_metadata(request.metadata))
    if in_fmt == rq.TFJS_LAYERS_MODEL and out_fmt == rq.TFJS_LAYERS_MODEL:
        # The TF.js writer copies the topology; check it against the weights
        # as the Keras writer would (no weight values are read or copied).
        from converter.readers.tfjs_layers import model_json_path
        from converter.readers.tfjs_topology import check_weights_match
        check_weights_match(model, model_json_path(request.input_path))
    try:
        verification = _LAYERS_WRITERS[out_fmt](model, request.output_path, request,
                                                _checker(request, in_fmt, out_fmt))
    except (InvalidModelError, UnsupportedLayerError) as e:
        # The Keras writer's messages name the layer, not the file.
        message = str(e)
        if message.startswith((request.input_path, request.output_path)):
            raise
        raise type(e)("%s: %s" % (request.input_path, message)) from None
    return ConversionResult(in_fmt, out_fmt, request.output_path,
                            len(model.tensors()), len(model.groups), verification)


def _convert_graph(request: rq.ConversionRequest, in_fmt: str, out_fmt: str) -> ConversionResult:
    from converter.graph import pipeline
    from converter.writers.tfjs_graph import write_tfjs_graph
    # Check the cheap things (metadata files, quantization flags) before freezing.
    metadata = lt.load_metadata(request.metadata)
    patterns = request.quantization_patterns()
    if patterns:
        from converter.weights.quantize import resolve_dtype_map
        resolve_dtype_map([], patterns)
    model = _GRAPH_READERS[in_fmt](request)
    options = pipeline.GraphOptions(strip_debug_ops=request.strip_debug_ops,
                                    skip_op_check=request.skip_op_check,
                                    quantization=patterns, metadata=metadata)
    model = pipeline.transform(model, options)
    check = _checker(request, in_fmt, out_fmt)
    with atomic_directory(request.output_path) as tmp:
        num_weights = write_tfjs_graph(model, tmp, request.shard_size(),
                                       request.content_hash_shards)
        verification = check(tmp)
    return ConversionResult(in_fmt, out_fmt, request.output_path, num_weights, 1, verification)


def _convert_graph_to_graph(request: rq.ConversionRequest, in_fmt: str,
                            out_fmt: str) -> ConversionResult:
    """Re-shards, re-quantizes or de-quantizes a graph model; the rest is copied as read.

    Weights no quantize flag names keep their stored bytes (a quantized weight
    stays as it was quantized) unless ``dequantize`` is set.
    """
    from converter.writers.tfjs_graph import write_tfjs_graph_document
    from converter.readers.tfjs_graph import read_graph_document, read_graph_weights
    metadata = lt.load_metadata(request.metadata)
    json_path, doc = read_graph_document(request.input_path)
    groups = read_graph_weights(json_path, doc)
    model = LayersModel(topology=None, groups=tuple(groups))
    patterns = request.quantization_patterns()
    # The transforms, in order: dequantize first when requantizing, so the new
    # quantization starts from the values TF.js sees; then quantize; then one
    # group (shard size is the writer's).
    if patterns or request.dequantize:
        model = lt.dequantize(model)
    if patterns:
        model = lt.quantize_weights(model, patterns, request.input_path)
    model = lt.merge_groups(model)
    check = _checker(request, in_fmt, out_fmt)
    with atomic_directory(request.output_path) as tmp:
        write_tfjs_graph_document(doc, model.tensors(), metadata, tmp, request.shard_size(),
                                  request.content_hash_shards)
        verification = check(tmp)
    return ConversionResult(in_fmt, out_fmt, request.output_path, len(model.tensors()), 1,
                            verification)


def _graph_input_saved_model(request: rq.ConversionRequest, directory: str) -> int:
    """Writes the graph model's SavedModel into ``directory``; returns its number of weights."""
    from converter.graph.to_saved_model import write_saved_model
    from converter.graph.weights import const_nodes
    from converter.readers.tfjs_graph import read_tfjs_graph
    model = read_tfjs_graph(request.input_path)
    num_weights = sum(1 for _ in const_nodes(model))
    write_saved_model(model, directory)
    return num_weights


def _graph_input_static_lists_saved_model(request: rq.ConversionRequest, directory: str) -> bool:
    """The graph model's SavedModel with ``tflite_batch_size`` in its TensorList element
    shapes (converter/graph/tensor_lists.py) into ``directory``; False if none had a
    dynamic batch (nothing written)."""
    from converter.graph.tensor_lists import static_element_shapes
    from converter.graph.to_saved_model import write_saved_model
    from converter.readers.tfjs_graph import read_tfjs_graph
    model, _ = static_element_shapes(read_tfjs_graph(request.input_path),
                                     request.tflite_batch_size)
    if model is None:
        return False
    write_saved_model(model, directory)
    return True


# A TensorList op named in the TFLite refusal's list ("TensorListReserve (node ...").
_TENSOR_LIST_OP = re.compile(r"\bTensorList\w* \(node ")


def _with_batch_hint(refused: UnsupportedOpError, effect: str) -> UnsupportedOpError:
    """``refused`` saying that a fixed batch would help, when it names a TensorList op."""
    if not _TENSOR_LIST_OP.search(str(refused)):
        return refused
    return UnsupportedOpError("%s; or fix the batch (--tflite_batch_size, batch_size on "
                              "tflite_model), %s (TFLite builtins)" % (refused, effect))


def _write_from_graph_model(request: rq.ConversionRequest, out_fmt: str) -> Tuple[int, str]:
    """tflite / onnx of a graph model: its SavedModel in a temp dir, then that writer.
    Returns the number of weights and what was checked ("" for nothing)."""
    import tempfile
    if out_fmt == rq.TFLITE:
        from converter.writers.tflite import write_tflite as write
    else:
        from converter.writers.onnx import write_onnx as write
    from converter.writers import isolated
    with tempfile.TemporaryDirectory(prefix="tfjs_graph_saved_model_") as saved_model:
        # Built in a fresh process: TensorFlow's process-wide name counters
        # reach the SavedModel (hash-table initializers) and from there the
        # file's bytes (converter/writers/isolated.py).
        num_weights = isolated.call("converter.api", "_graph_input_saved_model", request,
                                    saved_model)
        try:
            write(saved_model, request.output_path, request)
        except UnsupportedOpError as refused:
            if out_fmt != rq.TFLITE or request.tflite_select_tf_ops:
                raise
            if request.tflite_batch_size is None:
                raise _with_batch_hint(refused, "which gives RNN loops static TensorList "
                                       "shapes") from None
            return num_weights, _write_tflite_static_lists(request, saved_model, refused)
    return num_weights, ""


def _write_tflite_static_lists(request: rq.ConversionRequest, reference: str,
                               refused: UnsupportedOpError) -> str:
    """A graph model's ``.tflite`` with the fixed batch written into its TensorList element
    shapes, kept only if LiteRT then reproduces TensorFlow on ``reference`` (the
    SavedModel as read); otherwise ``refused`` stands, saying why. Returns what the
    check measured."""
    import tempfile
    from converter.writers import isolated
    from converter.writers.tflite import MismatchError, matches_saved_model, write_tflite
    with tempfile.TemporaryDirectory(prefix="tfjs_graph_static_lists_") as patched:
        if not isolated.call("converter.api", "_graph_input_static_lists_saved_model", request,
                             patched):
            raise refused
        check = matches_saved_model(reference, request.tflite_batch_size,
                                    request.quantize_float16 is not None)
        try:
            summary = write_tflite(patched, request.output_path, request, check=check)
        except UnsupportedOpError:
            raise refused from None
        except MismatchError as e:
            raise UnsupportedOpError(
                "%s; with the batch fixed to %d, static TensorList element shapes convert but "
                "%s, so they are not used" % (refused, request.tflite_batch_size, e.why)
            ) from None
    return "TensorList element shapes given the batch %d (TFLite builtins then); %s" % (
        request.tflite_batch_size, summary)


def _convert_graph_back(request: rq.ConversionRequest, in_fmt: str,
                        out_fmt: str) -> ConversionResult:
    """A graph model to TensorFlow: a SavedModel, or tflite/onnx through one."""
    if out_fmt == rq.TF_SAVED_MODEL:
        with atomic_directory(request.output_path, saved_model=True) as tmp:
            num_weights = _graph_input_saved_model(request, tmp)
        checked = ""
    else:
        num_weights, checked = _write_from_graph_model(request, out_fmt)
    return ConversionResult(in_fmt, out_fmt, request.output_path, num_weights, 1, checked)


def _convert_layers_to_saved_model(request: rq.ConversionRequest, in_fmt: str,
                                   out_fmt: str) -> ConversionResult:
    """A TF.js layers model as a SavedModel exported from its Keras model."""
    from converter.graph.to_saved_model import write_keras_saved_model
    model = lt.dequantize(_LAYERS_READERS[in_fmt](request.input_path))
    with atomic_directory(request.output_path, saved_model=True) as tmp:
        from converter.readers.tfjs_layers import model_json_path
        write_keras_saved_model(model, tmp, model_json_path(request.input_path))
    return ConversionResult(in_fmt, out_fmt, request.output_path, len(model.tensors()), 1)


def _convert_to_file_format(request: rq.ConversionRequest, in_fmt: str,
                            out_fmt: str) -> ConversionResult:
    """A Keras file or SavedModel to a tflite / onnx file (Keras through a temp SavedModel)."""
    from converter.writers.tflite import source_saved_model
    if out_fmt == rq.TFLITE:
        from converter.writers.tflite import write_tflite as write
    else:
        from converter.writers.onnx import write_onnx as write
    with source_saved_model(request, in_fmt) as saved_model:
        try:
            write(saved_model, request.output_path, request)
        except UnsupportedOpError as refused:
            if (out_fmt == rq.TFLITE and in_fmt in (rq.KERAS, rq.KERAS_KERAS)
                    and request.tflite_batch_size is None and not request.tflite_select_tf_ops):
                raise _with_batch_hint(refused, "so that Keras traces RNN loops with static "
                                       "TensorList shapes") from None
            raise
    return ConversionResult(in_fmt, out_fmt, request.output_path, 0, 1)


# Sources that reach the tflite / onnx writers as a SavedModel of their own.
_FILE_FORMAT_SOURCES = (rq.KERAS, rq.KERAS_KERAS, rq.TF_SAVED_MODEL, rq.KERAS_SAVED_MODEL)

# Conversions outside the layers and graph tables: (input, output) -> function.
_OTHER_PAIRS: Dict[Tuple[str, str], Callable[[rq.ConversionRequest, str, str],
                                              ConversionResult]] = {
    (rq.TFJS_GRAPH_MODEL, rq.TFJS_GRAPH_MODEL): _convert_graph_to_graph,
    (rq.TFJS_GRAPH_MODEL, rq.TF_SAVED_MODEL): _convert_graph_back,
    (rq.TFJS_GRAPH_MODEL, rq.TFLITE): _convert_graph_back,
    (rq.TFJS_GRAPH_MODEL, rq.ONNX): _convert_graph_back,
    (rq.TFJS_LAYERS_MODEL, rq.KERAS_SAVED_MODEL): _convert_layers_to_saved_model,
}
_OTHER_PAIRS.update({(i, o): _convert_to_file_format for i in _FILE_FORMAT_SOURCES
                     for o in (rq.TFLITE, rq.ONNX)})


def run(request: rq.ConversionRequest) -> ConversionResult:
    """Runs ``request``.

    Raises:
      ConversionError: any failure; the previous output is then untouched.
    """
    from converter.readers.detect import check_regular_file
    check_regular_file(request.input_path, request.input_path, directory_ok=True)
    in_fmt, out_fmt = resolve_formats(request)
    _check_options(request, in_fmt, out_fmt)
    from converter.extras import require
    require(in_fmt, out_fmt, request.verify)  # a missing extra: one line naming it
    if in_fmt in _LAYERS_READERS and out_fmt in _LAYERS_WRITERS:
        convert = _convert_layers
    elif out_fmt == rq.TFJS_GRAPH_MODEL and in_fmt in _GRAPH_READERS:
        convert = _convert_graph
    else:
        convert = _OTHER_PAIRS.get((in_fmt, out_fmt))
    if convert is not None:
        from converter.readers.keras_h5 import heap_checks_shared
        with heap_checks_shared():  # the code check, size check and reader read a file once
            return convert(request, in_fmt, out_fmt)
    raise UsageError(
        "converting %s to %s is not supported yet; supported pairs: %s"
        % (in_fmt, out_fmt, ", ".join("%s->%s" % p for p in supported_pairs())))


def convert(input_path: str, output_path: str, **options) -> ConversionResult:
    """Converts ``input_path`` to ``output_path``.

    Args:
      input_path: source model file or directory.
      output_path: output directory (TF.js formats) or file (Keras formats).
      **options: any field of ``ConversionRequest`` (``input_format``,
        ``output_format``, ``quantize_uint8=("conv*",)``, ...), with its defaults.

    Returns:
      A ConversionResult.

    Raises:
      ConversionError: on any failure; the previous output is then untouched.
    """
    known = {f.name for f in dataclasses.fields(rq.ConversionRequest)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError("unknown option(s) %s" % ", ".join(unknown))
    return run(rq.ConversionRequest(input_path=os.fspath(input_path),
                                    output_path=os.fspath(output_path), **options))
