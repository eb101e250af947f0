"""The tests' handle on real TensorFlow.js: ``converter.verify.runtime`` plus a setup hook.

The runner is the converter's own (``converter/verify/runtime.py``, which
``--verify`` uses too), so the tests exercise exactly what users run. Typical use::

    outputs = run_in_tfjs(model_dir, [x], backends=("cpu", "wasm"))
    np.testing.assert_allclose(outputs["wasm"][0], expected, atol=1e-5)

``ensure_node_modules`` installs the pinned npm packages into the running
interpreter's environment (``<sys.prefix>/tfjs_js``) once.
"""

import pathlib

from converter.verify.runtime import (BACKENDS, RUNNER, Inputs, Job, JobResult,  # noqa: F401
                                      TfjsError, TfjsHarnessError, TfjsJobError, _from_wire,
                                      _to_wire, install, js_root, node_binary, run_in_tfjs,
                                      run_jobs)


def ensure_node_modules() -> pathlib.Path:
    """Installs the pinned TF.js npm packages if needed; returns the directory holding them."""
    return install()


def node_modules() -> pathlib.Path:
    """The installed ``node_modules`` (installing it first if needed)."""
    return ensure_node_modules() / "node_modules"
