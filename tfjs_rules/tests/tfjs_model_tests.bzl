"""Analysis tests of tfjs_model and tfjs_py_run: providers, actions, attribute errors.

Nothing here runs the converter: the targets under test are only analyzed, so
their sources are empty placeholder files (and a tfjs_py_run tree artifact that
is never built). tests/bazel/ checks real outputs.
"""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts", "unittest")
load("@bazel_skylib//rules:write_file.bzl", "write_file")
load("//tfjs_rules:defs.bzl", "TfjsModelInfo", "tfjs_model", "tfjs_py_run")
load("//tfjs_rules/private:generated_formats.bzl", "TFJS_OUTPUTS")
load(
    "//tfjs_rules/private:tfjs_model.bzl",
    "EXECUTION_REQUIREMENTS",
    "INPUT_FORMATS",
    "infer_output_format",
    "tfjs_output_format",
)

_MANUAL = ["manual"]  # built only as targets under test, never by //...

# The toolchain's lock: a new lock must reconvert every model.
_LOCK = "../tfjs_converter_env/requirements_lock.txt"

# Request fields the rule sets only for a tfjs_graph_model output.
_GRAPH_FIELDS = [
    "signature_name",
    "saved_model_tags",
    "strip_debug_ops",
    "control_flow_v2",
    "skip_op_check",
    "output_node_names",
    "use_structured_outputs_names",
]

# ---------------------------------------------------------------- helpers

def _convert_action(env):
    """The one TfjsConvert action of the target under test."""
    actions = [a for a in analysistest.target_actions(env) if a.mnemonic == "TfjsConvert"]
    asserts.equals(env, 1, len(actions), "number of TfjsConvert actions")
    return actions[0] if actions else None

def _expand(env, text):
    """Replaces {bin} and {pkg} with the bin directory and this package."""
    return text.replace("{bin}", analysistest.target_bin_dir_path(env)).replace(
        "{pkg}",
        env.ctx.label.package,
    )

def _request_write(env):
    """The action writing the JSON request file of the target under test."""
    writes = [
        a
        for a in analysistest.target_actions(env)
        if a.mnemonic == "FileWrite" and
           [f for f in a.outputs.to_list() if f.basename.endswith(".request.json")]
    ]
    asserts.equals(env, 1, len(writes), "number of request file writes")
    return writes[0] if writes else None

def _request(env):
    """The decoded JSON request the TfjsConvert action reads ({} if there is none)."""
    write = _request_write(env)
    return json.decode(write.content) if write else {}

def _test(rule, name, **kwargs):
    """Instantiates test `rule` as a small test; returns its name for the suite."""
    rule(name = name, size = "small", **kwargs)
    return name

def _paths(files):
    return sorted([f.path for f in files])

# ---------------------------------------------------------------- fixtures

def _fixture(name, out):
    write_file(name = name, out = out, content = [], tags = _MANUAL)

def _fixtures():
    _fixture("model_h5", "fixtures/model.h5")
    _fixture("model_keras", "fixtures/model.keras")
    _fixture("model_bin", "fixtures/model.bin")
    _fixture("tfjs_json", "fixtures/tfjs/model.json")
    _fixture("tfjs_shard", "fixtures/tfjs/group1-shard1of1.bin")
    _fixture("tfjs2_json", "fixtures/tfjs2/model.json")
    _fixture("saved_pb", "fixtures/saved/saved_model.pb")
    _fixture("saved_index", "fixtures/saved/variables/variables.index")
    _fixture("saved_data", "fixtures/saved/variables/variables.data-00000-of-00001")
    _fixture("other_a", "fixtures/other/a.bin")
    _fixture("other_b", "fixtures/other/b.bin")
    _fixture("meta_1", "fixtures/meta_1.json")
    _fixture("meta_2", "fixtures/meta_2.json")
    _fixture("gen_py", "fixtures/gen.py")

    # A SavedModel written in the build: one tree artifact, whose files analysis
    # cannot see.
    tfjs_py_run(
        name = "saved_tree",
        out_dirs = ["fixtures/saved_tree"],
        script = ":gen_py",
        tags = _MANUAL,
    )
    native.filegroup(name = "tfjs_files", srcs = [":tfjs_json", ":tfjs_shard"], tags = _MANUAL)
    native.filegroup(
        name = "saved_model",
        srcs = [":saved_pb", ":saved_index", ":saved_data"],
        tags = _MANUAL,
    )
    native.filegroup(name = "two_tfjs", srcs = [":tfjs_json", ":tfjs2_json"], tags = _MANUAL)
    native.filegroup(name = "no_model", srcs = [":other_a", ":other_b"], tags = _MANUAL)
    native.filegroup(name = "two_meta", srcs = [":meta_1", ":meta_2"], tags = _MANUAL)

