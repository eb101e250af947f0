"""web_app: a servable directory of TF.js models, built from tfjs_model targets.

User-side code: it shows how a downstream rule consumes TfjsModelInfo. Nothing
in it is part of tfjs_rules' API besides the provider.

The output is one tree artifact:

    <name>/index.html, ...       the `assets`, at the paths they are mapped to
    <name>/models/<model>/       a copy of each model directory (model.json + shards)
    <name>/manifest.json         every model and file, with sizes and sha256

It is deterministic: models and files are sorted, and nothing records a time or
an absolute path. Sizes and hashes come from each model's summary file, and are
checked against the bytes copied, so a model directory that does not match its
summary fails the build.
"""

load("@tfjs_rules//tfjs_rules:defs.bzl", "TfjsModelInfo")

# What the page and the manifest call a model: a path segment, so a URL too.
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_-."
_RESERVED = ["manifest.json", "models"]

def _check_name(name, label):
    if not name or name.startswith(".") or [c for c in name.elems() if c not in _NAME_CHARS]:
        fail("web_app: model name %r of %s must be non-empty, use only %s and not start with '.'" % (
            name,
            label,
            _NAME_CHARS,
        ), attr = "models")

def _check_asset_path(path, label):
    parts = path.split("/")
    if not path or path.startswith("/") or [p for p in parts if p in ("", ".", "..")]:
        fail("web_app: asset path %r of %s must be relative, without '.', '..' or empty parts" % (
            path,
            label,
        ), attr = "assets")
    if parts[0] in _RESERVED:
        fail("web_app: asset path %r of %s is reserved (the app writes %s)" % (
            path,
            label,
            " and ".join(_RESERVED),
        ), attr = "assets")

def _web_app_impl(ctx):
    args = ctx.actions.args()
    inputs = []
    names = {}
    for target, name in ctx.attr.models.items():
        _check_name(name, target.label)
        if name in names:
            fail("web_app: model name %r is given to both %s and %s" % (
                name,
                names[name],
                target.label,
            ), attr = "models")
        names[name] = target.label
        info = target[TfjsModelInfo]
        args.add_all("--model", [name, info.format, info.model_dir.path, info.summary.path])
        inputs += [info.model_dir, info.summary]

    paths = {}
    for target, path in ctx.attr.assets.items():
        _check_asset_path(path, target.label)
        if path in paths:
            fail("web_app: asset path %r is given to both %s and %s" % (
                path,
                paths[path],
                target.label,
            ), attr = "assets")
        paths[path] = target.label
        files = target.files.to_list()
        if len(files) != 1:
            fail("web_app: asset %s must be one file, got %d" % (target.label, len(files)), attr = "assets")
        args.add_all("--asset", [path, files[0]])
        inputs.append(files[0])

    out = ctx.actions.declare_directory(ctx.label.name)
    args.add("--out", out.path)
    args.use_param_file("@%s", use_always = True)
    args.set_param_file_format("multiline")
    ctx.actions.run(
        executable = ctx.executable._bundler,
        arguments = [args],
        inputs = inputs,
        outputs = [out],
        mnemonic = "WebAppBundle",
        progress_message = "Bundling %d TF.js models into %s" % (len(names), ctx.label),
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

web_app = rule(
    implementation = _web_app_impl,
    doc = "Lays out a directory to serve over HTTP: assets, models/<name>/ copies of " +
          "tfjs_model outputs, and manifest.json (models, files, sizes, sha256).",
    attrs = {
        "models": attr.label_keyed_string_dict(
            providers = [TfjsModelInfo],
            mandatory = True,
            allow_empty = False,
            doc = "tfjs_model targets -> the name each is served under (models/<name>/).",
        ),
        "assets": attr.label_keyed_string_dict(
            allow_files = True,
            doc = "Single files -> their path in the app, e.g. {\":index.html\": \"index.html\"}.",
        ),
        "_bundler": attr.label(
            default = Label("//web:bundle"),
            executable = True,
            cfg = "exec",
            doc = "Copies and checks the files, writes manifest.json.",
        ),
    },
)
