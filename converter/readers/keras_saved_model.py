"""Reads a tf.keras (Keras 2) SavedModel directory as a LayersModel.

The SavedModel is loaded with ``tf_keras`` (after the code check: a Keras
SavedModel can carry Lambda layers and custom objects), saved to a private
Keras 2 HDF5 file and read back with the HDF5 reader, so every check of that
reader applies.
"""

import os
import tempfile

from converter.errors import InvalidModelError
from converter.model import LayersModel


def read_keras_saved_model_as_layers(path: str) -> LayersModel:
    """A tf.keras SavedModel as a LayersModel (loaded with tf_keras, read back as HDF5).

    Raises:
      UnsupportedLayerError: the model carries code (refused before tf_keras sees it).
      InvalidModelError: tf_keras cannot load it, or the HDF5 reader refuses it.
    """
    import tf_keras  # pylint: disable=import-outside-toplevel
    from converter.readers.code_check import refuse_code_in_file
    from converter.readers.keras_h5 import read_keras_h5
    refuse_code_in_file(path)
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except (ValueError, OSError, ImportError) as e:
        raise InvalidModelError("%s: tf_keras cannot load this Keras SavedModel: %s"
                                % (path, e)) from None
    with tempfile.TemporaryDirectory(prefix="keras_saved_model_") as tmp:
        h5 = os.path.join(tmp, "model.h5")
        model.save(h5)
        return read_keras_h5(h5)
