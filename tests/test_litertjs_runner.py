"""tests/litertjs_runner.py: .tflite models in LiteRT.js (@litertjs/core 2.5.3, wasm), Node and Chromium.

The reference is LiteRT's own Python interpreter (``ai_edge_litert`` from the
locked requirements) on the same file and seeded inputs; LiteRT.js's wasm
build runs the same XNNPACK kernels, so outputs agree within ``ATOL`` (1e-5;
measured in Node and Chromium: 3.0e-8 on ``probs``, 0 on ``score``; 7e-10 on
MobileNetV2 in bench/bench_litert.py). The ``.tflite`` files
are written by TensorFlow's converter from a SavedModel with a fixed
``[1, ...]`` input signature (what LiteRT.js can run) and with Keras's default
``[-1, ...]`` one (what it refuses, with a one-line error).
"""

import os

import numpy as np
import pytest

import litertjs_runner as L
from converter.verify import browser, runtime

ATOL = 1e-5

try:
    browser.chromium_binary()
    _NO_CHROMIUM = None
except runtime.TfjsHarnessError as error:
    _NO_CHROMIUM = str(error)


def _tflite(saved_model_dir, path):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    path.write_bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir)).convert())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """{"fixed": two-input two-output model with [1, ...] inputs, "dynamic": one input [-1, ...]}."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # pylint: disable=import-outside-toplevel
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    tmp = tmp_path_factory.mktemp("litertjs")
    keras.utils.set_random_seed(3)
    image = keras.Input((8, 8, 3), name="image")
    extra = keras.Input((4,), name="extra")
    x = keras.layers.Conv2D(4, 3, activation="relu")(image)
    x = keras.layers.DepthwiseConv2D(3, activation="tanh")(x)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(x), extra])
    probs = keras.layers.Dense(5, activation="softmax", name="probs")(x)
    score = keras.layers.Dense(1, name="score")(x)
    two = keras.Model([image, extra], {"probs": probs, "score": score})
    archive = keras.export.ExportArchive()
    archive.track(two)
    archive.add_endpoint("serving_default", lambda a, b: two({"image": a, "extra": b}),
                         input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="image"),
                                          tf.TensorSpec([1, 4], tf.float32, name="extra")])
    archive.write_out(str(tmp / "fixed_sm"), verbose=False)

    one = keras.Model(image, keras.layers.Dense(3)(keras.layers.Flatten()(image)))
    one.export(str(tmp / "dynamic_sm"), verbose=False)
    return {"fixed": _tflite(tmp / "fixed_sm", tmp / "fixed.tflite"),
            "dynamic": _tflite(tmp / "dynamic_sm", tmp / "dynamic.tflite")}


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return {"image": rng.uniform(-1, 1, (1, 8, 8, 3)).astype(np.float32),
            "extra": rng.uniform(-1, 1, (1, 4)).astype(np.float32)}


def _interpreter(model, inputs):
    """{output name: array} from ai_edge_litert's signature runner."""
    from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
    runner = Interpreter(model_path=str(model)).get_signature_runner()
    return runner(**inputs)


def _check_against_interpreter(models, where):
    inputs = _inputs()
    expected = _interpreter(models["fixed"], inputs)
    (result,) = L.run_jobs([L.LiteRtJob(models["fixed"], inputs)], where=where)
    result.check()
    assert sorted(result.output_names) == sorted(expected) and len(expected) == 2
    assert [d["shape"] for d in result.input_details] in ([[1, 8, 8, 3], [1, 4]],
                                                          [[1, 4], [1, 8, 8, 3]])
    for name, array in zip(result.output_names, result.outputs):
        assert array.dtype == np.float32 and array.shape == expected[name].shape
        diff = float(np.abs(array - expected[name]).max())
        assert diff <= ATOL, "%s output %s: max abs diff %g > %g" % (where, name, diff, ATOL)
    probs = result.outputs[result.output_names.index("probs")]
    # Not a constant model: another input moves the outputs by far more than ATOL.
    other = L.run_tflite(models["fixed"], _inputs(seed=1), where=where)
    assert float(np.abs(other[result.output_names.index("probs")] - probs).max()) > 1e-3
    np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-6)


