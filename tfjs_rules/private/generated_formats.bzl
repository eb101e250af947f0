"""Format names and option defaults of the converter, for the rules.

Generated from converter/request.py by tools/gen_bzl_defaults.py; do not edit.
Regenerate with `.venv/bin/python tools/gen_bzl_defaults.py` after changing
request.py (tests/test_generated_bzl.py fails while this file is out of date).
"""

# Format names, as the official tensorflowjs_converter spells them.
KERAS = "keras"
KERAS_KERAS = "keras_keras"
KERAS_SAVED_MODEL = "keras_saved_model"
ONNX = "onnx"
TFJS_GRAPH_MODEL = "tfjs_graph_model"
TFJS_LAYERS_MODEL = "tfjs_layers_model"
TFLITE = "tflite"
TF_FROZEN_MODEL = "tf_frozen_model"
TF_HUB = "tf_hub"
TF_SAVED_MODEL = "tf_saved_model"

# Every input format (--input_format), in request.py's order.
INPUT_FORMATS = [
    "keras",
    "keras_keras",
    "keras_saved_model",
    "tf_saved_model",
    "tf_hub",
    "tf_frozen_model",
    "tfjs_layers_model",
    "tfjs_graph_model",
]

# Every output format (--output_format), in request.py's order.
OUTPUT_FORMATS = [
    "tfjs_layers_model",
    "tfjs_graph_model",
    "keras",
    "keras_keras",
    "keras_saved_model",
    "tf_saved_model",
    "tflite",
    "onnx",
]

# The output formats that are TF.js models (a model.json and shards).
TFJS_OUTPUTS = [
    "tfjs_layers_model",
    "tfjs_graph_model",
]

# The output format the converter infers when none is given, per input format.
DEFAULT_OUTPUT_FORMAT = {
    "keras": "tfjs_layers_model",
    "keras_keras": "tfjs_layers_model",
    "keras_saved_model": "tfjs_layers_model",
    "tf_frozen_model": "tfjs_graph_model",
    "tf_hub": "tfjs_graph_model",
    "tf_saved_model": "tfjs_graph_model",
    "tfjs_graph_model": "tf_saved_model",
    "tfjs_layers_model": "keras",
}

# The dtypes of the quantize_<dtype> options.
QUANTIZE_DTYPES = [
    "float16",
    "uint8",
    "uint16",
]

# TF.js backends: verify's default, those that run in Node, and all verify knows.
VERIFY_BACKENDS = [
    "cpu",
    "wasm",
]
NODE_VERIFY_BACKENDS = [
    "cpu",
    "wasm",
]
ALL_VERIFY_BACKENDS = [
    "cpu",
    "wasm",
    "webgl",
]

# weight_shard_size_bytes = None (the default) means this size.
DEFAULT_SHARD_SIZE_BYTES = 4194304

# Every request field (a request file's keys) and its kind.
OPTION_KINDS = {
    "content_hash_shards": "bool",
    "control_flow_v2": "bool",
    "dequantize": "bool",
    "input_format": "string",
    "input_path": "string",
    "metadata": "string_pairs",
    "onnx_external_data": "bool",
    "onnx_opset": "int",
    "output_format": "string",
    "output_node_names": "string",
    "output_path": "string",
    "quantize_float16": "string_list",
    "quantize_uint16": "string_list",
    "quantize_uint8": "string_list",
    "saved_model_tags": "string",
    "signature_name": "string",
    "skip_op_check": "bool",
    "split_weights_by_layer": "bool",
    "strip_debug_ops": "bool",
    "tflite_batch_size": "int",
    "tflite_select_tf_ops": "bool",
    "use_structured_outputs_names": "bool",
    "verify": "bool",
    "verify_backends": "string_list",
    "weight_shard_size_bytes": "int",
}

# The fields that take None (null in a request file).
NULLABLE_OPTIONS = [
    "input_format",
    "onnx_external_data",
    "onnx_opset",
    "output_format",
    "output_node_names",
    "quantize_float16",
    "quantize_uint16",
    "quantize_uint8",
    "signature_name",
    "tflite_batch_size",
    "weight_shard_size_bytes",
]

# The values a field (each element of a list field) may take.
OPTION_CHOICES = {
    "input_format": [
        "keras",
        "keras_keras",
        "keras_saved_model",
        "tf_saved_model",
        "tf_hub",
        "tf_frozen_model",
        "tfjs_layers_model",
        "tfjs_graph_model",
    ],
    "output_format": [
        "tfjs_layers_model",
        "tfjs_graph_model",
        "keras",
        "keras_keras",
        "keras_saved_model",
        "tf_saved_model",
        "tflite",
        "onnx",
    ],
    "verify_backends": [
        "cpu",
        "wasm",
        "webgl",
    ],
}

# The default of every optional field.
DEFAULTS = {
    "content_hash_shards": False,
    "control_flow_v2": False,
    "dequantize": False,
    "input_format": None,
    "metadata": [],
    "onnx_external_data": None,
    "onnx_opset": None,
    "output_format": None,
    "output_node_names": None,
    "quantize_float16": None,
    "quantize_uint16": None,
    "quantize_uint8": None,
    "saved_model_tags": "serve",
    "signature_name": None,
    "skip_op_check": False,
    "split_weights_by_layer": False,
    "strip_debug_ops": True,
    "tflite_batch_size": None,
    "tflite_select_tf_ops": False,
    "use_structured_outputs_names": False,
    "verify": False,
    "verify_backends": [
        "cpu",
        "wasm",
    ],
    "weight_shard_size_bytes": None,
}

# The defaults of tfjs_model: DEFAULTS with request.py's RULE_DEFAULT_OVERRIDES.
RULE_DEFAULTS = {
    "content_hash_shards": False,
    "control_flow_v2": False,
    "dequantize": False,
    "input_format": None,
    "metadata": [],
    "onnx_external_data": None,
    "onnx_opset": None,
    "output_format": None,
    "output_node_names": None,
    "quantize_float16": None,
    "quantize_uint16": None,
    "quantize_uint8": None,
    "saved_model_tags": "serve",
    "signature_name": None,
    "skip_op_check": False,
    "split_weights_by_layer": False,
    "strip_debug_ops": True,
    "tflite_batch_size": None,
    "tflite_select_tf_ops": False,
    "use_structured_outputs_names": False,
    "verify": True,
    "verify_backends": [
        "cpu",
        "wasm",
    ],
    "weight_shard_size_bytes": None,
}
