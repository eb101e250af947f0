"""Stand-in for //models:mobilenet_tflite: make_tflite_standin.py OUT.tflite MOBILENET.h5

Runs in the converter's environment (tfjs_py_run). TensorFlow's own
TFLiteConverter writes the .tflite from a SavedModel of the Keras model whose
serving signature has a fixed batch of 1: LiteRT.js accepts only buffers of a
model input's exact shape, so a [-1, 224, 224, 3] input could not be fed.
Replaced by tfjs_rules' tflite output once that target exists (see BUILD).
"""

import os
import sys
import tempfile


def main(out: str, src: str) -> None:
    import keras
    import tensorflow as tf
    model = keras.models.load_model(src, compile=False)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", model.__call__, input_signature=[
        tf.TensorSpec((1,) + tuple(model.input_shape[1:]), tf.float32, name="input_layer")])
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as work:
        archive.write_out(work, verbose=False)
        data = tf.lite.TFLiteConverter.from_saved_model(work).convert()
    with open(out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
