"""Implementation of tflite_model and onnx_model: a source model -> one .tflite / .onnx file."""

load("//tfjs_rules:providers.bzl", "TfjsModelFileInfo", "TfjsModelInfo")
load(
    "//tfjs_rules/private:generated_formats.bzl",
    "KERAS",
    "KERAS_KERAS",
    "KERAS_SAVED_MODEL",
    "ONNX",
    "RULE_DEFAULTS",
    "TFJS_GRAPH_MODEL",
    "TFLITE",
    "TF_SAVED_MODEL",
)
load("//tfjs_rules/private:tfjs_model.bzl", "EXECUTION_REQUIREMENTS")

# What the converter turns into a .tflite / .onnx (converter/api.py).
INPUT_FORMATS = [KERAS, KERAS_KERAS, KERAS_SAVED_MODEL, TF_SAVED_MODEL, TFJS_GRAPH_MODEL]

# A string: Bazel 4.2.3 takes no Label here, so the repository must be named tfjs_rules.
_TOOLCHAIN = "@tfjs_rules//tfjs_rules:converter_toolchain_type"

_SAVED_MODEL_FILES = ["saved_model.pb", "saved_model.pbtxt"]

# The ONNX opsets tf2onnx 1.17 writes (converter/writers/onnx.py MIN_OPSET..MAX_OPSET).
MIN_OPSET = 9
MAX_OPSET = 18

# Per output format: the rule's name, the file suffix, the action's mnemonic.
_FORMATS = {
    TFLITE: struct(rule = "tflite_model", suffix = ".tflite", mnemonic = "TfliteConvert"),
    ONNX: struct(rule = "onnx_model", suffix = ".onnx", mnemonic = "OnnxConvert"),
}

# Sources that are not SavedModels (signature_name / saved_model_tags do not apply).
_NOT_SAVED_MODEL = ["model.json", ".h5", ".hdf5", ".keras"]

def _ends_with_any(path, suffixes):
    for suffix in suffixes:
        if path.endswith(suffix):
            return True
    return False

def _resolve_source(ctx, rule_name):
    """What the converter reads from src: struct(path, file, inputs)."""
    src = ctx.attr.src
    if TfjsModelInfo in src:
        info = src[TfjsModelInfo]
        if info.format != TFJS_GRAPH_MODEL:
            fail("%s: src %s got a %s, want a tfjs_graph_model (or the Keras / SavedModel " % (
                rule_name,
                src.label,
                info.format,
            ) + "source it came from)", attr = "src")
        return struct(path = info.model_json, file = info.model_dir)
    files = ctx.files.src
    models = [f for f in files if f.basename == "model.json"]
    saved_models = [f for f in files if f.basename in _SAVED_MODEL_FILES]
    if len(models) + len(saved_models) > 1:
        fail("%s: src %s got %d model files (%s), want one model" % (
            rule_name,
            src.label,
            len(models) + len(saved_models),
            ", ".join([f.short_path for f in models + saved_models]),
        ), attr = "src")
    if models:
        return struct(path = models[0].path, file = models[0])
    if saved_models:
        # The converter reads the SavedModel's directory, not saved_model.pb itself.
        return struct(path = saved_models[0].dirname, file = saved_models[0])
    if len(files) == 1:
        return struct(path = files[0].path, file = files[0])
    fail(
        "%s: src %s got %d files but neither model.json nor saved_model.pb, want one " % (
            rule_name,
            src.label,
            len(files),
        ) + "model file, a TF.js graph model (model.json + shards) or a SavedModel directory",
        attr = "src",
    )

def _check_common(ctx, rule_name):
    if ctx.attr.input_format and ctx.attr.input_format not in INPUT_FORMATS:
        fail("%s: input_format got %r, want one of %s, or empty to detect it" % (
            rule_name,
            ctx.attr.input_format,
            ", ".join(INPUT_FORMATS),
        ), attr = "input_format")

def _tflite_request(ctx):
    request = {}
    if ctx.attr.batch_size < 0:
        fail("tflite_model: batch_size got %d, want a positive batch or 0 to keep a dynamic one" %
             ctx.attr.batch_size, attr = "batch_size")
    if ctx.attr.batch_size:
        request["tflite_batch_size"] = ctx.attr.batch_size
    if ctx.attr.select_tf_ops:
        request["tflite_select_tf_ops"] = True
    if ctx.attr.quantize_float16:
        request["quantize_float16"] = []  # every float weight (TFLite takes no patterns)
    return request

