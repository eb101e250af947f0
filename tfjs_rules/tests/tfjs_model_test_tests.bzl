"""Analysis tests of tfjs_model_test: the generated script, its runfiles, attribute errors.

Nothing here runs a check: the tfjs_model_test targets are only analyzed. They
reuse the fixtures and tfjs_model targets tfjs_model_tests.bzl declares in the
same package (placeholder sources, never built). tests/bazel/ and examples/
run real checks.
"""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load("@bazel_skylib//rules:write_file.bzl", "write_file")
load("//tfjs_rules:defs.bzl", "TfjsModelInfo", "tfjs_model_test")
load("//tfjs_rules/private:tfjs_model_test.bzl", "TEST_ENV")

_MANUAL = ["manual"]  # built only as targets under test, never by //...

def _expand(env, text):
    return text.replace("{pkg}", env.ctx.label.package)

def _test(rule, name, **kwargs):
    rule(name = name, size = "small", **kwargs)
    return name

def _script_action(env):
    """The FileWrite action of the test's script."""
    target = analysistest.target_under_test(env)
    executable = target[DefaultInfo].files_to_run.executable
    actions = [
        a
        for a in analysistest.target_actions(env)
        if executable in a.outputs.to_list()
    ]
    asserts.equals(env, 1, len(actions), "number of actions writing the executable")
    return actions[0] if actions else None

# ---------------------------------------------------------------- script and runfiles

def _script_test_impl(ctx):
    env = analysistest.begin(ctx)
    target = analysistest.target_under_test(env)
    executable = target[DefaultInfo].files_to_run.executable
    asserts.equals(env, target.label.name + ".sh", executable.basename)
    action = _script_action(env)
    if action:
        content = action.content
        asserts.true(env, content.startswith("#!/bin/sh\n"), "a POSIX shell script")
        want_argv = " ".join(["'%s'" % _expand(env, a) for a in ctx.attr.want_argv])
        asserts.true(env, want_argv in content, "argv %s in the script:\n%s" % (
            want_argv,
            content,
        ))
        asserts.true(
            env,
            "exec \"/" in content and "/python3\" -I -B " in content,
            "runs the toolchain's python3 by its absolute path, isolated:\n" + content,
        )
        for absent in ctx.attr.absent:
            asserts.false(env, absent in content, "%s is not passed:\n%s" % (absent, content))
        for name, value in TEST_ENV.items():
            asserts.true(
                env,
                "export %s='%s'\n" % (name, value) in content,
                "exports %s=%r:\n%s" % (name, value, content),
            )
    runfiles = [f.short_path for f in target[DefaultInfo].default_runfiles.files.to_list()]
    model = ctx.attr.model[TfjsModelInfo]
    for want in ctx.attr.want_runfiles + [
        model.model_dir.short_path,
        "converter/verify/__main__.py",
        "converter/verify/runtime.py",
        "converter/verify/js/run_models.js",
        "converter/verify/js/package-lock.json",
    ]:
        want = _expand(env, want)
        asserts.true(env, want in runfiles, "%s in the runfiles: %s" % (want, runfiles))
    return analysistest.end(env)

# Checks the script's argv (each word single-quoted, in order), absent flags,
# the exported environment and the runfiles.
_script_test = analysistest.make(_script_test_impl, attrs = {
    "model": attr.label(providers = [TfjsModelInfo], doc = "The model under test's model."),
    "want_argv": attr.string_list(doc = "Consecutive words of the command; {pkg} expanded."),
    "absent": attr.string_list(doc = "Substrings the script must not hold."),
    "want_runfiles": attr.string_list(doc = "short_paths in the runfiles; {pkg} expanded."),
})

