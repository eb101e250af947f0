"""model_check_test: an sh_test running check_model.py on a tfjs_model's built output."""

# The converter environment's python3: the tests need no Python toolchain.
_PYTHON = "@tfjs_converter_env//:python3"

def model_check_test(name, model, checks = [], data = [], tags = None):
    """Checks `model`'s directory and summary JSON (see check_model.py).

    Args:
      name: test name; `<name>_summary` is the summary JSON filegroup.
      model: a tfjs_model label in this package (":x").
      checks: check_model.py flags; $(rootpath) is expanded against data.
      data: files the checks read (metadata JSON, other models).
      tags: tags of the test and its filegroup (e.g. manual).
    """
    native.filegroup(
        name = name + "_summary",
        srcs = [model],
        output_group = "summary",
        testonly = True,
        tags = tags,
    )

    # buildifier: disable=native-sh-test (native in the Bazel 4.2.3 tested here, which has no rules_shell offline; Bazel 9 users load it, docs/rules.md)
    native.sh_test(
        name = name,
        size = "small",
        srcs = ["check_model.sh"],
        args = [
            "$(rootpath %s)" % _PYTHON,
            "$(rootpath check_model.py)",
            "$(rootpath %s)" % model,
            "$(rootpath :%s_summary)" % name,
        ] + checks,
        data = [_PYTHON, "check_model.py", model, ":%s_summary" % name] + data,
        tags = tags,
    )
