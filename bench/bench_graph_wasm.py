"""Benchmarks TF.js wasm inference: MobileNetV2 as an optimized graph model vs a layers model.

One Keras 3 MobileNetV2 (weights=None, fixed seed, random BatchNorm statistics so
the BN arithmetic is not trivially zero) is saved once as ``.keras`` and as a
``model.export()`` SavedModel, then converted three ways:

- ``layers``: ``converter.api.convert(model.keras)`` -> tfjs_layers_model;
- ``graph``: freeze + Grappler pass 1 + ``converter.graph.optimize.optimize_graph``
  (through the converter's graph pipeline when it converts the SavedModel, else
  through the test helpers);
- ``graph_unoptimized``: the same without ``optimize_graph`` (what our passes add).

All three run in one Node process on the wasm backend, interleaved, for
``--rounds`` rounds of ``--repeats`` timed runs after ``--warmup`` untimed ones;
the figure per model is the median over all timed runs, and the ratio is
graph / layers (target <= 0.5; the official converter reaches 0.68).

Usage: .venv/bin/python -m bench.bench_graph_wasm [--size 224] [--rounds 3] [--repeats 10]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

TARGET_RATIO = 0.5


def build(work: str, size: int):
    """Saves MobileNetV2 as .keras and as a SavedModel export; returns the paths."""
    import keras
    import test_graph_optimize_support as support
    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))
    support.randomize_batch_norms(model)
    keras_path = os.path.join(work, "mobilenet_v2.keras")
    model.save(keras_path)
    export_dir = os.path.join(work, "mobilenet_v2_export")
    model.export(export_dir, verbose=False)
    return model, keras_path, export_dir


def convert_graph(export_dir: str, out_dir: str, optimize: bool):
    """Graph model of the export; returns (model dir, input name, output names, how)."""
    import test_graph_optimize_support as support
    from converter.graph import optimize as graph_optimize
    if optimize:
        from converter import api
        from converter.errors import ConversionError
        try:
            api.convert(export_dir, out_dir, input_format="tf_saved_model",
                        output_format="tfjs_graph_model")
            with open(os.path.join(out_dir, "model.json")) as f:
                signature = json.load(f).get("signature", {})
            inputs = [v["name"].split(":")[0] for v in signature.get("inputs", {}).values()]
            outputs = [v["name"].split(":")[0] for v in signature.get("outputs", {}).values()]
            if len(inputs) == 1 and outputs:
                return out_dir, inputs[0], outputs, "converter pipeline"
        except (ConversionError, OSError, KeyError) as error:
            print("pipeline conversion unavailable (%s); using the test helpers" % error)
    graph_def, inputs, outputs = support.freeze_export(export_dir)
    graph_def = support.grappler(graph_def, outputs)
    if optimize:
        graph_def = graph_optimize.optimize_graph(graph_def, outputs)
    support.write_graph_model(graph_def, out_dir)
    return out_dir, inputs[0], outputs, "test helpers"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    from converter import api
    import test_graph_optimize_support as support
    from tfjs_node import Job, run_jobs

    with tempfile.TemporaryDirectory(prefix="bench_graph_wasm_") as work:
        model, keras_path, export_dir = build(work, args.size)
        x = np.random.RandomState(1).uniform(-1, 1, (1, args.size, args.size, 3)).astype(
            np.float32)
        expected = np.asarray(model(x))
        layers_dir = os.path.join(work, "layers")
        api.convert(keras_path, layers_dir, output_format="tfjs_layers_model")
        graph_dir, input_name, outputs, how = convert_graph(
            export_dir, os.path.join(work, "graph"), optimize=True)
        plain_dir, plain_input, plain_outputs, _ = convert_graph(
            export_dir, os.path.join(work, "graph_unoptimized"), optimize=False)
        with open(os.path.join(graph_dir, "model.json")) as f:
            ops = [n["op"] for n in json.load(f)["modelTopology"]["node"]]
        print("graph model via %s: %s" % (how, dict(sorted(
            (op, ops.count(op)) for op in set(ops) if op not in ("Const",)))))

        def jobs(round_index):
            common = dict(backend="wasm", warmup=args.warmup, repeats=args.repeats)
            return [
                Job(layers_dir, [x], kind="layers", method="predict",
                    job_id="layers#%d" % round_index, **common),
                Job(graph_dir, {input_name: x}, kind="graph", method="execute",
                    output_names=outputs, job_id="graph#%d" % round_index, **common),
                Job(plain_dir, {plain_input: x}, kind="graph", method="execute",
                    output_names=plain_outputs, job_id="graph_unoptimized#%d" % round_index,
                    **common),
            ]

        all_jobs = [job for r in range(args.rounds) for job in jobs(r)]
        times = {"layers": [], "graph": [], "graph_unoptimized": []}
        errors = {}
        for result in run_jobs(all_jobs):
            result.check()
            kind = result.job.job_id.split("#")[0]
            times[kind].extend(result.timing["runMs"])
            errors[kind] = float(np.abs(result.outputs[0] - expected).max())
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["graph"] / medians["layers"]
    report = {
        "model": "MobileNetV2 %dx%d (Keras 3, weights=None, random BN stats)" % (
            args.size, args.size),
        "backend": "wasm", "rounds": args.rounds, "repeats": args.repeats,
        "median_ms": {k: round(v, 2) for k, v in medians.items()},
        "min_ms": {k: round(min(v), 2) for k, v in times.items()},
        "graph_over_layers": round(ratio, 3),
        "unoptimized_graph_over_layers": round(
            medians["graph_unoptimized"] / medians["layers"], 3),
        "target_ratio": TARGET_RATIO,
        "max_abs_error_vs_keras": errors,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
