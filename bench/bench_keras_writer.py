"""Benchmarks tfjs_layers_model -> Keras ``.keras`` (and ``.h5``): the Keras writer's time.

Sources: the zoo's MobileNetV2 (96x96x3) and ResNet50 (224x224x3) layers models
(Keras 3, ``weights=None``, seeded by ``tests/zoo.py``), saved as ``.keras`` and
converted once to ``bench/results/models/<model>_tfjs/`` with this tree's
converter. Each measurement is a fresh ``python -m converter <model>_tfjs OUT
--output_format keras_keras`` process (what a user or a build action runs),
spawn to exit, with its peak RSS (``ru_maxrss`` from ``wait4``); the child also
reports the in-process time of the conversion call itself (``convert()``, after
importing ``converter.api``). Two variants per conversion: ``cold`` (what a
fresh process pays; a writer that needs Keras imports it inside ``convert()``)
and ``keras_imported`` (Keras and TensorFlow imported before the timed call, as
in the persistent worker after its first Keras request: ``convert_s`` is then
the writer's own work). Every case runs once to warm the page cache, then
``--runs`` times, interleaved round by round so a burst of load on this shared
2-core machine hits all cases alike; medians (and min/max) are reported, and
when two roots are given (``--converter_root`` and ``--baseline_root``) the
ratio new/old of the medians and the median of the per-round ratios, measured
in the same run.

``--converter_root DIR`` imports the converter from DIR (a ``git worktree add
/tmp/before <commit>`` snapshot, say) instead of this tree; ``--baseline_root
DIR`` adds a second root measured in the same rounds. Each root's commit and
whether its ``converter/`` differs from it are recorded.

Usage: .venv/bin/python -m bench.bench_keras_writer [--runs 5] [--cases mobilenet_v2,resnet50]
       [--formats keras_keras,keras] [--converter_root DIR] [--baseline_root DIR] [--out FILE]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from bench import machine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", "results", "models")
RESULTS = os.path.join(ROOT, "bench", "results", "bench_keras_writer.json")
MODELS = ("mobilenet_v2", "resnet50")
FORMATS = {"keras_keras": ".keras", "keras": ".h5"}

_BUILD_SCRIPT = r"""
import sys
sys.path.insert(0, sys.argv[3])
import zoo
model_name, out = sys.argv[1:3]
zoo.build_model(model_name, 3).save(out)
"""

# Runs in the child: the conversion call timed after the imports.
_CONVERT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from converter.api import convert
t1 = time.perf_counter()
if sys.argv[4] == "1":
    import keras  # noqa: F401
t2 = time.perf_counter()
convert(sys.argv[1], sys.argv[2], output_format=sys.argv[3])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "import_keras_s": t2 - t1, "convert_s": t3 - t2}))
"""
# variant -> import Keras (and TensorFlow) before the timed convert() call.
VARIANTS = {"cold": "0", "keras_imported": "1"}


def source_dir(model):
    return os.path.join(CACHE, "%s_tfjs" % model)


def build_sources(models):
    """Saves each missing tfjs_layers_model source once (fresh processes)."""
    os.makedirs(CACHE, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=ROOT)
    for model in models:
        out = source_dir(model)
        if os.path.exists(os.path.join(out, "model.json")):
            continue
        with tempfile.TemporaryDirectory() as tmp:
            keras_path = os.path.join(tmp, model + ".keras")
            subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, model, keras_path,
                            os.path.join(ROOT, "tests")], check=True, env=env)
            subprocess.run([sys.executable, "-m", "converter", keras_path, out],
                           check=True, env=env, cwd=ROOT)


