"""converter/verify/browser.py: converted models on TF.js's webgl backend in headless Chromium.

Reference outputs come from Keras on TensorFlow's CPU. WebGL here is ANGLE on
SwiftShader with float32 render targets, so webgl computes in float32 but with
its own shader math (exp/tanh) and summation order: outputs match within
``WEBGL_ATOL`` (1e-4 absolute on outputs of magnitude <= 1), wasm and cpu
within 1e-5.
"""

import json
import os
import shutil

import numpy as np
import pytest

from converter import api
from converter.verify import browser, runtime

WEBGL_ATOL = 1e-4
NODE_ATOL = 1e-5

try:
    browser.chromium_binary()
    runtime.js_root()
    _MISSING = None
except runtime.TfjsHarnessError as error:
    _MISSING = str(error)

needs_browser = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


def _keras():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(1)
    return keras


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{name: (tfjs dir, inputs, Keras outputs)} of two small layers models."""
    keras = _keras()
    root = tmp_path_factory.mktemp("browser_models")
    rng = np.random.default_rng(0)
    mlp = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="tanh"),
                            keras.layers.Dense(4, activation="softmax")])
    cnn = keras.Sequential([
        keras.Input((12, 12, 3)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.DepthwiseConv2D(3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(5, activation="sigmoid"),
    ])
    out = {}
    for name, model, shape in [("mlp", mlp, (3, 8)), ("cnn", cnn, (2, 12, 12, 3))]:
        source = root / (name + ".h5")
        model.save(source)
        target = root / name
        api.convert(str(source), str(target))
        x = rng.standard_normal(shape).astype(np.float32)
        out[name] = (target, x, np.asarray(model.predict(x, verbose=0)))
    return out


@needs_browser
def test_webgl_matches_keras(models):
    jobs = [runtime.Job(d, [x], backend=b, job_id="%s-%s" % (name, b))
            for name, (d, x, _) in models.items() for b in ("webgl", "wasm", "cpu")]
    results = browser.run_jobs(jobs)
    assert [r.job.job_id for r in results] == [j.job_id for j in jobs]
    for result in results:
        result.check()
        name, backend = result.job.job_id.split("-")
        want = models[name][2]
        assert result.backend_used == backend
        assert len(result.outputs) == 1
        got = result.outputs[0]
        assert got.shape == want.shape and got.dtype == np.float32
        atol = WEBGL_ATOL if backend == "webgl" else NODE_ATOL
        error = float(np.max(np.abs(got - want)))
        assert error <= atol, "%s on %s: max abs error %g > %g" % (name, backend, error, atol)
        assert result.tensors_leaked == 0
    webgl = [r for r in results if r.job.backend == "webgl"][0].raw["webgl"]
    # float32 textures: without them webgl would compute in float16.
    assert webgl["version"] == 2 and webgl["float32"] is True, webgl
    wasm = [r for r in results if r.job.backend == "wasm"][0]
    assert wasm.wasm["binary"].endswith(".wasm")


@needs_browser
def test_webgl_result_differs_from_wrong_reference(models):
    # The comparison can fail: the MLP's outputs are not the CNN's or shifted ones.
    target, x, want = models["mlp"]
    result = browser.run_jobs([runtime.Job(target, [x], backend="webgl")])[0].check()
    assert np.max(np.abs(result.outputs[0] - (want + 1e-3))) > WEBGL_ATOL


@needs_browser
def test_failed_job_is_reported_not_raised(models, tmp_path):
    target, x, want = models["mlp"]
    broken = tmp_path / "broken"
    shutil.copytree(target, broken)
    doc = json.loads((broken / "model.json").read_text())
    doc["weightsManifest"][0]["paths"] = ["missing-shard.bin"]
    (broken / "model.json").write_text(json.dumps(doc))
    results = browser.run_jobs([runtime.Job(broken, [x], backend="webgl"),
                                runtime.Job(target, [x], backend="webgl")])
    assert not results[0].ok
    assert results[0].error_stage == "load"
    # TF.js reads the 404 page as weight bytes: its message is about their length.
    assert "byte length" in results[0].error_message, results[0].error_message
    with pytest.raises(runtime.TfjsJobError, match="failed at load"):
        results[0].check()
    # The batch goes on after a failed job.
    assert results[1].ok
    assert np.max(np.abs(results[1].outputs[0] - want)) <= WEBGL_ATOL


@needs_browser
def test_wrong_input_names_fail_at_inputs(models):
    # A Sequential's TF.js input names are its own: layers models take inputs by position.
    target, x, _ = models["mlp"]
    bad = browser.run_jobs([runtime.Job(target, {"nope": x}, backend="webgl")])[0]
    assert not bad.ok and bad.error_stage == "inputs"
    assert "do not match the model's inputs" in bad.error_message


def test_missing_chromium_names_what_to_install(monkeypatch, tmp_path):
    monkeypatch.delenv("TFJS_CONVERTER_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(runtime.TfjsHarnessError,
                       match="apt-get install chromium-headless-shell.*TFJS_CONVERTER_CHROMIUM"):
        browser.run_jobs([runtime.Job(tmp_path, [np.zeros((1, 1), np.float32)],
                                      backend="webgl")])


def test_chromium_from_environment(monkeypatch, tmp_path):
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("TFJS_CONVERTER_CHROMIUM", str(fake))
    assert browser.chromium_binary() == str(fake)
    monkeypatch.setenv("TFJS_CONVERTER_CHROMIUM", str(tmp_path / "absent"))
    with pytest.raises(runtime.TfjsHarnessError, match="not an executable"):
        browser.chromium_binary()


@needs_browser
def test_bad_backend_is_a_harness_error(models):
    target, x, _ = models["mlp"]
    with pytest.raises(runtime.TfjsHarnessError, match="backend 'gpu', want one of webgl"):
        browser.run_jobs([runtime.Job(target, [x], backend="gpu")])


@needs_browser
def test_page_failure_is_a_harness_error(models, monkeypatch, tmp_path):
    # A runner script that throws before any job: the page reports it, run_jobs raises.
    script = tmp_path / "run_browser.js"
    script.write_text("throw new Error('boom from the page');\n")
    monkeypatch.setattr(browser, "RUNNER", script)
    target, x, _ = models["mlp"]
    with pytest.raises(runtime.TfjsHarnessError, match="boom from the page"):
        browser.run_jobs([runtime.Job(target, [x], backend="webgl")], timeout_s=60)


def test_example_app_starts_chromium_with_the_runner_flags():
    """examples/web/app_browser_test.py copies CHROMIUM_FLAGS; a change on one side fails here."""
    import ast
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "web", "app_browser_test.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    copied = [ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["CHROMIUM_FLAGS"]]
    assert copied == [browser.CHROMIUM_FLAGS]
