"""The tfjs_model macro: the conversion target plus its `<name>.summary` runnable."""

load("//tfjs_rules:providers.bzl", "TfjsModelInfo")
load("//tfjs_rules/private:tfjs_model.bzl", _tfjs_model_rule = "tfjs_model")

def _summary_impl(ctx):
    info = ctx.attr.model[TfjsModelInfo]
    script = ctx.actions.declare_file(ctx.label.name + ".sh")
    ctx.actions.write(script, "#!/bin/sh\nexec cat '%s'\n" % info.summary.short_path, is_executable = True)
    return [DefaultInfo(executable = script, runfiles = ctx.runfiles(files = [info.summary]))]

_tfjs_model_summary = rule(
    implementation = _summary_impl,
    doc = "Prints what a tfjs_model converted (format, weights, files, sizes, sha256).",
    attrs = {"model": attr.label(providers = [TfjsModelInfo], mandatory = True)},
    executable = True,
)

def tfjs_model(name, visibility = None, tags = None, **kwargs):
    """Converts a model to TF.js; `bazel run :<name>.summary` prints what was converted.

    Args:
      name: target name; the output directory is `<name>/`.
      visibility: visibility of both targets.
      tags: tags of both targets.
      **kwargs: attributes of the conversion (see docs/rules.md).
    """
    _tfjs_model_rule(name = name, visibility = visibility, tags = tags, **kwargs)
    _tfjs_model_summary(name = name + ".summary", model = ":" + name, visibility = visibility, tags = tags)
