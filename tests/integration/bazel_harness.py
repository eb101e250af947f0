"""Drives Bazel as a subprocess in throwaway checkouts, and parses what it prints.

Shared by the integration tests (tests/integration/test_*.py) and the benchmark
(bench/bench_bazel.py). A checkout is a copy of this working tree, tracked and
untracked files alike (uncommitted work included), minus every output tree and
environment; tools/bazel then gives it its own output root, so its own Bazel
server. Callers must `shutdown()` every Bazel they start (the server and its
persistent workers); `--max_idle_secs` ends a forgotten one anyway.
"""

import collections
import dataclasses
import hashlib
import os
import pathlib
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from typing import Counter, Dict, Iterable, List, Optional, Sequence

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = "tests/integration/workspace_pkg"

# The fixture conversions (see workspace_pkg/BUILD) and their sources: plain,
# sharded, quantized to each dtype, split by layer, from .h5 and .keras.
MODELS = {
    "mlp_0_tfjs": "mlp_0.h5",
    "wide_1_sharded_tfjs": "wide_1.h5",
    "conv_2_uint8_tfjs": "conv_2.h5",
    "bn_3_float16_tfjs": "bn_3.h5",
    "embed_4_split_tfjs": "embed_4.h5",
    "mlp_5_uint16_tfjs": "mlp_5.h5",
    "wide_6_split_sharded_tfjs": "wide_6.keras",
    "conv_7_tfjs": "conv_7.keras",
}
BROKEN = "broken_tfjs"
# Actions that are not conversions but run a process: the one source generator.
SOURCE_ACTIONS = 1

# Orphan safety only: tests shut their servers down explicitly.
STARTUP_FLAGS = ("--max_idle_secs=900",)
COMMAND_TIMEOUT_S = 900
SHUTDOWN_TIMEOUT_S = 90
# Strategies that mean "this action ran here", as Bazel 4.2.3 names them in
# `INFO: N processes: ...`; "internal" (file writes, symlinks) and
# "remote cache hit" (disk or remote cache) mean it did not.
EXECUTED_KINDS = ("worker", "linux-sandbox", "processwrapper-sandbox", "sandboxed", "local",
                  "remote", "standalone")

_PROCESSES = re.compile(r"^INFO: (\d+) process(?:es)?(?:: (.*?))?\.?$", re.M)
_KIND = re.compile(r"^(\d+) (.+)$")
# Anything under these path components is output or environment, never source.
_SKIP_PARTS = {".bazel_root", ".venv", "node_modules", "__pycache__", ".pytest_cache", ".git"}


def label(name: str) -> str:
    return "//%s:%s" % (PACKAGE, name)


def labels(names: Iterable[str]) -> List[str]:
    return [label(n) for n in names]


def parse_processes(output: str) -> Counter:
    """The last ``INFO: N processes: a x, b y.`` line of a Bazel run, as {kind: count}.

    The total is under the key ``"total"``. Raises ValueError when there is none
    (e.g. Bazel failed before executing anything).
    """
    matches = list(_PROCESSES.finditer(output))
    if not matches:
        raise ValueError("no 'INFO: N processes' line in Bazel's output")
    total, kinds = matches[-1].groups()
    counts: Counter = collections.Counter({"total": int(total)})
    for part in (kinds or "").split(", "):
        if not part:
            continue
        m = _KIND.match(part.strip())
        if not m:
            raise ValueError("cannot parse %r in %r" % (part, matches[-1].group(0)))
        counts[m.group(2)] += int(m.group(1))
    if sum(v for k, v in counts.items() if k != "total") != counts["total"]:
        raise ValueError("kinds do not add up to the total in %r" % matches[-1].group(0))
    return counts


def executed(counts: Counter) -> int:
    """How many processes of a parsed INFO line actually ran (not cached, not internal)."""
    return sum(counts[k] for k in EXECUTED_KINDS)


