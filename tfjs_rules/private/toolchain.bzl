"""The converter toolchain: which interpreter runs the converter, and its lock."""

def _tfjs_converter_toolchain_impl(ctx):
    return [platform_common.ToolchainInfo(
        interpreter = ctx.file.interpreter,
        interpreter_path = ctx.attr.interpreter_path,
        lock = ctx.file.lock,
        python_version = ctx.attr.python_version,
    )]

tfjs_converter_toolchain = rule(
    implementation = _tfjs_converter_toolchain_impl,
    doc = "A Python environment able to run the converter (made by tfjs_converter_env).",
    attrs = {
        "interpreter": attr.label(
            allow_single_file = True,
            mandatory = True,
            executable = True,
            cfg = "exec",
            doc = "Launcher that execs the environment's python3 (an action executable).",
        ),
        "interpreter_path": attr.string(
            mandatory = True,
            doc = "Absolute, content-addressed path of the environment's python3.",
        ),
        "lock": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "The hash-locked requirements the environment was built from; an input of " +
                  "every conversion, so a new lock reconverts.",
        ),
        "python_version": attr.string(doc = "major.minor of the interpreter."),
    },
)
