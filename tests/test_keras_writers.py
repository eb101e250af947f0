"""Tests of converter/writers/keras.py: TF.js layers models written as Keras 3 files.

Each round-trip case builds a small Keras 3 model with non-trivial weights, turns
it into a TF.js-form LayersModel with ``read_keras_v3``, writes ``.h5`` and
``.keras`` files with the writers, loads them with ``keras.models.load_model``
and compares predictions with the original model's on fixed inputs. It also
checks that two writes give identical bytes and that the ``.keras`` weights file
has exactly the layout Keras 3 itself writes for the same model.
"""

import base64
import io
import json
import os
import zipfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import h5py  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from converter.errors import InvalidModelError, UnsupportedLayerError, UsageError  # noqa: E402
from converter.model import LayersModel, Tensor  # noqa: E402
from converter.readers.keras_v3 import read_keras_v3  # noqa: E402
from converter.weights.quantize import dequantize_tensor, quantize_tensor  # noqa: E402
from converter.writers import keras as keras_writer  # noqa: E402
from converter.writers.keras import write_keras_h5, write_keras_v3  # noqa: E402

L = keras.layers
WRITERS = {".h5": write_keras_h5, ".keras": write_keras_v3}
# Same graph, same weights, same kernels: Keras must reproduce the original
# outputs bit for bit; the bound only absorbs a reordered float32 sum.
ATOL = 1e-6


# --------------------------------------------------------------------------
# Models.


def _mlp():
    return keras.Sequential([
        keras.Input((6,)),
        L.Dense(8, activation="relu"),
        L.Dropout(0.3),
        L.Dense(4, activation="softmax"),
    ], name="mlp")


def _cnn_bn():
    return keras.Sequential([
        keras.Input((12, 12, 3)),
        L.Conv2D(6, 3, padding="same", activation="relu"),
        L.BatchNormalization(),
        L.MaxPooling2D(2),
        L.DepthwiseConv2D(3, depth_multiplier=2),
        L.BatchNormalization(center=False),
        L.SeparableConv2D(5, 3, padding="same", depth_multiplier=2),
        L.Conv2DTranspose(4, 3, strides=2),
        L.AveragePooling2D(2),
        L.GlobalAveragePooling2D(),
        L.Dense(3),
    ], name="cnn_bn")


def _embedding_lstm():
    inputs = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 5)(inputs)
    x = L.LSTM(6, return_sequences=True)(x)
    x = L.LSTM(4)(x)
    return keras.Model(inputs, L.Dense(2)(x), name="embedding_lstm")


def _gru():
    return keras.Sequential([
        keras.Input((6, 3)),
        L.GRU(5, return_sequences=True, reset_after=False),
        L.GRU(4, reset_after=False),
        L.Dense(2),
    ], name="gru")


def _bidirectional():
    inputs = keras.Input((6, 3))
    x = L.Bidirectional(L.LSTM(4, return_sequences=True))(inputs)
    x = L.Bidirectional(L.LSTM(3), merge_mode="sum")(x)
    return keras.Model(inputs, L.Dense(2)(x), name="bidirectional")


def _multi_io():
    a = keras.Input((8,), name="a")
    b = keras.Input((5, 4), name="b")
    ha = L.Dense(6, activation="tanh", name="ha")(a)
    hb = L.Conv1D(6, 2, name="hb")(b)
    hb = L.GlobalMaxPooling1D(name="pool")(hb)
    added = L.Add(name="add")([ha, hb])
    product = L.Multiply(name="mul")([ha, hb])
    merged = L.Concatenate(name="concat")([added, product, a])
    logits = L.Dense(3, name="logits")(merged)
    score = L.Dense(1, activation="sigmoid", name="score")(added)
    return keras.Model([a, b], [logits, score], name="multi_io")


def _nested():
    inner_seq = keras.Sequential([
        keras.Input((6,)),
        L.Dense(8, activation="relu"),
        L.BatchNormalization(),
        L.Dense(8),
    ], name="inner_seq")
    inner_in = keras.Input((8,))
    inner_fn = keras.Model(inner_in, L.Dense(4, activation="tanh")(inner_in), name="inner_fn")
    x_in = keras.Input((6,), name="x")
    y_in = keras.Input((6,), name="y")
    shared = L.Dense(6, name="shared")
    hx = inner_fn(inner_seq(shared(x_in)))
    hy = inner_fn(inner_seq(shared(y_in)))
    out = L.Dense(2, name="head")(L.Concatenate()([hx, hy]))
    return keras.Model([x_in, y_in], [out, hx], name="nested")


