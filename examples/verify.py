"""Checks the example's Bazel outputs in real TensorFlow.js and prints a summary.

Run by tools/example.sh after ``bazel build //models:all //web:app`` in examples/,
with the repository's dev venv (Keras + the TF.js harness of tests/)::

    .venv/bin/python examples/verify.py

1. Keras loads the MobileNetV2 the build generated (bazel-bin/models/mobilenet.h5)
   and predicts a fixed batch of random images.
2. TF.js (Node, cpu and wasm backends) runs the three converted models on that
   batch:
   - mobilenet_tfjs (float32 layers model, predict) and mobilenet_graph_tfjs
     (graph model, execute; batch norms folded and ops fused) must match Keras
     within the float32 bound of tests/tolerances.py. Its zoo entry is a 96x96
     MobileNetV2, but the float32 bound is float32 rounding only, which does
     not depend on the input size. The graph model must also be what the
     converter promises: one weight group, every convolution fused with a
     rank-1 bias, no batch-norm arithmetic left.
   - mobilenet_uint8_tfjs must match Keras running the *dequantized* weights read
     back from the artifact, within the same float32 bound. Its error against
     the float32 Keras model is printed but not checked: the declared uint8
     bound was derived for the 96x96 zoo model and does not carry over.
3. The built app (bazel-bin/web/app) is served on 127.0.0.1 with web/serve.py's
   headers and its index.html must run every model on cpu, webgl and wasm in
   headless Chromium (Debian: chromium-headless-shell; required).

Exit status: 0 when every check passed, 1 otherwise.
"""

import hashlib
import json
import os
import sys
import tempfile
import time
from typing import List, Tuple

import numpy as np

EXAMPLES = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(EXAMPLES)
sys.path.insert(0, os.path.join(ROOT, "tests"))  # the TF.js harness and the tolerance table
sys.path.insert(0, ROOT)  # the converter, to read the uint8 artifact back
sys.path.insert(0, EXAMPLES)  # web.app_browser_test, the page's browser run

import tfjs_node  # noqa: E402
import tolerances  # noqa: E402

SEED = 0
BATCH = 2
BACKENDS = ("cpu", "wasm")
BIN = os.path.join(EXAMPLES, "bazel-bin")
H5 = os.path.join(BIN, "models", "mobilenet.h5")
FLOAT32_DIR = os.path.join(BIN, "models", "mobilenet_tfjs")
UINT8_DIR = os.path.join(BIN, "models", "mobilenet_uint8_tfjs")
GRAPH_DIR = os.path.join(BIN, "models", "mobilenet_graph_tfjs")
# name -> (directory, tfjs_node.Job kind, method); the order of the report.
MODELS = {
    "mobilenet_tfjs": (FLOAT32_DIR, "layers", "predict"),
    "mobilenet_graph_tfjs": (GRAPH_DIR, "graph", "execute"),
    "mobilenet_uint8_tfjs": (UINT8_DIR, "layers", "predict"),
}
# Ops the converter leaves instead of fused ones, or that an unfolded batch norm
# leaves behind; none may be in the graph model.
_UNFUSED_OPS = ("Conv2D", "DepthwiseConv2dNative", "BiasAdd", "FusedBatchNorm",
                "FusedBatchNormV3", "Mul", "AddV2", "Add", "Sub", "Rsqrt", "Relu", "Relu6")
_FUSED_OPS = ("_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul")
APP_DIR = os.path.join(BIN, "web", "app")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _describe_dir(label: str, path: str) -> List[str]:
    names = sorted(os.listdir(path))
    sizes = [os.path.getsize(os.path.join(path, n)) for n in names]
    lines = ["  %-22s %d files, %.2f MB  (%s)" % (label, len(names), sum(sizes) / 1e6,
                                                 os.path.relpath(path, ROOT))]
    lines += ["      %-24s %9d  sha256 %s" % (n, s, _sha256(os.path.join(path, n))[:16])
              for n, s in zip(names, sizes)]
    return lines


def _keras_predict(model_path: str, x: np.ndarray) -> np.ndarray:
    import keras
    model = keras.models.load_model(model_path, compile=False)
    return model.predict(x, verbose=0)


def _dequantized_reference(x: np.ndarray) -> np.ndarray:
    """Keras's output with the weights the uint8 artifact actually stores."""
    import converter
    with tempfile.TemporaryDirectory(prefix="tfjs_example_") as tmp:
        h5 = os.path.join(tmp, "mobilenet_uint8_dequantized.h5")
        converter.convert(os.path.join(UINT8_DIR, "model.json"), h5, output_format="keras")
        return _keras_predict(h5, x)


