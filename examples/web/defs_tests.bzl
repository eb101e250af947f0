"""Analysis tests of web_app: what it asks the bundler to do, and what it rejects."""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load(":defs.bzl", "web_app")

_MODEL = "//models:mobilenet_tfjs"
_OTHER_MODEL = "//models:mobilenet_uint8_tfjs"

def _bundle_action_test_impl(ctx):
    env = analysistest.begin(ctx)
    actions = [a for a in analysistest.target_actions(env) if a.mnemonic == "WebAppBundle"]
    asserts.equals(env, 1, len(actions), "WebAppBundle actions")
    action = actions[0]
    outputs = action.outputs.to_list()
    asserts.equals(env, ["ok_app"], [f.basename for f in outputs])
    asserts.true(env, outputs[0].is_directory, "the app is a tree artifact")
    inputs = [f.short_path for f in action.inputs.to_list()]
    for want in ["models/mobilenet_tfjs", "models/mobilenet_tfjs.summary.json", "web/index.html"]:
        asserts.true(env, want in inputs, "%s is an input of the bundle action: %s" % (want, inputs))
    return analysistest.end(env)

_bundle_action_test = analysistest.make(_bundle_action_test_impl)

def _failure_test_impl(ctx):
    env = analysistest.begin(ctx)
    asserts.expect_failure(env, ctx.attr.message)
    return analysistest.end(env)

_failure_test = analysistest.make(
    _failure_test_impl,
    attrs = {"message": attr.string(mandatory = True, doc = "Part of the expected fail() text.")},
    expect_failure = True,
)

def web_app_test_suite(name):
    """Declares the web_app analysis tests and a test_suite `name` holding them.

    Args:
      name: name of the test_suite.
    """
    manual = ["manual"]  # targets under test: not for `bazel build //...`
    web_app(
        name = "ok_app",
        models = {_MODEL: "mobilenet"},
        assets = {":index.html": "index.html"},
        tags = manual,
    )
    _bundle_action_test(name = "bundle_action_test", target_under_test = ":ok_app", size = "small")

    native.filegroup(name = "two_files", srcs = ["index.html", "bundle.py"], tags = manual)

    # name -> (web_app attributes, part of the expected failure message)
    failures = {
        "bad_model_name": ({"models": {_MODEL: "../up"}}, "must be non-empty, use only"),
        "repeated_name": ({"models": {_MODEL: "m", _OTHER_MODEL: "m"}}, "is given to both"),
        "reserved_path": (
            {"models": {_MODEL: "m"}, "assets": {":index.html": "manifest.json"}},
            "is reserved",
        ),
        "parent_path": (
            {"models": {_MODEL: "m"}, "assets": {":index.html": "../index.html"}},
            "must be relative",
        ),
        "many_files": (
            {"models": {_MODEL: "m"}, "assets": {":two_files": "x"}},
            "must be one file, got 2",
        ),
    }
    for case, (attrs, message) in failures.items():
        web_app(name = case + "_app", tags = manual, **attrs)
        _failure_test(
            name = case + "_test",
            target_under_test = ":%s_app" % case,
            message = message,
            size = "small",
        )

    native.test_suite(
        name = name,
        tests = [":bundle_action_test"] + [":%s_test" % case for case in failures],
    )
