"""Benchmarks Keras -> tfjs_layers_model conversion: wall time and peak RSS.

Each conversion runs as a fresh ``python -m converter`` process (what a user or a
build action runs), measured from spawn to exit; peak RSS is the child's
``ru_maxrss`` from ``wait4``. Reports the median (and min/max) of N runs after
one warm-up run, next to ``python -c "import tensorflow"`` measured the same way
in the same run, so the figures compare on this machine.

Usage: .venv/bin/python -m bench.bench_layers [--runs 5] [--models mobilenet_v2,resnet50]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", "results", "models")

# Targets of the converter-core issue for MobileNetV2 on a 2-core machine.
TARGETS = {"mobilenet_v2": {"wall_s": 0.5, "peak_rss_mb": 200}}


def build_models(names):
    """Saves each model as Keras 3 .h5 and .keras once (weights=None, fixed seed)."""
    os.makedirs(CACHE, exist_ok=True)
    missing = [n for n in names for ext in ("h5", "keras")
               if not os.path.exists(os.path.join(CACHE, "%s.%s" % (n, ext)))]
    if not missing:
        return
    script = (
        "import sys, keras\n"
        "keras.utils.set_random_seed(0)\n"
        "build = {'mobilenet_v2': lambda: keras.applications.MobileNetV2(weights=None),\n"
        "         'resnet50': lambda: keras.applications.ResNet50(weights=None)}\n"
        "for name in sys.argv[2:]:\n"
        "    m = build[name]()\n"
        "    m.save('%s/%s.h5' % (sys.argv[1], name))\n"
        "    m.save('%s/%s.keras' % (sys.argv[1], name))\n")
    subprocess.run([sys.executable, "-c", script, CACHE, *sorted(set(n for n in names))],
                   check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def measure(argv):
    """Wall seconds and peak RSS (MB) of one child process; fails if it fails."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit("benchmark command failed (%d): %s\n%s" % (proc.returncode, argv, err))
    return wall, usage.ru_maxrss / 1024.0


def series(argv, runs):
    measure(argv)  # warm the page cache
    samples = [measure(argv) for _ in range(runs)]
    walls = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    return {"runs": runs, "wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
            "wall_s_max": max(walls), "peak_rss_mb_median": statistics.median(rss),
            "peak_rss_mb_max": max(rss)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", default="mobilenet_v2,resnet50")
    args = parser.parse_args()
    names = args.models.split(",")
    build_models(names)
    results = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "cases": {}}
    results["cases"]["import tensorflow (reference)"] = series(
        [sys.executable, "-c", "import tensorflow"], args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for ext in ("h5", "keras"):
                src = os.path.join(CACHE, "%s.%s" % (name, ext))
                out = os.path.join(tmp, "%s_%s" % (name, ext))
                argv = [sys.executable, "-m", "converter", src, out]
                results["cases"]["%s .%s -> tfjs_layers_model" % (name, ext)] = series(argv, args.runs)
    print("%-42s %12s %12s %14s" % ("case", "wall median", "wall min", "peak RSS med"))
    for case, r in results["cases"].items():
        print("%-42s %10.3f s %10.3f s %11.1f MB" % (case, r["wall_s_median"], r["wall_s_min"],
                                                      r["peak_rss_mb_median"]))
    ref = results["cases"]["import tensorflow (reference)"]["wall_s_median"]
    for case, r in results["cases"].items():
        if "->" in case:
            print("%-42s %.2fx the wall time of importing tensorflow" % (case, r["wall_s_median"] / ref))
    for name, target in TARGETS.items():
        for ext in ("h5", "keras"):
            r = results["cases"].get("%s .%s -> tfjs_layers_model" % (name, ext))
            if r:
                ok = r["wall_s_median"] <= target["wall_s"] and r["peak_rss_mb_median"] <= target["peak_rss_mb"]
                print("target %s .%s: wall <= %.1f s and RSS <= %d MB: %s" % (
                    name, ext, target["wall_s"], target["peak_rss_mb"], "MET" if ok else "MISSED"))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    with open(os.path.join(ROOT, "bench", "results", "layers.json"), "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