# ---------------------------------------------------------------- provider

def _layers_from_h5_test_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[TfjsModelInfo]
    name = target.label.name
    asserts.true(env, info.model_dir.is_directory, "model_dir is a tree artifact")
    asserts.equals(env, _expand(env, "{bin}/{pkg}/" + name), info.model_dir.path)
    asserts.equals(env, info.model_dir.path + "/model.json", info.model_json)
    asserts.equals(env, "tfjs_layers_model", info.format)
    asserts.equals(env, name + ".summary.json", info.summary.basename)
    asserts.false(env, info.summary.is_directory, "summary is a file")
    asserts.equals(env, Label("//tfjs_rules/tests:model_h5"), info.source)
    asserts.equals(env, _expand(env, "{bin}/{pkg}/fixtures/model.h5"), info.source_file.path)
    asserts.equals(env, [info.model_dir], target[DefaultInfo].files.to_list())
    asserts.equals(env, [info.summary], target[OutputGroupInfo].summary.to_list())
    runfiles = target[DefaultInfo].default_runfiles.files.to_list()
    asserts.true(
        env,
        info.model_dir in runfiles and info.summary in runfiles,
        "runfiles hold the model and its summary",
    )
    return analysistest.end(env)

_layers_from_h5_test = analysistest.make(_layers_from_h5_test_impl)

def _format_test_impl(ctx):
    env = analysistest.begin(ctx)
    info = analysistest.target_under_test(env)[TfjsModelInfo]
    asserts.equals(env, ctx.attr.want_format, info.format)
    asserts.equals(
        env,
        _expand(env, ctx.attr.want_source_file),
        info.source_file.path,
        "source_file",
    )
    request = _request(env)
    asserts.equals(env, ctx.attr.want_format, request.get("output_format"), "output_format")
    asserts.equals(
        env,
        _expand(env, ctx.attr.want_source_path),
        request.get("input_path"),
        "the path the converter reads",
    )
    return analysistest.end(env)

# Checks the format a target converts to, the file that identifies its source and
# the path the converter reads.
_format_test = analysistest.make(_format_test_impl, attrs = {
    "want_format": attr.string(doc = "TfjsModelInfo.format and the request's output_format."),
    "want_source_file": attr.string(doc = "TfjsModelInfo.source_file.path; {bin}, {pkg}."),
    "want_source_path": attr.string(doc = "The converter's input path; {bin}, {pkg}."),
})

def _chained_test_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    upstream = ctx.attr.upstream[TfjsModelInfo]
    info = target[TfjsModelInfo]
    asserts.equals(env, "tfjs_layers_model", info.format)
    asserts.equals(env, upstream.model_dir, info.source_file)
    action = _convert_action(env)
    asserts.equals(
        env,
        upstream.model_json,
        _request(env).get("input_path"),
        "the converter reads model.json",
    )
    if action:
        asserts.true(
            env,
            upstream.model_dir in action.inputs.to_list(),
            "the upstream tree is an input",
        )
    return analysistest.end(env)

# A tfjs_model of a tfjs_model (requantize / reshard) reads the upstream model.json.
_chained_test = analysistest.make(_chained_test_impl, attrs = {
    "upstream": attr.label(providers = [TfjsModelInfo], doc = "The src tfjs_model."),
})

# ---------------------------------------------------------------- action

