"""What a user's WORKSPACE calls to set tfjs_rules up (MODULE.bazel: extensions.bzl)."""

load("//tfjs_rules/private:env.bzl", _tfjs_converter_env = "tfjs_converter_env")
load("//tfjs_rules/private:toolchain.bzl", _tfjs_converter_toolchains = "tfjs_converter_toolchains")

tfjs_converter_env = _tfjs_converter_env
tfjs_converter_toolchains = _tfjs_converter_toolchains

def tfjs_rules_dependencies(
        name = "tfjs_converter_env",
        requirements_lock = Label("//:requirements_lock.txt"),
        python = "python3",
        **kwargs):
    """Declares the converter's Python environment and its light toolchain repository.

    Two repositories: `name` (the venv, fetched only when a conversion runs) and
    `name + "_toolchains"` (the toolchain() that tfjs_rules_register_toolchains
    registers; loading it fetches nothing).

    Args:
      name: repository name of the environment.
      requirements_lock: hash-locked requirements (default: the converter's own lock).
      python: interpreter that creates the venv (name on PATH or absolute path).
      **kwargs: other tfjs_converter_env attributes (root, python_versions, timeout).
    """
    _tfjs_converter_env(name = name, requirements_lock = requirements_lock, python = python, **kwargs)
    _tfjs_converter_toolchains(name = name + "_toolchains", env = name)

def tfjs_rules_register_toolchains(name = "tfjs_converter_env"):
    """Registers the converter toolchain of the environment `name`.

    It is declared in the light repository `name + "_toolchains"`, so registering
    it makes no build fetch the environment.

    Args:
      name: repository name of the environment, as given to tfjs_rules_dependencies.
    """
    native.register_toolchains("@%s_toolchains//:toolchain" % name)
