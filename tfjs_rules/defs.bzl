"""Public API of tfjs_rules: load + re-export only."""

load(
    "//tfjs_rules:providers.bzl",
    _TfjsModelFileInfo = "TfjsModelFileInfo",
    _TfjsModelInfo = "TfjsModelInfo",
)
load("//tfjs_rules/private:converter_binary.bzl", _tfjs_converter_binary = "tfjs_converter_binary")
load("//tfjs_rules/private:macros.bzl", _tfjs_model = "tfjs_model")
load("//tfjs_rules/private:py_run.bzl", _tfjs_py_run = "tfjs_py_run")
load("//tfjs_rules/private:tfjs_model_test.bzl", _tfjs_model_test = "tfjs_model_test")
load(
    "//tfjs_rules/private:tflite_model.bzl",
    _onnx_model = "onnx_model",
    _tflite_model = "tflite_model",
)

TfjsModelFileInfo = _TfjsModelFileInfo
TfjsModelInfo = _TfjsModelInfo
onnx_model = _onnx_model
tfjs_converter_binary = _tfjs_converter_binary
tfjs_model = _tfjs_model
tfjs_model_test = _tfjs_model_test
tfjs_py_run = _tfjs_py_run
tflite_model = _tflite_model