def _default_action_test_impl(ctx):
    env = analysistest.begin(ctx)
    action = _convert_action(env)
    if not action:
        return analysistest.end(env)
    target = analysistest.target_under_test(env)
    info = target[TfjsModelInfo]
    write = _request_write(env)
    if not write:
        return analysistest.end(env)
    request_file = write.outputs.to_list()[0]
    asserts.equals(env, "TfjsConvert", action.mnemonic)
    asserts.equals(env, _expand(env, "{bin}/{pkg}/h5_default.request.json"), request_file.path)

    # The options travel as a JSON request file, never as converter flags.
    asserts.equals(env, [
        "-I",
        "-B",
        "converter/worker.py",
        "--request_file=" + request_file.path,
    ], action.argv[1:])
    asserts.true(env, request_file in action.inputs.to_list(), "the request file is an input")
    asserts.true(env, write.content.endswith("}\n"), "the request is one JSON line")
    asserts.equals(env, {
        "input_path": _expand(env, "{bin}/{pkg}/fixtures/model.h5"),
        "output_path": info.model_dir.path,
        "output_format": "tfjs_layers_model",
        "weight_shard_size_bytes": 4194304,
        # verify is on by default: the output runs in TF.js before it is an output.
        "verify": True,
        "verify_backends": ["cpu", "wasm"],
        "summary_file": info.summary.path,
        "source_label": str(Label("//tfjs_rules/tests:model_h5")),
    }, json.decode(write.content))
    asserts.true(env, action.argv[0].endswith("/python3"), "runs the toolchain's python3")
    asserts.equals(
        env,
        sorted([info.model_dir.path, info.summary.path]),
        _paths(action.outputs.to_list()),
    )
    inputs = [f.short_path for f in action.inputs.to_list()]
    for want in [
        _LOCK,
        "converter/worker.py",
        "converter/cli.py",
        "converter/verify/check.py",
        "converter/verify/js/run_models.js",
        "converter/verify/js/package-lock.json",
        ctx.label.package + "/fixtures/model.h5",
    ]:
        asserts.true(env, want in inputs, "%s is an input; inputs: %s" % (want, inputs))

    # Hermetic: verification takes Node and the npm packages from the converter's
    # environment, never from the host.
    asserts.equals(env, {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "TFJS_CONVERTER_HERMETIC": "1",
    }, action.env)
    return analysistest.end(env)

_default_action_test = analysistest.make(_default_action_test_impl)

def _request_test_impl(ctx):
    env = analysistest.begin(ctx)
    action = _convert_action(env)
    if not action:
        return analysistest.end(env)
    request = _request(env)
    for name, value in ctx.attr.want.items():
        asserts.equals(env, json.decode(_expand(env, value)), request.get(name), "value of " + name)
    for absent in ctx.attr.absent:
        asserts.false(env, absent in request, "%s is not set; request: %s" % (absent, request))
    inputs = [f.short_path for f in action.inputs.to_list()]
    for want in ctx.attr.want_inputs:
        want = _expand(env, want)
        asserts.true(env, want in inputs, "%s is an input; inputs: %s" % (want, inputs))
    return analysistest.end(env)

# Checks fields of the JSON request (want), fields that must be absent, and inputs.
_request_test = analysistest.make(_request_test_impl, attrs = {
    "want": attr.string_dict(doc = "{field: JSON value}; {bin} and {pkg} are expanded."),
    "absent": attr.string_list(doc = "Fields the request must not hold."),
    "want_inputs": attr.string_list(doc = "short_paths of required inputs; {pkg} expanded."),
})

def _execution_requirements_test_impl(ctx):
    env = unittest.begin(ctx)

    # Bazel 4.2.3's Action has no execution_info, so this checks the dict the rule
    # passes to ctx.actions.run; tests/integration sees the workers run.
    asserts.equals(
        env,
        {"supports-workers": "1", "requires-worker-protocol": "json"},
        EXECUTION_REQUIREMENTS,
    )
    return unittest.end(env)

_execution_requirements_test = unittest.make(_execution_requirements_test_impl)

