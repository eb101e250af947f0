"""Analysis tests of tflite_model and onnx_model: provider, action, request, attribute errors.

Nothing here runs the converter: the targets under test are only analyzed, so
their sources are the empty placeholder files tfjs_model_tests.bzl declares in
this package (:model_h5, :saved_model, :tfjs_files, :model_keras).
"""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load(
    "//tfjs_rules:defs.bzl",
    "TfjsModelFileInfo",
    "onnx_model",
    "tfjs_model",
    "tflite_model",
)

_MANUAL = ["manual"]  # built only as targets under test, never by //...

def _action(env, mnemonic):
    actions = [a for a in analysistest.target_actions(env) if a.mnemonic == mnemonic]
    asserts.equals(env, 1, len(actions), "number of %s actions" % mnemonic)
    return actions[0] if actions else None

def _request(env):
    writes = [
        a
        for a in analysistest.target_actions(env)
        if a.mnemonic == "FileWrite" and
           [f for f in a.outputs.to_list() if f.basename.endswith(".request.json")]
    ]
    asserts.equals(env, 1, len(writes), "number of request file writes")
    return json.decode(writes[0].content) if writes else {}

def _expand(env, text):
    return text.replace("{bin}", analysistest.target_bin_dir_path(env)).replace(
        "{pkg}",
        env.ctx.label.package,
    )

def _file_test_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    info = target[TfjsModelFileInfo]
    out = _expand(env, "{bin}/{pkg}/" + target.label.name + ctx.attr.want_suffix)
    asserts.equals(env, out, info.file.path, "the output file")
    asserts.false(env, info.file.is_directory, "the output is one file")
    asserts.equals(env, ctx.attr.want_format, info.format)
    asserts.equals(env, Label(ctx.attr.want_source), info.source)
    asserts.equals(env, _expand(env, ctx.attr.want_source_file), info.source_file.path)
    outputs = [info.file]
    if ctx.attr.want_external_data:
        data = out + ".data"
        asserts.equals(env, data, info.external_data.path if info.external_data else None)
        outputs.append(info.external_data)
    else:
        asserts.equals(env, None, info.external_data, "no external data file")
    asserts.equals(env, outputs, target[DefaultInfo].files.to_list())
    action = _action(env, ctx.attr.want_mnemonic)
    if action:
        asserts.equals(
            env,
            [f.path for f in outputs if f],
            [f.path for f in action.outputs.to_list()],
            "action outputs",
        )
        inputs = [f.path for f in action.inputs.to_list()]
        asserts.true(env, info.source_file.path in inputs, "the source is an input")
        asserts.true(
            env,
            [p for p in inputs if p.endswith("requirements_lock.txt")] != [],
            "the environment's lock is an input (a new lock reconverts)",
        )
        request_file = _expand(env, "{bin}/{pkg}/" + target.label.name + ".request.json")

        # The options travel as a JSON request file, never as converter flags.
        asserts.equals(env, [
            "-I",
            "-B",
            "converter/worker.py",
            "--request_file=" + request_file,
        ], action.argv[1:])
        asserts.true(env, action.argv[0].endswith("/python3"), "runs the toolchain's python3")
        asserts.true(env, request_file in inputs, "the request file is an input")
    want = json.decode(ctx.attr.want_request)
    want["output_path"] = out
    want["input_path"] = _expand(env, want["input_path"])
    asserts.equals(env, want, _request(env), "the request")
    return analysistest.end(env)

# A tflite_model / onnx_model target: its provider, its one action and request.
_file_test = analysistest.make(_file_test_impl, attrs = {
    "want_suffix": attr.string(doc = "Output file suffix (.tflite / .onnx)."),
    "want_external_data": attr.bool(doc = "An onnx_model's <name>.onnx.data output too."),
    "want_format": attr.string(doc = "TfjsModelFileInfo.format."),
    "want_mnemonic": attr.string(doc = "The conversion action's mnemonic."),
    "want_source": attr.string(doc = "TfjsModelFileInfo.source, a label string."),
    "want_source_file": attr.string(doc = "TfjsModelFileInfo.source_file.path; {bin}, {pkg}."),
    "want_request": attr.string(doc = "The JSON request, without output_path; {bin}, {pkg}."),
})

def _failure_test_impl(ctx):
    env = analysistest.begin(ctx)
    for text in ctx.attr.want:
        asserts.expect_failure(env, text)
    return analysistest.end(env)

_failure_test = analysistest.make(_failure_test_impl, expect_failure = True, attrs = {
    "want": attr.string_list(doc = "Substrings of the error."),
})

def _test(rule, name, **kwargs):
    rule(name = name, size = "small", **kwargs)
    return name

def _expect_error(name, rule, rule_name, attr_name, message, **kwargs):
    rule(name = name + "_target", tags = _MANUAL, **kwargs)
    return _test(
        _failure_test,
        name,
        target_under_test = ":" + name + "_target",
        want = ["attribute %s: %s: %s" % (attr_name, rule_name, message)],
    )