def _misc():
    inputs = keras.Input((6, 4), name="seq_in")
    x = L.TimeDistributed(L.Dense(5))(inputs)
    x = L.LayerNormalization()(x)
    x = L.PReLU()(x)
    x = L.SimpleRNN(6, return_sequences=True)(x)
    x = L.LeakyReLU(negative_slope=0.2)(x)
    x = L.Reshape((6, 6, 1))(x)
    x = L.ZeroPadding2D(1)(x)
    x = L.Conv2D(2, 2, activation="elu")(x)
    x = L.Cropping2D(((1, 0), (0, 1)))(x)
    x = L.UpSampling2D(2)(x)
    x = L.Permute((2, 1, 3))(x)
    x = L.Flatten()(x)
    x = L.ReLU(max_value=2.0)(x)
    x = L.Dense(4)(x)
    x = L.ELU()(x)
    y = L.RepeatVector(3)(x)
    y = L.Conv1D(3, 2, padding="same", activation="softplus")(y)
    y = L.GlobalAveragePooling1D()(y)
    z = L.Dot(axes=1)([x, L.Dense(4)(x)])
    out = L.Softmax()(L.Concatenate()([y, z, L.Activation("swish")(x)]))
    return keras.Model(inputs, out, name="misc")


def _frozen():
    # trainable=False changes the legacy HDF5 weight order of a nested model
    # (trainable weights first, across its layers), which Keras loads by position.
    inner = keras.Sequential([
        keras.Input((5,)),
        L.Dense(5, trainable=False, name="frozen_dense"),
        L.BatchNormalization(name="inner_bn"),
        L.Dense(5, name="live_dense"),
    ], name="partly_frozen")
    frozen = keras.Sequential([keras.Input((5,)), L.Dense(5, name="f2"), L.BatchNormalization()],
                              name="all_frozen")
    frozen.trainable = False
    inputs = keras.Input((5,))
    x = frozen(inner(inputs))
    x = L.BatchNormalization(trainable=False, name="frozen_bn")(x)
    return keras.Model(inputs, L.Dense(2)(x), name="frozen")


def _rnn_state():
    tokens = keras.Input((6,), dtype="int32", name="tokens")
    series = keras.Input((5, 3), name="series")
    embedded = L.Embedding(12, 4)(tokens)
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(series)
    rnn = L.SimpleRNN(3)(seq)
    gru = L.GRU(3, reset_after=False, go_backwards=True)(embedded)
    merged = L.Concatenate()([h, c, rnn, gru])
    noisy = L.GaussianNoise(0.5)(L.GaussianDropout(0.2)(merged))
    return keras.Model([tokens, series], [L.Dense(2)(noisy), seq], name="rnn_state")


CASES = {
    "rnn_state": (_rnn_state, [("int", (6,), 12), (5, 3)]),
    "frozen": (_frozen, [(5,)]),
    "mlp": (_mlp, [(6,)]),
    "cnn_bn": (_cnn_bn, [(12, 12, 3)]),
    "embedding_lstm": (_embedding_lstm, [("int", (7,), 20)]),
    "gru": (_gru, [(6, 3)]),
    "bidirectional": (_bidirectional, [(6, 3)]),
    "multi_io": (_multi_io, [(8,), (5, 4)]),
    "nested": (_nested, [(6,), (6,)]),
    "misc": (_misc, [(6, 4)]),
}


def _build(name):
    """The Keras model of a case with seeded non-trivial weights, and its inputs."""
    build, input_specs = CASES[name]
    keras.utils.set_random_seed(7)
    model = build()
    rng = np.random.default_rng(sum(map(ord, name)))
    for weight in model.weights:
        if "moving_variance" in weight.path:
            value = rng.uniform(0.5, 2.0, weight.shape)
        else:
            value = rng.normal(0.0, 0.5, weight.shape)
        weight.assign(value.astype(np.float32))
    inputs = []
    for spec in input_specs:
        if spec[0] == "int":
            inputs.append(rng.integers(0, spec[2], (3,) + spec[1]).astype(np.int32))
        else:
            inputs.append(rng.normal(0.0, 1.0, (3,) + spec).astype(np.float32))
    return model, inputs


def _predict(model, inputs):
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    return [np.asarray(o) for o in (outputs if isinstance(outputs, list) else [outputs])]


def _layers_model(model, tmp_path) -> LayersModel:
    """The model as a TF.js-form LayersModel, via the .keras reader."""
    source = tmp_path / "source.keras"
    model.save(source)
    return read_keras_v3(str(source))


# --------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_round_trip_predictions_identical(name, suffix, tmp_path):
    model, inputs = _build(name)
    expected = _predict(model, inputs)
    layers_model = _layers_model(model, tmp_path)
    out = tmp_path / ("out" + suffix)
    WRITERS[suffix](layers_model, str(out))
    loaded = keras.models.load_model(str(out), compile=False)
    actual = _predict(loaded, inputs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=0, atol=ATOL)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_two_writes_are_byte_identical(name, suffix, tmp_path):
    model, _ = _build(name)
    layers_model = _layers_model(model, tmp_path)
    first, second = tmp_path / ("a" + suffix), tmp_path / ("b" + suffix)
    WRITERS[suffix](layers_model, str(first))
    WRITERS[suffix](layers_model, str(second))
    assert first.read_bytes() == second.read_bytes()


def _h5_layout(data: bytes):
    """``{path: attrs or (shape, values)}`` of every object in an HDF5 image."""
    layout = {}
    with h5py.File(io.BytesIO(data), "r") as f:
        def visit(path, obj):
            if isinstance(obj, h5py.Dataset):
                layout[path] = (obj.shape, obj.dtype.str, obj[()].tobytes())
            else:
                layout[path] = {k: _attr(v) for k, v in obj.attrs.items()}
        f.visititems(visit)
        layout["/"] = {k: _attr(v) for k, v in f.attrs.items()}
    return layout


