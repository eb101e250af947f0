"""Atomic outputs after a kill, next to live runs, and when the output side fails.

Leftovers come from real child processes killed with SIGKILL; output-side
failures from a real full filesystem (a tmpfs, when it can be mounted), a real
file-size limit, a real read-only or unwritable parent and, where no real one is
available, a writer whose writes fail with ENOSPC.
"""

import errno
import io
import os
import resource
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from converter import cli
from converter.errors import ConversionError
from converter.model import LayersModel, Tensor
from converter.output import atomic_directory, atomic_file
from converter.weights import writer as weights_writer
from converter.writers.tfjs_layers import write_tfjs_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT)
TOKEN = "0123456789abcdef"  # a run's token: 16 hex digits

# Holds an output open in a child: writes model.json, prints the temp dir, then
# waits for a line on stdin (or a SIGKILL).
HOLD_DIRECTORY = textwrap.dedent("""
    import os, sys
    from converter.output import atomic_directory
    with atomic_directory(sys.argv[1]) as tmp:
        with open(os.path.join(tmp, "model.json"), "w") as f:
            f.write(sys.argv[2])
        print(tmp, flush=True)
        sys.stdin.readline()
""")
HOLD_FILE = textwrap.dedent("""
    import sys
    from converter.output import atomic_file
    with atomic_file(sys.argv[1]) as tmp:
        with open(tmp, "w") as f:
            f.write(sys.argv[2])
        print(tmp, flush=True)
        sys.stdin.readline()
""")
# Kills itself at the worst moment of a replacement: the previous output moved
# aside, the new one not yet moved in.
KILL_BETWEEN_RENAMES = textwrap.dedent("""
    import os, signal, sys
    from converter.output import atomic_directory
    out = os.path.abspath(sys.argv[1])
    real_rename = os.rename
    def rename(src, dst):
        if os.path.abspath(dst) == out:
            os.kill(os.getpid(), signal.SIGKILL)
        real_rename(src, dst)
    os.rename = rename
    with atomic_directory(out) as tmp:
        with open(os.path.join(tmp, "model.json"), "w") as f:
            f.write(sys.argv[2])
""")
# The real CLI, stopped (printing the temp dir) once the writer has written
# every file and before the output is swapped in.
CLI_HELD_AFTER_WRITING = textwrap.dedent("""
    import sys
    from converter import cli
    from converter.writers import tfjs_layers
    real_write = tfjs_layers.write_tfjs_layers
    def write(model, directory, *args, **kwargs):
        real_write(model, directory, *args, **kwargs)
        print(directory, flush=True)
        sys.stdin.readline()
    tfjs_layers.write_tfjs_layers = write
    sys.exit(cli.main(sys.argv[1:]))
""")


class Holder:
    """A child process inside ``atomic_directory``/``atomic_file``, its temp path known."""

    def __init__(self, script, *args):
        self.proc = subprocess.Popen([sys.executable, "-c", script, *map(str, args)], env=ENV,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.tmp = self.proc.stdout.readline().strip()
        assert self.tmp, "child exited early with %s" % self.proc.wait()

    def kill(self):
        self.proc.kill()
        assert self.proc.wait() == -signal.SIGKILL

    def release(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.close()
        return self.proc.wait()


@pytest.fixture
def holders():
    started = []

    def start(script, *args):
        started.append(Holder(script, *args))
        return started[-1]
    yield start
    for h in started:
        if h.proc.poll() is None:
            h.kill()
        h.proc.stdout.close()


def write_dir(path, text):
    with atomic_directory(str(path)) as tmp:
        with open(os.path.join(tmp, "model.json"), "w") as f:
            f.write(text)


def siblings(parent, base):
    return sorted(n for n in os.listdir(parent) if n.startswith(".%s." % base))


def tree(path):
    """``{relative path: bytes}`` of every file under ``path`` (or of ``path`` itself)."""
    if os.path.isfile(path):
        with open(path, "rb") as f:
            return {"": f.read()}
    out = {}
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            full = os.path.join(dirpath, name)
            with open(full, "rb") as f:
                out[os.path.relpath(full, path)] = f.read()
    return out


def make_layers_model(directory, units):
    """A TF.js layers model: one Dense(units) on ``units`` inputs, float32 weights."""
    rng = np.random.default_rng(units)
    topology = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "Dense", "config": {"name": "dense", "units": units,
                                           "batch_input_shape": [None, units]}}]}}
    tensors = [Tensor("dense/kernel", rng.standard_normal((units, units)).astype(np.float32),
                      "float32"),
               Tensor("dense/bias", rng.standard_normal(units).astype(np.float32), "float32")]
    model = LayersModel({"model_config": topology, "keras_version": "3.15.1",
                         "backend": "tensorflow"}, (tensors,), generated_by="keras v3.15.1")
    os.makedirs(directory, exist_ok=True)
    write_tfjs_layers(model, str(directory))
    return str(directory)


