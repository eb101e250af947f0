"""Models carrying code are refused before any deserializer sees them (no code runs).

Each hostile model is built here: a Lambda whose function writes a marker file
when called, saved by tf_keras (Keras 2 .h5 and SavedModel) and Keras 3 (.h5),
then converted on every path that hands it to Keras.
"""

import json
import pathlib
import re

import h5py
import pytest

from converter import api, cli
from converter.errors import UnsupportedLayerError
from converter.readers import code_check


def _marker_lambda(marker: pathlib.Path):
    path = str(marker)

    def touch(x):
        open(path, "w").close()  # runs whenever Keras calls (or rebuilds) the layer
        return x
    return touch


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    import keras
    import tf_keras
    root = tmp_path_factory.mktemp("hostile")
    marker = root / "marker"
    k2 = tf_keras.Sequential([tf_keras.Input((3,)),
                              tf_keras.layers.Lambda(_marker_lambda(marker), name="evil"),
                              tf_keras.layers.Dense(2)])
    k2.save(root / "k2.h5")
    k2.save(root / "k2_saved_model", save_format="tf")
    x = keras.Input((3,))
    k3 = keras.Model(x, keras.layers.Dense(2)(keras.layers.Lambda(_marker_lambda(marker),
                                                                  name="evil")(x)))
    k3.save(root / "k3.h5")
    marker.unlink(missing_ok=True)  # building and saving called the layer
    return root


@pytest.mark.parametrize("source,options", [
    ("k2.h5", {"output_format": "tfjs_graph_model"}),
    ("k2.h5", {}),
    ("k3.h5", {"output_format": "tfjs_graph_model"}),
    ("k2_saved_model", {"input_format": "keras_saved_model"}),
    ("k2_saved_model", {"input_format": "keras_saved_model", "output_format": "tfjs_graph_model"}),
    ("k2_saved_model", {"input_format": "tf_saved_model"}),
])
def test_lambda_is_refused_and_never_runs(hostile, tmp_path, source, options):
    out = tmp_path / "out"
    argv = ["--%s=%s" % kv for kv in options.items()] + [str(hostile / source), str(out)]
    code = cli.main(argv)
    assert code == 1
    assert not (hostile / "marker").exists(), "the Lambda's code ran"
    assert not out.exists()


def test_messages_name_the_input_and_the_layer(hostile, tmp_path, capsys):
    cli.main(["--output_format=tfjs_graph_model", str(hostile / "k2.h5"), str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert err == ("tfjs_converter: error: %s: layer 'evil' (Lambda) holds Python code; refused "
                   "before loading, since loading it would run that code. Replace the Lambda "
                   "with built-in layers" % (hostile / "k2.h5"))
    cli.main(["--input_format=keras_saved_model", str(hostile / "k2_saved_model"),
              str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert err.startswith("tfjs_converter: error: %s: layer 'evil' (Lambda)"
                          % (hostile / "k2_saved_model")), err
    assert "model.h5" not in err


def test_custom_module_is_refused(tmp_path):
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": "os", "class_name": "system", "config": {"name": "x"}}]}}
    with pytest.raises(UnsupportedLayerError, match=r"m.h5: object 'x' \(system\) comes from "
                       r"module 'os', outside Keras"):
        code_check.refuse_code(config, "m.h5")
    with pytest.raises(UnsupportedLayerError, match=r"custom class 'my_pkg>Block'"):
        code_check.refuse_code({"class_name": "Block", "registered_name": "my_pkg>Block",
                                "config": {"name": "b"}}, "m.keras")
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = json.dumps(config)
    with pytest.raises(UnsupportedLayerError, match="module 'os'"):
        api.convert(str(path), str(tmp_path / "out"), output_format="tfjs_graph_model")


@pytest.mark.parametrize("module", ["tensorflow.io", "tensorflow", "kerasx", "tf_keras_evil.x"])
def test_module_of_a_package_beside_keras_is_refused(module):
    """Only Keras's own modules pass: ``tensorflow.io`` is importable code, not a Keras layer."""
    config = {"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": module, "class_name": "write_file", "config": {"name": "x"}}]}}
    with pytest.raises(UnsupportedLayerError, match=r"comes from module '%s', outside Keras"
                       % re.escape(module)):
        code_check.refuse_code(config, "m.h5")


@pytest.mark.parametrize("module", ["keras", "keras.layers", "keras.src.layers.core.dense",
                                    "tf_keras.src.layers", "tensorflow.keras.layers"])
def test_keras_modules_pass(module):
    code_check.refuse_code({"class_name": "Sequential", "config": {"name": "s", "layers": [
        {"module": module, "class_name": "Dense", "config": {"name": "d", "units": 1}}]}}, "m.h5")


def test_zoo_configs_pass(tmp_path):
    import keras
    x = keras.Input((4, 4, 3))
    y = keras.layers.BatchNormalization()(keras.layers.Conv2D(2, 3)(x))
    model = keras.Model(x, keras.layers.Dense(2, kernel_regularizer="l2")(y))
    model.save(tmp_path / "m.keras")
    model.save(tmp_path / "m.h5")
    code_check.refuse_code_in_file(str(tmp_path / "m.keras"))
    code_check.refuse_code_in_file(str(tmp_path / "m.h5"))
