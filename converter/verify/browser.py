"""Runs TF.js models in headless Chromium: the webgl backend (and wasm, cpu) from Python.

The same ``Job`` / ``JobResult`` as ``runtime`` (whose Node runner has no
WebGL). ``run_jobs`` serves a page, the TF.js bundles of the pinned npm
packages (``runtime.js_root()``), each job's model directory and inputs from
a loopback-only HTTP server (127.0.0.1, an ephemeral port, every path under a
random token), starts Chromium on it and collects what the page POSTs back
(``js/run_browser.js``). The server and the browser live for one batch, at
most ``timeout_s``.

Chromium: ``$TFJS_CONVERTER_CHROMIUM`` if set, else ``chromium-headless-shell``
or ``chromium`` on PATH. It runs with ``CHROMIUM_FLAGS``: ``--headless=new``,
no sandbox (containers and Bazel's sandbox have no user namespaces for it),
and WebGL on ANGLE over SwiftShader, Chromium's CPU implementation of GL, so
no GPU or display is needed (``--use-gl=angle --use-angle=swiftshader``;
``--enable-unsafe-swiftshader`` because recent Chromium no longer falls back
to SwiftShader for WebGL by itself). Checked on Debian's Chromium 156 (both
binaries): WebGL 2 with float32 render targets, so TF.js's webgl backend
computes in float32 and matches TensorFlow on the CPU to about 1e-5 relative
on small models (shader transcendentals and summation order differ; tests use
1e-4).
"""

import json
import os
import pathlib
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from http import server
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from converter.verify import runtime
from converter.verify.runtime import Job, JobResult, TfjsHarnessError

BACKENDS = ("webgl", "wasm", "cpu")
RUNNER = runtime.PACKAGE_DIR / "run_browser.js"
CHROMIUM_NAMES = ("chromium-headless-shell", "chromium")
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    # A batch is one page: keep it from being throttled, and the browser from
    # reaching anything but the loopback server.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-extensions",
    "--disable-sync",
    "--disable-breakpad",
    "--no-proxy-server",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)
# Files of the npm packages' dist/ directories the page may load.
_BUNDLES = {
    "tf.min.js": ("@tensorflow/tfjs", "dist/tf.min.js"),
    "tf-backend-wasm.min.js": ("@tensorflow/tfjs-backend-wasm", "dist/tf-backend-wasm.min.js"),
}
_WASM_BINARIES = ("tfjs-backend-wasm.wasm", "tfjs-backend-wasm-simd.wasm",
                  "tfjs-backend-wasm-threaded-simd.wasm")
_CONTENT_TYPES = {".js": "text/javascript", ".mjs": "text/javascript",
                  ".wasm": "application/wasm", ".json": "application/json",
                  ".html": "text/html; charset=utf-8"}
_PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tfjs-converter verify</title></head><body>
<script>
// Uncaught errors and scripts that fail to load (capture phase) end the batch.
window.addEventListener('error', (e) => {
  const what = e.message || ('cannot load ' + ((e.target && e.target.src) || 'a resource'));
  fetch('done', {method: 'POST', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({ok: false, error: 'uncaught: ' + what})});
}, true);
</script>
<script src="tfjs/tf.min.js"></script>
<script src="tfjs/tf-backend-wasm.min.js"></script>
<script src="run_browser.js"></script>
</body></html>
"""
_MAX_POST_BYTES = 1 << 31
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def chromium_binary() -> str:
    """The Chromium executable (see the module docstring).

    Raises:
      TfjsHarnessError: none is available.
    """
    explicit = os.environ.get("TFJS_CONVERTER_CHROMIUM")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise TfjsHarnessError("$TFJS_CONVERTER_CHROMIUM is %s, which is not an executable"
                                   % explicit)
        return explicit
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise TfjsHarnessError(
        "the webgl backend runs in headless Chromium, and there is none: install it "
        "(Debian/Ubuntu: apt-get install chromium-headless-shell, or chromium), or set "
        "$TFJS_CONVERTER_CHROMIUM to a Chromium or Chrome executable; PATH is %s"
        % os.environ.get("PATH", ""))


class _Batch:
    """What the server serves and collects for one batch."""

    def __init__(self, jobs: Sequence[Job], wasm_simd: Optional[bool]):
        self.token = secrets.token_hex(16)
        root = runtime.js_root() / "node_modules"
        self.files: Dict[str, pathlib.Path] = {"run_browser.js": RUNNER}
        for name, (package, rel) in _BUNDLES.items():
            self.files["tfjs/" + name] = root / package / rel
        for name in _WASM_BINARIES:
            self.files["tfjs/" + name] = root / "@tensorflow/tfjs-backend-wasm/dist" / name
        missing = [str(p) for p in self.files.values() if not p.is_file()]
        if missing:
            raise TfjsHarnessError("the browser runner's files are missing: %s"
                                   % ", ".join(missing))
        self.blobs: Dict[str, bytes] = {"": _PAGE}
        specs = []
        for index, job in enumerate(jobs):
            specs.append(self._job_spec(index, job))
        self.blobs["jobs.json"] = json.dumps({"wasmSimd": wasm_simd, "jobs": specs}).encode()
        self.results: Dict[int, dict] = {}
        self.outputs: Dict[Tuple[int, int], bytes] = {}
        self.done = threading.Event()
        self.done_body: Optional[dict] = None

    def _job_spec(self, index: int, job: Job) -> dict:
        if job.backend not in BACKENDS:
            raise TfjsHarnessError("job %s: backend %r, want one of %s for the browser"
                                   % (job.label, job.backend, ", ".join(BACKENDS)))
        model_json = pathlib.Path(job.model_json)
        if not model_json.is_file():
            raise TfjsHarnessError("job %s: no %s" % (job.label, model_json))
        model_dir = model_json.parent
        prefix = "job/%d/" % index
        for entry in os.scandir(model_dir):
            # Only the directory's own regular files (shards are siblings of model.json).
            if entry.is_file() and _SAFE_NAME.match(entry.name):
                self.files[prefix + "model/" + entry.name] = pathlib.Path(entry.path)
        if isinstance(job.inputs, Mapping):
            items = list(job.inputs.items())
        else:
            items = [(None, array) for array in job.inputs]
        inputs = []
        for i, (name, array) in enumerate(items):
            dtype, data = runtime._to_wire(  # pylint: disable=protected-access
                array, "job %s input %s" % (job.label, name or i))
            self.blobs[prefix + "input/%d" % i] = data
            spec = {"shape": [int(d) for d in np.shape(array)], "dtype": dtype,
                    "url": prefix + "input/%d" % i}
            if name is not None:
                spec["name"] = name
            inputs.append(spec)
        spec = {"id": job.label, "model": prefix + "model/" + model_json.name,
                "kind": job.kind, "backend": job.backend, "method": job.method,
                "inputs": inputs, "warmup": job.warmup, "repeats": job.repeats,
                "result": prefix}
        if job.output_names is not None:
            spec["outputNames"] = list(job.output_names)
        return spec


def token_handler(token: str, blobs: Mapping[str, bytes], files: Mapping[str, object],
                  on_post: Callable[[str, bytes], bool]):
    """An HTTP handler class serving one page under ``/<token>/``, nothing else.

    GET ``/<token>/<path>`` answers ``blobs[path]`` (``""`` is the page's HTML) or
    the bytes of the file ``files[path]``; POST hands ``(path, body)`` to
    ``on_post``, which returns whether it took the path (else 404; a ValueError
    it raises is a 400). Bodies over ``_MAX_POST_BYTES`` are refused.
    """
    prefix = "/%s/" % token

    class Handler(server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # pylint: disable=redefined-builtin
            pass

        def _path(self) -> Optional[str]:
            path = self.path.split("?", 1)[0]
            return path[len(prefix):] if path.startswith(prefix) else None

        def _send(self, code: int, body: bytes, content_type: str = "text/plain"):
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # pylint: disable=invalid-name
            path = self._path()
            if path is None:
                return self._send(404, b"not found")
            if path in blobs:
                kind = "text/html; charset=utf-8" if path == "" else (
                    "application/json" if path.endswith(".json") else "application/octet-stream")
                return self._send(200, blobs[path], kind)
            file = files.get(path)
            if file is None:
                return self._send(404, b"not found")
            file = pathlib.Path(file)
            return self._send(200, file.read_bytes(),
                              _CONTENT_TYPES.get(file.suffix, "application/octet-stream"))

        def do_POST(self):  # pylint: disable=invalid-name
            path = self._path()
            length = int(self.headers.get("Content-Length") or 0)
            if path is None or not 0 <= length <= _MAX_POST_BYTES:
                return self._send(404, b"not found")
            body = self.rfile.read(length)
            try:
                taken = on_post(path, body)
            except ValueError:
                return self._send(400, b"bad request")
            return self._send(200, b"ok") if taken else self._send(404, b"not found")

    return Handler


def _handler(batch: _Batch):
    def on_post(path: str, body: bytes) -> bool:
        parts = path.split("/")
        if path == "done":
            if batch.done_body is None:  # the first report is the cause
                batch.done_body = json.loads(body)
            batch.done.set()
        elif len(parts) == 3 and parts[0] == "job" and parts[2] == "result":
            batch.results[int(parts[1])] = json.loads(body)
        elif len(parts) == 4 and parts[0] == "job" and parts[2] == "output":
            batch.outputs[(int(parts[1]), int(parts[3]))] = body
        else:
            return False
        return True

    return token_handler(batch.token, batch.blobs, batch.files, on_post)


def run_jobs(jobs: Sequence[Job], wasm_simd: Optional[bool] = None,
             timeout_s: float = 600.0) -> List[JobResult]:
    """Runs jobs in one headless Chromium page; a failed job does not raise.

    Args:
      jobs: the jobs, run in order; backend ``webgl``, ``wasm`` or ``cpu``.
      wasm_simd: force the wasm SIMD binary on (True) or off (False); ``None``
        lets TF.js detect support.
      timeout_s: limit for the whole batch (browser start included).

    Returns:
      One ``JobResult`` per job, in order (``raw`` also holds ``webgl``:
      WebGL version, float32 rendering, renderer).

    Raises:
      TfjsHarnessError: no Chromium, the npm packages are missing, the page
        failed outside a job (a bundle did not load), Chromium exited early, or
        the batch timed out.
    """
    if not jobs:
        return []
    chromium = chromium_binary()
    batch = _Batch(jobs, wasm_simd)
    httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(batch))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="tfjs-browser-server",
                              daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/%s/" % (httpd.server_address[1], batch.token)
    base = os.environ.get("TEST_TMPDIR") or None
    try:
        with tempfile.TemporaryDirectory(prefix="tfjs_chromium_", dir=base,
                                         ignore_cleanup_errors=True) as tmp:
            log_path = pathlib.Path(tmp) / "chromium.log"
            env = dict(os.environ)
            # Chromium writes under $HOME and the XDG dirs: keep it in the batch's temp dir.
            env.update(HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_CACHE_HOME=tmp)
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    [chromium, *CHROMIUM_FLAGS,
                     "--user-data-dir=" + str(pathlib.Path(tmp) / "profile"), url],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    env=env, start_new_session=True)
                try:
                    deadline = time.monotonic() + timeout_s
                    while not batch.done.wait(0.2):
                        if proc.poll() is not None:
                            raise TfjsHarnessError(
                                "%s exited with code %d before the page finished:\n%s"
                                % (chromium, proc.returncode, _tail(log_path)))
                        if time.monotonic() > deadline:
                            raise TfjsHarnessError(
                                "browser batch of %d jobs timed out after %.0f s (%d done); "
                                "Chromium's output:\n%s"
                                % (len(jobs), timeout_s, len(batch.results), _tail(log_path)))
                finally:
                    _stop(proc)
            done = batch.done_body or {}
            if not done.get("ok"):
                raise TfjsHarnessError("the browser page failed: %s\nChromium's output:\n%s"
                                       % (done.get("error"), _tail(log_path)))
    finally:
        httpd.shutdown()
        httpd.server_close()
    return [_read_result(batch, index, job) for index, job in enumerate(jobs)]


def _stop(proc: subprocess.Popen) -> None:
    """Ends Chromium and every process it started (its own session), and waits until the
    whole group is gone: a renderer or GPU process that outlives the browser process
    would still be writing into the profile directory while it is removed."""
    try:
        os.killpg(proc.pid, 15)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 10
    while True:
        try:
            os.killpg(proc.pid, 9)  # what SIGTERM left: no-op once the group is empty
        except ProcessLookupError:
            break
        if proc.poll() is None:
            proc.wait()
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)


def _tail(path: pathlib.Path, limit: int = 4000) -> str:
    text = path.read_bytes().decode("utf-8", "replace") if path.is_file() else ""
    return text[-limit:].strip() or "(nothing)"


def _read_result(batch: _Batch, index: int, job: Job) -> JobResult:
    raw = batch.results.get(index)
    if raw is None:
        raise TfjsHarnessError("job %s: the page posted no result" % job.label)
    outputs = []
    for i, out in enumerate(raw["outputs"]):
        data = batch.outputs.get((index, i))
        if data is None:
            raise TfjsHarnessError("job %s: the page posted no output %d" % (job.label, i))
        outputs.append(runtime._from_wire(  # pylint: disable=protected-access
            data, out["dtype"], out["shape"]))
    error = raw["error"] or {}
    return JobResult(
        job=job, ok=raw["ok"], outputs=outputs,
        output_names=[o["name"] for o in raw["outputs"]],
        error_stage=error.get("stage"), error_message=error.get("message"),
        error_stack=error.get("stack"), backend_used=raw["backendUsed"], wasm=raw["wasm"],
        timing=raw["timing"], tensors_leaked=raw["tensorsLeaked"], raw=raw)