def run_cli(*args, preexec_fn=None):
    proc = subprocess.run([sys.executable, "-m", "converter", *map(str, args)], env=ENV,
                          capture_output=True, text=True, preexec_fn=preexec_fn)
    return proc.returncode, proc.stdout, proc.stderr


def assert_one_line_error(code, stderr, message):
    assert "Traceback" not in stderr
    assert (code, stderr) == (1, "tfjs_converter: error: %s\n" % message)


# (A) Leftovers of killed runs.

def test_killed_run_leftovers_are_removed_by_the_next_run(tmp_path, holders):
    out = tmp_path / "out"
    write_dir(out, "previous")
    killed = holders(HOLD_DIRECTORY, out, "killed")
    killed.kill()
    left = siblings(tmp_path, "out")
    assert [n.split("-")[0] for n in left] == [".out.lock", ".out.tmp"]
    assert os.path.basename(killed.tmp) in left
    assert tree(killed.tmp) == {"model.json": b"killed"}
    assert tree(out) == {"model.json": b"previous"}

    write_dir(out, "new")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert tree(out) == {"model.json": b"new"}


def test_killed_file_run_leftovers_are_removed_by_the_next_run(tmp_path, holders):
    out = tmp_path / "m.h5"
    killed = holders(HOLD_FILE, out, "killed")
    killed.kill()
    assert len(siblings(tmp_path, "m.h5")) == 2 and not out.exists()
    with atomic_file(str(out)) as tmp:
        with open(tmp, "w") as f:
            f.write("new")
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]
    assert out.read_text() == "new"


def test_kill_between_the_renames_restores_the_previous_output(tmp_path):
    out = tmp_path / "out"
    write_dir(out, "previous")
    proc = subprocess.run([sys.executable, "-c", KILL_BETWEEN_RENAMES, str(out), "killed"],
                          env=ENV)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # the previous output sits in the killed run's .old- sibling
    assert [n.split("-")[0] for n in siblings(tmp_path, "out")] == [
        ".out.lock", ".out.old", ".out.tmp"]

    with pytest.raises(RuntimeError):  # a run that fails after reaping: the previous output
        with atomic_directory(str(out)):  # is back, nothing else is left
            raise RuntimeError("conversion failed")
    assert sorted(os.listdir(tmp_path)) == ["out"]
    assert tree(out) == {"model.json": b"previous"}


def test_live_run_in_another_process_is_not_reaped(tmp_path, holders):
    out = tmp_path / "out"
    live = holders(HOLD_DIRECTORY, out, "live")
    write_dir(out, "mine")  # reaps before and while the other run holds its temp dir
    assert tree(out) == {"model.json": b"mine"}
    assert tree(live.tmp) == {"model.json": b"live"}
    assert live.release() == 0  # the other run then completes, as the last writer
    assert tree(out) == {"model.json": b"live"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_live_runs_in_one_process_keep_each_other(tmp_path):
    out = tmp_path / "out"
    with atomic_directory(str(out)) as outer:
        with open(os.path.join(outer, "model.json"), "w") as f:
            f.write("outer")
        write_dir(out, "inner")
        assert tree(outer) == {"model.json": b"outer"}
    assert tree(out) == {"model.json": b"outer"}
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_leftovers_of_other_outputs_are_kept(tmp_path, holders):
    # "out.tmp-<token>" is the name whose siblings look most like those of "out".
    lookalike = "out.tmp-" + TOKEN
    for name in (lookalike, "other", "out2"):
        holders(HOLD_DIRECTORY, tmp_path / name, name).kill()
    legacy = tmp_path / ".out.tmp-k2x9_q1z"  # mkdtemp name of an older converter: owner unknown
    legacy.mkdir()
    before = sorted(os.listdir(tmp_path))

    write_dir(tmp_path / "out", "new")
    assert sorted(os.listdir(tmp_path)) == sorted(before + ["out"])

    write_dir(tmp_path / lookalike, "new")  # each output reaps its own
    assert not siblings(tmp_path, lookalike)
    assert len(siblings(tmp_path, "other")) == 2 and len(siblings(tmp_path, "out2")) == 2


def test_symlinked_leftovers_are_unlinked_not_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "model.json").write_text("keep me")
    parent = tmp_path / "p"
    parent.mkdir()
    # A stale run whose temp and old siblings are links to a model directory, and
    # one whose lock itself is a link to a file.
    (parent / (".out.lock-" + TOKEN)).write_text("")
    os.symlink(victim, parent / (".out.tmp-" + TOKEN))
    os.symlink(victim, parent / (".out.old-" + TOKEN))
    other = "fedcba9876543210"
    os.symlink(victim / "model.json", parent / (".out.lock-" + other))
    os.symlink(victim, parent / (".out.tmp-" + other))

    write_dir(parent / "out", "new")
    assert sorted(os.listdir(parent)) == ["out"]
    assert tree(parent / "out") == {"model.json": b"new"}
    assert sorted(os.listdir(victim)) == ["model.json"]
    assert (victim / "model.json").read_text() == "keep me"


def test_cli_killed_mid_run_then_rerun(tmp_path, holders):
    src = make_layers_model(tmp_path / "src", 8)
    ref = tmp_path / "ref" / "out"
    assert run_cli(src, ref, "--output_format=tfjs_layers_model")[0] == 0
    out = tmp_path / "out"
    killed = holders(CLI_HELD_AFTER_WRITING, src, out, "--output_format=tfjs_layers_model")
    assert sorted(os.listdir(killed.tmp)) == ["group1-shard1of1.bin", "model.json"]
    killed.kill()
    assert len(siblings(tmp_path, "out")) == 2 and not out.exists()

    code, stdout, stderr = run_cli(src, out, "--output_format=tfjs_layers_model")
    assert (code, stderr) == (0, "")
    assert sorted(os.listdir(tmp_path)) == ["out", "ref", "src"]
    assert tree(out) == tree(ref)


# (B) Output-side errors: one line naming the output and the reason.

@pytest.fixture
def small_fs(tmp_path):
    """A 128 KiB tmpfs (needs root, or skips)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the ENOSPC writer test covers this path")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode:
        pytest.skip("cannot mount a tmpfs here: %s" % proc.stderr.strip())
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("output_format,name", [("tfjs_layers_model", "out"),
                                                ("keras", "m.h5")])
def test_full_filesystem_is_one_line_error(tmp_path, small_fs, output_format, name):
    out = small_fs / name
    assert run_cli(make_layers_model(tmp_path / "small_src", 4), out,
                   "--output_format=%s" % output_format)[0] == 0
    previous = tree(out)
    src = make_layers_model(tmp_path / "src", 256)  # a 257 KiB shard: cannot fit
    code, _, stderr = run_cli(src, out, "--output_format=%s" % output_format)
    assert_one_line_error(code, stderr, "cannot write output %s: No space left on device" % out)
    assert tree(out) == previous
    assert sorted(os.listdir(small_fs)) == [name]


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))


@pytest.mark.parametrize("output_format,name", [("tfjs_layers_model", "out"),
                                                ("keras", "m.h5")])
def test_file_size_limit_is_one_line_error(tmp_path, output_format, name):
    out = tmp_path / name
    src = make_layers_model(tmp_path / "src", 256)
    assert run_cli(make_layers_model(tmp_path / "small_src", 4), out,
                   "--output_format=%s" % output_format)[0] == 0
    previous = tree(out)
    code, _, stderr = run_cli(src, out, "--output_format=%s" % output_format,
                              preexec_fn=_limit_file_size)
    assert_one_line_error(code, stderr, "cannot write output %s: File too large" % out)
    assert tree(out) == previous
    assert sorted(os.listdir(tmp_path)) == sorted([name, "small_src", "src"])


class _FullFile(io.BytesIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_no_space_while_writing_shards_is_one_line_error(tmp_path, monkeypatch, capsys):
    src = make_layers_model(tmp_path / "src", 4)
    out = tmp_path / "out"
    write_dir(out, "previous")
    real_open = open

    def full_open(file, mode="r", *args, **kwargs):
        if "w" in mode and os.path.basename(str(file)).startswith("group1-shard"):
            real_open(file, mode, *args, **kwargs).close()
            return _FullFile()
        return real_open(file, mode, *args, **kwargs)
    monkeypatch.setattr(weights_writer, "open", full_open, raising=False)
    code = cli.main([src, str(out), "--output_format=tfjs_layers_model"])
    assert_one_line_error(code, capsys.readouterr().err,
                          "cannot write output %s: No space left on device" % out)
    assert tree(out) == {"model.json": b"previous"}
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]


def test_hdf5_style_error_reports_its_errno(tmp_path):
    out = tmp_path / "m.h5"
    out.write_bytes(b"previous")
    hdf5 = OSError(errno.ENOSPC, "Can't synchronously write data (file write failed: time = "
                   "...\n, errno = 28, error message = 'No space left on device')")
    with pytest.raises(ConversionError) as raised:
        with atomic_file(str(out)):
            raise hdf5
    assert str(raised.value) == "cannot write output %s: No space left on device" % out
    assert raised.value.__cause__ is hdf5
    assert sorted(os.listdir(tmp_path)) == ["m.h5"] and out.read_bytes() == b"previous"


def test_unrelated_os_error_in_the_conversion_is_not_relabelled(tmp_path):
    missing = OSError(errno.ENOENT, "No such file or directory", str(tmp_path / "elsewhere"))
    with pytest.raises(OSError) as raised:
        with atomic_directory(str(tmp_path / "out")):
            raise missing
    assert raised.value is missing
    assert os.listdir(tmp_path) == []


@pytest.fixture
def unwritable_dir(tmp_path):
    """A directory holding a previous output that this process cannot write to.

    Yields ``(directory, strerror)``: mode 0o555 for a normal user; for root, who
    ignores modes, a read-only bind mount of it.
    """
    d = tmp_path / "ro"
    d.mkdir()
    assert run_cli(make_layers_model(tmp_path / "src", 4), d / "out",
                   "--output_format=tfjs_layers_model")[0] == 0
    if os.geteuid() != 0:
        d.chmod(0o555)
        yield d, os.strerror(errno.EACCES)
        d.chmod(0o755)
        return
    for argv in (["mount", "--bind", str(d), str(d)],
                 ["mount", "-o", "remount,bind,ro", str(d)]):
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode:
            if argv[1] != "--bind":
                subprocess.run(["umount", str(d)], check=True)
            pytest.skip("root needs a read-only bind mount here, which failed: %s"
                        % proc.stderr.strip())
    yield d, os.strerror(errno.EROFS)
    subprocess.run(["umount", str(d)], check=True)


def test_unwritable_parent_is_one_line_error_and_keeps_the_output(tmp_path, unwritable_dir):
    d, reason = unwritable_dir
    out = d / "out"
    previous = tree(out)
    code, _, stderr = run_cli(tmp_path / "src", out, "--output_format=tfjs_layers_model")
    assert_one_line_error(code, stderr, "cannot write output %s: %s" % (out, reason))
    assert tree(out) == previous
    assert sorted(os.listdir(d)) == ["out"]


def test_output_under_sysfs_is_one_line_error(tmp_path):
    if not os.path.ismount("/sys"):
        pytest.skip("/sys is not mounted")
    parent = "/sys/tfjs-converter-test-%d" % os.getpid()
    try:
        os.mkdir(parent)
    except OSError as e:
        reason = os.strerror(e.errno)  # what sysfs says to this user (EPERM for root)
    else:
        os.rmdir(parent)
        pytest.skip("/sys accepted a new directory")
    src = make_layers_model(tmp_path / "src", 4)
    out = parent + "/out"
    code, _, stderr = run_cli(src, out, "--output_format=tfjs_layers_model")
    assert_one_line_error(code, stderr, "cannot write output %s: %s: %s" % (out, parent, reason))


def test_ancestor_that_is_a_file_is_one_line_error(tmp_path):
    src = make_layers_model(tmp_path / "src", 4)
    (tmp_path / "f").write_text("not a directory")
    out = tmp_path / "f" / "sub" / "out"
    code, _, stderr = run_cli(src, out, "--output_format=tfjs_layers_model")
    assert_one_line_error(code, stderr, "cannot write output %s: %s: Not a directory"
                          % (out, tmp_path / "f" / "sub"))
    assert (tmp_path / "f").read_text() == "not a directory"



def test_error_hidden_by_cleanup_is_reported_and_conversion_errors_pass(tmp_path):
    out = tmp_path / "m.h5"
    with pytest.raises(ConversionError) as raised:
        with atomic_file(str(out)):
            try:
                raise OSError(errno.ENOSPC, "write failed")
            finally:  # what h5py's close does after a failed write
                raise RuntimeError("Can't decrement id ref count")
    assert str(raised.value) == "cannot write output %s: No space left on device" % out

    reader_error = ConversionError("m.json: cannot read: Permission denied")
    with pytest.raises(ConversionError) as raised:
        with atomic_file(str(out)):
            try:
                raise OSError(errno.EFBIG, "File too large")
            except OSError:
                raise reader_error
    assert raised.value is reader_error
    assert os.listdir(tmp_path) == []