def _attr(value):
    if isinstance(value, np.ndarray):
        return [_attr(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return value


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_archive_matches_keras_own_layout(name, tmp_path):
    model, _ = _build(name)
    layers_model = _layers_model(model, tmp_path)
    out = tmp_path / "out.keras"
    write_keras_v3(layers_model, str(out))
    with zipfile.ZipFile(out) as ours, zipfile.ZipFile(tmp_path / "source.keras") as theirs:
        assert ours.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        assert all(i.date_time == (1980, 1, 1, 0, 0, 0) for i in ours.infolist())
        assert all(i.compress_type == zipfile.ZIP_STORED for i in ours.infolist())
        assert _h5_layout(ours.read("model.weights.h5")) == \
            _h5_layout(theirs.read("model.weights.h5"))
        assert json.loads(ours.read("metadata.json")) == {"keras_version": "3.15.1"}
        assert _config_skeleton(json.loads(ours.read("config.json"))) == \
            _config_skeleton(json.loads(theirs.read("config.json")))


def _config_skeleton(value):
    """The structural part of a Keras 3 config: classes, modules, names, shapes, wiring."""
    if isinstance(value, list):
        return [_config_skeleton(v) for v in value]
    if not isinstance(value, dict):
        return value
    keep = ("module", "class_name", "registered_name", "build_config", "name",
            "inbound_nodes", "input_layers", "output_layers", "layers", "layer",
            "backward_layer", "config", "args", "shape", "dtype", "keras_history",
            "batch_shape", "build_input_shape")
    out = {}
    for key, v in value.items():
        if key not in keep:
            continue
        if key == "inbound_nodes":
            v = [{"args": n["args"]} for n in v]
        out[key] = v if key == "build_config" else _config_skeleton(v)
    return out


def test_reproduced_keras_version_is_the_installed_one():
    # The layout tests compare with this Keras; a new release needs a re-check.
    assert keras.__version__ == keras_writer.KERAS_VERSION


@pytest.mark.parametrize("name", sorted(CASES))
def test_keras_archive_is_a_fixed_point_of_read_and_write(name, tmp_path):
    model, _ = _build(name)
    layers_model = _layers_model(model, tmp_path)
    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    write_keras_v3(layers_model, str(first))
    again = read_keras_v3(str(first))
    assert again.topology == layers_model.topology
    write_keras_v3(again, str(second))
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("name", sorted(CASES))
def test_legacy_h5_matches_keras_own_layout(name, tmp_path):
    model, _ = _build(name)
    layers_model = _layers_model(model, tmp_path)
    ours_path, theirs_path = tmp_path / "ours.h5", tmp_path / "theirs.h5"
    write_keras_h5(layers_model, str(ours_path))
    model.save(theirs_path)
    ours, theirs = _h5_layout(ours_path.read_bytes()), _h5_layout(theirs_path.read_bytes())
    ours_config = json.loads(ours["/"].pop("model_config"))
    theirs_config = json.loads(theirs["/"].pop("model_config"))
    assert ours == theirs
    assert _config_skeleton(ours_config) == _config_skeleton(theirs_config)


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_layer_order_follows_keras_not_the_topology_list(suffix, tmp_path):
    # Keras 3 matches .h5 weights by layer position and names .keras weight
    # groups by class and position, both in its own graph order: a topology
    # listing its layers in another order must still load correctly.
    model, inputs = _build("multi_io")
    layers_model = _layers_model(model, tmp_path)
    topology = json.loads(json.dumps(layers_model.topology))
    topology["model_config"]["config"]["layers"].reverse()
    out = tmp_path / ("out" + suffix)
    WRITERS[suffix](layers_model.replace(topology=topology), str(out))
    loaded = keras.models.load_model(str(out), compile=False)
    for a, e in zip(_predict(loaded, inputs), _predict(model, inputs)):
        np.testing.assert_allclose(a, e, rtol=0, atol=ATOL)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]


def test_long_name_lists_are_chunked_like_keras(tmp_path):
    from keras.src.legacy.saving.legacy_h5_format import load_attributes_from_hdf5_group
    names = [("layer_%05d_" % i + "x" * 40).encode("utf-8") for i in range(3000)]
    with h5py.File(tmp_path / "a.h5", "w") as f:
        keras_writer._save_names_attr(f, "layer_names", names)
        assert "layer_names" not in f.attrs and "layer_names0" in f.attrs
        assert load_attributes_from_hdf5_group(f, "layer_names") == [n.decode() for n in names]


def test_quantized_tensors_are_written_dequantized(tmp_path):
    model, inputs = _build("mlp")
    layers_model = _layers_model(model, tmp_path)
    dtypes = ["uint8", "uint16", "float16", "uint8"]
    tensors = [quantize_tensor(t, dtypes[i % 4]) for i, t in enumerate(layers_model.tensors())]
    quantized = layers_model.replace(groups=(tensors,))
    out = tmp_path / "q.keras"
    write_keras_v3(quantized, str(out))
    loaded = keras.models.load_model(str(out), compile=False)
    by_name = {t.name: dequantize_tensor(t).data for t in tensors}
    for layer in loaded.layers:
        for weight, short in zip(layer.weights, ("kernel", "bias")):
            np.testing.assert_array_equal(np.asarray(weight), by_name[layer.name + "/" + short])


# --------------------------------------------------------------------------
# TF.js-native topologies and TF.js's own outputs.
#
# Written by @tensorflow/tfjs 4.22.0 in Node (cpu backend): model.save() through
# tf.io.withSaveHandler for the topology and manifest names, then predict() with
# the weights of _tfjs_weights() on the inputs of _tfjs_input(). They carry what
# only TF.js writes: layer names like dense_Dense1, no InputLayer in a Sequential
# (batch_input_shape on its first layer), class "Model", a nested Sequential
# referenced as node 1, RNN weights without a cell scope, Bidirectional weights
# under forward_<inner>/backward_<inner>, TimeDistributed weights under the
# wrapper's name, BatchNormalization moving statistics last in the manifest,
# ThresholdedReLU, integer-valued floats. The builders were:
#
#   seq: tf.sequential([gru({units: 3, inputShape: [4, 3], recurrentActivation:
#        'sigmoid'}), batchNormalization(), dense({units: 2})])
#   fn:  a [5, 3] -> bidirectional(lstm(2, sigmoid, returnSequences)) 'bi'
#        -> conv1d(3, 2, relu) 'c1' -> timeDistributed(dense 2) 'td' -> flatten;
#        b [4] -> dense 4 'shared' -> tf.sequential 'inner' [dense 4 tanh,
#        batchNormalization] -> 'shared' again; concatenate -> dense 3 softmax
#        'o1'; outputs [o1, thresholdedReLU(theta 0.1)('inner' output)].

_TFJS_SEQ_TOPOLOGY = (
    '{"class_name":"Sequential","config":{"name":"sequential_1","layers":[{"class_name":"GRU","co'
    'nfig":{"name":"gru_GRU1","trainable":true,"batch_input_shape":[null,4,3],"dtype":"float32","'
    'units":3,"activation":"tanh","recurrent_activation":"sigmoid","use_bias":true,"kernel_initia'
    'lizer":{"class_name":"VarianceScaling","config":{"scale":1,"mode":"fan_avg","distribution":"'
    'normal","seed":null}},"recurrent_initializer":{"class_name":"Orthogonal","config":{"gain":1,'
    '"seed":null}},"bias_initializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":nul'
    'l,"recurrent_regularizer":null,"bias_regularizer":null,"activity_regularizer":null,"kernel_c'
    'onstraint":null,"recurrent_constraint":null,"bias_constraint":null,"dropout":0,"recurrent_dr'
    'opout":0,"implementation":null,"reset_after":false,"return_sequences":false,"return_state":f'
    'alse,"go_backwards":false,"stateful":false,"unroll":false}},{"class_name":"BatchNormalizatio'
    'n","config":{"axis":-1,"momentum":0.99,"epsilon":0.001,"center":true,"scale":true,"beta_init'
    'ializer":{"class_name":"Zeros","config":{}},"gamma_initializer":{"class_name":"Ones","config'
    '":{}},"moving_mean_initializer":{"class_name":"Zeros","config":{}},"moving_variance_initiali'
    'zer":{"class_name":"Ones","config":{}},"beta_regularizer":null,"gamma_regularizer":null,"bet'
    'a_constraint":null,"gamma_constraint":null,"name":"batch_normalization_BatchNormalization1",'
    '"trainable":true}},{"class_name":"Dense","config":{"units":2,"activation":"linear","use_bias'
    '":true,"kernel_initializer":{"class_name":"VarianceScaling","config":{"scale":1,"mode":"fan_'
    'avg","distribution":"normal","seed":null}},"bias_initializer":{"class_name":"Zeros","config"'
    ':{}},"kernel_regularizer":null,"bias_regularizer":null,"activity_regularizer":null,"kernel_c'
    'onstraint":null,"bias_constraint":null,"name":"dense_Dense1","trainable":true}}]},"keras_ver'
    'sion":"tfjs-layers 4.22.0","backend":"tensor_flow.js"}')
_TFJS_SEQ_WEIGHTS = [('gru_GRU1/kernel', (3, 9)), ('gru_GRU1/recurrent_kernel', (3, 9)), ('gru_GRU1/bias', (9,)), ('batch_normalization_BatchNormalization1/gamma', (3,)), ('batch_normalization_BatchNormalization1/beta', (3,)), ('dense_Dense1/kernel', (3, 2)), ('dense_Dense1/bias', (2,)), ('batch_normalization_BatchNormalization1/moving_mean', (3,)), ('batch_normalization_BatchNormalization1/moving_variance', (3,))]
_TFJS_SEQ_OUTPUTS = [((2, 2), 'pg67vQzTgz3subK9z3d3PQ==')]
_TFJS_FN_TOPOLOGY = (
    '{"class_name":"Model","config":{"name":"fn","layers":[{"name":"a","class_name":"InputLayer",'
    '"config":{"batch_input_shape":[null,5,3],"dtype":"float32","sparse":false,"name":"a"},"inbou'
    'nd_nodes":[]},{"name":"bi","class_name":"Bidirectional","config":{"merge_mode":"concat","lay'
    'er":{"class_name":"LSTM","config":{"name":"lstm_LSTM1","trainable":true,"units":2,"activatio'
    'n":"tanh","recurrent_activation":"sigmoid","use_bias":true,"kernel_initializer":{"class_name'
    '":"VarianceScaling","config":{"scale":1,"mode":"fan_avg","distribution":"normal","seed":null'
    '}},"recurrent_initializer":{"class_name":"Orthogonal","config":{"gain":1,"seed":null}},"bias'
    '_initializer":{"class_name":"Zeros","config":{}},"unit_forget_bias":null,"kernel_regularizer'
    '":null,"recurrent_regularizer":null,"bias_regularizer":null,"activity_regularizer":null,"ker'
    'nel_constraint":null,"recurrent_constraint":null,"bias_constraint":null,"dropout":0,"recurre'
    'nt_dropout":0,"implementation":null,"return_sequences":true,"return_state":false,"go_backwar'
    'ds":false,"stateful":false,"unroll":false}},"name":"bi","trainable":true},"inbound_nodes":[['
    '["a",0,0,{}]]]},{"name":"b","class_name":"InputLayer","config":{"batch_input_shape":[null,4]'
    ',"dtype":"float32","sparse":false,"name":"b"},"inbound_nodes":[]},{"name":"c1","class_name":'
    '"Conv1D","config":{"filters":3,"kernel_initializer":{"class_name":"VarianceScaling","config"'
    ':{"scale":1,"mode":"fan_avg","distribution":"normal","seed":null}},"kernel_regularizer":null'
    ',"kernel_constraint":null,"kernel_size":[2],"strides":[1],"padding":"valid","dilation_rate":'
    '[1],"activation":"relu","use_bias":true,"bias_initializer":{"class_name":"Zeros","config":{}'
    '},"bias_regularizer":null,"activity_regularizer":null,"bias_constraint":null,"name":"c1","tr'
    'ainable":true},"inbound_nodes":[[["bi",0,0,{}]]]},{"name":"shared","class_name":"Dense","con'
    'fig":{"units":4,"activation":"linear","use_bias":true,"kernel_initializer":{"class_name":"Va'
    'rianceScaling","config":{"scale":1,"mode":"fan_avg","distribution":"normal","seed":null}},"b'
    'ias_initializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":null,"bias_regulari'
    'zer":null,"activity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name"'
    ':"shared","trainable":true},"inbound_nodes":[[["b",0,0,{}]],[["inner",1,0,{}]]]},{"name":"td'
    '","class_name":"TimeDistributed","config":{"layer":{"class_name":"Dense","config":{"units":2'
    ',"activation":"linear","use_bias":true,"kernel_initializer":{"class_name":"VarianceScaling",'
    '"config":{"scale":1,"mode":"fan_avg","distribution":"normal","seed":null}},"bias_initializer'
    '":{"class_name":"Zeros","config":{}},"kernel_regularizer":null,"bias_regularizer":null,"acti'
    'vity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name":"tdd","trainab'
    'le":true}},"name":"td","trainable":true},"inbound_nodes":[[["c1",0,0,{}]]]},{"name":"inner",'
    '"class_name":"Sequential","config":{"name":"inner","layers":[{"class_name":"Dense","config":'
    '{"units":4,"activation":"tanh","use_bias":true,"kernel_initializer":{"class_name":"VarianceS'
    'caling","config":{"scale":1,"mode":"fan_avg","distribution":"normal","seed":null}},"bias_ini'
    'tializer":{"class_name":"Zeros","config":{}},"kernel_regularizer":null,"bias_regularizer":nu'
    'll,"activity_regularizer":null,"kernel_constraint":null,"bias_constraint":null,"name":"inner'
    '_d","trainable":true,"batch_input_shape":[null,4],"dtype":"float32"}},{"class_name":"BatchNo'
    'rmalization","config":{"axis":-1,"momentum":0.99,"epsilon":0.001,"center":true,"scale":true,'
    '"beta_initializer":{"class_name":"Zeros","config":{}},"gamma_initializer":{"class_name":"One'
    's","config":{}},"moving_mean_initializer":{"class_name":"Zeros","config":{}},"moving_varianc'
    'e_initializer":{"class_name":"Ones","config":{}},"beta_regularizer":null,"gamma_regularizer"'
    ':null,"beta_constraint":null,"gamma_constraint":null,"name":"inner_bn","trainable":true}}]},'
    '"inbound_nodes":[[["shared",0,0,{}]]]},{"name":"fl","class_name":"Flatten","config":{"name":'
    '"fl","trainable":true},"inbound_nodes":[[["td",0,0,{}]]]},{"name":"cat","class_name":"Concat'
    'enate","config":{"axis":-1,"name":"cat","trainable":true},"inbound_nodes":[[["fl",0,0,{}],["'
    'shared",1,0,{}]]]},{"name":"o1","class_name":"Dense","config":{"units":3,"activation":"softm'
    'ax","use_bias":true,"kernel_initializer":{"class_name":"VarianceScaling","config":{"scale":1'
    ',"mode":"fan_avg","distribution":"normal","seed":null}},"bias_initializer":{"class_name":"Ze'
    'ros","config":{}},"kernel_regularizer":null,"bias_regularizer":null,"activity_regularizer":n'
    'ull,"kernel_constraint":null,"bias_constraint":null,"name":"o1","trainable":true},"inbound_n'
    'odes":[[["cat",0,0,{}]]]},{"name":"thr","class_name":"ThresholdedReLU","config":{"theta":0.1'
    ',"name":"thr","trainable":true},"inbound_nodes":[[["inner",1,0,{}]]]}],"input_layers":[["a",'
    '0,0],["b",0,0]],"output_layers":[["o1",0,0],["thr",0,0]]},"keras_version":"tfjs-layers '
    '4.22.0","backend":"tensor_flow.js"}')
_TFJS_FN_WEIGHTS = [('bi/forward_lstm_LSTM1/kernel', (3, 8)), ('bi/forward_lstm_LSTM1/recurrent_kernel', (2, 8)), ('bi/forward_lstm_LSTM1/bias', (8,)), ('bi/backward_lstm_LSTM1/kernel', (3, 8)), ('bi/backward_lstm_LSTM1/recurrent_kernel', (2, 8)), ('bi/backward_lstm_LSTM1/bias', (8,)), ('c1/kernel', (2, 4, 3)), ('c1/bias', (3,)), ('shared/kernel', (4, 4)), ('shared/bias', (4,)), ('td/kernel', (3, 2)), ('td/bias', (2,)), ('inner_d/kernel', (4, 4)), ('inner_d/bias', (4,)), ('inner_bn/gamma', (4,)), ('inner_bn/beta', (4,)), ('o1/kernel', (12, 3)), ('o1/bias', (3,)), ('inner_bn/moving_mean', (4,)), ('inner_bn/moving_variance', (4,))]
_TFJS_FN_OUTPUTS = [((2, 3), 'mjLDPpG5mD7VE6Q+GznDPta2mD4OEKQ+'), ((2, 4), 'AAAAgAAAAAD7NAw+AAAAgAAAAIAAAAAA2ekLPgAAAIA=')]


def _tfjs_weights(specs):
    """Exactly representable weights (k/64), assigned by manifest position."""
    tensors = []
    for index, (name, shape) in enumerate(specs):
        size = int(np.prod(shape))
        values = ((np.arange(size) * 7 + index * 5) % 23 - 11) / 64.0
        if name.endswith("moving_variance"):
            values = np.abs(values) + 0.5
        tensors.append(Tensor(name, values.astype(np.float32).reshape(shape), "float32"))
    return tensors


def _tfjs_input(shape, mul, mod, offset, div):
    size = int(np.prod(shape))
    return ((((np.arange(size) * mul) % mod) - offset) / div).astype(np.float32).reshape(shape)


_TFJS_CASES = {
    "seq": (_TFJS_SEQ_TOPOLOGY, _TFJS_SEQ_WEIGHTS, _TFJS_SEQ_OUTPUTS,
            lambda: [_tfjs_input((2, 4, 3), 5, 17, 8, 8)]),
    "fn": (_TFJS_FN_TOPOLOGY, _TFJS_FN_WEIGHTS, _TFJS_FN_OUTPUTS,
           lambda: [_tfjs_input((2, 5, 3), 5, 17, 8, 8), _tfjs_input((2, 4), 3, 11, 5, 4)]),
}
# TF.js and TensorFlow round float32 sums and transcendentals differently.
TFJS_ATOL = 1e-6


def _tfjs_layers_model(name):
    topology, weights, _, _ = _TFJS_CASES[name]
    return LayersModel(topology=json.loads(topology), groups=(_tfjs_weights(weights),))


@pytest.mark.parametrize("name", sorted(_TFJS_CASES))
@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_tfjs_written_model_matches_tfjs_predictions(name, suffix, tmp_path):
    _, _, outputs, make_inputs = _TFJS_CASES[name]
    out = tmp_path / ("out" + suffix)
    WRITERS[suffix](_tfjs_layers_model(name), str(out))
    loaded = keras.models.load_model(str(out), compile=False)
    actual = _predict(loaded, make_inputs())
    assert len(actual) == len(outputs)
    for a, (shape, data) in zip(actual, outputs):
        expected = np.frombuffer(base64.b64decode(data), np.float32).reshape(shape)
        np.testing.assert_allclose(a, expected, rtol=0, atol=TFJS_ATOL)


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_tfjs_written_model_is_deterministic(suffix, tmp_path):
    first, second = tmp_path / ("a" + suffix), tmp_path / ("b" + suffix)
    WRITERS[suffix](_tfjs_layers_model("fn"), str(first))
    WRITERS[suffix](_tfjs_layers_model("fn"), str(second))
    assert first.read_bytes() == second.read_bytes()


def test_tfjs_nested_sequential_gets_an_input_layer_and_keras3_node_index(tmp_path):
    out = tmp_path / "out.keras"
    write_keras_v3(_tfjs_layers_model("fn"), str(out))
    with zipfile.ZipFile(out) as archive:
        config = json.loads(archive.read("config.json"))
    layers = {entry["name"]: entry for entry in config["config"]["layers"]}
    inner = layers["inner"]
    assert inner["config"]["layers"][0]["class_name"] == "InputLayer"
    assert inner["config"]["layers"][0]["config"]["batch_shape"] == [None, 4]
    # TF.js (like Keras 2) counts a nested model's own input node: ["inner", 1, 0].
    history = layers["shared"]["inbound_nodes"][1]["args"][0]["config"]["keras_history"]
    assert history == ["inner", 0, 0]
    assert config["config"]["output_layers"] == [["o1", 0, 0], ["thr", 0, 0]]
    assert layers["thr"]["class_name"] == "ReLU"
    assert layers["thr"]["config"]["threshold"] == 0.1


# --------------------------------------------------------------------------
# Errors.


def _tiny_topology(layer):
    return {"model_config": {"class_name": "Sequential", "config": {
        "name": "s", "layers": [layer]}}, "keras_version": "tfjs-layers 4.22.0",
        "backend": "tensor_flow.js"}


def _dense(**overrides):
    config = {"name": "d", "units": 2, "activation": "linear", "use_bias": True,
              "batch_input_shape": [None, 3], "dtype": "float32"}
    config.update(overrides)
    return {"class_name": "Dense", "config": config}


def _dense_tensors(kernel_shape=(3, 2)):
    return [Tensor("d/kernel", np.zeros(kernel_shape, np.float32), "float32"),
            Tensor("d/bias", np.zeros((2,), np.float32), "float32")]


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_weights_only_model_is_refused(suffix, tmp_path):
    model = LayersModel(topology=None, groups=(_dense_tensors(),))
    with pytest.raises(UsageError) as error:
        WRITERS[suffix](model, str(tmp_path / ("out" + suffix)))
    assert str(error.value) == (
        "the model has no topology (it comes from a weights-only source); Keras .h5 and "
        ".keras files need a topology to rebuild the model. Convert from a model.json "
        "with modelTopology, a full Keras model or a .keras file")
    assert not (tmp_path / ("out" + suffix)).exists()


def _write_error(tmp_path, topology, tensors):
    model = LayersModel(topology=topology, groups=(tensors,))
    return lambda: write_keras_v3(model, str(tmp_path / "out.keras"))


def test_unknown_layer_class(tmp_path):
    layer = {"class_name": "FancyLayer", "config": {"name": "f", "batch_input_shape": [None, 3]}}
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(layer), [])()
    assert str(error.value) == ("layer 's/f' (FancyLayer): cannot write this layer to Keras 3: "
                                "no Keras 3 mapping is defined for it")