def _infer_output_format_test_impl(ctx):
    env = unittest.begin(ctx)
    for input_format, path, want in [
        ("", "m.h5", "tfjs_layers_model"),
        ("", "m.hdf5", "tfjs_layers_model"),
        ("", "m.keras", "tfjs_layers_model"),
        ("", "web/model.json", "tfjs_layers_model"),
        ("", "exported/saved", "tfjs_graph_model"),
        ("", "frozen.pb", "tfjs_graph_model"),
        ("keras", "m.bin", "tfjs_layers_model"),
        ("keras_saved_model", "dir", "tfjs_layers_model"),
        ("tf_saved_model", "m.h5", "tfjs_graph_model"),
        ("tf_hub", "module", "tfjs_graph_model"),
        ("tf_frozen_model", "frozen.pb", "tfjs_graph_model"),
    ]:
        asserts.equals(
            env,
            want,
            infer_output_format(input_format, path),
            "infer_output_format(%r, %r)" % (input_format, path),
        )

    # A directory (tree artifact): its name says nothing about its contents.
    for input_format, path, want in [
        ("", "gen/saved", "tfjs_graph_model"),
        ("", "gen/model.json", "tfjs_graph_model"),
        ("", "gen/model.keras", "tfjs_graph_model"),
        ("tfjs_layers_model", "gen/web", "tfjs_layers_model"),
        ("keras_saved_model", "gen/saved", "tfjs_layers_model"),
        ("tf_saved_model", "gen/saved", "tfjs_graph_model"),
    ]:
        asserts.equals(
            env,
            want,
            infer_output_format(input_format, path, True),
            "infer_output_format(%r, %r, True)" % (input_format, path),
        )

    # Every input the rule takes has a TF.js output: the converter's inferred one
    # (generated from converter/request.py), or a TF.js input's own format.
    for input_format in INPUT_FORMATS:
        asserts.true(
            env,
            tfjs_output_format(input_format) in TFJS_OUTPUTS,
            "tfjs_output_format(%r) is a TF.js format" % input_format,
        )
    asserts.equals(env, "tfjs_layers_model", tfjs_output_format("tfjs_layers_model"))
    asserts.equals(env, "tfjs_graph_model", tfjs_output_format("tfjs_graph_model"))
    asserts.false(env, "tfjs_graph_model" in INPUT_FORMATS, "graph models are not a src yet")
    return unittest.end(env)

_infer_output_format_test = unittest.make(_infer_output_format_test_impl)

# ---------------------------------------------------------------- tfjs_py_run

def _py_run_test_impl(ctx):
    env = analysistest.begin(ctx)
    actions = [a for a in analysistest.target_actions(env) if a.mnemonic == "TfjsPyRun"]
    asserts.equals(env, 1, len(actions), "number of TfjsPyRun actions")
    if not actions:
        return analysistest.end(env)
    action = actions[0]
    target = analysistest.target_under_test(env)
    files = target[DefaultInfo].files.to_list()
    asserts.equals(
        env,
        [False, True],
        [f.is_directory for f in files],
        "DefaultInfo: the outs file, then the out_dirs tree artifact",
    )
    asserts.equals(env, _paths(files), _paths(action.outputs.to_list()), "action outputs")
    runfiles = target[DefaultInfo].default_runfiles.files.to_list()
    asserts.true(env, all([f in runfiles for f in files]), "runfiles hold every output")
    asserts.true(env, action.argv[0].endswith("/python3"), "runs the toolchain's python3")
    asserts.equals(env, [
        "-I",
        "-B",
        _expand(env, "{bin}/{pkg}/fixtures/gen.py"),
        _expand(env, "{bin}/{pkg}/fixtures/gen_out.h5"),
        _expand(env, "{bin}/{pkg}/fixtures/gen_dir"),
        "--data",
        _expand(env, "{bin}/{pkg}/fixtures/meta_1.json"),
    ], action.argv[1:])
    inputs = [f.short_path for f in action.inputs.to_list()]
    for want in [_LOCK, "{pkg}/fixtures/gen.py", "{pkg}/fixtures/meta_1.json"]:
        want = _expand(env, want)
        asserts.true(env, want in inputs, "%s is an input; inputs: %s" % (want, inputs))
    asserts.equals(env, {
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTHONHASHSEED": "0",
    }, action.env)
    return analysistest.end(env)

# outs then out_dirs paths, then args with $(location) expanded; both kinds of output.
_py_run_test = analysistest.make(_py_run_test_impl)

def _py_run_tests():
    tfjs_py_run(
        name = "gen_both",
        outs = ["fixtures/gen_out.h5"],
        out_dirs = ["fixtures/gen_dir"],
        args = ["--data", "$(location :meta_1)"],
        data = [":meta_1"],
        script = ":gen_py",
        tags = _MANUAL,
    )
    return [_test(_py_run_test, "py_run_test", target_under_test = ":gen_both")]

# ---------------------------------------------------------------- .summary

def _summary_target_test_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    model = ctx.attr.model[TfjsModelInfo]
    executable = target[DefaultInfo].files_to_run.executable
    asserts.true(env, executable != None, "the .summary target is executable")
    if executable:
        asserts.equals(env, target.label.name + ".sh", executable.basename)
    runfiles = target[DefaultInfo].default_runfiles.files.to_list()
    asserts.true(env, model.summary in runfiles, "the summary JSON is in its runfiles")
    asserts.false(env, model.model_dir in runfiles, "the model itself is not needed to print")
    return analysistest.end(env)

