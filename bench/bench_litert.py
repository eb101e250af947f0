"""Benchmarks the way out to LiteRT: MobileNetV2 in LiteRT.js vs TF.js (wasm), and graph -> SavedModel/tflite.

Inference (issue 10's target: LiteRT.js / TF.js <= 0.75, outputs within 1e-5).
The network is the example workspace's MobileNetV2 (``examples/models/make_mobilenet.py``:
random weights, fixed seed, BatchNorm statistics calibrated so the outputs depend
on the input). It is converted by ``python -m converter`` to a TF.js graph model
(``--output_format=tfjs_graph_model``, as ``//models:mobilenet_graph_tfjs``), and
that graph model to ``.tflite`` (``--output_format=tflite --tflite_batch_size=1``;
LiteRT.js runs only fixed shapes). If the converter cannot write tflite, TensorFlow's
``TFLiteConverter`` writes it from a batch-1 SavedModel export instead, and the
report says so (``tflite_from``). Both run in one headless Chromium page
(``bench/bench_litert_page.mjs``): TF.js 4.22's wasm backend on the graph model,
LiteRT.js (``@litertjs/core`` from ``tests/js``) on the ``.tflite``, single-threaded
both (the page is not cross-origin isolated, so neither gets threads), on one
seeded input. Round -1 is discarded, then ``--rounds`` rounds, each giving each
runtime ``--warmup`` untimed and ``--repeats`` timed runs, alternating which goes
first. The ratio is the median over rounds of each round's median LiteRT.js time /
median TF.js time (the two are measured within a second of each other, so a
burst of load on this shared machine hits both sides of a ratio alike); the
ratio of the pooled medians and of the fastest runs are reported too.

Conversion: wall time and peak RSS (``ru_maxrss`` of the child, from ``wait4``,
as in ``bench/bench_graph.py``) of ``python -m converter GRAPH/model.json OUT``
for ``tf_saved_model`` and ``tflite`` outputs, MobileNetV2 and ResNet50 graph models
(ResNet50: ``keras.applications.ResNet50(weights=None)``, seed 0), one warm-up run
each, then ``--runs`` runs interleaved case by case; medians reported.

Timed runs wait (up to ``--wait_s``) for the 1-minute load average to fall below
``--max_load``; the load is recorded. Results: ``bench/results/litert.json``.

Usage: .venv/bin/python -m bench.bench_litert [--rounds 12] [--repeats 5] [--runs 5]
       [--skip_conversion] [--skip_inference]
"""

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from bench import machine  # noqa: E402
from bench.bench_graph import measure, summarize  # noqa: E402

TARGET_RATIO = 0.75
TARGET_MAX_ABS_DIFF = 1e-5
RESULTS = os.path.join(ROOT, "bench", "results", "litert.json")
CACHE = os.path.join(ROOT, "bench", "results", "models")
PAGE_MODULE = os.path.join(ROOT, "bench", "bench_litert_page.mjs")
SIZE = 224
MODELS = ("mobilenet_v2", "resnet50")
OUTPUTS = {"tf_saved_model": "saved_model", "tflite": "model.tflite"}

_RESNET_SCRIPT = r"""
import sys
import keras
keras.utils.set_random_seed(0)
keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3)).save(sys.argv[1])
"""

_TF_TFLITE_SCRIPT = r"""
import sys
import keras
import tensorflow as tf
src, work, out = sys.argv[1:4]
model = keras.models.load_model(src, compile=False)
archive = keras.export.ExportArchive()
archive.track(model)
archive.add_endpoint("serving_default", model.__call__, input_signature=[
    tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32, name="input_layer")])
archive.write_out(work, verbose=False)
open(out, "wb").write(tf.lite.TFLiteConverter.from_saved_model(work).convert())
"""


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3")


