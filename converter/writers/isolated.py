"""Runs one writer function in a fresh Python process, so its bytes cannot depend on the caller's.

TensorFlow names every function it loads or traces with a process-wide counter
(``__inference_while_body_232``), and both TFLite's converter and tf2onnx build
tensor names, node names and even node order from those names. The same
SavedModel converted twice in one process (the Bazel worker, a test session)
therefore gave other bytes each time (tensorflow#55512, tensorflow-onnx#1789),
and renaming after the fact cannot undo a different node order. A fresh
process starts every counter at the same place, so its output depends only on
the model, the options and the library versions; measured identical across
processes and source paths.

The child runs with the caller's working directory and environment, plus a
fixed ``PYTHONHASHSEED`` (set iteration order reaches tf2onnx's output). The
function's return value comes back pickled; a ``ConversionError`` it
raises is raised again here with its class and message (one line, as the CLI
prints it). What the child writes to stderr (TensorFlow's logs) is dropped
unless it dies, when its last line is reported.

Use::

    data = call("converter.writers.tflite", "convert_saved_model", saved_model_dir, request)
"""

import importlib
import os
import pickle
import subprocess
import sys
import tempfile
from typing import Any

from converter import errors
from converter.errors import ConversionError

# The directory holding the ``converter`` package, for the child's sys.path.
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_CHILD = ("import sys; sys.path.insert(0, sys.argv[1]); "
          "from converter.writers.isolated import _main; sys.exit(_main(sys.argv[2], sys.argv[3]))")


def call(module: str, function: str, *args: Any) -> Any:
    """``module.function(*args)`` run in a fresh interpreter; returns its result.

    Raises:
      ConversionError: (or the subclass the function raised) its error, or the
        child died (its exit code and last stderr line).
    """
    base = os.environ.get("TEST_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="tfjs_isolated_", dir=base) as tmp:
        job, result = os.path.join(tmp, "job.pkl"), os.path.join(tmp, "result.pkl")
        with open(job, "wb") as f:
            pickle.dump((module, function, args), f, protocol=pickle.HIGHEST_PROTOCOL)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
        # The caller's cwd (relative paths mean the same), this checkout's
        # converter first on sys.path (not one the cwd may hold).
        proc = subprocess.run([sys.executable, "-c", _CHILD, _ROOT, job, result], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
        if proc.returncode != 0 or not os.path.exists(result):
            lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
            raise ConversionError("%s.%s died in its process (exit code %d): %s"
                                  % (module, function, proc.returncode,
                                     lines[-1] if lines else "no output"))
        with open(result, "rb") as f:
            status, value = pickle.load(f)
    if status == "ok":
        return value
    name, message = value
    error_class = getattr(errors, name, ConversionError)
    if not (isinstance(error_class, type) and issubclass(error_class, ConversionError)):
        error_class = ConversionError
    raise error_class(message)


# Where the child's TensorFlow uid counter stands when the function starts.
UID_START = 100000


def align_tensorflow_uids(start: int = UID_START) -> None:
    """Advances TensorFlow's process-wide uid counter to ``start``.

    Function names carry it (``__inference_while_body_232``), and how far it
    has run depends on what was imported first (Keras traces functions at
    import), so the child sets it to a fixed point before converting.

    Raises:
      ConversionError: the counter is already past ``start``.
    """
    from tensorflow.python.framework import ops
    uid = ops.uid()
    if uid > start:
        raise ConversionError("TensorFlow's uid counter is at %d, past %d; cannot align it"
                              % (uid, start))
    while uid < start:
        uid = ops.uid()


def _main(job: str, result: str) -> int:
    with open(job, "rb") as f:
        module, function, args = pickle.load(f)
    importlib.import_module(module)
    try:
        align_tensorflow_uids()
        value = ("ok", getattr(importlib.import_module(module), function)(*args))
    except ConversionError as e:
        value = ("error", (type(e).__name__, str(e)))
    with open(result, "wb") as f:
        pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
    return 0