_summary_target_test = analysistest.make(_summary_target_test_impl, attrs = {
    "model": attr.label(providers = [TfjsModelInfo], doc = "The tfjs_model it summarizes."),
})

# ---------------------------------------------------------------- failures

def _failure_test_impl(ctx):
    env = analysistest.begin(ctx)
    for text in ctx.attr.want:
        asserts.expect_failure(env, _expand(env, text))
    return analysistest.end(env)

# The target under test fails analysis with every string of `want` in its error.
_failure_test = analysistest.make(_failure_test_impl, expect_failure = True, attrs = {
    "want": attr.string_list(doc = "Substrings of the error; {pkg} is expanded."),
})

def _attr_error(attr_name, rule_name = "tfjs_model"):
    """How Bazel 4.2.3 reports fail("<rule_name>: ...", attr = attr_name)."""
    return "Error in fail: attribute %s: %s: " % (attr_name, rule_name)

def _expect_error(
        name,
        attr_name,
        message,
        rule = tfjs_model,
        rule_name = "tfjs_model",
        **kwargs):
    """A `rule` target `name` built from kwargs, and a test that it fails on attr_name."""
    rule(name = name, tags = _MANUAL, **kwargs)
    return _test(
        _failure_test,
        name + "_test",
        target_under_test = ":" + name,
        want = [_attr_error(attr_name, rule_name) + message],
    )

def _expect_py_run_error(name, attr_name, message, **kwargs):
    return _expect_error(
        name,
        attr_name,
        message,
        rule = tfjs_py_run,
        rule_name = "tfjs_py_run",
        script = ":gen_py",
        **kwargs
    )