def measure(root, model, fmt, variant="cold"):
    """Wall seconds, peak RSS (MB) and in-process timings of one conversion."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err:
        dst = os.path.join(tmp, "out" + FORMATS[fmt])
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", _CONVERT_SCRIPT,
                                 os.path.join(source_dir(model), "model.json"), dst, fmt,
                                 VARIANTS[variant]],
                                stdout=out, stderr=err, cwd=root,
                                env=dict(os.environ, PYTHONPATH=root, TF_CPP_MIN_LOG_LEVEL="3"))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0 or not os.path.exists(dst):
            raise SystemExit("%s %s (%s) failed:\n%s" % (model, fmt, root,
                                                         err.read().decode()[-3000:]))
        inner = json.loads(out.read().decode().strip().splitlines()[-1])
        size = os.path.getsize(dst)
    return {"wall_s": wall, "rss_mb": usage.ru_maxrss / 1024.0, "size": size, **inner}


def _summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": values}


def describe_root(root):
    """HEAD of ``root`` and whether its converter/ differs from it (None: no git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "converter"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return {"root": root, "commit": None, "converter_dirty": None}
    return {"root": root, "commit": head, "converter_dirty": bool(dirty)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(MODELS))
    parser.add_argument("--formats", default="keras_keras")
    parser.add_argument("--converter_root", default=ROOT)
    parser.add_argument("--baseline_root", default=None,
                        help="a second converter root measured in the same rounds")
    parser.add_argument("--out", default=RESULTS)
    machine.add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    machine.check_runs(parser, args.runs)
    models = machine.parse_list(parser, args.cases, MODELS)
    formats = machine.parse_list(parser, args.formats, tuple(FORMATS), "format")
    roots = {"new": os.path.abspath(args.converter_root)}
    if args.baseline_root:
        roots["old"] = os.path.abspath(args.baseline_root)
    for root in roots.values():
        if not os.path.isdir(os.path.join(root, "converter")):
            parser.error("%s holds no converter/" % root)
    build_sources(models)
    quiet = machine.wait_for_quiet(args.max_load, args.wait_s)
    cases = [(label, model, fmt, variant) for model in models for fmt in formats
             for variant in VARIANTS for label in roots]
    for label, model, fmt, variant in cases:  # warm-up, not recorded
        measure(roots[label], model, fmt, variant)
    load_before = machine.load_average()
    rounds = []
    for index in range(args.runs):
        rounds.append({case: measure(roots[case[0]], *case[1:]) for case in cases})
        print("round %d/%d done" % (index + 1, args.runs), file=sys.stderr)
    report = {"runs": args.runs, "quiet_at_start": quiet, "load_before": load_before,
              "load_after": machine.load_average(), "roots": {
                  label: describe_root(root) for label, root in roots.items()},
              "cases": {}}
    for model in models:
        for fmt in formats:
            for variant in VARIANTS:
                entry = {}
                for label in roots:
                    per = [r[(label, model, fmt, variant)] for r in rounds]
                    entry[label] = {key: _summary([p[key] for p in per]) for key in (
                        "wall_s", "convert_s", "import_s", "import_keras_s", "rss_mb")}
                    entry[label]["size"] = per[0]["size"]
                if "old" in roots:
                    for key in ("wall_s", "convert_s"):
                        ratios = [r[("new", model, fmt, variant)][key]
                                  / r[("old", model, fmt, variant)][key] for r in rounds]
                        entry["new_over_old_" + key] = {
                            "of_medians": entry["new"][key]["median"]
                            / entry["old"][key]["median"],
                            "median_of_rounds": statistics.median(ratios)}
                report["cases"]["%s->%s %s" % (model, fmt, variant)] = entry
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    for name, entry in report["cases"].items():
        line = [name]
        for label in roots:
            line.append("%s: convert %.2f s, wall %.2f s, %.0f MB" % (
                label, entry[label]["convert_s"]["median"], entry[label]["wall_s"]["median"],
                entry[label]["rss_mb"]["median"]))
        if "old" in roots:
            line.append("new/old convert %.2fx" % entry["new_over_old_convert_s"]["of_medians"])
        print("  ".join(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