@dataclasses.dataclass
class Run:
    """One finished Bazel command.

    Attributes:
      args: the command line after `bazel`.
      returncode: Bazel's exit code.
      output: stdout and stderr, interleaved as printed.
      seconds: wall time of the client, server start included.
    """

    args: List[str]
    returncode: int
    output: str
    seconds: float

    @property
    def processes(self) -> Counter:
        return parse_processes(self.output)

    @property
    def processes_line(self) -> str:
        """The last `INFO: N processes: ...` line as printed (for logs and reports)."""
        matches = list(_PROCESSES.finditer(self.output))
        return matches[-1].group(0) if matches else "(no processes line)"

    @property
    def critical_path_s(self) -> float:
        """Bazel's `Critical Path: X s` (the execution phase's longest chain)."""
        m = re.findall(r"Critical Path: ([\d.]+)s", self.output)
        return float(m[-1]) if m else float("nan")

    def warnings(self) -> List[str]:
        return [l for l in self.output.splitlines() if l.startswith("WARNING: ")]

    def errors(self) -> List[str]:
        return [l for l in self.output.splitlines() if l.startswith("ERROR: ")]


class BazelError(AssertionError):
    """A Bazel command failed when it should not have; carries its output's tail."""


class Bazel:
    """The Bazel of one checkout (its own server, via the checkout's tools/bazel)."""

    def __init__(self, checkout: pathlib.Path):
        self.checkout = pathlib.Path(checkout)
        self._output_base: Optional[pathlib.Path] = None
        # Every command, its timing and full output, next to the checkout.
        self.log = self.checkout.parent / "bazel_commands.log"

    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> Run:
        argv = ["bazel", *STARTUP_FLAGS, *args]
        with open(self.log, "a") as log:
            log.write("\n=== %s bazel %s\n" % (time.strftime("%H:%M:%S"), " ".join(args)))
        start = time.monotonic()
        # Output to a file, not a pipe: a process that inherits a pipe (a server,
        # a worker) could keep the read open after the client has exited.
        with tempfile.TemporaryFile("w+", errors="replace") as out:
            proc = subprocess.run(argv, cwd=self.checkout, stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=_bazel_env())
            out.seek(0)
            run = Run(list(args), proc.returncode, out.read(), time.monotonic() - start)
        with open(self.log, "a") as log:
            log.write(run.output)
            log.write("=== %s exit %d after %.1f s\n" % (time.strftime("%H:%M:%S"),
                                                        run.returncode, run.seconds))
        if check and run.returncode != 0:
            tail = "\n".join(run.output.splitlines()[-40:])
            raise BazelError("`bazel %s` in %s exited %d:\n%s"
                             % (" ".join(args), self.checkout, run.returncode, tail))
        return run

    def build(self, targets: Sequence[str], *flags: str, check: bool = True) -> Run:
        """`bazel build --config=ci FLAGS TARGETS` (2 jobs, one TfjsConvert worker, keep going)."""
        return self.run("build", "--config=ci", *flags, *targets, check=check)

    def clean(self) -> Run:
        """`bazel clean`: drops outputs and the local action cache, ends the workers."""
        return self.run("clean")

    @property
    def output_base(self) -> pathlib.Path:
        if self._output_base is None:
            self._output_base = pathlib.Path(self.run("info", "output_base").output.strip()
                                             .splitlines()[-1])
        return self._output_base

    @property
    def bin_dir(self) -> pathlib.Path:
        return self.output_base / "execroot" / "tfjs_rules" / "bazel-out" / "k8-fastbuild" / "bin"

    def server_pid(self) -> Optional[int]:
        """The running server's pid, found without asking (and so starting) a server."""
        # tools/bazel puts every output base of this checkout under .bazel_root.
        for pid_file in sorted(self.checkout.glob(".bazel_root/*/server/server.pid.txt")):
            try:
                return int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
        return None

    def worker_pids(self) -> List[int]:
        """Live TfjsConvert persistent workers of this checkout (cwd in its execroot)."""
        execroot = str(self.output_base / "execroot")
        pids = []
        for entry in pathlib.Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                cwd = os.readlink(entry / "cwd")
            except OSError:
                continue
            is_worker = b"--persistent_worker" in cmdline and \
                any(a.endswith(b"worker.py") for a in cmdline)
            if is_worker and cwd.startswith(execroot):
                pids.append(int(entry.name))
        return sorted(pids)

    def worker_logs(self) -> List[pathlib.Path]:
        """Bazel's per-worker log files (one per worker process it ever started here)."""
        return sorted((self.output_base / "bazel-workers").glob("worker-*-TfjsConvert.log"))

    def shutdown(self) -> None:
        """Stops the server (and so its workers); kills it by pid if it will not stop."""
        pid = self.server_pid()
        try:
            # The client itself waits up to 60 s for the server to exit.
            self.run("shutdown", timeout=SHUTDOWN_TIMEOUT_S)
        except (BazelError, subprocess.TimeoutExpired):
            pass
        if pid is not None and _alive(pid):
            # Its workers see their stdin close and exit by themselves.
            os.kill(pid, signal.SIGKILL)

    # --- outputs ---------------------------------------------------------

    def output_files(self, names: Iterable[str]) -> List[pathlib.Path]:
        """Every file a tfjs_model target produced: its directory's files and its summary."""
        files = []
        for name in names:
            directory = self.bin_dir / PACKAGE / name
            found = sorted(p for p in directory.iterdir() if p.is_file())
            if not found:
                raise AssertionError("%s produced no files in %s" % (label(name), directory))
            files.extend(found)
            files.append(self.bin_dir / PACKAGE / (name + ".summary.json"))
        return files

    def output_digests(self, names: Iterable[str]) -> Dict[str, str]:
        """{path relative to bazel-bin: sha256} of every output file of ``names``."""
        return {str(p.relative_to(self.bin_dir)): sha256_file(p) for p in self.output_files(names)}

    def delete_outputs(self, names: Iterable[str]) -> None:
        """Removes the outputs of ``names``, so the next build re-runs just those actions."""
        for name in names:
            for path in (self.bin_dir / PACKAGE / name,
                         self.bin_dir / PACKAGE / (name + ".summary.json")):
                if path.is_dir():
                    remove_tree(path)
                elif path.exists():
                    path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _bazel_env() -> Dict[str, str]:
    env = dict(os.environ)
    # The pytest process's own Python settings must not reach Bazel's repository
    # rules (they run pip and python3 from PATH).
    for key in ("PYTHONPATH", "PYTHONHOME", "PYTEST_CURRENT_TEST", "PYTEST_XDIST_WORKER"):
        env.pop(key, None)
    return env


