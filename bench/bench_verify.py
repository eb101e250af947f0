"""Benchmarks the cost of ``--verify``: Keras -> TF.js conversion with and without it.

Each conversion runs as a fresh ``python -m converter MODEL.keras OUT`` process
(what a user or a build action runs), measured from spawn to exit; peak RSS is
the child's ``ru_maxrss`` from ``wait4`` (the largest single process of the
child's tree: the converter, or the Node process it waits for; not their sum).
Per conversion there are three variants:

- ``plain``: ``--verify=false`` (the CLI's default, given explicitly);
- ``verify_cpu``: ``--verify --verify_backends cpu``;
- ``verify_cpu_wasm``: ``--verify --verify_backends cpu,wasm`` (the default set).

A verify run must print ``verified:`` with one comparison per requested backend
and exit 0, else the benchmark fails. Every case is run once to warm the page
cache, then ``--runs`` times; the cases are interleaved round by round so a burst
of load on this shared machine hits them all alike. Reported per conversion and
verify variant: the median (and min/max) wall time, and the verify cost
``(verify - plain) / plain`` both of the medians and as the median of the
per-round ratios; ``python -c "import tensorflow"`` is measured the same way as
a reference. The runs wait (up to ``--wait_s``) for the 1-minute load average to
fall below ``--max_load`` and record the load during the run.

Sources (Keras 3, ``weights=None``, seed 0, input 224x224x3), saved once as
``bench/results/models/<model>_verify.keras``. Their BatchNormalization layers
get random statistics (as in bench_graph_wasm): with the initial ones
MobileNetV2's activations vanish (features ~1e-11) and its output is exactly
1/1000 everywhere, which any output would match.

Conversions: ``mobilenet_v2_layers`` and ``resnet50_layers`` (-> tfjs_layers_model),
``mobilenet_v2_graph`` (-> tfjs_graph_model).

Target (the verify issue): verify cost <= 1.0x the conversion for MobileNetV2
(judged on the default backends, cpu,wasm).

``--profile`` then breaks the verify time down in a fresh process per conversion
(median of ``--profile_runs``): importing TensorFlow, loading the Keras model,
running it, and the Node job per backend set (Node start + TF.js require, and
the runner's own backend init / model load / run times).

``--converter_root DIR`` imports the converter from DIR instead of this tree (the
children run there; ``python -m`` puts the working directory first on sys.path),
e.g. a ``git archive HEAD converter | tar -x -C DIR`` snapshot, so that edits of
the working tree during the run do not change the code under measurement. The
commit and whether ``converter/`` differs from it are recorded.

Usage: .venv/bin/python -m bench.bench_verify [--runs 5] [--cases mobilenet_v2_layers,...] [--profile]
       [--converter_root DIR]
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
from bench.machine import load_average, wait_for_quiet

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "bench", "results", "models")
RESULTS = os.path.join(ROOT, "bench", "results", "verify.json")
REFERENCE = "import tensorflow (reference)"
# Where the children import the converter from (--converter_root).
CONVERTER_ROOT = ROOT
MODELS = ("mobilenet_v2", "resnet50")

# conversion -> (model, output format).
CONVERSIONS = {
    "mobilenet_v2_layers": ("mobilenet_v2", "tfjs_layers_model"),
    "resnet50_layers": ("resnet50", "tfjs_layers_model"),
    "mobilenet_v2_graph": ("mobilenet_v2", "tfjs_graph_model"),
}
DEFAULT_CASES = tuple(CONVERSIONS)
# variant -> --verify_backends (None: --verify=false).
VARIANTS = {"plain": None, "verify_cpu": "cpu", "verify_cpu_wasm": "cpu,wasm"}
DEFAULT_VARIANTS = tuple(VARIANTS)
# (conversion, variant, limit of (verify - plain) / plain).
TARGETS = [
    ("mobilenet_v2_layers", "verify_cpu_wasm", 1.0),
    ("mobilenet_v2_graph", "verify_cpu_wasm", 1.0),
]

_BUILD_SCRIPT = r"""
import os
import sys
import keras
import numpy as np

model_name, out, root = sys.argv[1:4]
sys.path[:0] = [root, os.path.join(root, "tests")]
from graph_helpers import randomize_batch_norms

keras.utils.set_random_seed(0)
build = {"mobilenet_v2": keras.applications.MobileNetV2,
         "resnet50": keras.applications.ResNet50}[model_name]