def test_hard_sigmoid_is_refused(tmp_path):
    layer = {"class_name": "LSTM", "config": {
        "name": "l", "units": 2, "activation": "tanh", "recurrent_activation": "hard_sigmoid",
        "batch_input_shape": [None, 4, 3]}}
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(layer), [])()
    assert str(error.value) == (
        "layer 's/l' (LSTM): recurrent_activation 'hard_sigmoid' cannot be mapped: TF.js "
        "computes hard_sigmoid as clip(0.2*x + 0.5, 0, 1) but Keras 3 as clip(x/6 + 0.5, 0, 1), "
        "so predictions would differ")


def test_omitted_keys_mean_tfjs_defaults(tmp_path):
    # TF.js's Softmax defaults to axis 1 and its LSTM to hard_sigmoid; Keras 3
    # would read the omitted keys as -1 and sigmoid.
    softmax = {"class_name": "Softmax", "config": {"name": "s", "batch_input_shape": [None, 2, 3]}}
    out = tmp_path / "out.keras"
    write_keras_v3(LayersModel(topology=_tiny_topology(softmax), groups=([],)), str(out))
    loaded = keras.models.load_model(str(out), compile=False)
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), keras.ops.softmax(x, axis=1),
                               rtol=0, atol=1e-7)
    lstm = {"class_name": "LSTM", "config": {"name": "l", "units": 2,
                                             "batch_input_shape": [None, 4, 3]}}
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(lstm), [])()
    assert "recurrent_activation 'hard_sigmoid' cannot be mapped" in str(error.value)


