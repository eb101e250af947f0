"""TensorFlow's start-up log noise, kept out of the CLI's and the Bazel actions' output.

Importing TensorFlow 2.21 and running its first op prints oneDNN, cudart_stub,
cuInit, CPU-feature and Grappler notices on stderr, and absl/TensorFlow
Python loggers add their warnings. ``quiet()`` is what the command line (and
so the Bazel worker, which runs it) does unless ``--debug`` is given:

1. before TensorFlow is imported, ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the
   caller's environment sets it), which silences what TensorFlow logs after
   absl's logging is initialized;
2. the ``tensorflow`` and ``absl`` Python loggers at ERROR;
3. while the conversion runs, file descriptor 2 goes through a filter that
   drops the lines native code logs before absl is initialized (no
   environment variable of this TensorFlow turns those off): absl-format
   INFO/WARNING lines (``I0000 00:00:... port.cc:153] ...``), the
   "All log messages before absl::InitializeLog()" banner, the CPU-feature
   notice's second line and the CUDA-probe errors of a machine without a GPU.
   Everything else written to fd 2 (our own messages, a native crash report)
   passes through unchanged and in order.
"""

import contextlib
import os
import re
import sys
import threading
from typing import Iterator

LOG_LEVEL_VAR = "TF_CPP_MIN_LOG_LEVEL"

# absl's log line prefix: severity, MMDD hh:mm:ss.micros (before absl is initialized: 0000 00:00:<epoch seconds>), thread id, file:line].
_ABSL_LINE = re.compile(rb"^([IWEF])\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ ([\w.+-]+):\d+\] ")
# Errors a GPU-less machine logs while TensorFlow probes for CUDA.
_CUDA_PROBE_FILES = re.compile(rb"^cuda_\w+\.cc$")
_NOISE_LINES = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
)
# The second line of cpu_feature_guard.cc's notice.
_NOISE_PREFIXES = (b"To enable the following instructions: ",)


def is_noise(line: bytes) -> bool:
    """Whether ``line`` (one line of fd 2, without its newline) is TensorFlow start-up noise."""
    text = line.rstrip(b"\r")
    if text in _NOISE_LINES or text.startswith(_NOISE_PREFIXES):
        return True
    m = _ABSL_LINE.match(text)
    if not m:
        return False
    severity, source = m.group(1), m.group(2)
    return severity in (b"I", b"W") or (severity == b"E" and bool(_CUDA_PROBE_FILES.match(source)))


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Discards what native code writes to fd 2 meanwhile (unlike ``quiet``, all of it).

    For calls whose every native diagnostic is noise or also comes back in the
    exception: TensorFlow's MLIR passes and absl (the TFLite converter), its C++
    start-up before absl is initialized (Keras loading), LiteRT's delegate
    notices; errors must stay one line. Python exceptions pass through.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_environment() -> None:
    """Sets the environment TensorFlow reads at import; a no-op for a variable already set."""
    os.environ.setdefault(LOG_LEVEL_VAR, "3")


def quiet_python_loggers() -> None:
    import logging
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        # absl-py is TensorFlow's dependency, not ours: without it nothing logs through it.
        from absl import logging as absl_logging
    except ImportError:
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


class _Filter(threading.Thread):
    """Copies lines from ``read_fd`` to ``out_fd``, dropping noise, until EOF.

    It always drains the pipe, so a writer never blocks on it: should ``out_fd``
    fail (a closed terminal), what follows is read and dropped.
    """

    def __init__(self, read_fd: int, out_fd: int):
        super().__init__(name="tf_logs-filter", daemon=True)
        self.read_fd, self.out_fd = read_fd, out_fd
        self.broken = False

    def _write(self, data: bytes) -> None:
        try:
            while data and not self.broken:
                data = data[os.write(self.out_fd, data):]
        except OSError:
            self.broken = True

    def run(self) -> None:
        pending = b""
        try:
            while True:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                kept = b"".join(line + b"\n" for line in lines if not is_noise(line))
                if kept:
                    self._write(kept)
            if pending and not is_noise(pending):
                self._write(pending)
        finally:
            os.close(self.read_fd)
            os.close(self.out_fd)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Routes file descriptor 2 through the noise filter meanwhile (see the module docstring)."""
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    saved = os.dup(2)
    reader = _Filter(read_fd, os.dup(saved))
    reader.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last write end in this process closes: the filter sees EOF
        os.close(saved)
        # A child process that inherited the pipe and outlives the conversion would keep
        # the filter waiting: it finishes then, in the background.
        reader.join(timeout=5)


@contextlib.contextmanager
def quiet(debug: bool) -> Iterator[None]:
    """TensorFlow's start-up noise off for the block, unless ``debug``."""
    if debug:
        yield
        return
    quiet_environment()
    quiet_python_loggers()
    with filtered_stderr():
        yield
