"""Runs SavedModel signatures in a fresh TensorFlow process with oneDNN's graph rewrites off.

The graph-input tests compare our SavedModels (run in TensorFlow) with the
original TF.js model (run in TF.js). TensorFlow 2.21 on x86 applies oneDNN
fusions by default, which (measured on the published centernet model) move
outputs by up to 1e-3 of their magnitude depending on which tensors a function
fetches, and crash (SIGSEGV) on the published blazeface model's
Conv2D+BiasAdd+AddV2(Pad) pattern. ``TF_ENABLE_ONEDNN_OPTS`` is read when
TensorFlow is imported, so the runs happen in a child process that sets it;
the parent's TensorFlow is left as it is.

Use::

    outputs = run_signatures([(saved_model_dir, {"x": array}), ...])
"""

import os
import pickle
import subprocess
import sys
import tempfile
from typing import Dict, List, Sequence, Tuple

import numpy as np

_CHILD = r"""
import os, pickle, sys
import numpy as np
import tensorflow as tf
jobs = pickle.load(open(sys.argv[1], "rb"))
results = []
for path, signature, inputs in jobs:
    try:
        fn = tf.saved_model.load(path).signatures[signature]
        out = fn(**{k: tf.constant(v) for k, v in inputs.items()})
        results.append(("ok", {k: np.asarray(v) for k, v in out.items()}))
    except Exception as e:  # reported to the parent, which fails the test
        results.append(("error", "%s: %s" % (type(e).__name__, e)))
pickle.dump(results, open(sys.argv[2], "wb"))
"""


class SavedModelRunError(AssertionError):
    """A signature could not run (the message is TensorFlow's)."""


def run_signatures(jobs: Sequence[Tuple[str, Dict[str, np.ndarray]]],
                   signature: str = "serving_default",
                   onednn: bool = False) -> List[Dict[str, np.ndarray]]:
    """Runs each ``(saved_model_dir, inputs)``; returns their output dicts in order.

    Raises:
      SavedModelRunError: a job failed (names the directory and the error), or
        the child process died (e.g. a TensorFlow crash).
    """
    with tempfile.TemporaryDirectory(prefix="saved_model_runner_") as tmp:
        spec, result = os.path.join(tmp, "jobs.pkl"), os.path.join(tmp, "out.pkl")
        with open(spec, "wb") as f:
            pickle.dump([(str(p), signature, dict(i)) for p, i in jobs], f)
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="1" if onednn else "0",
                   TF_CPP_MIN_LOG_LEVEL="2")
        proc = subprocess.run([sys.executable, "-c", _CHILD, spec, result], env=env,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise SavedModelRunError("TensorFlow process exited with %d: %s" % (
                proc.returncode, proc.stderr.strip().splitlines()[-1:] or ""))
        with open(result, "rb") as f:
            results = pickle.load(f)
    out = []
    for (path, _), (status, value) in zip(jobs, results):
        if status != "ok":
            raise SavedModelRunError("%s: %s" % (path, value))
        out.append(value)
    return out