def _failure_tests():
    return [
        _expect_error(
            "bad_shard_size_zero",
            "weight_shard_size_bytes",
            "weight_shard_size_bytes got 0, want a positive number of bytes",
            src = ":model_h5",
            weight_shard_size_bytes = 0,
        ),
        _expect_error(
            "bad_shard_size_negative",
            "weight_shard_size_bytes",
            "weight_shard_size_bytes got -4, want a positive number of bytes",
            src = ":model_h5",
            weight_shard_size_bytes = -4,
        ),
        _expect_error(
            "bad_pattern_in_two_lists",
            "quantize_uint8",
            "quantize_uint8 got pattern \"dense*\", which quantize_float16 already has; want " +
            "each pattern in one quantize_* list (a weight gets one dtype)",
            src = ":model_h5",
            quantize_float16 = ["dense*"],
            quantize_uint8 = ["conv*", "dense*"],
        ),
        _expect_error(
            "bad_pattern_twice",
            "quantize_uint16",
            "quantize_uint16 got pattern \"*\" twice, want each pattern once",
            src = ":model_h5",
            quantize_uint16 = ["*", "*"],
        ),
        _expect_error(
            "bad_pattern_comma",
            "quantize_float16",
            "quantize_float16 got pattern \"a,b\", want a non-empty weight-name wildcard " +
            "without commas or surrounding spaces",
            src = ":model_h5",
            quantize_float16 = ["a,b"],
        ),
        _expect_error(
            "bad_pattern_empty",
            "quantize_uint8",
            "quantize_uint8 got pattern \"\", want a non-empty weight-name wildcard",
            src = ":model_h5",
            quantize_uint8 = [""],
        ),
        _expect_error(
            "bad_pattern_space",
            "quantize_uint8",
            "quantize_uint8 got pattern \" dense/kernel\", want a non-empty weight-name wildcard",
            src = ":model_h5",
            quantize_uint8 = [" dense/kernel"],
        ),
        _expect_error(
            "bad_metadata_key_colon",
            "metadata",
            "metadata got key \"a:b\" for //{pkg}:meta_1, want a non-empty key without ':', " +
            "',' or surrounding spaces",
            src = ":model_h5",
            metadata = {":meta_1": "a:b"},
        ),
        _expect_error(
            "bad_metadata_key_empty",
            "metadata",
            "metadata got key \"\" for //{pkg}:meta_1, want a non-empty key",
            src = ":model_h5",
            metadata = {":meta_1": ""},
        ),
        _expect_error(
            "bad_metadata_key_comma",
            "metadata",
            "metadata got key \"x,y\" for //{pkg}:meta_1, want a non-empty key",
            src = ":model_h5",
            metadata = {":meta_1": "x,y"},
        ),
        _expect_error(
            "bad_metadata_duplicate_key",
            "metadata",
            "metadata got key \"labels\" for both //{pkg}:meta_1 and //{pkg}:meta_2, want " +
            "each key once",
            src = ":model_h5",
            metadata = {":meta_1": "labels", ":meta_2": "labels"},
        ),
        _expect_error(
            "bad_metadata_two_files",
            "metadata",
            "metadata got 2 files from //{pkg}:two_meta, want one JSON file",
            src = ":model_h5",
            metadata = {":two_meta": "labels"},
        ),
        _expect_error(
            "bad_input_format",
            "input_format",
            "input_format got \"onnx\", want one of keras, keras_keras, keras_saved_model, " +
            "tf_saved_model, tf_hub, tf_frozen_model, tfjs_layers_model, or empty to detect it",
            src = ":model_h5",
            input_format = "onnx",
        ),
        _expect_error(
            "bad_output_format",
            "output_format",
            "output_format got \"keras\", want one of tfjs_layers_model, tfjs_graph_model, " +
            "or empty to infer it",
            src = ":model_h5",
            output_format = "keras",
        ),
        _expect_error(
            "bad_src_no_model",
            "src",
            "src //{pkg}:no_model got 2 files but neither model.json nor saved_model.pb, want " +
            "one model file, a TF.js model (model.json + shards) or a SavedModel directory",
            src = ":no_model",
        ),
        _expect_error(
            "bad_src_two_models",
            "src",
            "src //{pkg}:two_tfjs got 2 model files ({pkg}/fixtures/tfjs/model.json, " +
            "{pkg}/fixtures/tfjs2/model.json), want one model",
            src = ":two_tfjs",
        ),
        _expect_error(
            "bad_src_graph_model",
            "src",
            "src //{pkg}:graph_out got a tfjs_graph_model, want a tfjs_layers_model (graph " +
            "models do not convert back)",
            src = ":graph_out",
        ),
        _expect_error(
            "bad_split_for_graph",
            "split_weights_by_layer",
            "split_weights_by_layer got True for a tfjs_graph_model output, want it only with " +
            "tfjs_layers_model",
            src = ":saved_model",
            split_weights_by_layer = True,
        ),
        _expect_error(
            "bad_output_nodes_for_layers",
            "output_node_names",
            "output_node_names got \"Identity\" for a tfjs_layers_model output, want it only " +
            "with tfjs_graph_model",
            src = ":model_h5",
            output_node_names = "Identity",
        ),
        _expect_error(
            "bad_structured_for_layers",
            "use_structured_outputs_names",
            "use_structured_outputs_names got True for a tfjs_layers_model output, want it " +
            "only with tfjs_graph_model",
            src = ":tfjs_files",
            use_structured_outputs_names = True,
        ),
        _expect_py_run_error(
            "bad_py_run_no_outputs",
            "outs",
            "outs and out_dirs are both empty, want at least one output",
        ),
        _expect_py_run_error(
            "bad_py_run_dir_dotdot",
            "out_dirs",
            "out_dirs got \"../up\", want a relative path without '.', '..' or empty parts",
            out_dirs = ["../up"],
        ),
        _expect_py_run_error(
            "bad_py_run_dir_absolute",
            "out_dirs",
            "out_dirs got \"/tmp/x\", want a relative path",
            out_dirs = ["/tmp/x"],
        ),
        _expect_py_run_error(
            "bad_py_run_dir_twice",
            "out_dirs",
            "out_dirs got \"gen/a\" twice, want each directory once",
            out_dirs = ["gen/a", "gen/a"],
        ),
        _expect_py_run_error(
            "bad_py_run_dir_holds_out",
            "out_dirs",
            "out_dirs got \"gen\", which holds outs file \"{pkg}/gen/m.h5\"; want a " +
            "directory no other output is in",
            outs = ["gen/m.h5"],
            out_dirs = ["gen"],
        ),
    ]

# ---------------------------------------------------------------- suite

