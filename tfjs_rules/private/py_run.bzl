"""tfjs_py_run: runs a Python script in the converter's environment to make files.

The environment has TensorFlow and Keras, so a build can generate its source
models from code (e.g. an architecture with a fixed seed) instead of checking
binaries into git.
"""

_TOOLCHAIN = "@tfjs_rules//tfjs_rules:converter_toolchain_type"

def _tfjs_py_run_impl(ctx):
    toolchain = ctx.toolchains[_TOOLCHAIN]
    outs = ctx.outputs.outs
    args = ctx.actions.args()
    args.add_all(outs)
    args.add_all([ctx.expand_location(a, ctx.attr.data) for a in ctx.attr.args])
    ctx.actions.run(
        executable = toolchain.interpreter,
        arguments = ["-I", "-B", ctx.file.script.path, args],
        inputs = [ctx.file.script, toolchain.lock] + ctx.files.data,
        outputs = outs,
        mnemonic = "TfjsPyRun",
        progress_message = "Running %s for %s" % (ctx.file.script.short_path, ctx.label),
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"},
    )
    return [DefaultInfo(files = depset(outs), runfiles = ctx.runfiles(files = outs))]

tfjs_py_run = rule(
    implementation = _tfjs_py_run_impl,
    doc = "Runs `script OUT... ARGS...` in the converter's Python environment (TensorFlow, " +
          "Keras, numpy, h5py) to produce `outs`, e.g. a source model built from code.",
    attrs = {
        "script": attr.label(allow_single_file = [".py"], mandatory = True, doc = "The script."),
        "outs": attr.output_list(mandatory = True, doc = "Files the script writes; their paths " +
                                                         "are its first arguments."),
        "args": attr.string_list(doc = "More arguments; $(location) is expanded against data."),
        "data": attr.label_list(allow_files = True, doc = "Files the script reads."),
    },
    toolchains = [_TOOLCHAIN],
)
