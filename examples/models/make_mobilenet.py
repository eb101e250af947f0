"""Writes MobileNetV2 (random weights, fixed seed) as Keras HDF5: make_mobilenet.py OUT.h5

Runs in the converter's environment (tfjs_py_run), so the source model is built
from code in the build instead of being a binary checked into git.

Random weights alone make a useless test model: with BatchNormalization's
initial statistics (mean 0, variance 1) every block shrinks its activations, so
the features reaching the classifier are about 1e-11 and every output is
exactly 1/1000 whatever the input; a converter bug could not change them. So
the BatchNormalization statistics are calibrated on a fixed random batch (as if
the model had seen data): each layer then passes on unit-scale activations and
the predictions depend on the input.

Byte-reproducible, on any machine: the initializers and the calibration batch
are seeded, and the calibration runs in float64, single-threaded, with
TensorFlow's deterministic ops. Different CPU kernels (e.g. with and without
oneDNN) sum in different orders, which changes the last bits of a float32
result but not a float64 one rounded to float32. HDF5 rather than .keras: a
.keras file is a zip whose entries carry the time of saving.
"""

import sys

SEED = 0
INPUT_SHAPE = (224, 224, 3)
CALIBRATION_BATCH = 8


def calibrate_batch_norm(model, images) -> None:
    """Sets every BatchNormalization's moving statistics to those of ``images``.

    One forward pass in training mode with momentum 0: each layer normalizes
    with the batch's statistics and stores them as its moving ones, so after it
    inference on ``images`` sees exactly what training mode saw. The momentum
    is then restored.
    """
    import keras
    layers = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    momentums = [l.momentum for l in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momentums):
        layer.momentum = momentum


def main(out: str) -> None:
    if not out.endswith(".h5"):
        sys.exit("make_mobilenet.py: output %r must end in .h5 (a .keras zip is not "
                 "byte-reproducible)" % out)
    import absl.logging
    import keras
    import numpy as np
    import tensorflow as tf
    # HDF5 is chosen on purpose (above); Keras's "legacy format" warning is noise.
    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.experimental.enable_op_determinism()

    keras.config.set_floatx("float64")
    keras.utils.set_random_seed(SEED)
    # weights=None: random initial weights; ImageNet weights would be a download.
    model = keras.applications.MobileNetV2(weights=None, input_shape=INPUT_SHAPE)
    images = np.random.default_rng(SEED).uniform(-1, 1, (CALIBRATION_BATCH,) + INPUT_SHAPE)
    calibrate_batch_norm(model, images)
    weights = [w.astype(np.float32) for w in model.get_weights()]

    # The model to ship: float32, as any Keras user would build it (a new
    # session, so automatic layer names carry no "_1" suffix).
    keras.backend.clear_session()
    keras.config.set_floatx("float32")
    model = keras.applications.MobileNetV2(weights=None, input_shape=INPUT_SHAPE)
    model.set_weights(weights)
    model.save(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