def _provider_tests():
    tfjs_model(name = "h5_default", src = ":model_h5", tags = _MANUAL)
    tests = [
        _test(_layers_from_h5_test, "layers_from_h5_test", target_under_test = ":h5_default"),
        _test(_default_action_test, "default_action_test", target_under_test = ":h5_default"),
    ]

    layers, graph = "tfjs_layers_model", "tfjs_graph_model"

    # (target, src, attrs, want format, want source_file, want input path), both
    # paths under fixtures/. A SavedModel is read as a directory.
    for target, src, kwargs, want_format, want_source, want_path in [
        ("keras_default", ":model_keras", {}, layers, "model.keras", "model.keras"),
        ("tfjs_default", ":tfjs_files", {}, layers, "tfjs/model.json", "tfjs/model.json"),
        ("saved_default", ":saved_model", {}, graph, "saved/saved_model.pb", "saved"),
        ("bin_default", ":model_bin", {}, graph, "model.bin", "model.bin"),
        ("bin_as_keras", ":model_bin", {"input_format": "keras"}, layers, "model.bin", "model.bin"),
        ("h5_to_graph", ":model_h5", {"output_format": graph}, graph, "model.h5", "model.h5"),
        (
            "saved_to_layers",
            ":saved_model",
            {"input_format": "keras_saved_model"},
            layers,
            "saved/saved_model.pb",
            "saved",
        ),
        # A tree artifact is read as a directory: a SavedModel unless input_format says.
        ("tree_default", ":saved_tree", {}, graph, "saved_tree", "saved_tree"),
        (
            "tree_as_layers",
            ":saved_tree",
            {"input_format": "tfjs_layers_model"},
            layers,
            "saved_tree",
            "saved_tree",
        ),
        (
            "tree_keras_saved_model",
            ":saved_tree",
            {"input_format": "keras_saved_model"},
            layers,
            "saved_tree",
            "saved_tree",
        ),
        (
            "tree_keras_to_graph",
            ":saved_tree",
            {"input_format": "keras_saved_model", "output_format": graph},
            graph,
            "saved_tree",
            "saved_tree",
        ),
    ]:
        tfjs_model(name = target, src = src, tags = _MANUAL, **kwargs)
        tests.append(_test(
            _format_test,
            target + "_format_test",
            target_under_test = ":" + target,
            want_format = want_format,
            want_source_file = "{bin}/{pkg}/fixtures/" + want_source,
            want_source_path = "{bin}/{pkg}/fixtures/" + want_path,
        ))

    tfjs_model(name = "requantized", src = ":h5_default", quantize_uint8 = ["*"], tags = _MANUAL)
    tests.append(_test(
        _chained_test,
        "chained_test",
        target_under_test = ":requantized",
        upstream = ":h5_default",
    ))
    return tests

