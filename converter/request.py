"""The conversion request: every option with its one default.

The CLI, the Python API, the Bazel worker and the rules all build a
``ConversionRequest``; nothing else holds a default.
"""

import dataclasses
import typing
from typing import Any, Dict, Mapping, Optional, Tuple

from converter.errors import UsageError
from converter.weights import format as wf

# Format names, as the official tensorflowjs_converter spells them.
KERAS = "keras"                           # Keras HDF5 (.h5), Keras 2 or 3
KERAS_KERAS = "keras_keras"               # Keras 3 .keras archive
KERAS_SAVED_MODEL = "keras_saved_model"   # tf.keras model saved as a SavedModel
TF_SAVED_MODEL = "tf_saved_model"
TF_HUB = "tf_hub"
TF_FROZEN_MODEL = "tf_frozen_model"
TFJS_LAYERS_MODEL = "tfjs_layers_model"
TFJS_GRAPH_MODEL = "tfjs_graph_model"
TFLITE = "tflite"                         # a .tflite file (LiteRT)
ONNX = "onnx"                             # a .onnx file

INPUT_FORMATS = (KERAS, KERAS_KERAS, KERAS_SAVED_MODEL, TF_SAVED_MODEL, TF_HUB,
                 TF_FROZEN_MODEL, TFJS_LAYERS_MODEL, TFJS_GRAPH_MODEL)
OUTPUT_FORMATS = (TFJS_LAYERS_MODEL, TFJS_GRAPH_MODEL, KERAS, KERAS_KERAS, KERAS_SAVED_MODEL,
                  TF_SAVED_MODEL, TFLITE, ONNX)

# The output format used when none is given, per input format.
DEFAULT_OUTPUT_FORMAT = {
    KERAS: TFJS_LAYERS_MODEL,
    KERAS_KERAS: TFJS_LAYERS_MODEL,
    KERAS_SAVED_MODEL: TFJS_LAYERS_MODEL,
    TF_SAVED_MODEL: TFJS_GRAPH_MODEL,
    TF_HUB: TFJS_GRAPH_MODEL,
    TF_FROZEN_MODEL: TFJS_GRAPH_MODEL,
    TFJS_LAYERS_MODEL: KERAS,
    TFJS_GRAPH_MODEL: TF_SAVED_MODEL,
}

TFJS_OUTPUTS = (TFJS_LAYERS_MODEL, TFJS_GRAPH_MODEL)
# Backends --verify runs TF.js outputs on by default, and all it knows.
VERIFY_BACKENDS = ("cpu", "wasm")
ALL_VERIFY_BACKENDS = ("cpu", "wasm", "webgl")
QUANTIZE_DTYPES = ("float16", "uint8", "uint16")
# Backends that run in Node, inside a build action; webgl needs a browser
# (tfjs_model_test runs it).
NODE_VERIFY_BACKENDS = ("cpu", "wasm")

# Patterns value meaning "every weight no other pattern claims" (a quantize flag
# given without a value).
ALL_WEIGHTS: Tuple[str, ...] = ()
# How the CLI spells ALL_WEIGHTS internally after normalizing argv (no weight
# name can contain a NUL, so no real pattern collides with it).
ALL_WEIGHTS_FLAG_VALUE = "\0all"


