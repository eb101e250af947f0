"""Bzlmod: the `tfjs` module extension (Bazel 6 to 9; WORKSPACE users call repositories.bzl).

```python
bazel_dep(name = "tfjs_rules", version = "0.1.0")

# Optional: only to change the defaults below.
tfjs = use_extension("@tfjs_rules//tfjs_rules:extensions.bzl", "tfjs")
tfjs.env(
    requirements_lock = "//:requirements_lock.txt",
    python = "python3",
    root = "/var/tmp/tfjs_rules/envs",
)
```

It creates the two repositories `tfjs_rules_dependencies()` declares in a
WORKSPACE: `tfjs_converter_env` (the venv, fetched only when a conversion runs)
and `tfjs_converter_env_toolchains` (the light repository whose `toolchain()`
the tfjs_rules module registers). One environment serves the whole build, so
only the root module's `env` tag counts: a dependency cannot choose which
TensorFlow every model is converted with. Without one, the defaults apply
(tfjs_rules' own lock, `python3` on PATH, /var/tmp/tfjs_rules/envs).

Not loaded by Bazel 4.2.3 (no Bzlmod there); written for 6 to 9, untested here.
"""

load("//tfjs_rules/private:env.bzl", "tfjs_converter_env")
load("//tfjs_rules/private:toolchain.bzl", "tfjs_converter_toolchains")

ENV_NAME = "tfjs_converter_env"
TOOLCHAINS_NAME = ENV_NAME + "_toolchains"

_env = tag_class(
    doc = "The converter's Python environment (only the root module's tag is used).",
    attrs = {
        "requirements_lock": attr.label(
            default = Label("//:requirements_lock.txt"),
            allow_single_file = True,
            doc = "pip requirements with --hash pins (default: tfjs_rules' own lock).",
        ),
        "python": attr.string(
            default = "python3",
            doc = "Interpreter that creates the venv: a name on PATH or an absolute path.",
        ),
        "root": attr.string(
            default = "/var/tmp/tfjs_rules/envs",
            doc = "Where venvs live (content-addressed below it); TFJS_RULES_ENV_ROOT overrides it.",
        ),
        "python_versions": attr.string_list(
            default = ["3.10", "3.11", "3.12", "3.13"],
            doc = "Accepted major.minor versions of `python`.",
        ),
        "timeout": attr.int(default = 1800, doc = "Seconds allowed for pip, and again for npm."),
    },
)

def _root_env_tag(module_ctx):
    """The root module's one `env` tag, or None."""
    for mod in module_ctx.modules:
        if not mod.is_root:
            continue
        if len(mod.tags.env) > 1:
            fail("tfjs.env: the root module %s gives %d env tags; want at most one (one " %
                 (mod.name, len(mod.tags.env)) + "environment converts every model)")
        if mod.tags.env:
            return mod.tags.env[0]
    return None

def _tfjs_impl(module_ctx):
    tag = _root_env_tag(module_ctx)
    if tag == None:
        tfjs_converter_env(
            name = ENV_NAME,
            requirements_lock = Label("//:requirements_lock.txt"),
        )
    else:
        tfjs_converter_env(
            name = ENV_NAME,
            requirements_lock = tag.requirements_lock,
            python = tag.python,
            root = tag.root,
            python_versions = tag.python_versions,
            timeout = tag.timeout,
        )

    # A repository of this extension sees the others by these names.
    tfjs_converter_toolchains(name = TOOLCHAINS_NAME, env = ENV_NAME)

tfjs = module_extension(
    implementation = _tfjs_impl,
    doc = "Creates @tfjs_converter_env (the converter's venv) and " +
          "@tfjs_converter_env_toolchains (its light toolchain repository).",
    tag_classes = {"env": _env},
)
