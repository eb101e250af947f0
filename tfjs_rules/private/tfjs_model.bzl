"""Implementation of tfjs_model: a source model -> a TF.js model directory artifact."""

load("//tfjs_rules:providers.bzl", "TfjsModelInfo")

INPUT_FORMATS = ["keras", "keras_keras", "keras_saved_model", "tf_saved_model", "tf_hub",
                 "tf_frozen_model", "tfjs_layers_model"]
OUTPUT_FORMATS = ["tfjs_layers_model", "tfjs_graph_model"]
_LAYERS_INPUTS = ["keras", "keras_keras", "keras_saved_model", "tfjs_layers_model"]
# A string: Bazel 4.2.3 takes no Label here, so the repository must be named tfjs_rules.
_TOOLCHAIN = "@tfjs_rules//tfjs_rules:converter_toolchain_type"

def _source_path(ctx, files):
    """The path the converter reads: the file, model.json, or the SavedModel directory."""
    if len(files) == 1:
        return files[0].path
    for f in files:
        if f.basename == "model.json":
            return f.path
    for f in files:
        if f.basename in ("saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb"):
            return f.dirname
    fail("tfjs_model: src %s provides %d files but neither model.json nor saved_model.pb; " % (
        ctx.attr.src.label,
        len(files),
    ) + "want one model file, a TF.js model, or a SavedModel", attr = "src")

def infer_output_format(input_format, source_path):
    """The output format when none is given: layers for Keras/TF.js inputs, else graph."""
    if input_format:
        return "tfjs_layers_model" if input_format in _LAYERS_INPUTS else "tfjs_graph_model"
    for ext in [".h5", ".hdf5", ".keras", ".json"]:
        if source_path.endswith(ext):
            return "tfjs_layers_model"
    return "tfjs_graph_model"

def _check_attrs(ctx):
    if ctx.attr.weight_shard_size_bytes <= 0:
        fail("tfjs_model: weight_shard_size_bytes must be positive, got %r" %
             ctx.attr.weight_shard_size_bytes, attr = "weight_shard_size_bytes")
    seen = {}
    for name in ["quantize_float16", "quantize_uint8", "quantize_uint16"]:
        for pattern in getattr(ctx.attr, name):
            if not pattern or "," in pattern:
                fail("tfjs_model: %s holds %r; want non-empty wildcard patterns without commas" % (
                    name,
                    pattern,
                ), attr = name)
            if pattern in seen:
                fail("tfjs_model: pattern %r is in both %s and %s; a weight gets one dtype" % (
                    pattern,
                    seen[pattern],
                    name,
                ), attr = name)
            seen[pattern] = name
    keys = {}
    for target, key in ctx.attr.metadata.items():
        if not key or ":" in key or "," in key:
            fail("tfjs_model: metadata key %r of %s must be non-empty, without ':' or ','" % (
                key,
                target.label,
            ), attr = "metadata")
        if key in keys:
            fail("tfjs_model: metadata key %r is given twice" % key, attr = "metadata")
        keys[key] = True
        if len(target.files.to_list()) != 1:
            fail("tfjs_model: metadata %s must be one JSON file" % target.label, attr = "metadata")

