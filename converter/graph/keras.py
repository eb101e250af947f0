"""Keras models (.h5, .keras, TF.js layers models) as frozen graph models.

The model is loaded with the Keras that wrote it (Keras 2 ``tf_keras`` for a
Keras 2 HDF5, else Keras 3) and traced in memory into a signature-style
function (keyword inputs named after the model inputs, dict outputs), which
is then frozen like a SavedModel signature; no SavedModel is written.
"""

import math
import os
from typing import Optional

from converter.errors import ConversionError, InvalidModelError
from converter.graph.model import GraphModel

# A Keras file smaller than this cannot hold weights over protobuf's limit (random
# float32 weights deflate by a few percent at most), so it is not read twice.
_CHECK_FILES_FROM_BYTES = 1 << 29


def refuse_over_protobuf_limit(layers_model, where: str) -> None:
    """Refuses, before Keras holds the model, weights one frozen GraphDef cannot hold.

    ``layers_model`` is our TF-free read of the source (weights not loaded): its
    tensors' logical bytes (float32 after dequantization) are what the frozen
    GraphDef would carry at least. Without this, Keras loads the whole model and
    the trace copies it (6.8-8 GB for a 2.3 GB model, bench_large) before
    ``saved_model.plan_deferral`` refuses it.

    Raises:
      InvalidModelError: over ``saved_model.PROTOBUF_LIMIT_BYTES`` (naming
        ``where``, the bytes and the limit).
    """
    from converter.graph.saved_model import PROTOBUF_LIMIT_BYTES
    from converter.weights.format import NUMPY_DTYPES
    tensors = [t for t in layers_model.tensors() if t.dtype in NUMPY_DTYPES]
    total = sum(math.prod(t.shape) * NUMPY_DTYPES[t.dtype].itemsize for t in tensors)
    if total > PROTOBUF_LIMIT_BYTES:
        raise InvalidModelError(
            "%s: a TF.js graph model is converted through one frozen GraphDef, which would "
            "hold over %d bytes (the weights of %d tensors), over protobuf's limit of %d bytes "
            "for one message (a Keras model's weights cannot stay out of it); convert to "
            "tfjs_layers_model instead (it streams weights of any size), or split the model"
            % (where, total, len(tensors), PROTOBUF_LIMIT_BYTES))


def _refuse_large_keras_file(path: str) -> None:
    """``refuse_over_protobuf_limit`` for a large .h5 / .keras, read TF-free; a file our
    reader cannot read is left for Keras to judge."""
    try:
        if os.path.getsize(path) < _CHECK_FILES_FROM_BYTES:
            return
    except OSError:
        return
    from converter.readers import keras_h5, keras_v3
    try:
        model = (keras_v3.read_keras_v3(path) if path.endswith(".keras")
                 else keras_h5.read_keras_h5(path))
    except ConversionError:
        return
    refuse_over_protobuf_limit(model, path)


def _keras_major_of_h5(path: str) -> int:
    import h5py
    with h5py.File(path, "r") as f:
        version = f.attrs.get("keras_version")
    if isinstance(version, bytes):
        version = version.decode("utf-8")
    return 2 if version and str(version).startswith("2") else 3


def load_keras_model(path: str):
    """Loads a Keras .h5 or .keras file for inference.

    Raises:
      InvalidModelError: Keras cannot load the file.
      UnsupportedLayerError: the model carries code (refused before Keras sees it).
    """
    from converter.readers.code_check import refuse_code_in_file
    refuse_code_in_file(path)
    is_h5 = not path.endswith(".keras") and _is_hdf5(path)
    if is_h5 and _keras_major_of_h5(path) == 2:
        import tf_keras as k
        load = lambda: k.models.load_model(path, compile=False)  # noqa: E731
    else:
        import keras as k
        load = lambda: k.saving.load_model(path, compile=False)  # noqa: E731
    try:
        return load()
    except (ValueError, TypeError, KeyError, OSError) as e:
        raise InvalidModelError("%s: Keras cannot load this model: %s" % (path, e)) from None


def _is_hdf5(path: str) -> bool:
    from converter.readers.detect import _is_hdf5 as is_hdf5  # pylint: disable=protected-access
    return is_hdf5(path)


def _unique_keys(names, fallback: str):
    keys = []
    for i, name in enumerate(names):
        key = name if name and name not in keys else "%s_%d" % (fallback, i)
        keys.append(key)
    return keys


def input_layer_name(tensor) -> Optional[str]:
    """The name of the InputLayer that made a Keras input tensor (stable across reloads)."""
    history = getattr(tensor, "_keras_history", None)
    if history:
        return history[0].name
    name = getattr(tensor, "name", None)
    return name.split(":")[0] if name else None


def keras_to_graph(model, where: str, control_flow_v2: bool = False,
                   structured_outputs: bool = False) -> GraphModel:
    """Traces and freezes a live Keras model.

    Signature input keys are the model's input names; output keys its output
    names (``output_<i>`` when unnamed or repeated).
    """
    import tensorflow as tf
    from converter.graph.saved_model import freeze_function
    inputs = list(model.inputs)
    in_keys = _unique_keys([input_layer_name(t) for t in inputs], "input")
    out_names = list(getattr(model, "output_names", None) or [])
    num_outputs = len(tf.nest.flatten(model.outputs))
    if len(out_names) != num_outputs:
        out_names = [None] * num_outputs
    out_keys = _unique_keys(out_names, "output")
    specs = {k: tf.TensorSpec(t.shape, t.dtype, name=k) for k, t in zip(in_keys, inputs)}

    def serve(**kwargs):
        args = [kwargs[k] for k in in_keys]
        outputs = model(args if len(args) > 1 else args[0], training=False)
        flat = tf.nest.flatten(outputs)
        return {k: tf.identity(o, name=k) for k, o in zip(out_keys, flat)}

    func = tf.function(serve, autograph=False).get_concrete_function(**specs)
    return freeze_function(func, model, where, control_flow_v2, structured_outputs)


def read_keras_as_graph(path: str, control_flow_v2: bool = False,
                        structured_outputs: bool = False) -> GraphModel:
    """A Keras .h5 / .keras file as a frozen GraphModel."""
    _refuse_large_keras_file(path)
    return keras_to_graph(load_keras_model(path), path, control_flow_v2, structured_outputs)


def read_tfjs_layers_as_graph(path: str, control_flow_v2: bool = False,
                              structured_outputs: bool = False) -> GraphModel:
    """A TF.js layers model as a frozen GraphModel, through the in-memory Keras
    model the Keras writer builds (no file in between)."""
    from converter.errors import UnsupportedLayerError
    from converter.readers.tfjs_layers import model_json_path, read_tfjs_layers
    from converter.readers.tfjs_topology import prefixed
    from converter.transforms import layers as lt
    from converter.writers.keras import build_keras_model
    layers_model = read_tfjs_layers(path)
    refuse_over_protobuf_limit(layers_model, model_json_path(path))
    layers_model = lt.dequantize(layers_model)
    try:
        model = build_keras_model(layers_model)
    except (InvalidModelError, UnsupportedLayerError) as e:
        # The Keras writer's messages name the layer, not the file.
        raise type(e)(prefixed(str(e), model_json_path(path))) from None
    return keras_to_graph(model, path, control_flow_v2, structured_outputs)