def sha256_file(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def remove_tree(path: pathlib.Path) -> None:
    """rm -rf that also removes Bazel's read-only outputs."""
    def make_writable_and_retry(func, p, _):
        os.chmod(os.path.dirname(p), stat.S_IRWXU)
        if os.path.isdir(p) and not os.path.islink(p):
            os.chmod(p, stat.S_IRWXU)
        func(p)
    shutil.rmtree(path, onerror=make_writable_and_retry)


def source_files(root: pathlib.Path = ROOT) -> List[str]:
    """This working tree's files as git sees them: tracked and untracked, not ignored.

    Output trees and environments are left out even if .gitignore stops
    covering them.
    """
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=root, check=True, stdout=subprocess.PIPE).stdout
    out = []
    for rel in sorted(set(listed.decode().split("\0"))):
        if not rel:
            continue
        parts = rel.split("/")
        if parts[0].startswith("bazel-") or _SKIP_PARTS.intersection(parts):
            continue
        if os.path.lexists(root / rel):  # tracked but deleted in the working tree: skip
            out.append(rel)
    return out


def make_checkout(dest: pathlib.Path, root: pathlib.Path = ROOT) -> pathlib.Path:
    """Copies this working tree (see source_files) to ``dest``; returns ``dest``."""
    dest = pathlib.Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    for rel in source_files(root):
        src, dst = root / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest
