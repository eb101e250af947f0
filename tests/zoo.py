"""The test model zoo: deterministic Keras 3 and Keras 2 (tf_keras) models and inputs.

Every builder takes the Keras module (``keras`` for Keras 3, ``tf_keras`` for
Keras 2) and uses only API both share, so one definition yields both flavours.
Builds are deterministic: ``set_random_seed`` before building, then weights that
initializers leave constant (biases, BatchNormalization beta/gamma/moving
statistics) are replaced by seeded random values so they influence the output.
Inputs come from a numpy generator seeded by the model name.

``export_model`` builds a model, saves it in one source format and returns the
file with its inputs and the Keras outputs on them (the parity reference).
"""

import dataclasses
import pathlib
import zlib
from typing import Callable, Dict, List, Tuple

import numpy as np

# Source formats of the layers path: (Keras major version, file suffix).
SOURCE_FORMATS: Dict[str, Tuple[int, str]] = {
    "keras3_keras": (3, ".keras"),
    "keras3_h5": (3, ".h5"),
    "keras2_h5": (2, ".h5"),
}
# The converter's --input_format for each source format.
INPUT_FORMAT = {"keras3_keras": "keras_keras", "keras3_h5": "keras", "keras2_h5": "keras"}

_SEED = 1234


def keras_module(version: int):
    """The Keras module of a major version: ``keras`` (3) or ``tf_keras`` (2)."""
    if version == 3:
        import keras
        return keras
    if version == 2:
        import tf_keras
        return tf_keras
    raise ValueError("Keras version %r, want 2 or 3" % version)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo entry.

    Attributes:
      name: model name; also seeds its weights and inputs.
      build: ``build(k) -> model`` for a Keras module ``k``.
      make_inputs: ``make_inputs(rng) -> [arrays]`` in model input order.
      slow: True for models that take many seconds to build or run.
    """

    name: str
    build: Callable
    make_inputs: Callable[[np.random.Generator], List[np.ndarray]]
    slow: bool = False


def _normal(shape):
    return lambda rng: [rng.standard_normal(shape).astype(np.float32)]


def _build_mlp(k):
    return k.Sequential([
        k.Input(shape=(16,)),
        k.layers.Dense(32, activation="relu"),
        k.layers.Dropout(0.25),
        k.layers.Dense(16, activation="tanh"),
        k.layers.Dense(5),
    ], name="mlp")


def _build_cnn_bn(k):
    inputs = k.Input(shape=(16, 16, 3))
    x = k.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    x = k.layers.BatchNormalization()(x)
    x = k.layers.ReLU()(x)
    x = k.layers.MaxPooling2D()(x)
    x = k.layers.Conv2D(16, 3, strides=2, padding="valid")(x)
    x = k.layers.BatchNormalization(epsilon=1e-3)(x)
    x = k.layers.Activation("relu")(x)
    x = k.layers.GlobalAveragePooling2D()(x)
    outputs = k.layers.Dense(4)(x)
    return k.Model(inputs, outputs, name="cnn_bn")


def _build_embedding_lstm(k):
    inputs = k.Input(shape=(12,), dtype="int32")
    x = k.layers.Embedding(50, 8)(inputs)
    x = k.layers.LSTM(16)(x)
    outputs = k.layers.Dense(3)(x)
    return k.Model(inputs, outputs, name="embedding_lstm")


def _build_gru(k):
    # reset_after=False: TF.js's GRUCell rejects reset_after=True (Keras' default).
    return k.Sequential([
        k.Input(shape=(10, 6)),
        k.layers.GRU(12, return_sequences=True, reset_after=False),
        k.layers.GRU(8, reset_after=False),
        k.layers.Dense(2),
    ], name="gru")


def _build_bidirectional_lstm(k):
    return k.Sequential([
        k.Input(shape=(8, 5)),
        k.layers.Bidirectional(k.layers.LSTM(6, return_sequences=True)),
        k.layers.Bidirectional(k.layers.LSTM(4), merge_mode="sum"),
        k.layers.Dense(3),
    ], name="bidirectional_lstm")


def _build_multi_io(k):
    a = k.Input(shape=(8,), name="a")
    b = k.Input(shape=(8,), name="b")
    c = k.Input(shape=(4,), name="c")
    ha = k.layers.Dense(6, activation="relu", name="ha")(a)
    hb = k.layers.Dense(6, activation="relu", name="hb")(b)
    hc = k.layers.Dense(6, name="hc")(c)
    added = k.layers.Add(name="add")([ha, hb])
    multiplied = k.layers.Multiply(name="multiply")([hb, hc])
    merged = k.layers.Concatenate(name="concat")([added, multiplied, c])
    logits = k.layers.Dense(3, name="logits")(merged)
    score = k.layers.Dense(1, activation="sigmoid", name="score")(
        k.layers.Concatenate(name="concat_2")([ha, hc]))
    return k.Model([a, b, c], [logits, score], name="multi_io")


def _build_nested(k):
    inner_seq = k.Sequential([
        k.Input(shape=(6,)),
        k.layers.Dense(8, activation="relu"),
        k.layers.Dense(8),
    ], name="inner_seq")
    inner_in = k.Input(shape=(8,))
    inner_fn = k.Model(inner_in, k.layers.Dense(4, activation="tanh")(inner_in),
                       name="inner_fn")
    inputs = k.Input(shape=(6,))
    x = inner_fn(inner_seq(inputs))
    skip = k.layers.Dense(4)(inputs)
    outputs = k.layers.Dense(2)(k.layers.Concatenate()([x, skip]))
    return k.Model(inputs, outputs, name="nested")


def _build_mobilenet_v2(k):
    return k.applications.MobileNetV2(input_shape=(96, 96, 3), alpha=1.0, weights=None,
                                      classifier_activation=None)


def _build_resnet50(k):
    return k.applications.ResNet50(weights=None, classifier_activation=None)


ZOO: Dict[str, ZooModel] = {m.name: m for m in [
    ZooModel("mlp", _build_mlp, _normal((3, 16))),
    ZooModel("cnn_bn", _build_cnn_bn, _normal((2, 16, 16, 3))),
    ZooModel("embedding_lstm", _build_embedding_lstm,
             lambda rng: [rng.integers(0, 50, size=(3, 12)).astype(np.int32)]),
    ZooModel("gru", _build_gru, _normal((3, 10, 6))),
    ZooModel("bidirectional_lstm", _build_bidirectional_lstm, _normal((3, 8, 5))),
    ZooModel("multi_io", _build_multi_io,
             lambda rng: [rng.standard_normal(s).astype(np.float32)
                          for s in ((3, 8), (3, 8), (3, 4))]),
    ZooModel("nested", _build_nested, _normal((3, 6))),
    ZooModel("mobilenet_v2", _build_mobilenet_v2,
             lambda rng: [rng.uniform(-1, 1, (2, 96, 96, 3)).astype(np.float32)],
             slow=True),
    ZooModel("resnet50", _build_resnet50,
             lambda rng: [rng.uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)],
             slow=True),
]}


def _seed_of(name: str) -> int:
    return (_SEED + zlib.crc32(name.encode("utf-8"))) % (2 ** 31)


def make_inputs(name: str) -> List[np.ndarray]:
    """The fixed inputs of a zoo model (same for every Keras version)."""
    return ZOO[name].make_inputs(np.random.default_rng(_seed_of(name)))


def _randomize_constant_weights(model, rng: np.random.Generator) -> None:
    """Gives initializer-constant weights (biases, BN stats) seeded random values.

    Variances and BN scales get values in [0.5, 1.5] (positive, near 1 so deep
    models stay well scaled); other constants get values in [-0.2, 0.2].
    """
    for weight in model.weights:
        value = np.asarray(weight.numpy())
        if value.size == 0 or value.dtype.kind != "f" or value.min() != value.max():
            continue
        name = weight.name.lower()
        if "variance" in name or "gamma" in name:
            new = rng.uniform(0.5, 1.5, value.shape)
        else:
            new = rng.uniform(-0.2, 0.2, value.shape)
        weight.assign(new.astype(value.dtype))


def build_model(name: str, version: int):
    """Builds a zoo model deterministically.

    Args:
      name: a key of ZOO.
      version: Keras major version, 3 (``keras``) or 2 (``tf_keras``).

    Returns:
      The built model, with seeded weights and no initializer constants left.
    """
    k = keras_module(version)
    seed = _seed_of(name)
    k.utils.set_random_seed(seed)
    model = ZOO[name].build(k)
    _randomize_constant_weights(model, np.random.default_rng(seed + 1))
    return model


def predict(model, inputs: List[np.ndarray]) -> List[np.ndarray]:
    """Keras inference outputs as a list of float arrays (one per model output)."""
    outputs = model.predict(inputs if len(inputs) > 1 else inputs[0], verbose=0)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return [np.asarray(o) for o in outputs]


@dataclasses.dataclass(frozen=True)
class ExportedModel:
    """A zoo model saved in one source format, with its parity reference.

    Attributes:
      name: zoo model name.
      source_format: a key of SOURCE_FORMATS.
      path: the saved model file.
      input_format: the converter's ``input_format`` for ``path``.
      inputs: the fixed inputs.
      expected: Keras outputs on ``inputs``.
      weights: the Keras model's weights (``model.get_weights()`` order).
    """

    name: str
    source_format: str
    path: pathlib.Path
    input_format: str
    inputs: List[np.ndarray]
    expected: List[np.ndarray]
    weights: List[np.ndarray]


def save_model(model, path: pathlib.Path, source_format: str) -> None:
    """Saves ``model`` as ``source_format`` (the suffix of ``path`` must match)."""
    want = SOURCE_FORMATS[source_format][1]
    if path.suffix != want:
        raise ValueError("%s: %s files end in %s" % (path, source_format, want))
    model.save(str(path))


def export_models(model, name: str, version: int,
                  out_dir: pathlib.Path) -> Dict[str, ExportedModel]:
    """Saves a built zoo model in every source format of its Keras version.

    Args:
      model: the model ``build_model(name, version)`` returned.
      name: zoo model name.
      version: Keras major version; every SOURCE_FORMATS entry of that version is
        written.
      out_dir: where to write ``<name>.<source_format><suffix>``.

    Returns:
      ``{source_format: ExportedModel}``.
    """
    inputs = make_inputs(name)
    expected = predict(model, inputs)
    weights = [np.asarray(w) for w in model.get_weights()]
    out_dir.mkdir(parents=True, exist_ok=True)
    exported = {}
    for source_format, (fmt_version, suffix) in SOURCE_FORMATS.items():
        if fmt_version != version:
            continue
        path = out_dir / ("%s.%s%s" % (name, source_format, suffix))
        save_model(model, path, source_format)
        exported[source_format] = ExportedModel(name, source_format, path,
                                                INPUT_FORMAT[source_format], inputs, expected,
                                                weights)
    return exported


def predict_with_weights(model, weights: List[np.ndarray],
                         inputs: List[np.ndarray]) -> List[np.ndarray]:
    """Keras outputs with ``weights`` swapped in (restored afterwards).

    Used for the reference of a quantized conversion: the Keras model with the
    dequantized weights TF.js reconstructs.
    """
    original = model.get_weights()
    model.set_weights(weights)
    try:
        return predict(model, inputs)
    finally:
        model.set_weights(original)