def test_node_matches_interpreter(models):
    _check_against_interpreter(models, "node")


@pytest.mark.skipif(_NO_CHROMIUM is not None, reason=str(_NO_CHROMIUM))
def test_chromium_matches_interpreter(models):
    _check_against_interpreter(models, "chromium")


def test_positional_inputs_follow_the_signature_order(models):
    (result,) = L.run_jobs([L.LiteRtJob(models["fixed"], _inputs())])
    order = [d["name"] for d in result.check().input_details]
    by_name = dict(zip(result.output_names, result.outputs))
    positional = L.run_tflite(models["fixed"], [_inputs()[n] for n in order])
    for name, array in zip(result.output_names, positional):
        np.testing.assert_array_equal(array, by_name[name])


@pytest.mark.parametrize("where", ["node", pytest.param("chromium", marks=pytest.mark.skipif(
    _NO_CHROMIUM is not None, reason=str(_NO_CHROMIUM)))])
def test_batch_one_buffer_for_dynamic_input_is_one_clear_line(models, where):
    x = _inputs()["image"]
    with pytest.raises(L.LiteRtJobError) as info:
        L.run_tflite(models["dynamic"], [x], where=where)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("LiteRT.js job %s [wasm] failed at run: " % models["dynamic"])
    # LiteRT.js's own words, then which input is dynamic and what to do.
    assert ("TensorBuffer ranked tensor type Float32[1, 8, 8, 3] does not match expected "
            "ranked tensor type Float32[-1, 8, 8, 3]") in message
    assert "model input 'image' [-1, 8, 8, 3] has a dynamic dimension" in message
    assert message.endswith("--output_format=tflite --tflite_batch_size=1)")
    (result,) = L.run_jobs([L.LiteRtJob(models["dynamic"], [x])], where=where)
    assert (result.ok, result.error_stage, result.input_details) == (
        False, "run", [{"name": "image", "index": 0, "dtype": "float32",
                        "shape": [-1, 8, 8, 3]}])


def test_wrong_dtype_and_missing_input_fail_the_job_not_the_batch(models):
    inputs = _inputs()
    results = L.run_jobs([
        L.LiteRtJob(models["fixed"], {"image": inputs["image"].astype(np.int32),
                                      "extra": inputs["extra"]}, job_id="int32"),
        L.LiteRtJob(models["fixed"], {"image": inputs["image"]}, job_id="missing"),
        L.LiteRtJob(models["fixed"], inputs, job_id="good"),
    ])
    assert [r.ok for r in results] == [False, False, True]
    assert results[0].error_stage == "run"
    assert "Int32[1, 8, 8, 3] does not match expected ranked tensor type Float32[1, 8, 8, 3]" \
        in results[0].error_message, results[0].error_message
    order = [d["name"] for d in results[2].input_details]
    assert results[1].error_message == (
        "run() called with input record that is missing input extra with index %d"
        % order.index("extra"))
    assert "\n" not in results[0].describe_error() + results[1].describe_error()


def test_harness_refuses_what_it_cannot_send(models, tmp_path):
    with pytest.raises(L.LiteRtHarnessError, match="no model file .*absent.tflite"):
        L.run_tflite(tmp_path / "absent.tflite", [np.zeros((1, 8, 8, 3), np.float32)])
    with pytest.raises(L.LiteRtHarnessError, match="dtype int64; the runner sends"):
        L.run_tflite(models["dynamic"], [np.zeros((1, 8, 8, 3), np.int64)])
    with pytest.raises(L.LiteRtHarnessError, match="where='deno'"):
        L.run_jobs([L.LiteRtJob(models["dynamic"], [])], where="deno")


def test_pinned_version_installed():
    assert L.core_version() == "2.5.3"
    assert (L.node_modules() / L.MARKER).read_text() == L.lock_hash()
