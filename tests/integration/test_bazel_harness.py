"""Unit tests of the integration tier's own parsing and copying (no Bazel run)."""

import subprocess

import pytest

import bazel_harness as bh
import cache_servers


@pytest.mark.parametrize("line,want", [
    # As Bazel 4.2.3 prints them (bazel_offline.md, buildgrid_cache.md, this tier).
    ("INFO: 29 processes: 10 remote cache hit, 19 internal.",
     {"total": 29, "remote cache hit": 10, "internal": 19}),
    ("INFO: 10 processes: 1 internal, 1 linux-sandbox, 8 worker.",
     {"total": 10, "internal": 1, "linux-sandbox": 1, "worker": 8}),
    ("INFO: 1 process: 1 internal.", {"total": 1, "internal": 1}),
    ("INFO: 10 processes: 2 remote cache hit, 7 internal, 1 linux-sandbox.",
     {"total": 10, "remote cache hit": 2, "internal": 7, "linux-sandbox": 1}),
])
def test_parse_processes(line, want):
    out = "INFO: Elapsed time: 0.5s, Critical Path: 0.03s\n%s\nINFO: Build completed\n" % line
    assert dict(bh.parse_processes(out)) == want


def test_parse_processes_takes_the_last_line_and_counts_executed():
    out = ("INFO: 3 processes: 3 internal.\n"
           "INFO: 12 processes: 2 internal, 1 linux-sandbox, 8 worker, 1 local.\n")
    counts = bh.parse_processes(out)
    assert counts["total"] == 12
    assert bh.executed(counts) == 10
    assert bh.executed(bh.parse_processes("INFO: 9 processes: 9 remote cache hit.")) == 0


@pytest.mark.parametrize("out", ["", "INFO: Build completed successfully, 1 total action",
                                 "INFO: 5 processes: 2 internal, 2 worker."])
def test_parse_processes_rejects_missing_or_inconsistent_lines(out):
    with pytest.raises(ValueError):
        bh.parse_processes(out)


def test_run_accessors():
    run = bh.Run(["build"], 0, "WARNING: Reading from Remote Cache:\nERROR: x\n"
                 "INFO: Elapsed time: 1.2s, Critical Path: 0.40s\nINFO: 2 processes: 2 internal.\n",
                 1.0)
    assert run.warnings() == ["WARNING: Reading from Remote Cache:"]
    assert run.errors() == ["ERROR: x"]
    assert run.critical_path_s == 0.40
    assert run.processes_line == "INFO: 2 processes: 2 internal."


def test_checkout_copies_untracked_work_but_no_outputs(tmp_path):
    repo = tmp_path / "repo"
    for rel in ["WORKSPACE", "pkg/BUILD", "pkg/new_untracked.py", ".bazel_root/x/out",
                "bazel-bin/out", ".venv/bin/python", "js/node_modules/m/index.js",
                "pkg/__pycache__/a.pyc", "ignored.log"]:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(rel)
    (repo / ".gitignore").write_text("*.log\n")
    (repo / "link").symlink_to("WORKSPACE")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(["git", "-C", str(repo), "add", "WORKSPACE", "pkg/BUILD", ".gitignore"],
                   check=True)
    (repo / "pkg" / "BUILD").write_text("edited, not committed")

    dest = bh.make_checkout(tmp_path / "copy", root=repo)
    copied = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if not p.is_dir())
    assert copied == [".gitignore", "WORKSPACE", "link", "pkg/BUILD", "pkg/new_untracked.py"]
    assert (dest / "pkg" / "BUILD").read_text() == "edited, not committed"
    assert (dest / "link").is_symlink()


def test_free_port_is_free_and_hung_server_accepts_without_answering():
    import socket
    with cache_servers.hung_server() as port:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /cache/ac/0 HTTP/1.1\r\nHost: x\r\n\r\n")
            conn.settimeout(0.5)
            with pytest.raises(socket.timeout):
                conn.recv(1)
    port = cache_servers.free_port()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0