def tflite_model_test_suite(name):
    """Declares the targets under test and the tests; a test_suite `name`.

    Needs the fixtures of tfjs_model_test_suite in the same package.

    Args:
      name: name of the test_suite holding every test.
    """
    tflite_model(name = "tl_h5", src = ":model_h5", tags = _MANUAL)
    tflite_model(
        name = "tl_all_attrs",
        src = ":saved_model",
        batch_size = 1,
        select_tf_ops = True,
        quantize_float16 = True,
        signature_name = "serving_custom",
        saved_model_tags = "serve,gpu",
        tags = _MANUAL,
    )
    tfjs_model(
        name = "tl_graph_src",
        src = ":model_h5",
        output_format = "tfjs_graph_model",
        verify = False,
        tags = _MANUAL,
    )
    onnx_model(name = "tl_onnx_graph", src = ":tl_graph_src", opset = 13, tags = _MANUAL)
    onnx_model(name = "tl_onnx_json", src = ":tfjs_files", tags = _MANUAL)
    onnx_model(name = "tl_onnx_external", src = ":model_h5", external_data = True, tags = _MANUAL)
    tests = [
        _test(
            _file_test,
            "tflite_from_h5_test",
            target_under_test = ":tl_h5",
            want_suffix = ".tflite",
            want_format = "tflite",
            want_mnemonic = "TfliteConvert",
            want_source = "//tfjs_rules/tests:model_h5",
            want_source_file = "{bin}/{pkg}/fixtures/model.h5",
            want_request = json.encode({
                "input_path": "{bin}/{pkg}/fixtures/model.h5",
                "output_format": "tflite",
            }),
        ),
        _test(
            _file_test,
            "tflite_all_attrs_test",
            target_under_test = ":tl_all_attrs",
            want_suffix = ".tflite",
            want_format = "tflite",
            want_mnemonic = "TfliteConvert",
            want_source = "//tfjs_rules/tests:saved_model",
            want_source_file = "{bin}/{pkg}/fixtures/saved/saved_model.pb",
            want_request = json.encode({
                "input_path": "{bin}/{pkg}/fixtures/saved",
                "output_format": "tflite",
                "signature_name": "serving_custom",
                "saved_model_tags": "serve,gpu",
                "tflite_batch_size": 1,
                "tflite_select_tf_ops": True,
                "quantize_float16": [],
            }),
        ),
        _test(
            _file_test,
            "onnx_from_graph_model_target_test",
            target_under_test = ":tl_onnx_graph",
            want_suffix = ".onnx",
            want_format = "onnx",
            want_mnemonic = "OnnxConvert",
            want_source = "//tfjs_rules/tests:tl_graph_src",
            want_source_file = "{bin}/{pkg}/tl_graph_src",
            want_request = json.encode({
                "input_path": "{bin}/{pkg}/tl_graph_src/model.json",
                "output_format": "onnx",
                "onnx_opset": 13,
                "onnx_external_data": False,
            }),
        ),
        _test(
            _file_test,
            "onnx_from_model_json_test",
            target_under_test = ":tl_onnx_json",
            want_suffix = ".onnx",
            want_format = "onnx",
            want_mnemonic = "OnnxConvert",
            want_source = "//tfjs_rules/tests:tfjs_files",
            want_source_file = "{bin}/{pkg}/fixtures/tfjs/model.json",
            want_request = json.encode({
                "input_path": "{bin}/{pkg}/fixtures/tfjs/model.json",
                "output_format": "onnx",
                "onnx_external_data": False,
            }),
        ),
        _test(
            _file_test,
            "onnx_external_data_test",
            target_under_test = ":tl_onnx_external",
            want_suffix = ".onnx",
            want_external_data = True,
            want_format = "onnx",
            want_mnemonic = "OnnxConvert",
            want_source = "//tfjs_rules/tests:model_h5",
            want_source_file = "{bin}/{pkg}/fixtures/model.h5",
            want_request = json.encode({
                "input_path": "{bin}/{pkg}/fixtures/model.h5",
                "output_format": "onnx",
                "onnx_external_data": True,
            }),
        ),
        _expect_error(
            "tflite_bad_batch_size",
            tflite_model,
            "tflite_model",
            "batch_size",
            "batch_size got -2, want a positive batch or 0 to keep a dynamic one",
            src = ":model_h5",
            batch_size = -2,
        ),
        _expect_error(
            "onnx_bad_opset",
            onnx_model,
            "onnx_model",
            "opset",
            "opset got 30, want 9..18 (what tf2onnx 1.17 writes) or 0 for the default",
            src = ":model_h5",
            opset = 30,
        ),
        _expect_error(
            "tflite_bad_input_format",
            tflite_model,
            "tflite_model",
            "input_format",
            "input_format got \"tfjs_layers_model\", want one of keras, keras_keras, " +
            "keras_saved_model, tf_saved_model, tfjs_graph_model, or empty to detect it",
            src = ":model_h5",
            input_format = "tfjs_layers_model",
        ),
        _expect_error(
            "tflite_signature_for_h5",
            tflite_model,
            "tflite_model",
            "signature_name",
            "signature_name got \"serving_custom\", want it only for a SavedModel src",
            src = ":model_h5",
            signature_name = "serving_custom",
        ),
        _expect_error(
            "onnx_two_models",
            onnx_model,
            "onnx_model",
            "src",
            "src //tfjs_rules/tests:two_tfjs got 2 model files",
            src = ":two_tfjs",
        ),
    ]
    tfjs_model(name = "tl_layers_src", src = ":model_h5", verify = False, tags = _MANUAL)
    tests.append(_expect_error(
        "tflite_layers_model_src",
        tflite_model,
        "tflite_model",
        "src",
        "src //tfjs_rules/tests:tl_layers_src got a tfjs_layers_model, want a " +
        "tfjs_graph_model (or the Keras / SavedModel source it came from)",
        src = ":tl_layers_src",
    ))
    native.test_suite(name = name, tests = [":" + t for t in tests])
