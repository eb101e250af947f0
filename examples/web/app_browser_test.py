"""//web:app in a real browser: headless Chromium loads the page from serve.py.

Usage: app_browser_test.py APP_DIR MODEL_NAME... (``bazel test //web:app_browser_test``).

1. The built app, served with serve.py's headers: the page must be
   cross-origin isolated with multi-threaded wasm available, and every model
   must load (each file fetched with its manifest ``integrity``) and run on
   cpu, webgl (WebGL 2) and wasm, webgl and wasm matching cpu within the
   page's tolerance.
2. A tampered copy of the app: one model with a byte of a shard flipped,
   another with two of its shards swapped (each file keeps the other's name,
   as a botched upload or a stale CDN object would), the rest untouched. The
   browser's Subresource Integrity check must refuse exactly the tampered
   models, naming the shard; the untouched ones must still pass.

Chromium: ``$CHROMIUM`` if set, else ``chromium-headless-shell`` or ``chromium``
on PATH; none is a failure, not a skip. It runs headless with WebGL on
SwiftShader (no GPU or display needed), the flags tfjs_rules' verifier uses:
see the README.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from web import serve

CHROMIUM_NAMES = ("chromium-headless-shell", "chromium")
# The converter's browser runner flags (converter/verify/browser.py). This
# workspace consumes tfjs_rules as an external repository and cannot import its
# Python, so they are copied; tests/test_browser_runner.py keeps the two equal.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",  # containers and Bazel's sandbox have no user namespaces for it
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
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
REPORT_PATH = "/__report"
TIMEOUT_S = 400

APP_DIR = None
MODELS = ()


def find_chromium() -> str:
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    raise AssertionError("no Chromium: set $CHROMIUM or install %s (Debian: apt-get install "
                         "chromium-headless-shell)" % " or ".join(CHROMIUM_NAMES))


class _ReportingHandler(serve.AppHandler):
    """serve.py's handler, plus POST /__report: the page's result."""

    def do_POST(self):  # pylint: disable=invalid-name
        if self.path != REPORT_PATH:
            self.send_error(404)
            return
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.report = json.loads(body)
        self.send_response(204)
        self.end_headers()
        self.server.done.set()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


def run_page(app_dir: str, backends: str, tmp: str, query: str = "",
             page: str = "index.html") -> dict:
    """Serves ``app_dir``, opens ``page`` in Chromium, returns what the page reports."""
    httpd = serve.make_server(app_dir, 0, _ReportingHandler)
    httpd.report, httpd.done = None, threading.Event()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:%d/%s?backends=%s&report=%s%s" % (
        httpd.server_port, page, backends, REPORT_PATH, query)
    log_path = os.path.join(tmp, "chromium.log")
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [find_chromium(), *CHROMIUM_FLAGS,
                 "--user-data-dir=" + os.path.join(tmp, "profile"), url],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
            try:
                deadline = time.monotonic() + TIMEOUT_S
                while not httpd.done.wait(0.2):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        break
            finally:
                _stop(proc)
    finally:
        httpd.shutdown()
        httpd.server_close()
    if httpd.report is None:
        with open(log_path, errors="replace") as f:
            tail = f.read()[-3000:]
        raise AssertionError("the page reported nothing within %d s (Chromium exit %s); its "
                             "log ends:\n%s" % (TIMEOUT_S, proc.returncode, tail))
    return httpd.report


def _stop(proc: subprocess.Popen) -> None:
    """Ends Chromium and every process of its session, and waits for them."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def _runs(report: dict) -> dict:
    return {(r["backend"], r["model"]): r for r in report["runs"]}


def _shards(model_dir: str) -> list:
    return sorted(n for n in os.listdir(model_dir) if n.endswith(".bin"))


class AppBrowserTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def test_built_app_runs_on_every_backend(self):
        report = run_page(APP_DIR, "webgl,wasm", self.tmp)
        print(json.dumps(report, indent=1, sort_keys=True))
        self.assertEqual(report.get("error"), None)
        self.assertEqual(report["tfjs"], "4.22.0")
        self.assertIs(report["cross_origin_isolated"], True,
                      "serve.py's COOP/COEP headers should make the page cross-origin isolated")
        self.assertIs(report["wasm_multithread"], True)
        # XNNPACK's thread count is TF.js's choice (half the cores: 1 on a
        # 2-core machine); the binary is what isolation decides.
        self.assertGreaterEqual(report["wasm_threads"], 1)
        self.assertEqual(report["wasm_binary"], "tfjs-backend-wasm-threaded-simd.wasm",
                         "the wasm backend should run its multi-threaded binary")
        self.assertEqual(report["webgl_version"], 2)
        runs = _runs(report)
        for backend in ("cpu", "webgl", "wasm"):
            for model in MODELS:
                run = runs.get((backend, model))
                self.assertIsNotNone(run, "no %s run of %s" % (backend, model))
                self.assertTrue(run["ok"], "%s on %s: %s" % (model, backend, run.get("error")))
                if backend != "cpu":
                    # Outputs are ~1e-3 (softmax over 1000 classes); measured 2e-8.
                    self.assertLess(run["max_abs"], 1e-6, (model, backend))
        self.assertEqual(len(runs), 3 * len(MODELS))
        self.assertEqual(report["status"], "ok")

    def test_tampered_shards_fail_the_integrity_check(self):
        self.assertGreaterEqual(len(MODELS), 3, "needs three models: flipped, swapped, untouched")
        app = os.path.join(self.tmp, "app")
        shutil.copytree(APP_DIR, app, symlinks=False)
        for root, dirs, files in os.walk(app):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755)
        flipped, swapped, untouched = MODELS[0], MODELS[1], MODELS[2:]

        flipped_dir = os.path.join(app, "models", flipped)
        flipped_shard = _shards(flipped_dir)[0]
        with open(os.path.join(flipped_dir, flipped_shard), "r+b") as f:
            f.seek(100)
            byte = f.read(1)
            f.seek(100)
            f.write(bytes([byte[0] ^ 0x01]))

        swapped_dir = os.path.join(app, "models", swapped)
        first, second = _shards(swapped_dir)[:2]
        a, b = os.path.join(swapped_dir, first), os.path.join(swapped_dir, second)
        os.rename(a, a + ".tmp")
        os.rename(b, a)
        os.rename(a + ".tmp", b)

        report = run_page(app, "webgl", self.tmp)
        print(json.dumps(report, indent=1, sort_keys=True))
        runs = _runs(report)
        for backend in ("cpu", "webgl"):
            error = runs[(backend, flipped)].get("error") or ""
            self.assertFalse(runs[(backend, flipped)]["ok"])
            self.assertIn("integrity check failed for models/%s/%s" % (flipped, flipped_shard),
                          error)
            self.assertIn("its bytes hash to sha384-", error)
            error = runs[(backend, swapped)].get("error") or ""
            self.assertFalse(runs[(backend, swapped)]["ok"])
            self.assertRegex(error, r"integrity check failed for models/%s/(%s|%s)"
                             % (swapped, first.replace(".", r"\."), second.replace(".", r"\.")))
            for model in untouched:
                self.assertTrue(runs[(backend, model)]["ok"], runs[(backend, model)].get("error"))
        self.assertEqual(report["status"], "failed")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: app_browser_test.py APP_DIR MODEL_NAME...")
    APP_DIR, MODELS = sys.argv[1], tuple(sys.argv[2:])
    unittest.main(argv=sys.argv[:1])