def _tfjs_model_impl(ctx):
    _check_attrs(ctx)
    toolchain = ctx.toolchains[_TOOLCHAIN]
    src_files = ctx.files.src
    source = _source_path(ctx, src_files)
    output_format = ctx.attr.output_format or infer_output_format(ctx.attr.input_format, source)
    out = ctx.actions.declare_directory(ctx.label.name)
    summary = ctx.actions.declare_file(ctx.label.name + ".summary.json")

    args = ctx.actions.args()
    args.add(source)
    args.add(out.path)
    if ctx.attr.input_format:
        args.add("--input_format=" + ctx.attr.input_format)
    args.add("--output_format=" + output_format)
    for dtype in ["float16", "uint8", "uint16"]:
        patterns = getattr(ctx.attr, "quantize_" + dtype)
        if patterns:
            args.add("--quantize_%s=%s" % (dtype, ",".join(patterns)))
    args.add("--weight_shard_size_bytes=%d" % ctx.attr.weight_shard_size_bytes)
    if ctx.attr.split_weights_by_layer:
        args.add("--split_weights_by_layer=true")
    if ctx.attr.metadata:
        args.add("--metadata=" + ",".join([
            "%s:%s" % (key, target.files.to_list()[0].path)
            for target, key in sorted(ctx.attr.metadata.items(), key = _by_key)
        ]))
    if output_format == "tfjs_graph_model":
        if ctx.attr.signature_name:
            args.add("--signature_name=" + ctx.attr.signature_name)
        args.add("--saved_model_tags=" + ctx.attr.saved_model_tags)
        args.add("--strip_debug_ops=%s" % ("true" if ctx.attr.strip_debug_ops else "false"))
        args.add("--control_flow_v2=%s" % ("true" if ctx.attr.control_flow_v2 else "false"))
        args.add("--skip_op_check=%s" % ("true" if ctx.attr.skip_op_check else "false"))
    args.add("--summary_file=" + summary.path)
    args.add("--source_label=" + str(ctx.attr.src.label))

    # Persistent workers get the per-request arguments in a param file (last arg).
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    worker = ctx.file._worker
    tools = ctx.files._converter_srcs
    inputs = src_files + [toolchain.lock] + [t.files.to_list()[0] for t in ctx.attr.metadata]
    ctx.actions.run(
        executable = toolchain.interpreter,
        # -I: isolated mode, so no host PYTHONPATH, user site or script-dir leaks in.
        arguments = ["-I", "-B", worker.path, args],
        inputs = inputs,
        tools = tools,
        outputs = [out, summary],
        mnemonic = "TfjsConvert",
        progress_message = "Converting %s to %s" % (ctx.label, output_format),
        execution_requirements = {
            "supports-workers": "1",
            "requires-worker-protocol": "json",
        },
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""},
    )
    return [
        DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out, summary])),
        OutputGroupInfo(summary = depset([summary])),
        TfjsModelInfo(
            model_dir = out,
            model_json = out.path + "/model.json",
            format = output_format,
            summary = summary,
            source = ctx.attr.src.label,
            source_file = src_files[0] if len(src_files) == 1 else None,
        ),
    ]

def _by_key(item):
    return item[1]

tfjs_model = rule(
    implementation = _tfjs_model_impl,
    doc = "Converts a TensorFlow / Keras / TF.js model into a TF.js model directory " +
          "(`<name>/model.json` + weight shards), a cacheable, byte-reproducible artifact.",
    attrs = {
        "src": attr.label(
            allow_files = True,
            mandatory = True,
            doc = "The source model: an .h5/.keras file, a model.json (with its shards), a " +
                  "SavedModel directory, or a target producing one.",
        ),
        "input_format": attr.string(
            values = [""] + INPUT_FORMATS,
            doc = "Format of src; detected from the file when empty.",
        ),
        "output_format": attr.string(
            values = [""] + OUTPUT_FORMATS,
            doc = "tfjs_layers_model or tfjs_graph_model; when empty, layers for Keras and " +
                  "TF.js inputs, graph for TensorFlow inputs.",
        ),
        "quantize_float16": attr.string_list(doc = "Weight-name wildcards quantized to float16."),
        "quantize_uint8": attr.string_list(doc = "Weight-name wildcards quantized to affine uint8."),
        "quantize_uint16": attr.string_list(doc = "Weight-name wildcards quantized to affine uint16."),
        "weight_shard_size_bytes": attr.int(
            default = 4194304,
            doc = "Shard size in bytes (4 MiB: what browsers cache).",
        ),
        "split_weights_by_layer": attr.bool(doc = "One weight group per layer (layers models)."),
        "metadata": attr.label_keyed_string_dict(
            allow_files = [".json"],
            doc = "JSON files to embed in userDefinedMetadata: {label: key}.",
        ),
        "signature_name": attr.string(doc = "SavedModel signature (graph models); empty: serving_default."),
        "saved_model_tags": attr.string(default = "serve", doc = "Comma-separated SavedModel tags."),
        "strip_debug_ops": attr.bool(default = True, doc = "Drop Assert/CheckNumerics/Print (graph models)."),
        "control_flow_v2": attr.bool(doc = "Keep While/If instead of lowering control flow (graph models)."),
        "skip_op_check": attr.bool(doc = "Do not check ops against TF.js's op list (graph models)."),
        "_worker": attr.label(
            default = Label("//converter:worker.py"),
            allow_single_file = True,
        ),
        "_converter_srcs": attr.label(default = Label("//converter:srcs")),
    },
    toolchains = [_TOOLCHAIN],
)