def test_unknown_config_key(tmp_path):
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(_dense(sparse_output=True)), _dense_tensors())()
    assert str(error.value) == ("layer 's/d' (Dense): config key 'sparse_output' (value True) "
                                "has no Keras 3 equivalent")


def test_unknown_initializer(tmp_path):
    layer = _dense(kernel_initializer={"class_name": "Magic", "config": {}})
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(layer), _dense_tensors())()
    assert str(error.value).startswith(
        "layer 's/d' (Dense): kernel_initializer class 'Magic' has no Keras 3 equivalent "
        "(supported: Constant, GlorotNormal,")


def test_missing_tensor(tmp_path):
    tensors = _dense_tensors()[:1]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _tiny_topology(_dense()), tensors)()
    assert str(error.value) == ("layer 's/d' (Dense): no tensor for weight 'bias'; looked for "
                                "'s/d/bias' or 'd/bias'")


def test_unused_tensor(tmp_path):
    tensors = _dense_tensors() + [Tensor("other/kernel", np.zeros((1,), np.float32), "float32")]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _tiny_topology(_dense()), tensors)()
    assert str(error.value) == (
        "tensor(s) 'other/kernel' match no weight of any layer in the topology; the weights "
        "and the topology do not belong together")


def test_shape_mismatch(tmp_path):
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _tiny_topology(_dense()), _dense_tensors((4, 2)))()
    assert str(error.value) == ("layer 's/d' (Dense): tensor 'd/kernel' has shape [4, 2]; Keras "
                                "builds weight 'kernel' with shape [3, 2]")