def _graph_inputs(model_dir: str, x: np.ndarray) -> dict:
    """``{signature input key: x}`` for a one-input graph model (execute feeds by name)."""
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        keys = sorted(json.load(f)["signature"]["inputs"])
    if len(keys) != 1:
        raise SystemExit("verify.py: %s has inputs %s, want one" % (model_dir, keys))
    return {keys[0]: x}


def check_graph_structure(model_dir: str) -> List[str]:
    """What is wrong with the graph model's structure (empty: nothing).

    One weight group; at least one fused op and none of _UNFUSED_OPS; every
    fused op's bias a rank-1 weight (TF.js's wasm backend rejects any other).
    """
    import base64
    import collections
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        doc = json.load(f)
    problems = []
    if len(doc["weightsManifest"]) != 1:
        problems.append("%d weight groups, want 1" % len(doc["weightsManifest"]))
    shapes = {w["name"]: w["shape"] for g in doc["weightsManifest"] for w in g["weights"]}
    nodes = doc["modelTopology"]["node"]
    ops = collections.Counter(n["op"] for n in nodes)
    left = {op: ops[op] for op in _UNFUSED_OPS if ops[op]}
    if left:
        problems.append("unfused ops left: %s" % left)
    if not any(ops[op] for op in _FUSED_OPS):
        problems.append("no fused op (%s)" % ", ".join(_FUSED_OPS))
    for n in nodes:
        if n["op"] not in _FUSED_OPS:
            continue
        fused = [base64.b64decode(s).decode() for s in
                 n["attr"].get("fused_ops", {}).get("list", {}).get("s", [])]
        data = [i for i in n["input"] if not i.startswith("^")]
        bias = data[2].split(":")[0] if len(data) > 2 else None
        if fused[:1] != ["BiasAdd"] or len(shapes.get(bias, [])) != 1:
            problems.append("%s %s: fused_ops %s, bias %s of shape %s; want BiasAdd with a "
                            "rank-1 bias" % (n["op"], n["name"], fused, bias, shapes.get(bias)))
    return problems


def _graph_op_counts(model_dir: str) -> str:
    import collections
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        ops = collections.Counter(n["op"] for n in json.load(f)["modelTopology"]["node"])
    return ", ".join("%s %d" % (op, n) for op, n in sorted(ops.items()) if op != "Const")


def _run_tfjs(x: np.ndarray) -> dict:
    jobs = []
    for name, (model_dir, kind, method) in MODELS.items():
        inputs = _graph_inputs(model_dir, x) if kind == "graph" else [x]
        jobs += [tfjs_node.Job(model_dir=model_dir, inputs=inputs, backend=b, kind=kind,
                               method=method, job_id="%s [%s]" % (name, b)) for b in BACKENDS]
    results = tfjs_node.run_jobs(jobs)
    failed = [r for r in results if not r.ok]
    if failed:
        raise tfjs_node.TfjsJobError(failed)
    return {(r.job.job_id.split(" ")[0], r.job.backend): r for r in results}


def _report(name: str, backend: str, result, want: np.ndarray, want_dequantized: np.ndarray,
            tol) -> bool:
    """Prints one model's error on one backend; returns whether it is within ``tol``.

    The uint8 model is checked against Keras on its dequantized weights; its
    error against the float32 model is printed only.
    """
    quantized = name == "mobilenet_uint8_tfjs"
    reference = want_dequantized if quantized else want
    err = tolerances.max_error(result.outputs, [reference])
    passed = True
    try:
        tolerances.check_close(result.outputs, [reference], tol,
                               "%s on TF.js %s" % (name, backend))
        verdict = "ok"
    except AssertionError as e:
        verdict = "FAILED\n    %s" % str(e).replace("\n", "\n    ")
        passed = False
    method = MODELS[name][2]
    if quantized:
        print("  %-22s %-4s %-7s max error %.2e vs Keras on the dequantized weights: %s "
              "(%.2e vs the float32 model, not checked)"
              % (name, backend, method, err, verdict, tolerances.max_error(result.outputs, [want])))
    else:
        print("  %-22s %-4s %-7s max error %.2e vs Keras: %s" % (name, backend, method, err, verdict))
    return passed