def _action_tests():
    tfjs_model(
        name = "all_layers_attrs",
        src = ":model_h5",
        input_format = "keras",
        quantize_float16 = ["dense/*", "out*"],
        quantize_uint8 = ["conv/kernel"],
        quantize_uint16 = ["emb*", "lstm*", "gru*"],
        weight_shard_size_bytes = 1024,
        split_weights_by_layer = True,
        # Keys sort opposite to labels: the flag must follow the keys.
        metadata = {":meta_1": "zeta", ":meta_2": "alpha"},
        # Graph options are not passed for a layers output.
        signature_name = "serving_custom",
        saved_model_tags = "serve,gpu",
        strip_debug_ops = False,
        control_flow_v2 = True,
        skip_op_check = True,
        tags = _MANUAL,
    )
    tfjs_model(
        name = "graph_frozen",
        src = ":model_bin",
        input_format = "tf_frozen_model",
        output_node_names = "logits,probs",
        use_structured_outputs_names = True,
        verify = False,
        tags = _MANUAL,
    )
    tfjs_model(
        name = "graph_out",
        src = ":saved_model",
        input_format = "tf_saved_model",
        signature_name = "serving_custom",
        saved_model_tags = "serve,gpu",
        strip_debug_ops = False,
        control_flow_v2 = True,
        skip_op_check = True,
        quantize_float16 = ["*"],
        verify_backends = ["wasm"],
        content_hash = True,
        tags = _MANUAL,
    )
    return [
        _test(
            _request_test,
            "layers_request_test",
            target_under_test = ":all_layers_attrs",
            want = {
                "input_format": '"keras"',
                "output_format": '"tfjs_layers_model"',
                "quantize_float16": '["dense/*", "out*"]',
                "quantize_uint8": '["conv/kernel"]',
                "quantize_uint16": '["emb*", "lstm*", "gru*"]',
                "weight_shard_size_bytes": "1024",
                "split_weights_by_layer": "true",
                "metadata": '[["alpha", "{bin}/{pkg}/fixtures/meta_2.json"], ' +
                            '["zeta", "{bin}/{pkg}/fixtures/meta_1.json"]]',
                "summary_file": '"{bin}/{pkg}/all_layers_attrs.summary.json"',
                "source_label": '"//{pkg}:model_h5"',
            },
            absent = _GRAPH_FIELDS,
            want_inputs = [
                _LOCK,
                "{pkg}/all_layers_attrs.request.json",
                "{pkg}/fixtures/meta_1.json",
                "{pkg}/fixtures/meta_2.json",
                "{pkg}/fixtures/model.h5",
            ],
        ),
        _test(
            _request_test,
            "default_request_test",
            target_under_test = ":h5_default",
            absent = [
                         "input_format",
                         "quantize_float16",
                         "quantize_uint8",
                         "quantize_uint16",
                         "split_weights_by_layer",
                         "metadata",
                         "content_hash_shards",
                     ] +
                     _GRAPH_FIELDS,
        ),
        _test(
            _request_test,
            "graph_default_request_test",
            target_under_test = ":saved_default",
            want = {
                "output_format": '"tfjs_graph_model"',
                "saved_model_tags": '"serve"',
                "strip_debug_ops": "true",
                "control_flow_v2": "false",
                "skip_op_check": "false",
                "source_label": '"//{pkg}:saved_model"',
            },
            absent = [
                "signature_name",
                "split_weights_by_layer",
                "input_format",
                "output_node_names",
                "use_structured_outputs_names",
            ],
            # The converter reads the SavedModel's directory: all of it is an input.
            want_inputs = [
                "{pkg}/fixtures/saved/saved_model.pb",
                "{pkg}/fixtures/saved/variables/variables.index",
                "{pkg}/fixtures/saved/variables/variables.data-00000-of-00001",
            ],
        ),
        _test(
            _request_test,
            "graph_request_test",
            target_under_test = ":graph_out",
            want = {
                "input_format": '"tf_saved_model"',
                "output_format": '"tfjs_graph_model"',
                "signature_name": '"serving_custom"',
                "saved_model_tags": '"serve,gpu"',
                "strip_debug_ops": "false",
                "control_flow_v2": "true",
                "skip_op_check": "true",
                "quantize_float16": '["*"]',
                "verify": "true",
                "verify_backends": '["wasm"]',
                "content_hash_shards": "true",
            },
            absent = ["output_node_names", "use_structured_outputs_names"],
        ),
        _test(
            _request_test,
            "graph_frozen_request_test",
            target_under_test = ":graph_frozen",
            want = {
                "input_format": '"tf_frozen_model"',
                "output_format": '"tfjs_graph_model"',
                "output_node_names": '"logits,probs"',
                "use_structured_outputs_names": "true",
            },
            # verify = False: no check, no backends.
            absent = ["verify", "verify_backends", "content_hash_shards"],
        ),
        _test(
            _request_test,
            "graph_tree_request_test",
            target_under_test = ":tree_default",
            want = {
                "output_format": '"tfjs_graph_model"',
                "source_label": '"//{pkg}:saved_tree"',
            },
            absent = ["input_format"],
            # The tree artifact itself is the input (its files are staged with it).
            want_inputs = ["{pkg}/fixtures/saved_tree"],
        ),
        _test(_execution_requirements_test, "execution_requirements_test"),
        _test(_infer_output_format_test, "infer_output_format_test"),
    ]

def _summary_tests():
    # testonly must reach the .summary target too, or loading this package fails.
    tfjs_model(name = "testonly_model", src = ":model_h5", testonly = True, tags = _MANUAL)
    return [
        _test(
            _summary_target_test,
            "summary_target_test",
            target_under_test = ":h5_default.summary",
            model = ":h5_default",
        ),
        _test(
            _summary_target_test,
            "testonly_summary_test",
            target_under_test = ":testonly_model.summary",
            model = ":testonly_model",
        ),
    ]

def tfjs_model_test_suite(name):
    """Declares the fixtures, the targets under test and the tests; a test_suite `name`.

    Args:
      name: name of the test_suite holding every test.
    """
    _fixtures()
    tests = (_provider_tests() + _action_tests() + _py_run_tests() + _summary_tests() +
             _failure_tests())
    native.test_suite(name = name, tests = [":" + t for t in tests])