def test_sequential_without_input_shape(tmp_path):
    layer = _dense()
    del layer["config"]["batch_input_shape"]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _tiny_topology(layer), _dense_tensors())()
    assert str(error.value) == ("Sequential 's': the first layer 'd' has no batch_input_shape, "
                                "so Keras cannot build the model")


def _functional_topology(layers, outputs):
    return {"model_config": {"class_name": "Model", "config": {
        "name": "m", "layers": [{"name": "in", "class_name": "InputLayer", "config": {
            "batch_input_shape": [None, 3], "dtype": "float32", "name": "in"},
            "inbound_nodes": []}] + layers,
        "input_layers": [["in", 0, 0]], "output_layers": outputs}}}


def _functional_dense(name, source):
    entry = _dense()
    entry["config"].update(name=name)
    del entry["config"]["batch_input_shape"]
    return dict(entry, name=name, inbound_nodes=[[[source, 0, 0, {}]]])


def test_disconnected_layer_is_refused(tmp_path):
    layers = [_functional_dense("d", "in"), _functional_dense("e", "in")]
    tensors = _dense_tensors() + [Tensor("e/kernel", np.zeros((3, 2), np.float32), "float32"),
                                  Tensor("e/bias", np.zeros((2,), np.float32), "float32")]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _functional_topology(layers, [["d", 0, 0]]), tensors)()
    assert str(error.value) == ("model 'm': layer(s) 'e' are not connected to the model outputs; "
                                "Keras 3 would drop them and their weights")


