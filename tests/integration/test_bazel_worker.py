"""TfjsConvert worker: one process per build, survives a bad model, writes what one-shot writes.

Evidence that one process did the work, three ways: Bazel's own count
(`INFO: ... 8 worker`), its worker log files (one per worker process it
starts), and the live `worker.py --persistent_worker` processes whose working
directory is this checkout's execroot. --config=ci allows one TfjsConvert
worker (--worker_max_instances=TfjsConvert=1).
"""

import re

import pytest

import bazel_harness as bh

pytestmark = pytest.mark.bazel

TARGETS = bh.labels(bh.MODELS)
# --worker_verbose makes Bazel say when it starts a worker process.
VERBOSE = "--worker_verbose"
_CREATED = re.compile(r"^INFO: Created new non-sandboxed TfjsConvert worker", re.M)


@pytest.fixture(scope="module")
def cold_build(checkouts):
    """A fresh checkout's first build of the 8 conversions: (run, digests, worker pids, logs)."""
    bazel = checkouts["w"]
    run = bazel.build(TARGETS, VERBOSE)
    print("cold build: %s (%.1f s)" % (run.processes_line, run.seconds))
    return run, bazel.output_digests(bh.MODELS), bazel.worker_pids(), bazel.worker_logs()


def test_one_worker_process_converts_every_model(cold_build):
    run, _, pids, logs = cold_build
    counts = run.processes
    assert len(bh.MODELS) >= 6
    assert counts["worker"] == len(bh.MODELS), counts
    assert counts["linux-sandbox"] == bh.SOURCE_ACTIONS, counts  # the source generator only
    assert len(_CREATED.findall(run.output)) == 1, run.output
    assert len(logs) == 1, logs
    assert len(pids) == 1, pids


def test_next_build_reuses_the_warm_worker(checkouts, cold_build):
    bazel = checkouts["w"]
    _, reference, pids, logs = cold_build
    bazel.delete_outputs(bh.MODELS)
    run = bazel.build(TARGETS, VERBOSE)
    assert run.processes["worker"] == len(bh.MODELS), run.processes
    assert _CREATED.findall(run.output) == []
    assert bazel.worker_pids() == pids
    assert bazel.worker_logs() == logs
    assert bazel.output_digests(bh.MODELS) == reference


def test_broken_model_fails_alone_with_one_line(checkouts, cold_build):
    bazel = checkouts["w"]
    _, reference, pids, _ = cold_build
    bazel.delete_outputs(bh.MODELS)  # so the good ones run through the worker with it
    run = bazel.build(TARGETS + [bh.label(bh.BROKEN)], VERBOSE, "--keep_going",
                      check=False)
    assert run.returncode == 1, run.output  # 1: build failed (not a crash, not a bad command)
    errors = run.errors()
    assert len(errors) == 1, errors
    assert re.match(r"ERROR: .*/workspace_pkg/BUILD:\d+:\d+: Converting %s to tfjs_layers_model "
                    r"failed: \(Exit 1\)" % re.escape(bh.label(bh.BROKEN)), errors[0]), errors[0]
    message = [l for l in run.output.splitlines() if l.startswith("tfjs_converter: error: ")]
    assert message == ["tfjs_converter: error: bazel-out/k8-fastbuild/bin/%s/broken.h5: not an "
                       "HDF5 file, .keras archive, model.json or .pb; pass --input_format"
                       % bh.PACKAGE], run.output
    assert "Traceback" not in run.output
    # The others converted, in the same worker, which lived on.
    assert run.processes["worker"] == len(bh.MODELS), run.processes
    assert bazel.output_digests(bh.MODELS) == reference
    assert bazel.worker_pids() == pids


def test_worker_output_is_byte_identical_to_one_shot_output(checkouts, cold_build):
    bazel = checkouts["w"]
    _, reference, _, _ = cold_build
    bazel.delete_outputs(bh.MODELS)
    run = bazel.build(TARGETS, "--strategy=TfjsConvert=sandboxed")
    counts = run.processes
    assert counts["linux-sandbox"] == len(bh.MODELS) and counts["worker"] == 0, counts
    one_shot = bazel.output_digests(bh.MODELS)
    assert sorted(one_shot) == sorted(reference)
    assert sorted(p for p in reference if reference[p] != one_shot[p]) == []