model = build(weights=None, input_shape=(224, 224, 3))
randomize_batch_norms(model, seed=0)
x = np.random.default_rng(0).standard_normal((2, 224, 224, 3)).astype(np.float32)
y = np.asarray(model(x, training=False))
if not np.ptp(y) > 0:
    raise SystemExit("%s: the output is constant on seeded inputs" % model_name)
model.save(out)
"""

# Runs in a fresh process: the phases of what --verify does after the conversion
# (converter/verify/check.py), timed one by one. argv: source, output dir, output
# format, backend sets ("cpu" "cpu,wasm").
_PROFILE_SCRIPT = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
source, out, out_fmt = sys.argv[1:4]
backend_sets = sys.argv[4:]
phases = {}

def lap(name, start):
    now = time.perf_counter()
    phases[name] = now - start
    return now

t = time.perf_counter()
import numpy as np
from converter.verify import check, runtime
t = lap("import converter.verify (numpy)", t)
import tensorflow as tf
t = lap("import tensorflow", t)
from converter.graph.keras import load_keras_model
import keras
t = lap("import keras + converter.graph.keras", t)
doc_path = check.model_json_path(out)
with open(doc_path) as f:
    doc = json.load(f)
from converter.weights import format as wf
kind = "graph" if doc.get(wf.FORMAT) == wf.GRAPH_MODEL_FORMAT else "layers"
specs = check.input_specs(doc, doc_path)
inputs = check.seeded_inputs(specs, 0)
t = lap("seeded inputs", t)
model = load_keras_model(source)
t = lap("load the Keras model", t)
expected = check._tf_keras_call(model, specs, inputs)
t = lap("run it in Keras (first call)", t)
check._tf_keras_call(model, specs, inputs)
t = lap("run it in Keras (second call)", t)
node = runtime.node_binary()
root = runtime.js_root()
env = dict(os.environ, NODE_PATH=str(root / "node_modules"))
subprocess.run([node, "-e", "0"], check=True, cwd=root, env=env)
t = lap("node -e 0", t)
subprocess.run([node, "-e", "require('@tensorflow/tfjs'); require('@tensorflow/tfjs-backend-wasm')"],
               check=True, cwd=root, env=env, capture_output=True)
t = lap("node: require tfjs + tfjs-backend-wasm", t)
feed = list(inputs.values()) if kind == "layers" else dict(inputs)
names = sorted((doc.get("signature") or {}).get("outputs") or {}) if kind == "graph" else None
method = "predict" if kind == "layers" else "executeAsync"
js = {}
for backends in backend_sets:
    jobs = [runtime.Job(doc_path, feed, backend=b, kind=kind, method=method, output_names=names)
            for b in backends.split(",")]
    start = time.perf_counter()
    results = runtime.run_jobs(jobs)
    wall = time.perf_counter() - start
    for r in results:
        r.check()
    js[backends] = {"wall_s": wall, "jobs": {r.job.backend: {
        "backend_s": r.timing["backendMs"] / 1e3, "load_s": r.timing["loadMs"] / 1e3,
        "run_s": sum(r.timing["runMs"]) / 1e3} for r in results}}
print(json.dumps({"phases": phases, "node": js, "kind": kind,
                  "total_s": time.perf_counter() - t0}))
"""


def source_path(model):
    return os.path.join(CACHE, "%s_verify.keras" % model)


