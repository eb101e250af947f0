"""//web:litert_app in a real browser: the MobileNetV2 .tflite in LiteRT.js, in headless Chromium.

Usage: litert_browser_test.py APP_DIR (``bazel test //web:litert_browser_test``).

1. The built app, served with serve.py's headers: litert.html must load the
   .tflite (fetched with its manifest ``integrity``) in LiteRT.js's wasm build,
   see a fixed ``[1, 224, 224, 3]`` float32 input, and produce a ``[1, 1000]``
   output matching the TF.js graph model of the same network on TF.js's cpu
   backend (the page's tolerance, and here under 1e-6 absolute: outputs are
   softmax probabilities around 1e-3; measured about 2e-8).
2. A copy of the app with one byte of the .tflite flipped: the browser's
   Subresource Integrity check must refuse it, naming the file.

Chromium and its flags are app_browser_test's (a missing Chromium is a
failure, not a skip).
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

from web import app_browser_test

APP_DIR = None
TFLITE = "tflite/mobilenet.tflite"


class LiteRtBrowserTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def test_tflite_runs_in_litertjs_and_matches_tfjs(self):
        report = app_browser_test.run_page(APP_DIR, "", self.tmp, page="litert.html")
        print(json.dumps(report, indent=1, sort_keys=True))
        self.assertEqual(report.get("error"), None)
        self.assertEqual(report["status"], "ok")
        self.assertIs(report["cross_origin_isolated"], True)
        litert = report["litert"]
        self.assertEqual([(i["dtype"], i["shape"]) for i in litert["inputs"]],
                         [("float32", [1, 224, 224, 3])])
        self.assertEqual(litert["shapes"], [[1, 1000]])
        # Chromium has relaxed SIMD, so LiteRT.js loads its main binary, not the compat one.
        self.assertIs(litert["relaxed_simd"], True)
        self.assertEqual(litert["wasm_binary"], "litert_wasm_internal.wasm")
        self.assertEqual(report["tfjs"], "4.22.0")
        self.assertLess(report["max_abs"], 1e-6)

    def test_tampered_tflite_fails_the_integrity_check(self):
        app = os.path.join(self.tmp, "app")
        shutil.copytree(APP_DIR, app, symlinks=False)
        for root, dirs, files in os.walk(app):
            for name in dirs + files:
                os.chmod(os.path.join(root, name), 0o755)
        with open(os.path.join(app, *TFLITE.split("/")), "r+b") as f:
            f.seek(5000)
            byte = f.read(1)
            f.seek(5000)
            f.write(bytes([byte[0] ^ 0x01]))
        report = app_browser_test.run_page(app, "", self.tmp, page="litert.html")
        print(json.dumps(report, indent=1, sort_keys=True))
        self.assertEqual(report["status"], "failed")
        self.assertIn("integrity check failed for %s" % TFLITE, report["error"])
        self.assertIn("its bytes hash to sha384-", report["error"])


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: litert_browser_test.py APP_DIR")
    APP_DIR = sys.argv[1]
    unittest.main(argv=sys.argv[:1])
