"""What a user's WORKSPACE calls to set tfjs_rules up."""

load("//tfjs_rules/private:env.bzl", _tfjs_converter_env = "tfjs_converter_env")

tfjs_converter_env = _tfjs_converter_env

def tfjs_rules_dependencies(
        name = "tfjs_converter_env",
        requirements_lock = Label("//:requirements_lock.txt"),
        python = "python3",
        **kwargs):
    """Declares the converter's hermetic Python environment.

    Args:
      name: repository name of the environment.
      requirements_lock: hash-locked requirements (default: the converter's own lock).
      python: interpreter that creates the venv (name on PATH or absolute path).
      **kwargs: other tfjs_converter_env attributes (root, python_versions, timeout).
    """
    _tfjs_converter_env(name = name, requirements_lock = requirements_lock, python = python, **kwargs)

def tfjs_rules_register_toolchains(name = "tfjs_converter_env"):
    """Registers the converter toolchain of the environment `name`.

    Args:
      name: repository name of the environment, as given to tfjs_rules_dependencies.
    """
    native.register_toolchains("@%s//:toolchain" % name)