def build_sources(models):
    """Saves each missing .keras source once (a fresh process per source)."""
    os.makedirs(CACHE, exist_ok=True)
    for model in models:
        path = source_path(model)
        if os.path.exists(path):
            continue
        tmp = path[:-len(".keras")] + ".tmp.keras"  # Keras wants the .keras suffix
        subprocess.run([sys.executable, "-c", _BUILD_SCRIPT, model, tmp, ROOT],
                       check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        os.rename(tmp, path)


def measure(argv, backends=None):
    """Wall seconds, peak RSS (MB) and verify summary of one child process.

    Fails if the child fails, or if ``backends`` is given and the child did not
    report a verification on each of them.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=CONVERTER_ROOT,
                                env=dict(os.environ, PYTHONPATH=CONVERTER_ROOT,
                                         TF_CPP_MIN_LOG_LEVEL="3"))
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        stderr = err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit("benchmark command failed (%d): %s\n%s%s"
                         % (proc.returncode, argv, stdout, stderr))
    verified = [line.split("verified: ", 1)[1] for line in stdout.splitlines()
                if "verified: " in line]
    if backends is not None:
        missing = [b for b in backends.split(",")
                   if not verified or "[%s]" % b not in verified[0]]
        if missing:
            raise SystemExit("verify run reported no verification on %s: %s\n%s%s"
                             % (", ".join(missing), argv, stdout, stderr))
    elif verified:
        raise SystemExit("plain run verified: %s\n%s" % (argv, stdout))
    return wall, usage.ru_maxrss / 1024.0, verified[0] if verified else None


def summarize(samples):
    walls = [s[0] for s in samples]
    rss = [s[1] for s in samples]
    return {"runs": len(samples), "wall_s_median": statistics.median(walls),
            "wall_s_min": min(walls), "wall_s_max": max(walls), "wall_s_all": walls,
            "peak_rss_mb_median": statistics.median(rss), "peak_rss_mb_max": max(rss),
            "peak_rss_mb_all": rss, "verified": samples[-1][2]}


def profile(conversions, tmp, runs):
    """Medians of the phases of --verify (see _PROFILE_SCRIPT) per conversion."""
    out = {}
    env = dict(os.environ, PYTHONPATH=CONVERTER_ROOT, TF_CPP_MIN_LOG_LEVEL="3")
    for name in conversions:
        model, out_fmt = CONVERSIONS[name]
        out_dir = os.path.join(tmp, name + "_plain")  # the plain run's output
        argv = [sys.executable, "-c", _PROFILE_SCRIPT, source_path(model), out_dir, out_fmt,
                "cpu", "cpu,wasm"]
        samples = []
        for i in range(runs + 1):
            proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False,
                                  cwd=CONVERTER_ROOT)
            if proc.returncode != 0:
                raise SystemExit("profile failed (%d): %s\n%s" % (proc.returncode, argv,
                                                                  proc.stderr))
            if i:  # the first one warms the page cache
                samples.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        med = {"phases": {k: statistics.median(s["phases"][k] for s in samples)
                          for k in samples[0]["phases"]},
               "total_s": statistics.median(s["total_s"] for s in samples), "node": {}}
        for backends in samples[0]["node"]:
            jobs = samples[0]["node"][backends]["jobs"]
            med["node"][backends] = {
                "wall_s": statistics.median(s["node"][backends]["wall_s"] for s in samples),
                "jobs": {b: {k: statistics.median(s["node"][backends]["jobs"][b][k]
                                                  for s in samples) for k in jobs[b]}
                         for b in jobs}}
        out[name] = med
    return out


def print_profile(prof):
    for name, p in prof.items():
        print("profile %s (median of runs; one process doing what --verify does):" % name)
        for phase, s in p["phases"].items():
            print("  %-44s %7.2f s" % (phase, s))
        for backends, n in p["node"].items():
            print("  %-44s %7.2f s" % ("Node job, backends %s (wall)" % backends, n["wall_s"]))
            for b, j in n["jobs"].items():
                print("    [%s] backend init %.2f s, model load %.2f s, run %.2f s"
                      % (b, j["backend_s"], j["load_s"], j["run_s"]))
        print("  %-44s %7.2f s" % ("total in that process", p["total_s"]))


def git_state():
    """HEAD of this tree and whether its converter/ differs from HEAD (None: no git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "converter"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return head, bool(dirty)


def main(argv=None) -> int:
    global CONVERTER_ROOT
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cases", default=",".join(DEFAULT_CASES),
                        help="comma-separated subset of %s" % ", ".join(CONVERSIONS))
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help="comma-separated subset of %s (plain always runs)"
                        % ", ".join(VARIANTS))
    parser.add_argument("--profile", action="store_true",
                        help="then break the verify time down (see the module doc)")
    parser.add_argument("--profile_runs", type=int, default=3)
    parser.add_argument("--converter_root", default=ROOT,
                        help="import the converter from here (see the module doc)")
    machine.add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    machine.check_runs(parser, args.runs)
    names = machine.parse_list(parser, args.cases, CONVERSIONS)
    variants = ["plain"] + [v for v in machine.parse_list(parser, args.variants, VARIANTS, "variant")
                            if v != "plain"]
    CONVERTER_ROOT = os.path.abspath(args.converter_root)
    if not os.path.isfile(os.path.join(CONVERTER_ROOT, "converter", "__main__.py")):
        parser.error("--converter_root %s holds no converter/" % CONVERTER_ROOT)
    build_sources(sorted({CONVERSIONS[n][0] for n in names}))

    quiet = wait_for_quiet(args.max_load, args.wait_s)
    results = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": args.runs,
               "load_average_before": load_average(), "quiet_machine": quiet, "cases": {},
               "verify_cost": {}, "converter_root": CONVERTER_ROOT}
    results["git_head"], results["working_tree_converter_dirty"] = git_state()
    with tempfile.TemporaryDirectory(prefix="bench_verify_") as tmp:
        commands = {REFERENCE: ([sys.executable, "-c", "import tensorflow"], None)}
        for name in names:
            model, out_fmt = CONVERSIONS[name]
            for variant in variants:
                backends = VARIANTS[variant]
                flags = (["--verify=false"] if backends is None
                         else ["--verify", "--verify_backends", backends])
                commands["%s %s" % (name, variant)] = (
                    [sys.executable, "-m", "converter", source_path(model),
                     os.path.join(tmp, "%s_%s" % (name, variant)), "--input_format", "keras_keras",
                     "--output_format", out_fmt] + flags, backends)
        samples = {case: [] for case in commands}
        loads = []
        for case, (cmd, backends) in commands.items():
            measure(cmd, backends)  # warm the page cache (and prove the command works)
        for i in range(args.runs):
            for case, (cmd, backends) in commands.items():
                samples[case].append(measure(cmd, backends))
            loads.append(os.getloadavg()[0])
            print("round %d/%d done, load %.2f" % (i + 1, args.runs, loads[-1]), flush=True)
        results["load_average_after"] = load_average()
        if args.profile:
            results["profile"] = profile(names, tmp, args.profile_runs)
    results["load_average_1min_during"] = {"median": statistics.median(loads),
                                           "max": max(loads), "all": loads}
    for case, s in samples.items():
        results["cases"][case] = summarize(s)
    for name in names:
        plain = results["cases"]["%s plain" % name]
        for variant in variants[1:]:
            ver = results["cases"]["%s %s" % (name, variant)]
            paired = [(v - p) / p for v, p in zip(ver["wall_s_all"], plain["wall_s_all"])]
            results["verify_cost"]["%s %s" % (name, variant)] = {
                "plain_s": plain["wall_s_median"], "verify_s": ver["wall_s_median"],
                "extra_s": ver["wall_s_median"] - plain["wall_s_median"],
                "ratio_of_medians": (ver["wall_s_median"] - plain["wall_s_median"])
                / plain["wall_s_median"],
                "ratio_paired_median": statistics.median(paired),
                "ratio_paired_min": min(paired), "ratio_paired_max": max(paired)}

    print("%-36s %10s %10s %10s %16s" % ("case", "wall med", "wall min", "wall max",
                                         "peak RSS med/max"))
    for case, r in results["cases"].items():
        print("%-36s %8.2f s %8.2f s %8.2f s %6.0f/%4.0f MiB" % (
            case, r["wall_s_median"], r["wall_s_min"], r["wall_s_max"],
            r["peak_rss_mb_median"], r["peak_rss_mb_max"]))
    print()
    print("%-36s %9s %9s %9s %9s %22s" % ("verify cost", "plain", "verify", "extra",
                                          "ratio", "paired med (min-max)"))
    for case, c in results["verify_cost"].items():
        print("%-36s %7.2f s %7.2f s %7.2f s %8.2fx %8.2fx (%.2f-%.2f)" % (
            case, c["plain_s"], c["verify_s"], c["extra_s"], c["ratio_of_medians"],
            c["ratio_paired_median"], c["ratio_paired_min"], c["ratio_paired_max"]))
    print("converter imported from %s; this tree at HEAD %s%s" % (
        CONVERTER_ROOT, results["git_head"],
        ", its converter/ modified" if results["working_tree_converter_dirty"] else ""))
    print("load average (1 min) before the run %.2f, during: median %.2f, max %.2f, after %.2f%s"
          % (results["load_average_before"][0], results["load_average_1min_during"]["median"],
             results["load_average_1min_during"]["max"], results["load_average_after"][0],
             "" if quiet else " (the machine never got below --max_load)"))
    results["targets"] = []
    for name, variant, limit in TARGETS:
        c = results["verify_cost"].get("%s %s" % (name, variant))
        if c is None:
            continue
        value = c["ratio_of_medians"]
        met = value <= limit
        results["targets"].append({"case": "%s %s" % (name, variant), "value": value,
                                   "limit": limit, "met": met})
        print("target %-36s (verify - plain) / plain %6.2f <= %g: %s"
              % ("%s %s" % (name, variant), value, limit, "MET" if met else "MISSED"))
    if args.profile:
        print()
        print_profile(results["profile"])
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
