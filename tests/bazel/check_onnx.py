"""Checks an onnx_model built with external_data = True, in the build (the
converter's environment has ONNX Runtime and TensorFlow):

    check_onnx.py OUT "ONNX DATA" SAVED_MODEL

The ``.onnx`` must name its data file by basename, every external tensor must
lie inside that file, and ONNX Runtime, loading the model from its directory,
must match the source SavedModel's ``serving_default`` run in TensorFlow within
1e-5 abs + 1e-5 rel on seeded inputs. Writes what it measured to OUT; any
failure fails the build with one line.
"""

import os
import sys

import numpy as np


def _dims(shape):
    # ONNX Runtime gives a dynamic dimension as None or its symbolic name.
    return [d if isinstance(d, int) else -1 for d in shape]


def main(out: str, files: str, saved_model: str) -> None:
    import onnx
    import onnxruntime as ort
    import tensorflow as tf
    model_path, data_path = files.split()
    if not (model_path.endswith(".onnx") and data_path == model_path + ".data"):
        raise SystemExit("check_onnx.py: want <name>.onnx and <name>.onnx.data, got %s" % files)
    model = onnx.load(model_path, load_external_data=False)
    data_size = os.path.getsize(data_path)
    external = 0
    for tensor in model.graph.initializer:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        if entries["location"] != os.path.basename(data_path):
            raise SystemExit("check_onnx.py: %s: tensor %s points at %r, want %r" % (
                model_path, tensor.name, entries["location"], os.path.basename(data_path)))
        if int(entries["offset"]) + int(entries["length"]) > data_size:
            raise SystemExit("check_onnx.py: %s: tensor %s lies past the end of %s"
                             % (model_path, tensor.name, data_path))
        external += 1
    if external == 0 or data_size == 0:
        raise SystemExit("check_onnx.py: %s: no tensor in external data (%d bytes)"
                         % (model_path, data_size))

    session = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
    (info,) = session.get_inputs()
    shape = [2 if d is None or d < 0 else d for d in _dims(info.shape)]
    x = np.random.default_rng(7).uniform(-1, 1, shape).astype(np.float32)
    (got,) = session.run(None, {info.name: x})
    serving = tf.saved_model.load(saved_model).signatures["serving_default"]
    (want,) = serving(**{info.name: tf.constant(x)}).values()
    want = want.numpy()
    error = float(np.max(np.abs(got - want)))
    if got.shape != want.shape or not np.all(np.abs(got - want) <= 1e-5 + 1e-5 * np.abs(want)):
        raise SystemExit("check_onnx.py: %s: ONNX Runtime vs TensorFlow: shape %s vs %s, max abs "
                         "error %.3g over 1e-5 + 1e-5|y|" % (model_path, got.shape, want.shape,
                                                              error))
    with open(out, "w") as f:
        f.write("ok: %d external tensors in %d bytes; ONNX Runtime vs TensorFlow max abs error "
                "%.3g over %s\n" % (external, data_size, error, list(want.shape)))


if __name__ == "__main__":
    main(*sys.argv[1:])
