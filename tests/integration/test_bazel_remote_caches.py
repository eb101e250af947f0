"""Conversions are served from caches, and a broken cache never breaks the build.

Caches: --disk_cache; an HTTP cache (Debian nginx with WebDAV PUT,
--config=http_cache); a gRPC REAPI cache (BuildGrid 0.4.4, --config=grpc_cache).
All servers listen on 127.0.0.1 and are started and stopped here. A hit is
what Bazel 4.2.3 prints as `N remote cache hit` in `INFO: N processes: ...`
(disk-cache hits included); a build served entirely from a cache executes no
process at all (no worker, linux-sandbox or local).

Degradation: a cache nobody listens on (dead) and one that accepts connections
and never answers (hung), over HTTP and gRPC: the build must succeed locally,
within a bound, and say so in a WARNING.
"""

import re

import pytest

import bazel_harness as bh
import cache_servers

pytestmark = pytest.mark.bazel

TARGETS = bh.labels(bh.MODELS)
# Processes a full build runs: the conversions and the source generator.
CACHEABLE = len(bh.MODELS) + bh.SOURCE_ACTIONS
# .bazelrc's remote configs use --remote_timeout=5 --remote_retries=1; measured
# worst case here is ~11 s (two 5 s timeouts). The bound leaves room for a
# loaded 2-core machine, and is far below the 190 s of Bazel's defaults.
DEGRADED_BUILD_BOUND_S = 60.0


def report(run, what):
    print("%s: %s (%.1f s)" % (what, run.processes_line, run.seconds))


def assert_all_from_cache(run, what):
    report(run, what)
    counts = run.processes
    assert bh.executed(counts) == 0, "%s executed processes: %s\n%s" % (what, counts, run.output)
    assert counts["remote cache hit"] == CACHEABLE, "%s: %s" % (what, counts)


def assert_all_executed(run, what):
    report(run, what)
    counts = run.processes
    assert counts["remote cache hit"] == 0, "%s: %s" % (what, counts)
    assert counts["worker"] == len(bh.MODELS), "%s: %s" % (what, counts)
    assert bh.executed(counts) == CACHEABLE, "%s: %s" % (what, counts)


@pytest.fixture(scope="module")
def reference(checkouts):
    """Output digests of a plain build of checkout a (no cache)."""
    bazel = checkouts["a"]
    bazel.build(TARGETS)
    return bazel.output_digests(bh.MODELS)


def test_disk_cache_serves_a_clean_rebuild(checkouts, reference, tmp_path):
    bazel = checkouts["a"]
    flag = "--disk_cache=%s" % (tmp_path / "disk_cache")
    bazel.clean()
    assert_all_executed(bazel.build(TARGETS, flag), "first build")
    bazel.clean()
    run = bazel.build(TARGETS, flag)
    assert_all_from_cache(run, "rebuild after clean")
    assert bazel.output_digests(bh.MODELS) == reference


def test_http_cache_serves_clean_rebuild_and_other_checkout(checkouts, reference, tmp_path):
    a, b = checkouts["a"], checkouts["b"]
    with cache_servers.nginx_cache(tmp_path / "nginx") as server:
        flags = ("--config=http_cache", "--remote_cache=" + server.url)
        a.clean()
        assert_all_executed(a.build(TARGETS, *flags), "checkout a, empty cache")
        uploads = cache_servers.nginx_requests(server)[("PUT", 201)]
        assert uploads >= 2 * CACHEABLE  # an action result and its outputs per action

        a.clean()
        assert_all_from_cache(a.build(TARGETS, *flags), "checkout a after clean")
        assert a.output_digests(bh.MODELS) == reference

        b.clean()
        assert_all_from_cache(b.build(TARGETS, *flags), "checkout b")
        assert b.output_digests(bh.MODELS) == reference
        requests = cache_servers.nginx_requests(server)
    assert requests[("GET", 200)] >= 2 * 2 * CACHEABLE  # two hits per action, twice
    assert requests[("PUT", 201)] == uploads  # hits upload nothing


def test_grpc_cache_serves_other_checkout(checkouts, reference, tmp_path):
    a, b = checkouts["a"], checkouts["b"]
    with cache_servers.buildgrid_cache(tmp_path / "buildgrid") as server:
        flags = ("--config=grpc_cache", "--remote_cache=" + server.url)
        a.clean()
        assert_all_executed(a.build(TARGETS, *flags), "checkout a, empty cache")
        b.clean()
        run = b.build(TARGETS, *flags)
        assert_all_from_cache(run, "checkout b")
        assert b.output_digests(bh.MODELS) == reference
        remote_warnings = [w for w in run.warnings() if "emote" in w]
        assert remote_warnings == [], remote_warnings


# (config, how the cache is broken) -> what Bazel 4.2.3 warns. Bazel prints a
# WARNING per failed read and write (HTTP), or one for the capabilities query
# at startup, after which the build is fully local (gRPC).
DEGRADED = {
    ("http_cache", "dead"): r"^WARNING: Reading from Remote Cache:\n.*Connection refused",
    ("http_cache", "hung"): r"^WARNING: Reading from Remote Cache:\n.*DownloadTimeoutException",
    ("grpc_cache", "dead"): r"^WARNING: Failed to query remote execution capabilities: "
                            r"Connection refused",
    ("grpc_cache", "hung"): r"^WARNING: Failed to query remote execution capabilities: "
                            r"DEADLINE_EXCEEDED",
}


@pytest.mark.parametrize("config,state", sorted(DEGRADED))
def test_broken_cache_degrades_to_a_local_build(checkouts, reference, config, state):
    bazel = checkouts["a"]
    model = "mlp_0_tfjs"
    bazel.build([bh.label(model)])  # up to date; only the conversion below re-runs
    bazel.delete_outputs([model])
    scheme = "http" if config == "http_cache" else "grpc"

    def build(port):
        url = "%s://127.0.0.1:%d%s" % (scheme, port, "/cache" if scheme == "http" else "")
        return bazel.build([bh.label(model)], "--config=" + config, "--remote_cache=" + url,
                           check=False)

    if state == "dead":
        run = build(cache_servers.free_port())
    else:
        with cache_servers.hung_server() as port:
            run = build(port)
    assert run.returncode == 0, run.output
    assert re.search(DEGRADED[(config, state)], run.output, re.M), run.output
    counts = run.processes
    assert counts["worker"] == 1 and counts["remote cache hit"] == 0, counts
    assert run.seconds < DEGRADED_BUILD_BOUND_S, "%.1f s" % run.seconds
    digests = bazel.output_digests([model])
    assert digests == {k: v for k, v in reference.items() if k in digests}
    report(run, "%s %s: %d warnings" % (config, state, len(run.warnings())))
