"""Tests of the Keras readers: keras_h5, keras_v3 and the config translation.

Models are built here with Keras 3 (``keras``) and Keras 2 (``tf_keras``), saved
as ``.keras``, Keras 3 ``.h5``, Keras 2 ``.h5`` and weights-only files under
pytest's tmp_path, then read back. The tests check the weight names TF.js
expects, the weight values against the live Keras model, the translated
topology, and the exact message of every error. Whether TF.js runs the result is
checked by test_parity_layers.py.
"""

import copy
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

from converter.errors import InvalidModelError, UnsupportedLayerError
from converter.readers import keras_config
from converter.readers.keras_config import translate_model_config
from converter.readers.keras_h5 import read_keras_h5
from converter.readers.keras_v3 import read_keras_v3

# The weights of the test model, as TF.js names them (LayerVariable.originalName).
EXPECTED_NAMES = {
    "bi/forward_lstm/kernel", "bi/forward_lstm/recurrent_kernel", "bi/forward_lstm/bias",
    "bi/backward_lstm/kernel", "bi/backward_lstm/recurrent_kernel", "bi/backward_lstm/bias",
    "gru/kernel", "gru/recurrent_kernel", "gru/bias",
    "conv/kernel", "conv/bias", "dw/depthwise_kernel", "dw/bias",
    "inner_dense/kernel", "inner_dense/bias",
    "inner_bn/gamma", "inner_bn/beta", "inner_bn/moving_mean", "inner_bn/moving_variance",
    "td/kernel", "td/bias", "proj/kernel", "proj/bias", "out/kernel", "out/bias",
}
# The top-level layer of each weight (for --split_weights_by_layer).
EXPECTED_LAYER_OF = {name: name.split("/")[0] for name in EXPECTED_NAMES}
EXPECTED_LAYER_OF.update({n: "inner" for n in EXPECTED_NAMES if n.startswith("inner_")})


def _build(k):
    """A functional model covering the naming rules: RNNs, Bidirectional,
    TimeDistributed, DepthwiseConv2D, a nested Sequential with BatchNormalization."""
    layers = k.layers
    inner = k.Sequential([k.Input((6,)), layers.Dense(5, name="inner_dense"),
                          layers.BatchNormalization(name="inner_bn")], name="inner")
    seq = k.Input((4, 3), name="seq")
    vec = k.Input((6,), name="vec")
    img = k.Input((6, 6, 2), name="img")
    x = layers.Bidirectional(layers.LSTM(4, return_sequences=True, name="lstm"), name="bi")(seq)
    x = layers.TimeDistributed(layers.Dense(3, name="td_dense"), name="td")(x)
    x = layers.GRU(3, reset_after=False, name="gru")(x)
    y = layers.Dense(3, name="proj", kernel_regularizer=k.regularizers.L2(0.01))(inner(vec))
    z = layers.Conv2D(3, 3, name="conv")(img)
    z = layers.DepthwiseConv2D(3, name="dw")(z)
    z = layers.GlobalAveragePooling2D(name="gap")(z)
    merged = layers.Concatenate(name="cat")([x, y, z])
    out = layers.Dense(2, activation="softmax", name="out")(merged)
    leaky = layers.LeakyReLU(0.2, name="leaky")(y)
    model = k.Model([seq, vec, img], [out, leaky], name="model")
    rng = np.random.default_rng(7)
    # Random values everywhere, so a weight read into the wrong slot shows.
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                       for w in model.get_weights()])
    return model


