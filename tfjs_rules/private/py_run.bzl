"""tfjs_py_run: runs a Python script in the converter's environment to make files.

The environment has TensorFlow and Keras, so a build can generate its source
models from code (e.g. an architecture with a fixed seed) instead of checking
binaries into git. A SavedModel is a directory, so outputs may be directories
too (tree artifacts, `out_dirs`).
"""

_TOOLCHAIN = "@tfjs_rules//tfjs_rules:converter_toolchain_type"

def _check_out_dirs(ctx):
    """Each out_dirs entry a clean relative path, given once, not also in outs."""
    out_files = [f.short_path for f in ctx.outputs.outs]
    seen = {}
    for d in ctx.attr.out_dirs:
        parts = d.split("/")
        if not d or d.startswith("/") or [p for p in parts if p in ("", ".", "..")]:
            fail("tfjs_py_run: out_dirs got %r, want a relative path without '.', '..' or " % d +
                 "empty parts", attr = "out_dirs")
        if d in seen:
            fail(
                "tfjs_py_run: out_dirs got %r twice, want each directory once" % d,
                attr = "out_dirs",
            )
        seen[d] = True
        short_path = (ctx.label.package + "/" + d) if ctx.label.package else d
        for f in out_files:
            if f == short_path or f.startswith(short_path + "/"):
                fail("tfjs_py_run: out_dirs got %r, which holds outs file %r; want a " % (d, f) +
                     "directory no other output is in", attr = "out_dirs")
    if not ctx.outputs.outs and not ctx.attr.out_dirs:
        fail(
            "tfjs_py_run: outs and out_dirs are both empty, want at least one output",
            attr = "outs",
        )

def _tfjs_py_run_impl(ctx):
    _check_out_dirs(ctx)
    toolchain = ctx.toolchains[_TOOLCHAIN]
    outs = ctx.outputs.outs
    dirs = [ctx.actions.declare_directory(d) for d in ctx.attr.out_dirs]
    args = ctx.actions.args()
    args.add_all(outs)

    # A tree artifact would be expanded to its files: pass the directory's path.
    args.add_all([d.path for d in dirs])
    args.add_all([ctx.expand_location(a, ctx.attr.data) for a in ctx.attr.args])
    ctx.actions.run(
        executable = toolchain.interpreter,
        arguments = ["-I", "-B", ctx.file.script.path, args],
        inputs = [ctx.file.script, toolchain.lock] + ctx.files.data,
        outputs = outs + dirs,
        mnemonic = "TfjsPyRun",
        progress_message = "Running %s for %s" % (ctx.file.script.short_path, ctx.label),
        env = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"},
    )
    files = outs + dirs
    return [DefaultInfo(files = depset(files), runfiles = ctx.runfiles(files = files))]

tfjs_py_run = rule(
    implementation = _tfjs_py_run_impl,
    doc = "Runs `script OUT... OUT_DIR... ARGS...` in the converter's Python environment " +
          "(TensorFlow, Keras, numpy, h5py) to produce `outs` and `out_dirs`, e.g. a source " +
          "model built from code.",
    attrs = {
        "script": attr.label(allow_single_file = [".py"], mandatory = True, doc = "The script."),
        "outs": attr.output_list(doc = "Files the script writes; their paths are its first " +
                                       "arguments."),
        "out_dirs": attr.string_list(
            doc = "Directories the script fills (tree artifacts, e.g. a SavedModel), relative " +
                  "to the package; their paths follow the outs' paths. Bazel creates each " +
                  "(empty) before the script runs. At least one of outs and out_dirs is needed.",
        ),
        "args": attr.string_list(doc = "More arguments; $(location) is expanded against data."),
        "data": attr.label_list(allow_files = True, doc = "Files the script reads."),
    },
    toolchains = [_TOOLCHAIN],
)