def _run(argv, what):
    proc = subprocess.run(argv, capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode != 0:
        raise SystemExit("%s failed (%d): %s\n%s" % (what, proc.returncode, argv,
                                                     proc.stderr[-4000:]))
    return proc


def source_h5(name: str) -> str:
    """The cached Keras HDF5 source of ``name`` (built once, in a fresh process)."""
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, "litert_%s.h5" % name)
    if not os.path.exists(path):
        tmp = path + ".tmp.h5"
        if name == "mobilenet_v2":
            argv = [sys.executable, os.path.join(ROOT, "examples", "models", "make_mobilenet.py"),
                    tmp]
        else:
            argv = [sys.executable, "-c", _RESNET_SCRIPT, tmp]
        _run(argv, "building %s" % name)
        os.rename(tmp, path)
    return path


def graph_model(name: str, work: str) -> str:
    """``python -m converter SRC.h5 DIR --output_format=tfjs_graph_model``; returns DIR."""
    out = os.path.join(work, "%s_graph" % name)
    _run([sys.executable, "-m", "converter", source_h5(name), out,
          "--output_format=tfjs_graph_model"], "graph model of %s" % name)
    return out


def tflite_model(graph_dir: str, h5: str, work: str):
    """Batch-1 .tflite of the graph model; returns (path, how it was written)."""
    out = os.path.join(work, "model_b1.tflite")
    proc = subprocess.run([sys.executable, "-m", "converter", os.path.join(graph_dir, "model.json"),
                           out, "--output_format=tflite", "--tflite_batch_size=1"],
                          capture_output=True, text=True, env=_env(), check=False)
    if proc.returncode == 0:
        return out, "python -m converter graph/model.json --output_format=tflite " \
                    "--tflite_batch_size=1"
    print("the converter did not write tflite (%s); using TensorFlow's TFLiteConverter"
          % proc.stderr.strip().splitlines()[-1:])
    _run([sys.executable, "-c", _TF_TFLITE_SCRIPT, h5, os.path.join(work, "b1_export"), out],
         "TFLiteConverter")
    return out, "tf.lite.TFLiteConverter.from_saved_model (batch-1 Keras export of the .h5)"


def _tflite_writer_state() -> dict:
    """Whether converter/writers/tflite.py is committed, and its last commit."""
    rel = "converter/writers/tflite.py"
    tracked = subprocess.run(["git", "ls-files", "--error-unmatch", rel], cwd=ROOT,
                             capture_output=True, check=False).returncode == 0
    commit = subprocess.run(["git", "log", "-1", "--format=%h %s", "--", rel], cwd=ROOT,
                            capture_output=True, text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", rel], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    return {"tracked": tracked, "last_commit": commit[:100] or None,
            "working_tree": dirty or "clean"}


def keras_reference(h5: str, x: np.ndarray) -> np.ndarray:
    import keras  # pylint: disable=import-outside-toplevel
    return np.asarray(keras.models.load_model(h5, compile=False)(x))


