"""--verify and `python -m converter.verify check`: real TF.js against TensorFlow, failing loudly.

Each failure case corrupts a conversion on purpose (weights flipped, a NaN
written into a shard, the semantics guard switched off so tf_keras's
LayerNormalization turns into NaN in TF.js) and checks the conversion fails
with the report and leaves the previous output byte-identical.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest

from converter import api, cli
from converter.errors import ConversionError
from converter.graph import semantics
from converter.verify import check
from converter.weights import format as wf

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """Keras 3 .keras (Dense + LayerNormalization) and a Keras 2 .h5 with LayerNormalization."""
    import keras
    import tf_keras
    root = tmp_path_factory.mktemp("verify_sources")
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,), name="x")
    h = keras.layers.Dense(8, activation="relu")(inp)
    h = keras.layers.LayerNormalization()(h)
    out = keras.layers.Dense(3, activation="softmax", name="probs")(h)
    keras.Model(inp, out).save(root / "mlp.keras")
    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((5,), name="features")
    y = tf_keras.layers.Dense(5)(x)
    y = tf_keras.layers.LayerNormalization()(tf_keras.layers.Add()([x, y]))
    tf_keras.Model(x, tf_keras.layers.Dense(2)(y)).save(root / "ln_k2.h5")
    return root


def _snapshot(path: pathlib.Path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_verify_passes_and_reports_errors(sources, tmp_path, capsys):
    code = cli.main(["--verify", str(sources / "mlp.keras"), str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(l for l in out.splitlines() if "verified:" in l)
    assert "output 0 [cpu] max abs err" in line and "output 0 [wasm] max abs err" in line
    errors = [float(e.split(",")[0]) for e in line.split("max abs err ")[1:]]
    assert len(errors) == 2 and max(errors) < 1e-6


def test_verify_graph_from_keras2_layer_norm(sources, tmp_path):
    result = api.convert(str(sources / "ln_k2.h5"), str(tmp_path / "g"),
                         output_format="tfjs_graph_model", verify=True)
    assert "[wasm] max abs err" in result.verification


def test_verify_catches_flipped_weights(sources, tmp_path, monkeypatch):
    out = tmp_path / "out"
    api.convert(str(sources / "mlp.keras"), str(out))
    before = _snapshot(out)
    from converter.writers import tfjs_layers

    real = tfjs_layers.write_tfjs_layers

    def corrupt(model, directory, shard_size, content_hash=False):
        real(model, directory, shard_size, content_hash)
        shard = next(pathlib.Path(directory).glob("group1-shard*"))
        data = np.frombuffer(shard.read_bytes(), np.float32).copy()
        data[:48] = -data[:48]  # the first Dense kernel, sign-flipped
        shard.write_bytes(data.tobytes())

    monkeypatch.setattr(tfjs_layers, "write_tfjs_layers", corrupt)
    with pytest.raises(check.VerificationError) as info:
        api.convert(str(sources / "mlp.keras"), str(out), verify=True)
    message = str(info.value)
    assert message.startswith("%s: verification against %s failed: output 0 [cpu]: "
                              % (out, sources / "mlp.keras")), message
    assert "values off" in message and "first at [" in message and "max abs err" in message
    assert "\n" not in message
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp dirs left


def test_verify_catches_nan(sources, tmp_path, monkeypatch):
    out = tmp_path / "out"
    api.convert(str(sources / "mlp.keras"), str(out))
    before = _snapshot(out)
    from converter.writers import tfjs_layers
    real = tfjs_layers.write_tfjs_layers

    def nan_bias(model, directory, shard_size, content_hash=False):
        real(model, directory, shard_size, content_hash)
        shard = next(pathlib.Path(directory).glob("group1-shard*"))
        data = np.frombuffer(shard.read_bytes(), np.float32).copy()
        data[-1] = np.nan  # the last bias
        shard.write_bytes(data.tobytes())

    monkeypatch.setattr(tfjs_layers, "write_tfjs_layers", nan_bias)
    with pytest.raises(check.VerificationError, match=r"non-finite where TensorFlow's are "
                       r"finite, first at \[0, 0\]"):
        api.convert(str(sources / "mlp.keras"), str(out), verify=True)
    assert _snapshot(out) == before


def test_verify_catches_layer_norm_nan_without_the_guard(sources, tmp_path, monkeypatch):
    """The defect the semantics guard fixes: with it off, --verify is what stops the NaN model."""
    monkeypatch.setattr(semantics, "rewrite_semantics", lambda graph_def, outputs: graph_def)
    monkeypatch.setattr(semantics, "check_semantics", lambda graphs, source: None)
    out = tmp_path / "g"
    with pytest.raises(check.VerificationError) as info:
        api.convert(str(sources / "ln_k2.h5"), str(out), output_format="tfjs_graph_model",
                    verify=True)
    assert "non-finite where TensorFlow's are finite" in str(info.value)
    assert "[cpu]" in str(info.value) and "[wasm]" in str(info.value)
    assert not out.exists()


def test_check_command_reports_a_different_model(sources, tmp_path):
    api.convert(str(sources / "mlp.keras"), str(tmp_path / "out"))
    command = [sys.executable, "-m", "converter.verify", "check"]
    ok = subprocess.run(command + [str(sources / "mlp.keras"), str(tmp_path / "out")],
                        capture_output=True, text=True, cwd=ROOT, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "matches" in ok.stdout and "[wasm] max abs err" in ok.stdout
    bad = subprocess.run(command + [str(sources / "ln_k2.h5"), str(tmp_path / "out")],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode == 1
    assert ("converter.verify: error: the source model cannot run on the converted model's "
            "inputs (x float32 [2, 6]): Input 0 of layer") in bad.stderr, bad.stderr


def test_check_uses_given_inputs(sources, tmp_path):
    api.convert(str(sources / "mlp.keras"), str(tmp_path / "out"))
    np.save(tmp_path / "x.npy", np.full((4, 6), 0.5, np.float32))
    report = check.verify(check.Source(str(sources / "mlp.keras"), "keras_keras"),
                          str(tmp_path / "out"), "tfjs_layers_model", backends=("cpu",),
                          inputs_path=str(tmp_path / "x.npy"))
    assert report.lines[0].startswith("output 0 [cpu] max abs err")
    np.savez(tmp_path / "bad.npz", y=np.zeros((1, 6), np.float32))
    with pytest.raises(ConversionError, match=r"bad.npz: arrays y, want one per input: x"):
        check.verify(check.Source(str(sources / "mlp.keras"), "keras_keras"),
                     str(tmp_path / "out"), "tfjs_layers_model", inputs_path=str(tmp_path / "bad.npz"))


def test_seeded_inputs_follow_the_signature():
    doc = {wf.FORMAT: wf.GRAPH_MODEL_FORMAT, wf.SIGNATURE: {"inputs": {
        "img": {"name": "img:0", "dtype": "DT_FLOAT",
                "tensorShape": {"dim": [{"size": "-1"}, {"size": "-1"}, {"size": "3"}]}},
        "ids": {"name": "ids:0", "dtype": "DT_INT32", "tensorShape": {"dim": [{"size": "4"}]}},
        "words": {"name": "w:0", "dtype": "DT_STRING", "tensorShape": {}}}}}
    specs = check.input_specs(doc, "m.json")
    arrays = check.seeded_inputs(specs, seed=0)
    assert [s.name for s in specs] == ["ids", "img", "words"]
    assert arrays["img"].shape == (2, 8, 3) and arrays["img"].dtype == np.float32
    assert arrays["ids"].dtype == np.int32 and arrays["ids"].min() >= 0 and arrays["ids"].max() < 8
    assert arrays["words"].shape == () and arrays["words"].dtype == object
    again = check.seeded_inputs(specs, seed=0)
    assert all(np.array_equal(arrays[k], again[k]) for k in ("img", "ids"))


def test_compare_bound_scales_with_magnitude():
    report = check.Report()
    expected = np.array([100.0, 1.0], np.float32)
    check.compare("y", "cpu", expected + np.array([1.5e-3, 0], np.float32), expected,
                  check.ATOL, check.RTOL, report)
    assert report.problems == []  # 1.5e-3 <= 1e-5 * 100 + 1e-5 * 100; at 1: 2e-3 > 1.01e-3
    check.compare("y", "cpu", expected + np.array([0, 2e-3], np.float32), expected,
                  check.ATOL, check.RTOL, report)
    assert len(report.problems) == 1 and "first at [1]" in report.problems[0]