def _keras_weights(model):
    """{TF.js name: array} derived from the live Keras model's layers."""
    out = {}

    def local(variable):
        # Keras 3 names a variable "kernel", Keras 2 "layer/kernel:0".
        return variable.name.split("/")[-1].split(":")[0]

    def visit(layer):
        cls = type(layer).__name__
        if cls in ("Sequential", "Functional"):
            for inner in layer.layers:
                visit(inner)
        elif cls == "Bidirectional":
            for half in (layer.forward_layer, layer.backward_layer):
                for w in half.weights:
                    out["%s/%s/%s" % (layer.name, half.name, local(w))] = np.asarray(w)
        else:
            for w in layer.weights:
                name = local(w)
                if cls == "DepthwiseConv2D" and name == "kernel":   # Keras 3's name
                    name = "depthwise_kernel"
                out["%s/%s" % (layer.name, name)] = np.asarray(w)

    for layer in model.layers:
        visit(layer)
    return out


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The test model saved in every form, with the live models."""
    import keras
    import tf_keras
    d = tmp_path_factory.mktemp("keras_readers")
    keras.utils.set_random_seed(1)
    k3 = _build(keras)
    k3.save(d / "k3.keras")
    k3.save(d / "k3.h5")
    k3.save_weights(d / "k3.weights.h5")
    tf_keras.utils.set_random_seed(1)
    k2 = _build(tf_keras)
    k2.save(d / "k2.h5")
    k2.save_weights(d / "k2_weights.h5")
    return {"dir": d, "k3": k3, "k2": k2}


def _check_weights(model, keras_model):
    want = _keras_weights(keras_model)
    got = {t.name: t for t in model.tensors()}
    assert set(got) == EXPECTED_NAMES
    assert set(want) == EXPECTED_NAMES
    for name, tensor in got.items():
        assert tensor.dtype == "float32", name
        assert tensor.shape == want[name].shape, name
        np.testing.assert_array_equal(tensor.data, want[name], err_msg=name)


@pytest.mark.parametrize("source,version", [("k3.keras", "k3"), ("k3.h5", "k3"),
                                            ("k2.h5", "k2")])
def test_full_model_weights(saved, source, version):
    path = str(saved["dir"] / source)
    model = (read_keras_v3 if source.endswith(".keras") else read_keras_h5)(path)
    _check_weights(model, saved[version])
    assert model.layer_of == EXPECTED_LAYER_OF
    assert len(model.groups) == 1
    import keras
    import tf_keras
    keras_version = keras.__version__ if version == "k3" else tf_keras.__version__
    assert model.generated_by == "keras v%s" % keras_version
    assert model.topology["keras_version"] == keras_version


@pytest.mark.parametrize("source,version", [("k3.keras", "k3"), ("k3.h5", "k3"),
                                            ("k2.h5", "k2")])
def test_weight_order_is_layer_by_layer(saved, source, version):
    path = str(saved["dir"] / source)
    model = (read_keras_v3 if source.endswith(".keras") else read_keras_h5)(path)
    want = list(_keras_weights(saved[version]))
    assert [t.name for t in model.tensors()] == want


def test_keras2_weights_only(saved):
    model = read_keras_h5(str(saved["dir"] / "k2_weights.h5"))
    assert model.topology is None
    assert model.generated_by is None
    names = [t.name for t in model.tensors()]
    # Keras 2's own names without ":0" (TF.js drops the cell segment itself).
    assert "bi/forward_lstm/lstm_cell/kernel" in names
    assert "gru/gru_cell/bias" in names
    assert "inner_dense/kernel" in names
    assert len(names) == len(EXPECTED_NAMES)
    want = _keras_weights(saved["k2"])
    for tensor in model.tensors():
        short = tensor.name.replace("/lstm_cell", "").replace("/gru_cell", "")
        np.testing.assert_array_equal(tensor.data, want[short], err_msg=tensor.name)
    assert model.layer_of["inner_bn/gamma"] == "inner"


def test_keras3_weights_only(tmp_path):
    import keras
    layers = keras.layers
    inner = keras.Sequential([keras.Input((6,)), layers.Dense(5, name="inner_dense"),
                              layers.BatchNormalization(name="inner_bn")], name="inner")
    model = keras.Sequential([
        keras.Input((4, 6)),
        layers.Bidirectional(layers.LSTM(6, return_sequences=True, name="lstm"), name="bi"),
        layers.GRU(6, reset_after=False, name="gru"),
        inner,
        layers.Dense(2, use_bias=False, name="out"),
    ])
    rng = np.random.default_rng(3)
    model.set_weights([rng.standard_normal(w.shape).astype(np.float32)
                       for w in model.get_weights()])
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    read = read_keras_h5(str(path))
    assert read.topology is None
    assert read.generated_by is None
    want = _keras_weights(model)
    # Layer order is not recorded: layers come key by key (bidirectional, dense,
    # gru, sequential), each nested layer likewise (batch_normalization, dense).
    assert [t.name for t in read.tensors()] == [
        "bi/forward_lstm/kernel", "bi/forward_lstm/recurrent_kernel", "bi/forward_lstm/bias",
        "bi/backward_lstm/kernel", "bi/backward_lstm/recurrent_kernel", "bi/backward_lstm/bias",
        "out/kernel", "gru/kernel", "gru/recurrent_kernel", "gru/bias",
        "inner_bn/gamma", "inner_bn/beta", "inner_bn/moving_mean", "inner_bn/moving_variance",
        "inner_dense/kernel", "inner_dense/bias"]
    for tensor in read.tensors():
        np.testing.assert_array_equal(tensor.data, want[tensor.name], err_msg=tensor.name)
    assert read.layer_of["inner_bn/gamma"] == "inner"
    assert read.layer_of["bi/backward_lstm/bias"] == "bi"


def test_keras3_weights_only_refuses_unnamable_layers(saved):
    # A TimeDistributed stores its wrapped layer under "layer", without a class.
    path = saved["dir"] / "k3.weights.h5"
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == (
        "%s: layer 'td' wraps a layer whose class the weights file does not record, so its "
        "variables cannot be named; convert the full model (.keras) instead" % path)


def test_keras_archive_read_in_place(saved, tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes((saved["dir"] / "k3.keras").read_bytes())
    read_keras_v3(str(path))
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_keras_archive_with_compressed_weights(saved, tmp_path):
    # Keras stores the weights member uncompressed; a deflated one is read too.
    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(saved["dir"] / "k3.keras") as src, \
            zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    _check_weights(read_keras_v3(str(path)), saved["k3"])


# --------------------------------------------------------------------------
# Topology translation of real Keras files.

def _layers(model):
    return {l["config"]["name"]: l for l in model.topology["model_config"]["config"]["layers"]}


def _walk(value):
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


@pytest.mark.parametrize("source", ["k3.keras", "k3.h5", "k2.h5"])
def test_topology_is_keras2_style(saved, source):
    path = str(saved["dir"] / source)
    model = (read_keras_v3 if source.endswith(".keras") else read_keras_h5)(path)
    config = model.topology["model_config"]
    assert config["class_name"] == "Functional"
    for obj in _walk(config):
        assert not {"module", "registered_name", "build_config", "batch_shape",
                    "shared_object_id"} & set(obj), obj
    layers = _layers(model)
    assert layers["seq"] == {
        "class_name": "InputLayer", "name": "seq", "inbound_nodes": [],
        "config": {"name": "seq", "batch_input_shape": [None, 4, 3], "dtype": "float32",
                   "sparse": False}}
    proj = layers["proj"]["config"]
    assert proj["dtype"] == "float32"
    assert proj["kernel_regularizer"] == {"class_name": "L1L2",
                                          "config": {"l1": 0.0, "l2": pytest.approx(0.01)}}
    assert proj["kernel_initializer"] == {"class_name": "GlorotUniform", "config": {"seed": None}}
    assert layers["proj"]["inbound_nodes"] == [[["inner", 1, 0, {}]]]
    assert layers["cat"]["inbound_nodes"] == [[["gru", 0, 0, {}], ["proj", 0, 0, {}],
                                               ["gap", 0, 0, {}]]]
    assert layers["leaky"]["config"]["alpha"] == pytest.approx(0.2)
    bi = layers["bi"]["config"]
    assert bi["layer"]["class_name"] == "LSTM"
    assert bi["layer"]["config"]["name"] == "lstm"
    assert "backward_layer" not in bi
    assert bi["merge_mode"] == "concat"
    assert layers["inner"]["class_name"] == "Sequential"
    inner_layers = layers["inner"]["config"]["layers"]
    assert [l["class_name"] for l in inner_layers] == ["InputLayer", "Dense",
                                                      "BatchNormalization"]
    assert inner_layers[2]["config"]["axis"] == -1
    assert config["config"]["input_layers"] == [["seq", 0, 0], ["vec", 0, 0], ["img", 0, 0]]
    assert config["config"]["output_layers"] == [["out", 0, 0], ["leaky", 0, 0]]
    json.dumps(model.topology, allow_nan=False)


# --------------------------------------------------------------------------
# Config translation rules on hand-written configs (no TensorFlow).

def _input(name="in", shape=(None, 4), dtype="float32"):
    return {"class_name": "InputLayer", "config": {"batch_shape": list(shape), "dtype": dtype,
                                                   "sparse": False, "ragged": False,
                                                   "name": name}}


def _tensor(layer):
    """A Keras 3 node argument: output 0 of call 0 of ``layer``."""
    return {"class_name": "__keras_tensor__", "config": {"keras_history": [layer, 0, 0]}}


def _sequential(*layers, shape=(None, 4)):
    return {"class_name": "Sequential",
            "config": {"name": "s", "layers": [_input(shape=shape)] + list(layers)}}


def _dense(name="d", **config):
    return {"class_name": "Dense", "config": dict({"name": name, "units": 2}, **config)}


def _translate(config, version="3.15.1"):
    return translate_model_config(config, version, "m.h5")


def test_keras3_nodes_become_nested_lists():
    config = {"class_name": "Functional", "config": {
        "name": "f",
        "layers": [
            dict(_input("a"), name="a", inbound_nodes=[]),
            dict(_input("b"), name="b", inbound_nodes=[]),
            {"class_name": "Add", "config": {"name": "add", "trainable": True,
                                            "dtype": {"class_name": "DTypePolicy",
                                                      "config": {"name": "float32"}}},
             "name": "add",
             "inbound_nodes": [{"args": [[_tensor("a"), _tensor("b")]],
                                "kwargs": {"mask": None}}]},
        ],
        "input_layers": [["a", 0, 0], ["b", 0, 0]],
        "output_layers": ["add", 0, 0],
    }}
    out = _translate(config).model_config["config"]
    assert out["layers"][2] == {"class_name": "Add", "name": "add",
                                "config": {"name": "add", "trainable": True,
                                           "dtype": "float32"},
                                "inbound_nodes": [[["a", 0, 0, {}], ["b", 0, 0, {}]]]}
    assert out["output_layers"] == [["add", 0, 0]]


def test_keras3_operation_becomes_merge_layer():
    # ``a * b`` on Keras 3 symbolic tensors saves an operation, not a layer.
    config = {"class_name": "Functional", "config": {
        "name": "f",
        "layers": [dict(_input("a"), name="a", inbound_nodes=[]),
                   dict(_input("b"), name="b", inbound_nodes=[]),
                   {"class_name": "Multiply", "config": {"name": "multiply"}, "name": "multiply",
                    "inbound_nodes": [{"args": [_tensor("a"), _tensor("b")], "kwargs": {}}]}],
        "input_layers": [["a", 0, 0], ["b", 0, 0]],
        "output_layers": [["multiply", 0, 0]],
    }}
    layer = _translate(config).model_config["config"]["layers"][2]
    assert layer == {"class_name": "Multiply", "name": "multiply",
                     "config": {"name": "multiply", "trainable": True},
                     "inbound_nodes": [[["a", 0, 0, {}], ["b", 0, 0, {}]]]}


def test_sequential_without_input_layer_gets_batch_input_shape():
    config = {"class_name": "Sequential",
              "config": {"name": "s", "layers": [_dense()], "build_input_shape": [None, 3]}}
    layers = _translate(config).model_config["config"]["layers"]
    assert layers[0]["config"]["batch_input_shape"] == [None, 3]


def test_batch_norm_positive_last_axis_becomes_minus_one():
    bn = {"class_name": "BatchNormalization", "config": {"name": "bn", "axis": [3]}}
    layers = _translate(_sequential(bn, shape=(None, 5, 5, 2)), "2.15.0") \
        .model_config["config"]["layers"]
    assert layers[1]["config"]["axis"] == -1


def test_activity_regularizer_is_dropped():
    dense = _dense(activity_regularizer={"class_name": "L2", "config": {"l2": 0.1}})
    layers = _translate(_sequential(dense)).model_config["config"]["layers"]
    assert "activity_regularizer" not in layers[1]["config"]


def test_initializer_forms():
    scaling = {"module": "keras.initializers", "class_name": "VarianceScaling",
               "config": {"scale": 2.0, "mode": "fan_in", "distribution": "untruncated_normal",
                          "seed": None},
               "registered_name": None}
    dense = _dense(kernel_initializer="he_normal", bias_initializer=scaling)
    config = _translate(_sequential(dense)).model_config["config"]["layers"][1]["config"]
    assert config["kernel_initializer"] == {"class_name": "HeNormal", "config": {}}
    assert config["bias_initializer"] == {
        "class_name": "VarianceScaling",
        "config": {"scale": 2.0, "mode": "fan_in", "distribution": "normal", "seed": None}}


def test_every_table_class_is_a_tfjs_class():
    for cls in keras_config.supported_layer_classes():
        assert keras_config.CLASS_RENAMES.get(cls, cls) in keras_config.TFJS_LAYER_CLASSES, cls


def test_v3_keys():
    assert [keras_config.v3_key(c) for c in
            ("Dense", "Conv2D", "SimpleRNN", "PReLU", "ReLU", "BatchNormalization",
             "DepthwiseConv2D", "LSTM")] == [
        "dense", "conv2d", "simple_rnn", "p_re_lu", "re_lu", "batch_normalization",
        "depthwise_conv2d", "lstm"]


REFUSED_CONFIGS = [
    (_sequential({"class_name": "GRU", "config": {"name": "g", "units": 2, "reset_after": True}},
                 shape=(None, 3, 4)),
     UnsupportedLayerError,
     "m.h5: layer 'g' (GRU): reset_after=True is not supported by TF.js (supported: False "
     "(TF.js implements only the reset_after=False variant; build the GRU with "
     "reset_after=False))"),
    (_sequential({"class_name": "Conv1D", "config": {"name": "c", "filters": 2, "kernel_size": 3,
                                                     "padding": "causal"}},
                 shape=(None, 8, 2)),
     UnsupportedLayerError,
     "m.h5: layer 'c' (Conv1D): padding='causal' is not supported by TF.js (supported: "
     "'valid' or 'same' (TF.js conv1d has no causal padding))"),
    (_sequential({"class_name": "BatchNormalization", "config": {"name": "bn", "axis": 1}},
                 shape=(None, 5, 5, 2)),
     UnsupportedLayerError,
     "m.h5: layer 'bn' (BatchNormalization): axis=1 with input rank 4: TF.js computes this "
     "layer correctly over the last axis only"),
    (_sequential(_dense(activation="hard_sigmoid")),
     UnsupportedLayerError,
     "m.h5: layer 'd' (Dense): activation 'hard_sigmoid': Keras 3 defines it as "
     "relu6(x + 3) / 6 but TF.js as clip(0.2 * x + 0.5, 0, 1)"),
    (_sequential(_dense(lora_rank=4)),
     UnsupportedLayerError,
     "m.h5: layer 'd' (Dense): lora_rank=4 is not supported by TF.js (supported: None)"),
    (_sequential(_dense(fancy=1)),
     UnsupportedLayerError,
     "m.h5: layer 'd' (Dense): config key 'fancy' is not known to this converter (value 1)"),
    (_sequential(_dense(dtype={"class_name": "DTypePolicy",
                               "config": {"name": "mixed_float16"}})),
     UnsupportedLayerError,
     "m.h5: layer 'd' (Dense): dtype policy 'mixed_float16': TF.js layers compute in float32 "
     "only; save the model with the float32 policy"),
    (_sequential(_dense(kernel_initializer={"class_name": "MyInit", "config": {}})),
     UnsupportedLayerError,
     "m.h5: layer 'd' (Dense): kernel_initializer MyInit has no TF.js equivalent (TF.js has "
     "Constant, GlorotNormal, GlorotUniform, HeNormal, HeUniform, Identity, LeCunNormal, "
     "LeCunUniform, Ones, Orthogonal, RandomNormal, RandomUniform, TruncatedNormal, "
     "VarianceScaling, Zeros)"),
    (_sequential({"class_name": "Conv3D", "config": {"name": "c3"}}, shape=(None, 4, 4, 4, 1)),
     UnsupportedLayerError,
     "m.h5: layer 'c3' (Conv3D): TF.js has this class but its translation is not verified by "
     "this converter"),
    (_sequential({"class_name": "FancyLayer", "config": {"name": "f"}}),
     UnsupportedLayerError,
     "m.h5: layer 'f' (FancyLayer): TF.js 4.22 has no layer class FancyLayer"),
    (_sequential({"class_name": "Lambda", "config": {"name": "lam"}}),
     UnsupportedLayerError,
     "m.h5: layer 'lam' (Lambda): Lambda layers hold Python code, which cannot run in TF.js; "
     "replace the Lambda with built-in layers or a custom TF.js layer"),
    (_sequential({"class_name": "Embedding", "config": {"name": "e", "input_dim": 5,
                                                        "output_dim": 2, "mask_zero": True}},
                 {"class_name": "Bidirectional", "config": {
                     "name": "bi", "layer": {"class_name": "LSTM", "config": {
                         "name": "forward_lstm", "units": 2, "return_sequences": True,
                         "zero_output_for_mask": True}}}},
                 shape=(None, 6)),
     UnsupportedLayerError,
     "m.h5: layer 'bi' (Bidirectional): returns sequences with masked steps zeroed "
     "(zero_output_for_mask) and the model has a mask (Masking or Embedding(mask_zero=True)): "
     "TF.js repeats the previous output at masked steps instead"),
    ({"class_name": "MyModel", "config": {}},
     InvalidModelError,
     "m.h5: model_config class_name is 'MyModel'; want Sequential, Functional or Model "
     "(subclassed models have no config TF.js can load)"),
    ({"class_name": "Sequential", "config": {"name": "s", "layers": [_dense()]}},
     InvalidModelError,
     "m.h5: Sequential model 's' has no input shape (no InputLayer, no batch_input_shape, no "
     "build_input_shape); TF.js needs one: build the model with keras.Input before saving"),
]


@pytest.mark.parametrize("config,error,message", REFUSED_CONFIGS)
def test_refused_configs(config, error, message):
    with pytest.raises(error) as info:
        _translate(copy.deepcopy(config))
    assert str(info.value) == message


def test_tf_op_lambda_is_refused():
    config = {"class_name": "Functional", "config": {
        "name": "f",
        "layers": [dict(_input("a"), name="a", inbound_nodes=[]),
                   {"class_name": "TFOpLambda",
                    "config": {"name": "tf.math.add", "function": "math.add"},
                    "name": "tf.math.add",
                    "inbound_nodes": [["a", 0, 0, {"y": 1.0, "name": None}]]}],
        "input_layers": [["a", 0, 0]], "output_layers": [["tf.math.add", 0, 0]]}}
    with pytest.raises(UnsupportedLayerError) as info:
        _translate(config, "2.15.0")
    assert str(info.value) == (
        "m.h5: layer 'tf.math.add' (TFOpLambda): TensorFlow ops used directly on Keras "
        "tensors are saved as TFOpLambda layers, which cannot run in TF.js; use the "
        "equivalent Keras layers")


def test_dict_outputs_are_refused():
    config = {"class_name": "Functional", "config": {
        "name": "f", "layers": [dict(_input("a"), name="a", inbound_nodes=[])],
        "input_layers": [["a", 0, 0]], "output_layers": {"y": ["a", 0, 0]}}}
    with pytest.raises(UnsupportedLayerError) as info:
        _translate(config)
    assert str(info.value) == ("m.h5: layer '<model>' (Functional): output_layers is a dict "
                               "(named inputs/outputs); TF.js layers models take lists")


def test_training_call_argument_is_refused():
    config = {"class_name": "Functional", "config": {
        "name": "f",
        "layers": [dict(_input("a"), name="a", inbound_nodes=[]),
                   {"class_name": "Dropout", "config": {"name": "drop", "rate": 0.5},
                    "name": "drop",
                    "inbound_nodes": [{"args": [_tensor("a")], "kwargs": {"training": True}}]}],
        "input_layers": [["a", 0, 0]], "output_layers": [["drop", 0, 0]]}}
    with pytest.raises(UnsupportedLayerError) as info:
        _translate(config)
    assert str(info.value) == ("m.h5: layer 'drop' (Dropout): called with training=True; "
                               "TF.js layers models only pass tensors between layers")


# --------------------------------------------------------------------------
# Error cases on files.

def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.h5")
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(path)
    assert str(info.value) == "%s: no such file (want a Keras .h5 file)" % path


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not a model")
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == "%s: not an HDF5 file (no HDF5 signature)" % path


def test_truncated_hdf5(saved, tmp_path):
    data = (saved["dir"] / "k3.h5").read_bytes()
    path = tmp_path / "truncated.h5"
    path.write_bytes(data[:2048])
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == (
        "%s: cannot read HDF5 file (truncated file: eof = 2048, sblock->base_addr = 0, "
        "stored_eof = %d); the file is corrupt or incomplete" % (path, len(data)))


def test_hdf5_that_is_not_keras(tmp_path):
    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == (
        "%s: HDF5 file is not a Keras model: no 'model_config' attribute (full model) and no "
        "'layer_names' attribute (weights-only file)" % path)


def _edit_h5_config(src, dst, edit):
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)


def _config_layer(config, name):
    return next(l for l in config["config"]["layers"] if l["config"]["name"] == name)


def test_unknown_layer_class_in_h5(saved, tmp_path):
    path = tmp_path / "unknown.h5"
    _edit_h5_config(saved["dir"] / "k3.h5", path,
                    lambda c: _config_layer(c, "gap").update(class_name="FancyPooling"))
    with pytest.raises(UnsupportedLayerError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == ("%s: layer 'gap' (FancyPooling): TF.js 4.22 has no layer class "
                               "FancyPooling" % path)


def test_h5_weights_disagree_with_config(saved, tmp_path):
    path = tmp_path / "nobias.h5"
    _edit_h5_config(saved["dir"] / "k2.h5", path,
                    lambda c: _config_layer(c, "proj")["config"].update(use_bias=False))
    with pytest.raises(InvalidModelError) as info:
        read_keras_h5(str(path))
    assert str(info.value) == (
        "%s: layer 'proj' has 2 weights in the file (proj/kernel:0, proj/bias:0) but its "
        "config implies 1 (kernel)" % path)


def test_lambda_layer_in_keras_archive(tmp_path):
    import keras
    model = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2, name="lam")])
    path = tmp_path / "lambda.keras"
    model.save(path)
    with pytest.raises(UnsupportedLayerError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == (
        "%s: layer 'lam' (Lambda): Lambda layers hold Python code, which cannot run in "
        "TF.js; replace the Lambda with built-in layers or a custom TF.js layer" % path)


def test_corrupt_keras_archive(tmp_path):
    path = tmp_path / "corrupt.keras"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    with pytest.raises(InvalidModelError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == ("%s: not a zip archive (a .keras file is a zip of config.json, "
                               "metadata.json and model.weights.h5)" % path)


def _rewrite_archive(src, dst, replace):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            data = replace(name, zin.read(name))
            if data is not None:
                zout.writestr(name, data)


def test_keras_archive_missing_member(saved, tmp_path):
    path = tmp_path / "noweights.keras"
    _rewrite_archive(saved["dir"] / "k3.keras", path,
                     lambda name, data: None if name == "model.weights.h5" else data)
    with pytest.raises(InvalidModelError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == ("%s: the archive has no model.weights.h5 (members: config.json, "
                               "metadata.json)" % path)


def test_keras_archive_truncated_weights(saved, tmp_path):
    path = tmp_path / "shortweights.keras"
    _rewrite_archive(saved["dir"] / "k3.keras", path,
                     lambda name, data: data[:700] if name == "model.weights.h5" else data)
    with zipfile.ZipFile(saved["dir"] / "k3.keras") as z:
        size = z.getinfo("model.weights.h5").file_size
    with pytest.raises(InvalidModelError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == (
        "%s!model.weights.h5: cannot read HDF5 file (truncated file: eof = 700, "
        "sblock->base_addr = 0, stored_eof = %d); the file is corrupt or incomplete"
        % (path, size))


def test_keras_archive_bad_config_json(saved, tmp_path):
    path = tmp_path / "badjson.keras"
    _rewrite_archive(saved["dir"] / "k3.keras", path,
                     lambda name, data: b"{not json" if name == "config.json" else data)
    with pytest.raises(InvalidModelError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == ("%s: config.json: not valid JSON (Expecting property name "
                               "enclosed in double quotes: line 1 column 2 (char 1))" % path)


def test_keras_archive_weights_disagree_with_config(saved, tmp_path):
    def drop_bias(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        _config_layer(config, "proj")["config"]["use_bias"] = False
        return json.dumps(config).encode()

    path = tmp_path / "nobias.keras"
    _rewrite_archive(saved["dir"] / "k3.keras", path, drop_bias)
    with pytest.raises(InvalidModelError) as info:
        read_keras_v3(str(path))
    assert str(info.value) == ("%s!model.weights.h5: 1 variables are not accounted for by the "
                               "model (layers/dense/vars/1)" % path)


def test_weights_only_h5_with_split_attributes_and_float64(tmp_path):
    # Keras splits attributes over 64 KiB into name0, name1, ...; float64 values
    # are narrowed to float32 by format.to_logical.
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names0"] = np.array([b"a"], dtype=object)
        f.attrs["layer_names1"] = np.array([b"b"], dtype=object)
        for layer in ("a", "b"):
            g = f.create_group(layer)
            g.attrs["weight_names"] = np.array([("%s/kernel:0" % layer).encode()], dtype=object)
            g["%s/kernel:0" % layer] = np.full((2, 2), 0.5, dtype=np.float64)
    model = read_keras_h5(str(path))
    assert [(t.name, t.dtype, t.data.dtype) for t in model.tensors()] == [
        ("a/kernel", "float32", np.float32), ("b/kernel", "float32", np.float32)]
    assert model.layer_of == {"a/kernel": "a", "b/kernel": "b"}