def interpreter_reference(tflite: str, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    interpreter = Interpreter(model_path=tflite)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


def run_page(graph_dir: str, tflite: str, x: np.ndarray, args) -> dict:
    """Runs bench_litert_page.mjs; returns its report plus the two outputs."""
    import litertjs_runner  # pylint: disable=import-outside-toplevel
    from converter.verify import browser, runtime  # pylint: disable=import-outside-toplevel
    files = litertjs_runner.litert_files()
    modules = runtime.js_root() / "node_modules"
    for name, (package, rel) in browser._BUNDLES.items():  # pylint: disable=protected-access
        files["tfjs/" + name] = modules / package / rel
    for name in browser._WASM_BINARIES:  # pylint: disable=protected-access
        files["tfjs/" + name] = modules / "@tensorflow/tfjs-backend-wasm/dist" / name
    for entry in os.scandir(graph_dir):
        files["models/graph/" + entry.name] = pathlib.Path(entry.path)
    files["models/model.tflite"] = pathlib.Path(tflite)
    files["bench_litert_page.mjs"] = pathlib.Path(PAGE_MODULE)
    spec = {"rounds": args.rounds, "warmup": args.warmup, "repeats": args.repeats,
            "graph": "models/graph/model.json", "tflite": "models/model.tflite",
            "input": "input.bin", "shape": list(x.shape)}
    blobs = {"": litertjs_runner.page_html("bench_litert_page.mjs",
                                           ["tfjs/tf.min.js", "tfjs/tf-backend-wasm.min.js"]),
             "bench.json": json.dumps(spec).encode(),
             "input.bin": x.astype("<f4").tobytes()}
    page = litertjs_runner.Page(files, blobs)
    page.run(timeout_s=1800)
    report = dict(page.done_body)
    report["outputs"] = {name: np.frombuffer(page.posts["output/" + name], "<f4").reshape(1, -1)
                         for name in ("tfjs", "litert")}
    return report


def inference(args, work: str) -> dict:
    h5 = source_h5("mobilenet_v2")
    graph_dir = graph_model("mobilenet_v2", work)
    tflite, how = tflite_model(graph_dir, h5, work)
    x = np.random.RandomState(1).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    keras_y = keras_reference(h5, x)
    interpreter_y = interpreter_reference(tflite, x)
    quiet = machine.wait_for_quiet(args.max_load, args.wait_s)
    load_before = os.getloadavg()
    page = run_page(graph_dir, tflite, x, args)
    load_after = os.getloadavg()
    times = page["times"]
    round_medians = {k: [statistics.median(r) for r in v] for k, v in times.items()}
    ratios = [l / t for l, t in zip(round_medians["litert"], round_medians["tfjs"])]
    pooled = {k: statistics.median([ms for r in v for ms in r]) for k, v in times.items()}
    fastest = {k: min(ms for r in v for ms in r) for k, v in times.items()}
    ratio = statistics.median(ratios)
    y_t, y_l = page["outputs"]["tfjs"], page["outputs"]["litert"]
    diffs = {
        "litert_vs_tfjs": float(np.abs(y_l - y_t).max()),
        "litert_vs_ai_edge_litert": float(np.abs(y_l - interpreter_y).max()),
        "litert_vs_keras": float(np.abs(y_l - keras_y).max()),
        "tfjs_vs_keras": float(np.abs(y_t - keras_y).max()),
    }
    return {
        "model": "MobileNetV2 %dx%d (examples/models/make_mobilenet.py)" % (SIZE, SIZE),
        "tflite_from": how, "tflite_bytes": os.path.getsize(tflite),
        "tflite_writer": _tflite_writer_state(),
        "litertjs_core": __import__("litertjs_runner").core_version(),
        "tfjs_wasm": page["tfjsWasm"], "litert_wasm": page["liteRtWasm"],
        "browser": page["userAgent"], "cross_origin_isolated": page["crossOriginIsolated"],
        "rounds": args.rounds, "repeats": args.repeats, "warmup": args.warmup,
        "median_ms": {k: round(v, 2) for k, v in pooled.items()},
        "min_ms": {k: round(v, 2) for k, v in fastest.items()},
        "round_median_ms": {k: [round(v, 2) for v in r] for k, r in round_medians.items()},
        "litert_over_tfjs": round(ratio, 3),
        "litert_over_tfjs_per_round": [round(r, 3) for r in ratios],
        "litert_over_tfjs_pooled_medians": round(pooled["litert"] / pooled["tfjs"], 3),
        "litert_over_tfjs_fastest_runs": round(fastest["litert"] / fastest["tfjs"], 3),
        "target_ratio": TARGET_RATIO, "target_met": ratio <= TARGET_RATIO,
        "max_abs_diff": diffs, "max_abs_output": float(np.abs(keras_y).max()),
        "target_max_abs_diff": TARGET_MAX_ABS_DIFF,
        "outputs_target_met": diffs["litert_vs_tfjs"] <= TARGET_MAX_ABS_DIFF,
        "tfjs_tensors_leaked": page["tensorsLeaked"],
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in load_after], "quiet_machine": quiet,
    }


