"""Unit tests of bundle.py on small fake models (standard library only)."""

import base64
import contextlib
import hashlib
import io
import json
import os
import tempfile
import unittest

from web import bundle


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sri(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def _entry(name: str, data: bytes) -> dict:
    return {"name": name, "size": len(data), "sha256": _sha(data), "integrity": _sri(data)}


class BundleTest(unittest.TestCase):

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def make_model(self, name, files, summary_files=None, json_format="layers-model"):
        """Writes a model dir and its summary; summary_files overrides the summary's list."""
        model_dir = self.path("in", name)
        os.makedirs(model_dir)
        for file_name, data in files.items():
            with open(os.path.join(model_dir, file_name), "wb") as f:
                f.write(data)
        if summary_files is None:
            summary_files = [_entry(n, d) for n, d in files.items()]
        summary = self.path("in", name + ".summary.json")
        with open(summary, "w") as f:
            json.dump({"files": summary_files, "format": json_format, "source": "//m:" + name,
                       "weight_bytes": 7}, f)
        return model_dir, summary

    def make_asset(self, name, data):
        path = self.path("in", name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def standard_inputs(self):
        b_dir, b_summary = self.make_model("b", {"model.json": b"{}", "group1-shard1of1.bin": b"1234567"})
        a_dir, a_summary = self.make_model("a", {"model.json": b"{\"a\": 1}", "w.bin": b"xy"})
        page = self.make_asset("page.html", b"<html></html>")
        models = [("b", "tfjs_layers_model", b_dir, b_summary),
                  ("a", "tfjs_layers_model", a_dir, a_summary)]
        return models, [("index.html", page)]

    def test_layout_manifest_and_bytes(self):
        models, assets = self.standard_inputs()
        out = self.path("out")
        manifest = bundle.bundle(out, models, assets)

        self.assertEqual([m["name"] for m in manifest["models"]], ["a", "b"])
        self.assertEqual([f["path"] for f in manifest["models"][1]["files"]],
                         ["models/b/group1-shard1of1.bin", "models/b/model.json"])
        self.assertEqual(manifest["models"][1]["files"][0],
                         {"path": "models/b/group1-shard1of1.bin", "size": 7,
                          "sha256": _sha(b"1234567"), "integrity": _sri(b"1234567")})
        self.assertEqual(manifest["models"][0]["model_json"], "models/a/model.json")
        self.assertEqual(manifest["models"][0]["source"], "//m:a")
        self.assertEqual(manifest["models"][0]["total_bytes"], 10)
        self.assertEqual(manifest["assets"], [{"path": "index.html", "size": 13,
                                               "sha256": _sha(b"<html></html>"),
                                               "integrity": _sri(b"<html></html>")}])
        self.assertEqual(manifest["total_bytes"], 10 + 9 + 13)
        with open(os.path.join(out, "models", "b", "group1-shard1of1.bin"), "rb") as f:
            self.assertEqual(f.read(), b"1234567")
        with open(os.path.join(out, "manifest.json")) as f:
            text = f.read()
        self.assertEqual(json.loads(text), manifest)
        self.assertIn('\n        {"path": "models/a/w.bin", "size": 2, "sha256": "%s", '
                      '"integrity": "%s"}' % (_sha(b"xy"), _sri(b"xy")), text)
        self.assertNotIn(self.tmp, text)
        self.assertEqual(sorted(os.listdir(out)), ["index.html", "manifest.json", "models"])

    def test_manifest_bytes_do_not_depend_on_argument_order_or_paths(self):
        models, assets = self.standard_inputs()
        bundle.bundle(self.path("out1"), models, assets)
        bundle.bundle(self.path("elsewhere", "out2"), list(reversed(models)), assets)
        with open(self.path("out1", "manifest.json"), "rb") as f1, \
                open(self.path("elsewhere", "out2", "manifest.json"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())

    def assert_fails(self, models, assets, *fragments):
        with self.assertRaises(bundle.BundleError) as caught:
            bundle.bundle(self.path("out"), models, assets)
        for fragment in fragments:
            self.assertIn(fragment, str(caught.exception))

    def test_changed_bytes_fail(self):
        summary_files = [_entry("model.json", b"{}"), _entry("w.bin", b"abc")]
        model_dir, summary = self.make_model("m", {"model.json": b"{}", "w.bin": b"abd"},
                                             summary_files)
        self.assert_fails([("m", "tfjs_layers_model", model_dir, summary)], [],
                          "model 'm'", "w.bin", _sha(b"abd"), _sha(b"abc"), _sri(b"abd"),
                          _sri(b"abc"))

    def test_wrong_integrity_fails(self):
        summary_files = [_entry("model.json", b"{}"), dict(_entry("w.bin", b"abc"),
                                                           integrity=_sri(b"abd"))]
        model_dir, summary = self.make_model("m", {"model.json": b"{}", "w.bin": b"abc"},
                                             summary_files)
        self.assert_fails([("m", "tfjs_layers_model", model_dir, summary)], [],
                          "model 'm'", "w.bin", _sri(b"abc"), _sri(b"abd"))

    def test_extra_and_missing_files_fail(self):
        summary_files = [_entry("model.json", b"{}"), _entry("gone.bin", b"x")]
        model_dir, summary = self.make_model("m", {"model.json": b"{}", "stray.bin": b"x"},
                                             summary_files)
        self.assert_fails([("m", "tfjs_layers_model", model_dir, summary)], [],
                          "missing: ['gone.bin']", "extra: ['stray.bin']")

    def test_format_must_match_summary(self):
        model_dir, summary = self.make_model("m", {"model.json": b"{}"})
        self.assert_fails([("m", "tfjs_graph_model", model_dir, summary)], [],
                          "'layers-model'", "'graph-model'")
        self.assert_fails([("m", "onnx", model_dir, summary)], [], "format 'onnx'")

    def test_model_json_required(self):
        model_dir, summary = self.make_model("m", {"w.bin": b"x"})
        self.assert_fails([("m", "tfjs_layers_model", model_dir, summary)], [], "no model.json")

    def test_bad_summary_fails(self):
        model_dir, summary = self.make_model("m", {"model.json": b"{}"},
                                             summary_files=[{"name": "model.json"}])
        self.assert_fails([("m", "tfjs_layers_model", model_dir, summary)], [], "valid `files`")
        no_sri = _entry("model.json", b"{}")
        del no_sri["integrity"]
        model_dir, summary = self.make_model("n", {"model.json": b"{}"}, summary_files=[no_sri])
        self.assert_fails([("n", "tfjs_layers_model", model_dir, summary)], [], "integrity}")

    def test_repeated_names_and_bad_asset_paths_fail(self):
        models, assets = self.standard_inputs()
        self.assert_fails(models + [models[0]], assets, "model name 'b' given more than once")
        page = assets[0][1]
        for path in ["models/x.html", "manifest.json", "../x", "/abs", "a//b"]:
            self.assert_fails(models, [(path, page)], repr(path))

    def test_main_reports_one_line_and_exit_codes(self):
        model_dir, summary = self.make_model("m", {"w.bin": b"x"})
        params = self.path("params")
        with open(params, "w") as f:
            f.write("\n".join(["--out", self.path("out"), "--model", "m", "tfjs_layers_model",
                               model_dir, summary]) + "\n")
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            self.assertEqual(bundle.main(["@" + params]), 1)
        self.assertEqual(err.getvalue().count("\n"), 1)
        self.assertIn("bundle.py: model 'm'", err.getvalue())
        with contextlib.redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as caught:
            bundle.main(["--model", "only-one"])
        self.assertEqual(caught.exception.code, 2)


if __name__ == "__main__":
    unittest.main()