def test_cycle_is_refused(tmp_path):
    layers = [_functional_dense("d", "e"), _functional_dense("e", "d")]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _functional_topology(layers, [["d", 0, 0]]), [])()
    assert str(error.value) == (
        "model 'm': the calls of layer(s) d, e never get their inputs (a cycle, or a reference "
        "to a missing layer or node)")


def test_bidirectional_must_wrap_an_rnn(tmp_path):
    layer = {"class_name": "Bidirectional", "config": {
        "name": "b", "layer": _dense(), "batch_input_shape": [None, 4, 3]}}
    with pytest.raises(UnsupportedLayerError) as error:
        _write_error(tmp_path, _tiny_topology(layer), [])()
    assert str(error.value) == ("layer 's/b' (Bidirectional): wraps 'Dense'; only SimpleRNN, LSTM "
                                "and GRU are supported")


def test_non_float_weights_are_refused(tmp_path):
    tensors = [Tensor("d/kernel", np.zeros((3, 2), np.int32), "int32"), _dense_tensors()[1]]
    with pytest.raises(InvalidModelError) as error:
        _write_error(tmp_path, _tiny_topology(_dense()), tensors)()
    assert str(error.value) == "tensor 'd/kernel' has dtype int32; Keras layer weights are float32"


# --------------------------------------------------------------------------
# Helpers.