def _onnx_request(ctx):
    request = {}
    if ctx.attr.opset and not (MIN_OPSET <= ctx.attr.opset and ctx.attr.opset <= MAX_OPSET):
        fail("onnx_model: opset got %d, want %d..%d (what tf2onnx 1.17 writes) or 0 for " % (
            ctx.attr.opset,
            MIN_OPSET,
            MAX_OPSET,
        ) + "the default", attr = "opset")
    if ctx.attr.opset:
        request["onnx_opset"] = ctx.attr.opset

    # Always explicit: the converter's default (external data only over 2 GB)
    # would write a file this rule did not declare.
    request["onnx_external_data"] = ctx.attr.external_data
    return request

def _request_fields(ctx, output_format):
    return _tflite_request(ctx) if output_format == TFLITE else _onnx_request(ctx)

def _model_file_impl(ctx, output_format):
    spec = _FORMATS[output_format]
    _check_common(ctx, spec.rule)
    source = _resolve_source(ctx, spec.rule)
    toolchain = ctx.toolchains[_TOOLCHAIN]
    out = ctx.actions.declare_file(ctx.label.name + spec.suffix)
    outputs = [out]
    data = None
    if output_format == ONNX and ctx.attr.external_data:
        # converter/writers/onnx.py EXTERNAL_DATA_SUFFIX; the .onnx names it by basename.
        data = ctx.actions.declare_file(out.basename + ".data", sibling = out)
        outputs.append(data)

    # The fields of the converter's ConversionRequest (converter/request.py):
    # only what applies to this output, so the converter's scope checks pass.
    request = {
        "input_path": source.path,
        "output_path": out.path,
        "output_format": output_format,
    }
    if ctx.attr.input_format:
        request["input_format"] = ctx.attr.input_format
    reads_saved_model = not (TfjsModelInfo in ctx.attr.src or
                             _ends_with_any(source.path, _NOT_SAVED_MODEL))
    if ctx.attr.signature_name:
        if not reads_saved_model:
            fail("%s: signature_name got %r, want it only for a SavedModel src" % (
                spec.rule,
                ctx.attr.signature_name,
            ), attr = "signature_name")
        request["signature_name"] = ctx.attr.signature_name
    if reads_saved_model and ctx.attr.saved_model_tags != RULE_DEFAULTS["saved_model_tags"]:
        request["saved_model_tags"] = ctx.attr.saved_model_tags
    request.update(_request_fields(ctx, output_format))
    request_file = ctx.actions.declare_file(ctx.label.name + ".request.json")
    ctx.actions.write(request_file, json.encode(request) + "\n")

    args = ctx.actions.args()
    args.add("--request_file=" + request_file.path)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    ctx.actions.run(
        executable = toolchain.interpreter,
        # -I: isolated mode, so no host PYTHONPATH, user site or script-dir leaks in.
        arguments = ["-I", "-B", ctx.file._worker.path, args],
        inputs = ctx.files.src + [toolchain.lock, request_file],
        tools = ctx.files._converter_srcs,
        outputs = outputs,
        mnemonic = spec.mnemonic,
        progress_message = "Converting %s to %s" % (ctx.label, output_format),
        execution_requirements = EXECUTION_REQUIREMENTS,
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TFJS_CONVERTER_HERMETIC": "1"},
    )
    return [
        DefaultInfo(files = depset(outputs), runfiles = ctx.runfiles(files = outputs)),
        TfjsModelFileInfo(
            file = out,
            external_data = data,
            format = output_format,
            source = ctx.attr.src.label,
            source_file = source.file,
        ),
    ]

def _tflite_model_impl(ctx):
    return _model_file_impl(ctx, TFLITE)

def _onnx_model_impl(ctx):
    return _model_file_impl(ctx, ONNX)

# The attributes both rules share (literal dicts below, so tests/test_docs.py
# can read them; these keep their docs in one place).
_SRC_DOC = ("The source model: an .h5/.hdf5/.keras file, a SavedModel directory (a target " +
            "whose files include saved_model.pb, or one tree artifact), a TF.js graph model " +
            "(model.json + shards, or a tfjs_model with output_format = " +
            "\"tfjs_graph_model\"), or a target producing one of these.")