def check_in_browser(app_dir: str) -> Tuple[str, List[str]]:
    """Opens the app's page in headless Chromium, served with web/serve.py's headers.

    The page runs every model on cpu, webgl and wasm (web/app_browser_test.py
    does the serving and the browser).

    Returns:
      ``(status, lines)``: status is ``"ok"`` or ``"failed"`` as the page
      reports it; lines summarize each run.
    """
    from web import app_browser_test  # pylint: disable=import-outside-toplevel
    with tempfile.TemporaryDirectory(prefix="tfjs_example_browser_",
                                     ignore_cleanup_errors=True) as tmp:
        report = app_browser_test.run_page(app_dir, "webgl,wasm", tmp)
    lines = ["TF.js %s; cross-origin isolated: %s; wasm binary %s, %s thread(s); WebGL %s"
             % (report.get("tfjs"), report.get("cross_origin_isolated"),
                report.get("wasm_binary"), report.get("wasm_threads"),
                report.get("webgl_version"))]
    if report.get("error"):
        lines.append("FAILED: %s" % report["error"])
    for run in report.get("runs", []):
        if not run.get("ok"):
            lines.append("%-5s %-16s FAILED: %s" % (run["backend"], run["model"], run.get("error")))
        elif run["backend"] == "cpu":
            lines.append("%-5s %-16s ok (the reference), run %.0f ms"
                         % (run["backend"], run["model"], run["run_ms"]))
        else:
            lines.append("%-5s %-16s ok, max |error| vs cpu %.1e, run %.0f ms"
                         % (run["backend"], run["model"], run["max_abs"], run["run_ms"]))
    return report.get("status", "failed"), lines


def main() -> int:
    missing = [p for p in (H5, FLOAT32_DIR, UINT8_DIR, GRAPH_DIR, APP_DIR)
               if not os.path.exists(p)]
    if missing:
        print("verify.py: %s missing; build first: cd examples && bazel build //models:all //web:app"
              % ", ".join(os.path.relpath(p, ROOT) for p in missing), file=sys.stderr)
        return 1
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    ok = True

    print("Built by Bazel in examples/ (MobileNetV2, random weights, seed %d):" % SEED)
    print("  %-22s %.2f MB, sha256 %s  (%s)" % ("source .h5", os.path.getsize(H5) / 1e6,
                                                _sha256(H5)[:16], os.path.relpath(H5, ROOT)))
    for name, (model_dir, _, _) in MODELS.items():
        print("\n".join(_describe_dir(name, model_dir)))
    print("  mobilenet_graph_tfjs ops: %s" % _graph_op_counts(GRAPH_DIR))
    problems = check_graph_structure(GRAPH_DIR)
    for problem in problems:
        print("  FAILED mobilenet_graph_tfjs structure: %s" % problem)
    ok = ok and not problems

    started = time.perf_counter()
    import keras
    shape = keras.models.load_model(H5, compile=False).input_shape[1:]
    x = np.random.default_rng(SEED).uniform(-1, 1, (BATCH,) + tuple(shape)).astype(np.float32)
    want = _keras_predict(H5, x)
    want_dequantized = _dequantized_reference(x)
    results = _run_tfjs(x)
    tol = tolerances.lookup("mobilenet_v2", tolerances.FLOAT32)
    tfjs_version = next(iter(results.values())).raw.get("tfjsVersion", "")
    print("\nTF.js %s (Node) vs Keras on %d random %s inputs, output %s, %.1f s:"
          % (tfjs_version, BATCH, "x".join(map(str, shape)), want.shape,
             time.perf_counter() - started))
    print("  bound: |tfjs - keras| <= %g + %g * |keras| (tests/tolerances.py, float32); "
          "Keras's outputs are softmax probabilities in [%.1e, %.1e]"
          % (tol.atol, tol.rtol, want.min(), want.max()))
    for name in MODELS:
        for backend in BACKENDS:
            ok = _report(name, backend, results[(name, backend)], want, want_dequantized,
                         tol) and ok

    with open(os.path.join(APP_DIR, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    print("\nWeb app: %s (%d models, %.2f MB; manifest.json lists every file with its sha256)"
          % (os.path.relpath(APP_DIR, ROOT), len(manifest["models"]), manifest["total_bytes"] / 1e6))
    status, lines = check_in_browser(APP_DIR)
    print("  in headless Chromium (cpu, webgl, wasm): %s" % status)
    for line in lines:
        print("    " + line)
    ok = ok and status == "ok"
    print("  serve it:  cd examples && bazel run //web:serve   then open http://127.0.0.1:8000/")
    print("\n%s" % ("ok: every check passed" if ok else "FAILED: see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