def test_snake_case_matches_keras():
    from keras.src.utils import naming
    for name in ("Dense", "BatchNormalization", "Conv2DTranspose", "PReLU", "ReLU",
                 "LeakyReLU", "SimpleRNN", "LSTM", "GRU", "InputLayer", "Functional",
                 "Sequential", "GlobalAveragePooling2D", "UpSampling2D", "ZeroPadding2D",
                 "TimeDistributed", "ELU", "DepthwiseConv2D", "SeparableConv2D"):
        assert keras_writer._snake_case(name) == naming.to_snake_case(name)


def test_layer_table_keys_are_keras_arguments():
    import inspect
    generic = {"name", "trainable", "dtype", "activity_regularizer"}
    for class_name, spec in keras_writer._LAYERS.items():
        cls = getattr(keras.layers, keras_writer._KERAS_CLASS.get(class_name, class_name))
        # Subclasses pass **kwargs on to their bases (RNN, BaseConv, Layer).
        params = set()
        for base in cls.__mro__:
            if "__init__" in vars(base):
                params |= set(inspect.signature(base.__init__).parameters)
        for key, rule in spec.keys.items():
            # Dropped, renamed and wrapper-handled keys need not be Keras arguments.
            if rule in (keras_writer._drop, keras_writer._wrapped) or \
                    rule.__qualname__.split(".")[0] in ("_only", "_rename"):
                continue
            assert key in params or key in generic, (class_name, key)