def conversion(args, work: str) -> dict:
    graphs = {name: graph_model(name, work) for name in args.models}
    cases = [(m, f) for m in args.models for f in OUTPUTS]
    samples = {case: [] for case in cases}
    out_root = os.path.join(work, "out")

    def once(model, fmt):
        shutil.rmtree(out_root, ignore_errors=True)
        os.makedirs(out_root)
        return measure([sys.executable, "-m", "converter",
                        os.path.join(graphs[model], "model.json"),
                        os.path.join(out_root, OUTPUTS[fmt]), "--output_format=" + fmt])

    failed = {}
    for case in cases:  # warm the page cache; a failing case is reported, not timed
        try:
            once(*case)
        except SystemExit as error:  # bench_graph.measure's way of failing
            failed[case] = str(error).splitlines()[-1][:500]
            print("%s -> %s failed: %s" % (case + (failed[case],)))
    cases = [case for case in cases if case not in failed]
    quiet = machine.wait_for_quiet(args.max_load, args.wait_s)
    load_before = os.getloadavg()
    loads = [load_before[0]]
    for _ in range(args.runs):
        for case in cases:
            samples[case].append(once(*case))
            loads.append(os.getloadavg()[0])
    result = {"%s->%s" % case: summarize(s) for case, s in samples.items() if s}
    for r in result.values():
        r.pop("peak_rss_gb_median", None)
        r["wall_s_median"] = round(r["wall_s_median"], 2)
        r["wall_s_all"] = [round(v, 2) for v in r["wall_s_all"]]
        r["peak_rss_mb_all"] = [round(v) for v in r["peak_rss_mb_all"]]
    return {"runs": args.runs, "cases": result, "tflite_writer": _tflite_writer_state(),
            "failed": {"%s->%s" % case: message for case, message in failed.items()},
            "load_average_before": [round(v, 2) for v in load_before],
            "load_average_1min_during": {"median": round(statistics.median(loads), 2),
                                         "max": round(max(loads), 2)},
            "quiet_machine": quiet}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5, help="conversion runs per case")
    parser.add_argument("--models", default=",".join(MODELS),
                        help="models for the conversion part")
    parser.add_argument("--skip_inference", action="store_true")
    parser.add_argument("--skip_conversion", action="store_true")
    machine.add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    machine.check_runs(parser, args.rounds, "--rounds")
    machine.check_runs(parser, args.runs, "--runs")
    args.models = machine.parse_list(parser, args.models, MODELS, "model")

    previous = {}
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            previous = json.load(f)
    report = dict(previous)
    with tempfile.TemporaryDirectory(prefix="bench_litert_") as work:
        if not args.skip_inference:
            report["inference"] = inference(args, work)
            r = report["inference"]
            print("inference: LiteRT.js %.2f ms, TF.js %.2f ms (medians); LiteRT.js/TF.js = %.3f "
                  "(median of %d per-round ratios, range %.3f-%.3f; pooled %.3f; fastest %.3f), "
                  "target <= %.2f: %s; max abs diff LiteRT.js vs TF.js %.3g (vs ai_edge_litert "
                  "%.3g), target <= %g: %s; load %.2f -> %.2f" % (
                      r["median_ms"]["litert"], r["median_ms"]["tfjs"], r["litert_over_tfjs"],
                      len(r["litert_over_tfjs_per_round"]), min(r["litert_over_tfjs_per_round"]),
                      max(r["litert_over_tfjs_per_round"]), r["litert_over_tfjs_pooled_medians"],
                      r["litert_over_tfjs_fastest_runs"], TARGET_RATIO,
                      "MET" if r["target_met"] else "MISSED",
                      r["max_abs_diff"]["litert_vs_tfjs"],
                      r["max_abs_diff"]["litert_vs_ai_edge_litert"], TARGET_MAX_ABS_DIFF,
                      "MET" if r["outputs_target_met"] else "MISSED",
                      r["load_average_before"][0], r["load_average_after"][0]))
            _save(report)
        if not args.skip_conversion:
            report["conversion"] = conversion(args, work)
            for case, r in report["conversion"]["cases"].items():
                print("%-28s wall %6.2f s (min %.2f, max %.2f)  peak RSS %6.0f MB" % (
                    case, r["wall_s_median"], r["wall_s_min"], r["wall_s_max"],
                    r["peak_rss_mb_median"]))
            for case, message in report["conversion"]["failed"].items():
                print("%-28s FAILED: %s" % (case, message))
            _save(report)
    return 0


def _save(report: dict) -> None:
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
    print("wrote %s" % RESULTS)


if __name__ == "__main__":
    sys.exit(main())