_INPUT_FORMAT_DOC = ("Format of src: one of " + ", ".join(INPUT_FORMATS) + ". Empty: the " +
                     "converter detects it from the file's bytes.")
_SIGNATURE_DOC = "Signature of a SavedModel src to convert. Empty: serving_default."
_TAGS_DOC = "Comma-separated tags of a SavedModel src."

tflite_model = rule(
    implementation = _tflite_model_impl,
    doc = "Converts a Keras / SavedModel / TF.js graph model into `<name>.tflite` for " +
          "LiteRT and LiteRT.js (TFLite's own converter; builtin ops only unless " +
          "select_tf_ops), a byte-reproducible artifact. Runs as a persistent worker " +
          "(mnemonic TfliteConvert).",
    attrs = {
        "src": attr.label(
            allow_files = True,
            mandatory = True,
            doc = _SRC_DOC,
        ),
        "input_format": attr.string(doc = _INPUT_FORMAT_DOC),
        "signature_name": attr.string(doc = _SIGNATURE_DOC),
        "saved_model_tags": attr.string(
            default = RULE_DEFAULTS["saved_model_tags"],
            doc = _TAGS_DOC,
        ),
        "batch_size": attr.int(
            default = 0,
            doc = "Fix the inputs' batch dimension to this size (LiteRT.js cannot feed a " +
                  "dynamic [-1, ...] input); scalar inputs stay as they are. 0 keeps a " +
                  "dynamic batch (the converter then warns).",
        ),
        "select_tf_ops": attr.bool(
            default = RULE_DEFAULTS["tflite_select_tf_ops"],
            doc = "Allow TensorFlow ops (Select TF ops, Flex) where no TFLite builtin exists, " +
                  "instead of failing; LiteRT.js and LiteRT builds without the Flex delegate " +
                  "cannot run the result.",
        ),
        "quantize_float16": attr.bool(
            default = False,
            doc = "Store every float weight as float16 (dequantized on load): half the size.",
        ),
        "_worker": attr.label(
            default = Label("//converter:worker.py"),
            allow_single_file = True,
            doc = "The converter's Bazel entry point (one-shot or persistent worker).",
        ),
        "_converter_srcs": attr.label(
            default = Label("//converter:srcs"),
            doc = "The converter's Python sources, tools of every conversion.",
        ),
    },
    toolchains = [_TOOLCHAIN],
)

onnx_model = rule(
    implementation = _onnx_model_impl,
    doc = "Converts a Keras / SavedModel / TF.js graph model into `<name>.onnx` (tf2onnx) " +
          "for ONNX Runtime, a byte-reproducible artifact. A model over 2 GB needs " +
          "external_data = True (else the conversion fails saying so). Runs as a persistent " +
          "worker (mnemonic OnnxConvert).",
    attrs = {
        "src": attr.label(
            allow_files = True,
            mandatory = True,
            doc = _SRC_DOC,
        ),
        "input_format": attr.string(doc = _INPUT_FORMAT_DOC),
        "signature_name": attr.string(doc = _SIGNATURE_DOC),
        "saved_model_tags": attr.string(
            default = RULE_DEFAULTS["saved_model_tags"],
            doc = _TAGS_DOC,
        ),
        "opset": attr.int(
            default = 0,
            doc = "ONNX opset, 9..18 (what tf2onnx 1.17 writes). 0: the converter's default " +
                  "(17, docs/format.md).",
        ),
        "external_data": attr.bool(
            default = False,
            doc = "Write the weights to `<name>.onnx.data` beside `<name>.onnx` (ONNX " +
                  "external data; ONNX Runtime loads it from the same directory), a second " +
                  "output. Needed for models over 2 GB, which fail without it.",
        ),
        "_worker": attr.label(
            default = Label("//converter:worker.py"),
            allow_single_file = True,
            doc = "The converter's Bazel entry point (one-shot or persistent worker).",
        ),
        "_converter_srcs": attr.label(
            default = Label("//converter:srcs"),
            doc = "The converter's Python sources, tools of every conversion.",
        ),
    },
    toolchains = [_TOOLCHAIN],
)
