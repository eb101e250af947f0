"""Writes the integration tier's source models in one process: make_models.py OUT...

Each OUT's base name picks what is written:

* ``broken.h5``: a text file, not a model (the converter must reject it alone);
* ``<kind>_<seed>.h5`` / ``.keras``: a small seeded Keras 3 model of ``kind``
  (``mlp``, ``wide``, ``conv``, ``bn``, ``embed``).

One process for all of them: importing Keras costs seconds, converting these
models costs milliseconds, and the benchmarks time only the conversions.
"""

import os
import sys


def build(kind: str, seed: int):
    import keras
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    if kind == "mlp":
        body = [keras.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(4)]
    elif kind == "wide":
        body = [keras.Input((32,)), layers.Dense(64, activation="relu"), layers.Dropout(0.5),
                layers.Dense(10, activation="softmax")]
    elif kind == "conv":
        body = [keras.Input((8, 8, 1)), layers.Conv2D(4, 3, activation="relu"), layers.Flatten(),
                layers.Dense(3)]
    elif kind == "bn":
        body = [keras.Input((12,)), layers.Dense(24), layers.BatchNormalization(),
                layers.Activation("relu"), layers.Dense(2)]
    elif kind == "embed":
        body = [keras.Input((6,), dtype="int32"), layers.Embedding(50, 8),
                layers.GlobalAveragePooling1D(), layers.Dense(1, activation="sigmoid")]
    else:
        raise SystemExit("make_models.py: unknown model kind %r; want mlp, wide, conv, bn or embed"
                         % kind)
    return keras.Sequential(body, name="%s_%d" % (kind, seed))


def main(outs) -> None:
    import absl.logging
    absl.logging.set_verbosity(absl.logging.ERROR)  # Keras' "HDF5 is legacy" notice, per file
    for out in outs:
        stem, _ = os.path.splitext(os.path.basename(out))
        if stem == "broken":
            with open(out, "wb") as f:
                f.write(b"this is not a model\n")
            continue
        kind, _, seed = stem.rpartition("_")
        build(kind, int(seed)).save(out)


if __name__ == "__main__":
    main(sys.argv[1:])
