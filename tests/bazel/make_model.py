"""Writes small Keras models for the rule tests: make_model.py OUT KIND [SAVER].

KIND:

- ``mlp`` or ``mlp_<seed>``: Dense 8->16 relu, Dense 16->4; 4 float32 weights,
  848 bytes;
- ``cnn``: a 8x8x3 image through Conv2D + BatchNormalization + ReLU,
  DepthwiseConv2D + BatchNormalization + ReLU6, global average pooling, Dense
  relu and Dense; every weight (biases and batch-norm statistics included)
  drawn from a seeded generator, so that no bias is zero and a graph
  conversion has real batch norms to fold and biases to fuse;
- ``wide``: Dense 8->256 relu, Dense 256->4; its first kernel (2048
  elements) is over tf2onnx's 1024-element inline limit, so ONNX external
  data holds it;
- ``broken``: not a model.

OUT's extension picks the format: ``.h5`` (Keras HDF5) or ``.keras`` (Keras 3
archive); any other OUT is a SavedModel directory written by SAVER:
``tf_saved_model`` (``tf.saved_model.save``), ``keras_export`` (Keras 3's
``model.export``) or ``keras_saved_model`` (Keras 2's ``model.save(OUT,
save_format="tf")``, by tf_keras). SAVER ``tf_keras`` with a ``.h5`` OUT builds
and saves the model with Keras 2 (tf_keras) instead of Keras 3.

Seeded, and the archive's timestamps and object ids and the SavedModel
fingerprint's uuid are fixed, so the same KIND gives the same bytes on every
run (generated sources keep conversion cache keys stable), with one exception:
``keras_export`` orders the SavedModel's variables by object address
(TensorFlow's ``ObjectIdentityWeakSet``), so its bytes vary from run to run;
its conversions must not (tests/bazel/BUILD checks that).
"""

import json
import os
import sys
import zipfile

# A fixed time for the .keras archive: its entries and metadata.json's
# date_saved otherwise carry the time of the run.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FIXED_DATE_SAVED = "1980-01-01@00:00:00"
_SAVERS = ("tf_saved_model", "keras_export", "keras_saved_model")
# Savers of a Keras 2 (tf_keras) model.
_KERAS2_SAVERS = ("tf_keras", "keras_saved_model")


def _renumber_shared_objects(node, ids):
    """Replaces config.json's shared_object_id values (Python id()s, so memory
    addresses) by their order of first appearance; equal ids stay equal."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "shared_object_id":
                node[key] = ids.setdefault(value, len(ids))
            else:
                _renumber_shared_objects(value, ids)
    elif isinstance(node, list):
        for value in node:
            _renumber_shared_objects(value, ids)


def _normalize_keras_archive(path: str) -> None:
    """Rewrites a .keras zip with fixed timestamps and object ids, entries in order."""
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as dst:
        for info, data in entries:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = _FIXED_DATE_SAVED
                data = json.dumps(meta).encode("utf-8")
            elif info.filename == "config.json":
                config = json.loads(data)
                _renumber_shared_objects(config, {})
                data = json.dumps(config).encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, data)
    os.replace(tmp, path)


def _normalize_saved_model(directory: str) -> None:
    """Fixes what varies between two saves of one model: the fingerprint's random
    uuid (replaced by the content checksum it sits next to) and an empty
    assets/ directory (which tree artifacts and remote caches do not keep)."""
    from tensorflow.core.protobuf import fingerprint_pb2
    path = os.path.join(directory, "fingerprint.pb")
    if os.path.exists(path):
        fingerprint = fingerprint_pb2.FingerprintDef()
        with open(path, "rb") as f:
            fingerprint.ParseFromString(f.read())
        fingerprint.uuid = str(fingerprint.saved_model_checksum)
        with open(path, "wb") as f:
            f.write(fingerprint.SerializeToString(deterministic=True))
    assets = os.path.join(directory, "assets")
    if os.path.isdir(assets) and not os.listdir(assets):
        os.rmdir(assets)


def _mlp(keras, kind: str, seed: str):
    keras.utils.set_random_seed(int(seed or 0))
    return keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(4)], name=kind)


def _cnn(keras):
    import numpy as np
    keras.utils.set_random_seed(0)
    layers = keras.layers
    image = keras.Input((8, 8, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same", use_bias=False)(image)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU(max_value=6.0)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(5, activation="relu")(x)
    scores = layers.Dense(3, name="scores")(x)
    model = keras.Model(image, scores, name="cnn")
    rng = np.random.default_rng(0)
    weights = []
    for w in model.weights:
        # Keras 3 names a weight by path, Keras 2 (tf_keras) by name, with a ":0".
        name = getattr(w, "path", None) or w.name.split(":")[0]
        if name.endswith("moving_variance"):
            weights.append(rng.uniform(0.5, 1.5, w.shape))
        else:
            weights.append(rng.normal(0.0, 0.5, w.shape))
    model.set_weights([w.astype(np.float32) for w in weights])
    return model


def main(out: str, kind: str, saver: str = "") -> None:
    if kind == "broken":
        with open(out, "wb") as f:
            f.write(b"this is not a model\n")
        return
    name, _, seed = kind.partition("_")
    if kind not in ("cnn", "wide") and (name != "mlp" or (seed and not seed.isdigit())):
        raise SystemExit("make_model.py: KIND got %r, want mlp, mlp_<seed>, cnn, wide or broken"
                         % kind)
    is_file = out.endswith((".h5", ".keras"))
    keras2_h5 = saver == "tf_keras" and out.endswith(".h5")
    if not keras2_h5 and (is_file == bool(saver) or (saver and saver not in _SAVERS)):
        raise SystemExit("make_model.py: OUT %r with SAVER %r; want a .h5 or .keras OUT and no "
                         "SAVER, a .h5 OUT and SAVER tf_keras, or a SavedModel directory OUT "
                         "and SAVER %s" % (out, saver, " or ".join(_SAVERS)))
    if saver in _KERAS2_SAVERS:
        import tf_keras as keras
    else:
        import keras
    if kind == "cnn":
        model = _cnn(keras)
    elif kind == "wide":
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(4)], name=kind)
    else:
        model = _mlp(keras, kind, seed)
    if keras2_h5:
        model.save(out, save_format="h5")
        return
    if saver == "keras_saved_model":
        model.save(out, save_format="tf")
    elif saver == "keras_export":
        model.export(out, verbose=False)
    elif saver == "tf_saved_model":
        import tensorflow as tf
        tf.saved_model.save(model, out)
    else:
        model.save(out)
    if saver:
        _normalize_saved_model(out)
    elif out.endswith(".keras"):
        _normalize_keras_archive(out)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        raise SystemExit("usage: make_model.py OUT KIND [SAVER]")
    main(*sys.argv[1:])