@dataclasses.dataclass(frozen=True)
class ConversionRequest:
    """One conversion and all its options.

    Attributes:
      input_path: source model file or directory.
      output_path: output directory (TF.js and SavedModel outputs) or file (Keras,
        ``tflite`` and ``onnx`` outputs).
      input_format: one of INPUT_FORMATS; ``None`` detects it from the input.
      output_format: one of OUTPUT_FORMATS; ``None`` uses DEFAULT_OUTPUT_FORMAT.
      quantize_float16, quantize_uint8, quantize_uint16: ``None`` (off), a tuple of
        weight-name wildcard patterns, or ``ALL_WEIGHTS`` (every weight no other
        flag's pattern claims; at most one flag may be given so).
      weight_shard_size_bytes: shard size of TF.js outputs; ``None`` means
        DEFAULT_SHARD_SIZE_BYTES (4 MiB, what browsers cache).
      content_hash_shards: name shards ``groupG-shardIofN.<hash>.bin``, the first
        16 hex digits of their SHA-384 (TF.js outputs), so a changed shard gets a
        new URL and web servers can cache shards as immutable.
      split_weights_by_layer: one weight group per layer (layers models).
      metadata: ``((key, json_path), ...)`` written to ``userDefinedMetadata``.
      signature_name: SavedModel / TF-Hub signature (graph inputs); ``None`` means
        ``serving_default`` (``default`` for TF-Hub).
      saved_model_tags: comma-separated tags; ``""`` loads without tags.
      output_node_names: comma-separated outputs of a frozen graph.
      strip_debug_ops: drop Assert/CheckNumerics/Print from graph models.
      control_flow_v2: keep While/If instead of lowering control flow.
      skip_op_check: do not check graph ops against the TF.js op list.
      use_structured_outputs_names: name graph outputs by a dict signature's keys.
      verify: after writing, run the source in TensorFlow/Keras and the output in
        real TF.js (``verify_backends``) on seeded inputs; a mismatch fails the
        conversion and leaves the previous output untouched (converter/verify).
      verify_backends: TF.js backends ``verify`` runs the output on (``cpu``,
        ``wasm``; ``webgl`` in headless Chromium).
      tflite_select_tf_ops: let a ``tflite`` output use TensorFlow ops (Select TF
        ops) where no TFLite builtin exists, instead of refusing them; LiteRT.js
        cannot run such a model.
      tflite_batch_size: fix the batch dimension of a ``tflite`` output's inputs
        to this size; ``None`` keeps a dynamic batch (``-1``), which LiteRT.js
        refuses to feed from a ``[1, ...]`` buffer.
      onnx_opset: ONNX opset of an ``onnx`` output; ``None`` means the writer's
        documented default.
      onnx_external_data: where an ``onnx`` output's weights go. ``None``: into
        ``<output>.data`` beside it only when the model is over 2 GB (what one
        protobuf can hold); ``True``: always there (the file is written even
        when no tensor needs it, so a build can declare it); ``False``: never,
        and a model over 2 GB is refused.
      dequantize: write quantized weights of a TF.js input as float32 (TF.js
        outputs; without it, weights no quantize flag names keep their storage).
    """

    input_path: str
    output_path: str
    input_format: Optional[str] = None
    output_format: Optional[str] = None
    quantize_float16: Optional[Tuple[str, ...]] = None
    quantize_uint8: Optional[Tuple[str, ...]] = None
    quantize_uint16: Optional[Tuple[str, ...]] = None
    weight_shard_size_bytes: Optional[int] = None
    content_hash_shards: bool = False
    split_weights_by_layer: bool = False
    metadata: Tuple[Tuple[str, str], ...] = ()
    signature_name: Optional[str] = None
    saved_model_tags: str = "serve"
    output_node_names: Optional[str] = None
    strip_debug_ops: bool = True
    control_flow_v2: bool = False
    skip_op_check: bool = False
    use_structured_outputs_names: bool = False
    verify: bool = False
    verify_backends: Tuple[str, ...] = VERIFY_BACKENDS
    tflite_select_tf_ops: bool = False
    tflite_batch_size: Optional[int] = None
    onnx_opset: Optional[int] = None
    onnx_external_data: Optional[bool] = None
    dequantize: bool = False

    def quantization_patterns(self) -> Dict[str, Optional[Tuple[str, ...]]]:
        """``{dtype: patterns or None (fallthrough)}`` for the flags that are set."""
        out = {}
        for dtype in QUANTIZE_DTYPES:
            patterns = getattr(self, "quantize_" + dtype)
            if patterns is not None:
                out[dtype] = tuple(patterns) or None
        return out

    def shard_size(self) -> int:
        if self.weight_shard_size_bytes is None:
            return wf.DEFAULT_SHARD_SIZE_BYTES
        return self.weight_shard_size_bytes

    def replace(self, **changes) -> "ConversionRequest":
        return dataclasses.replace(self, **changes)


# The values a field may take (each element of a tuple field); other fields
# take any value of their kind.
FIELD_CHOICES: Dict[str, Tuple[str, ...]] = {
    "input_format": INPUT_FORMATS,
    "output_format": OUTPUT_FORMATS,
    "verify_backends": ALL_VERIFY_BACKENDS,
}