def _script_tests():
    write_file(name = "inputs_npy", out = "fixtures/inputs.npy", content = [], tags = _MANUAL)
    write_file(name = "inputs_npz", out = "fixtures/inputs.npz", content = [], tags = _MANUAL)

    # The model's own source: one file.
    tfjs_model_test(name = "check_h5", model = ":h5_default", tags = _MANUAL)

    # A SavedModel filegroup, given as src; every option passed through.
    tfjs_model_test(
        name = "check_saved",
        model = ":saved_default",
        src = ":saved_model",
        inputs = ":inputs_npz",
        backends = ["cpu", "wasm", "webgl"],
        seed = 7,
        input_format = "tf_saved_model",
        signature_name = "serving_custom",
        saved_model_tags = "serve,gpu",
        output_node_names = "a,b",
        tags = _MANUAL,
    )

    # A directory source (tree artifact) and an upstream tfjs_model's directory.
    tfjs_model_test(name = "check_tree", model = ":tree_default", tags = _MANUAL)
    tfjs_model_test(name = "check_chained", model = ":requantized", tags = _MANUAL)
    tfjs_model_test(
        name = "check_chained_src",
        model = ":requantized",
        src = ":h5_default",
        inputs = ":inputs_npy",
        backends = ["webgl"],
        tags = _MANUAL,
    )

    # A TF.js model.json with shards (a filegroup), given as src.
    tfjs_model_test(
        name = "check_tfjs_src",
        model = ":tfjs_default",
        src = ":tfjs_files",
        tags = _MANUAL,
    )

    options = [
        "--inputs",
        "--input_format",
        "--signature_name",
        "--saved_model_tags",
        "--output_node_names",
    ]
    return [
        _test(
            _script_test,
            "check_h5_test",
            target_under_test = ":check_h5",
            model = ":h5_default",
            want_argv = [
                "converter/verify/__main__.py",
                "check",
                "{pkg}/fixtures/model.h5",
                "{pkg}/h5_default/model.json",
                "--backends=cpu,wasm",
                "--seed=0",
            ],
            absent = options,
            want_runfiles = ["{pkg}/fixtures/model.h5"],
        ),
        _test(
            _script_test,
            "check_saved_test",
            target_under_test = ":check_saved",
            model = ":saved_default",
            want_argv = [
                "check",
                "{pkg}/fixtures/saved",
                "{pkg}/saved_default/model.json",
                "--backends=cpu,wasm,webgl",
                "--seed=7",
                "--inputs={pkg}/fixtures/inputs.npz",
                "--input_format=tf_saved_model",
                "--signature_name=serving_custom",
                "--saved_model_tags=serve,gpu",
                "--output_node_names=a,b",
            ],
            want_runfiles = [
                "{pkg}/fixtures/saved/saved_model.pb",
                "{pkg}/fixtures/saved/variables/variables.index",
                "{pkg}/fixtures/saved/variables/variables.data-00000-of-00001",
                "{pkg}/fixtures/inputs.npz",
            ],
        ),
        _test(
            _script_test,
            "check_tree_test",
            target_under_test = ":check_tree",
            model = ":tree_default",
            want_argv = ["check", "{pkg}/fixtures/saved_tree", "{pkg}/tree_default/model.json"],
            want_runfiles = ["{pkg}/fixtures/saved_tree"],
        ),
        _test(
            _script_test,
            "check_chained_test",
            target_under_test = ":check_chained",
            model = ":requantized",
            want_argv = ["check", "{pkg}/h5_default", "{pkg}/requantized/model.json"],
            want_runfiles = ["{pkg}/h5_default"],
        ),
        _test(
            _script_test,
            "check_chained_src_test",
            target_under_test = ":check_chained_src",
            model = ":requantized",
            want_argv = [
                "check",
                "{pkg}/h5_default/model.json",
                "{pkg}/requantized/model.json",
                "--backends=webgl",
                "--seed=0",
                "--inputs={pkg}/fixtures/inputs.npy",
            ],
            want_runfiles = ["{pkg}/h5_default", "{pkg}/fixtures/inputs.npy"],
        ),
        _test(
            _script_test,
            "check_tfjs_src_test",
            target_under_test = ":check_tfjs_src",
            model = ":tfjs_default",
            want_argv = ["check", "{pkg}/fixtures/tfjs/model.json", "{pkg}/tfjs_default/model.json"],
            want_runfiles = [
                "{pkg}/fixtures/tfjs/model.json",
                "{pkg}/fixtures/tfjs/group1-shard1of1.bin",
            ],
        ),
    ]

# ---------------------------------------------------------------- failures

def _failure_test_impl(ctx):
    env = analysistest.begin(ctx)
    for text in ctx.attr.want:
        asserts.expect_failure(env, _expand(env, text))
    return analysistest.end(env)

_failure_test = analysistest.make(_failure_test_impl, expect_failure = True, attrs = {
    "want": attr.string_list(doc = "Substrings of the error; {pkg} is expanded."),
})

def _expect_error(name, attr_name, message, **kwargs):
    """A tfjs_model_test `name` built from kwargs, and a test that it fails on attr_name."""
    tfjs_model_test(name = name, tags = _MANUAL, **kwargs)
    return _test(
        _failure_test,
        name + "_test",
        target_under_test = ":" + name,
        want = ["Error in fail: attribute %s: tfjs_model_test: %s" % (attr_name, message)],
    )

def _failure_tests():
    return [
        _expect_error(
            "bad_check_backend",
            "backends",
            "backends got \"gpu\", want each of cpu, wasm, webgl",
            model = ":h5_default",
            backends = ["cpu", "gpu"],
        ),
        _expect_error(
            "bad_check_backend_twice",
            "backends",
            "backends got \"wasm\" twice, want each backend once",
            model = ":h5_default",
            backends = ["wasm", "cpu", "wasm"],
        ),
        _expect_error(
            "bad_check_no_backend",
            "backends",
            "backends got [], want at least one of cpu, wasm, webgl",
            model = ":h5_default",
            backends = [],
        ),
        _expect_error(
            "bad_check_seed",
            "seed",
            "seed got -1, want a non-negative integer",
            model = ":h5_default",
            seed = -1,
        ),
        _expect_error(
            "bad_check_needs_src",
            "src",
            "model //{pkg}:saved_default was converted from //{pkg}:saved_model, a " +
            "saved_model.pb with files TfjsModelInfo does not list; want src = " +
            "\"//{pkg}:saved_model\" (the same source) on this test",
            model = ":saved_default",
        ),
        _expect_error(
            "bad_check_src_no_model",
            "src",
            "src //{pkg}:no_model got 2 files but neither model.json nor saved_model.pb",
            model = ":h5_default",
            src = ":no_model",
        ),
        _expect_error(
            "bad_check_src_two_models",
            "src",
            "src //{pkg}:two_tfjs got 2 model files",
            model = ":h5_default",
            src = ":two_tfjs",
        ),
    ]

# ---------------------------------------------------------------- suite

def tfjs_model_test_test_suite(name):
    """The targets under test and the tests (after tfjs_model_test_suite's fixtures).

    Args:
      name: name of the test_suite holding every test.
    """
    tests = _script_tests() + _failure_tests()
    native.test_suite(name = name, tests = [":" + t for t in tests])
