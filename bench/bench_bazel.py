"""Benchmarks tfjs_model builds: worker vs one-shot, no-op rebuild, clean rebuild from disk cache.

Runs in a throwaway copy of this working tree (its own Bazel server, shut down
at the end), on the 8 fixture conversions of tests/integration/workspace_pkg,
with --config=ci (2 jobs, at most one TfjsConvert worker). Each figure is the
median of N timed runs of the whole `bazel build` command (client wall time),
after an untimed warm-up run of the same command line.

(a) 8 conversions in one build: worker vs `--strategy=TfjsConvert=sandboxed`.
    Only the conversions run: the source models are built once beforehand, and
    before each run the 8 conversions' outputs are deleted, so Bazel re-executes
    exactly those 8 actions (checked: the run's `INFO: N processes` line must
    show 8 executed processes and nothing else). Source generation, analysis
    and server start are outside every timed run; the warm-up run per mode
    absorbs the analysis Bazel redoes when flags change. "worker, warm" keeps
    the worker process between builds (the everyday case); "worker, cold" adds
    --worker_quit_after_build, so every build starts a new worker and pays its
    imports. Bazel's fixed per-build overhead is inside every figure, which
    understates the ratio rather than flattering it.
(b) No-op rebuild: the same build again with nothing changed.
(c) Clean rebuild from a disk cache: `bazel clean` (untimed), then the build
    with --disk_cache filled by a previous build; every action is a cache hit.

Usage: .venv/bin/python -m bench.bench_bazel [--runs 5]
Writes bench/results/bazel.json.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration"))

import bazel_harness as bh  # noqa: E402  (needs the path above)

RESULTS = ROOT / "bench" / "results" / "bazel.json"
TARGETS = {"worker_speedup_min": 4.0, "noop_rebuild_s_max": 1.0}
CONVERSIONS = len(bh.MODELS)


def check(run, executed, kind=None, hits=0):
    """Fails unless the run executed ``executed`` processes (all of ``kind`` if given) and
    had ``hits`` cache hits: what a case claims to time is what ran."""
    counts = run.processes
    if bh.executed(counts) != executed or counts["remote cache hit"] != hits \
            or (kind is not None and counts[kind] != executed):
        raise SystemExit("bench: `bazel %s` ran %s; want %d executed%s and %d cache hits:\n%s"
                         % (" ".join(run.args), run.processes_line, executed,
                            " " + kind if kind else "", hits, run.output[-3000:]))


def series(name, runs, prepare, build, verify):
    """Warm-up + ``runs`` timed builds; returns a result dict."""
    prepare()
    verify(build())  # warm-up, untimed
    walls, critical = [], []
    for _ in range(runs):
        prepare()
        run = build()
        verify(run)
        walls.append(run.seconds)
        critical.append(run.critical_path_s)
    result = {"runs": runs, "wall_s_median": statistics.median(walls), "wall_s_min": min(walls),
              "wall_s_max": max(walls), "wall_s_all": walls,
              "critical_path_s_median": statistics.median(critical),
              "processes": run.processes_line}
    print("  %-44s median %6.2f s  (min %.2f, max %.2f)  %s"
          % (name, result["wall_s_median"], min(walls), max(walls), run.processes_line),
          flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per case (>= 3)")
    args = parser.parse_args()
    if args.runs < 3:
        parser.error("--runs must be >= 3 (medians of fewer runs mean little)")

    load_before = os.getloadavg()
    workdir = pathlib.Path(tempfile.mkdtemp(prefix="bench_bazel_"))
    bazel = bh.Bazel(bh.make_checkout(workdir / "src"))
    labels = bh.labels(bh.MODELS)
    cases = {}
    try:
        print("bench_bazel: %d conversions, %d timed runs per case, checkout %s"
              % (CONVERSIONS, args.runs, bazel.checkout), flush=True)
        first = bazel.build(labels)  # sources + conversions, server start: untimed
        print("  (setup: first build %.1f s, %s)" % (first.seconds, first.processes_line))

        def delete():
            bazel.delete_outputs(bh.MODELS)

        cases["a_sandboxed"] = series(
            "(a) 8 conversions, one-shot (sandboxed)", args.runs, delete,
            lambda: bazel.build(labels, "--strategy=TfjsConvert=sandboxed"),
            lambda r: check(r, CONVERSIONS, "linux-sandbox"))
        cases["a_worker_cold"] = series(
            "(a) 8 conversions, worker, cold", args.runs, delete,
            lambda: bazel.build(labels, "--strategy=TfjsConvert=worker",
                                "--worker_quit_after_build"),
            lambda r: check(r, CONVERSIONS, "worker"))
        cases["a_worker_warm"] = series(
            "(a) 8 conversions, worker, warm", args.runs, delete,
            lambda: bazel.build(labels, "--strategy=TfjsConvert=worker"),
            lambda r: check(r, CONVERSIONS, "worker"))
        cases["b_noop"] = series(
            "(b) no-op rebuild", args.runs, lambda: None,
            lambda: bazel.build(labels, "--strategy=TfjsConvert=worker"),
            lambda r: check(r, 0))

        disk = "--disk_cache=%s" % (workdir / "disk_cache")
        bazel.clean()
        fill = bazel.build(labels, disk)
        check(fill, CONVERSIONS + bh.SOURCE_ACTIONS)
        print("  (disk cache filled by a clean build: %.1f s, %s)"
              % (fill.seconds, fill.processes_line))
        cases["c_disk_cache_clean_rebuild"] = series(
            "(c) clean rebuild from --disk_cache", args.runs, bazel.clean,
            lambda: bazel.build(labels, disk),
            lambda r: check(r, 0, hits=CONVERSIONS + bh.SOURCE_ACTIONS))
        cases["c_disk_cache_clean_rebuild"]["empty_cache_clean_build_s"] = fill.seconds
    finally:
        bazel.shutdown()
        bh.remove_tree(workdir)

    sandboxed = cases["a_sandboxed"]["wall_s_median"]
    ratios = {"sandboxed_over_worker_warm": sandboxed / cases["a_worker_warm"]["wall_s_median"],
              "sandboxed_over_worker_cold": sandboxed / cases["a_worker_cold"]["wall_s_median"]}
    verdicts = {
        "worker_speedup": ratios["sandboxed_over_worker_warm"] >= TARGETS["worker_speedup_min"],
        "noop_rebuild": cases["b_noop"]["wall_s_median"] <= TARGETS["noop_rebuild_s_max"],
    }
    print()
    print("| case | median wall (s) | min | max | INFO line of the last run |")
    print("|---|---:|---:|---:|---|")
    for key, c in cases.items():
        print("| %s | %.2f | %.2f | %.2f | %s |" % (key, c["wall_s_median"], c["wall_s_min"],
                                                   c["wall_s_max"], c["processes"]))
    print()
    print("worker speedup (sandboxed / worker warm): %.1fx  (target >= %.0fx: %s)"
          % (ratios["sandboxed_over_worker_warm"], TARGETS["worker_speedup_min"],
             "met" if verdicts["worker_speedup"] else "MISSED"))
    print("worker speedup (sandboxed / worker cold): %.1fx" % ratios["sandboxed_over_worker_cold"])
    print("no-op rebuild: %.2f s  (target <= %.1f s: %s)"
          % (cases["b_noop"]["wall_s_median"], TARGETS["noop_rebuild_s_max"],
             "met" if verdicts["noop_rebuild"] else "MISSED"))
    print("clean rebuild from disk cache: %.2f s  (clean build, empty cache: %.2f s)"
          % (cases["c_disk_cache_clean_rebuild"]["wall_s_median"],
             cases["c_disk_cache_clean_rebuild"]["empty_cache_clean_build_s"]))

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"cases": cases, "ratios": ratios, "targets": TARGETS, "targets_met": verdicts,
                   "conversions": CONVERSIONS, "cpus": os.cpu_count(),
                   # Other load on the machine skews every figure; here is how much there was.
                   "loadavg_1_5_15_before": load_before, "loadavg_1_5_15_after": os.getloadavg(),
                   "python": platform.python_version(),
                   "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec="seconds")}, f, indent=2, sort_keys=True)
        f.write("\n")
    print("load average before/after: %.1f / %.1f (%d cpus)"
          % (load_before[0], os.getloadavg()[0], os.cpu_count()))
    print("wrote %s" % RESULTS.relative_to(ROOT))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