# Where the Bazel rule tfjs_model's defaults differ from the request's: a build
# step verifies its output once, then caches it (docs/rules.md). Generated into
# tfjs_rules/private/generated_formats.bzl by tools/gen_bzl_defaults.py.
RULE_DEFAULT_OVERRIDES: Dict[str, object] = {
    "verify": True,
}

# JSON kinds of the field types: what a request file may hold for each field.
_KINDS = {
    str: "string",
    bool: "bool",
    int: "int",
    Tuple[str, ...]: "string_list",
    Tuple[Tuple[str, str], ...]: "string_pairs",
}


def field_defaults() -> Dict[str, object]:
    """The default of every optional field, for the CLI, worker and rules."""
    return {f.name: f.default for f in dataclasses.fields(ConversionRequest)
            if f.default is not dataclasses.MISSING}


def field_kinds() -> Dict[str, Tuple[str, bool]]:
    """``{field: (kind, nullable)}``: kind is string, bool, int, string_list or
    string_pairs; nullable when ``None`` is a value of the field."""
    hints = typing.get_type_hints(ConversionRequest)
    out = {}
    for f in dataclasses.fields(ConversionRequest):
        hint = hints[f.name]
        args = typing.get_args(hint)
        nullable = typing.get_origin(hint) is typing.Union and type(None) in args
        if nullable:
            hint = [a for a in args if a is not type(None)][0]
        out[f.name] = (_KINDS[hint], nullable)
    return out


def _value_of(name: str, kind: str, nullable: bool, value: Any, where: str) -> Any:
    """``value`` of a request file as the field's Python value.

    Raises:
      UsageError: ``value`` is not of the field's kind or not one of its choices.
    """
    if value is None and nullable:
        return None
    want = {"string": "a string", "bool": "true or false", "int": "an integer",
            "string_list": "a list of strings",
            "string_pairs": "a list of [key, value] string pairs"}[kind]
    if nullable:
        want += " or null"
    ok = {
        "string": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "string_list": lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
        "string_pairs": lambda v: isinstance(v, list) and all(
            isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x)
            for x in v),
    }[kind](value)
    if not ok:
        raise UsageError("%s: %s got %r, want %s" % (where, name, value, want))
    if kind == "int" and value <= 0:  # every int field counts something
        raise UsageError("%s: %s got %r, want a positive integer" % (where, name, value))
    choices = FIELD_CHOICES.get(name)
    if choices is not None:
        for v in value if kind == "string_list" else (value,):
            if v not in choices:
                raise UsageError("%s: %s got %r, want one of %s"
                                 % (where, name, v, ", ".join(choices)))
    if kind == "string_list":
        return tuple(value)
    if kind == "string_pairs":
        return tuple((k, v) for k, v in value)
    return value


def request_from_dict(doc: Mapping[str, Any], where: str = "request") -> ConversionRequest:
    """The request a JSON object spells with the field names of ConversionRequest
    (lists for tuples, ``null`` for ``None``; omitted fields take their defaults).

    Args:
      doc: the decoded JSON object.
      where: what the messages name (the request file).

    Raises:
      UsageError: not an object, an unknown or missing field, or a value of the
        wrong kind or outside the field's choices.
    """
    if not isinstance(doc, Mapping):
        raise UsageError("%s: got a JSON %s, want an object of request fields"
                         % (where, type(doc).__name__))
    kinds = field_kinds()
    unknown = sorted(set(doc) - set(kinds))
    if unknown:
        raise UsageError("%s: unknown field(s) %s; want fields of ConversionRequest (%s)"
                         % (where, ", ".join(unknown), ", ".join(sorted(kinds))))
    missing = [n for n in ("input_path", "output_path") if n not in doc]
    if missing:
        raise UsageError("%s: missing %s" % (where, " and ".join(missing)))
    return ConversionRequest(**{name: _value_of(name, kinds[name][0], kinds[name][1], value,
                                                where)
                                for name, value in doc.items()})


def request_to_dict(request: ConversionRequest) -> Dict[str, Any]:
    """The JSON object ``request_from_dict`` reads back as ``request``."""
    out: Dict[str, Any] = {}
    for f in dataclasses.fields(ConversionRequest):
        value = getattr(request, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out
