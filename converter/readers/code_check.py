"""Refuses models that carry code or foreign data, before any Keras deserializer sees them.

``tf_keras.models.load_model`` applies no safe mode to legacy HDF5 files or
Keras SavedModels: a ``Lambda`` layer's marshalled bytecode runs while the model
loads, and a ``module``/``registered_name`` pointing outside Keras imports and
calls arbitrary Python. Keras 3 ``.keras`` loading has a safe mode, but Keras 3
loading a legacy ``.h5`` does not. So every path that hands a model to Keras
(Keras 2/3 ``.h5`` → graph, ``keras_saved_model`` → layers/graph, ``--verify``'s
reference) first reads the config as plain JSON with h5py, zipfile or protobuf
and calls ``refuse_code``; ``refuse_code_in_file`` also refuses HDF5 data stored
outside the file (links, external storage, virtual datasets), which Keras would
follow.
"""

import os
import zipfile
from typing import Any, Iterator, Optional, Tuple

from converter import jsonio
from converter.errors import InvalidModelError, UnsupportedLayerError

# Layer classes whose config carries Python code (marshalled bytecode or a function path).
CODE_LAYERS = ("Lambda",)
# Modules a layer, initializer, regularizer, ... may come from.
_KERAS_MODULES = ("keras", "tf_keras", "tensorflow.keras", "tensorflow.python.keras")


def is_keras_module(module: str) -> bool:
    """``module`` is one of Keras's own (``keras``, ``keras.src.layers``, ``tf_keras...``),
    not merely a module of a package that contains Keras (``tensorflow.io``)."""
    return any(module == m or module.startswith(m + ".") for m in _KERAS_MODULES)


def _objects(value: Any, path: str = "") -> Iterator[Tuple[str, dict]]:
    """Every dict with a ``class_name`` inside ``value`` (iteratively: configs can be deep)."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                yield where, item
            stack.extend((v, where) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, where) for v in item)


def refuse_code(config: Any, where: str) -> None:
    """Raises when ``config`` (a Keras model config) holds a layer or object carrying code.

    Raises:
      UnsupportedLayerError: a ``Lambda`` layer, or an object from a module
        outside Keras / a custom registered name; the message names ``where``
        and the layer.
    """
    for _, obj in _objects(config):
        cls = obj.get("class_name")
        inner = obj.get("config") if isinstance(obj.get("config"), dict) else {}
        name = inner.get("name") if isinstance(inner.get("name"), str) else None
        label = "%r (%s)" % (name, cls) if name else repr(cls)
        if cls in CODE_LAYERS:
            raise UnsupportedLayerError(
                "%s: layer %s holds Python code; refused before loading, since loading it "
                "would run that code. Replace the Lambda with built-in layers" % (where, label))
        module = obj.get("module")
        if isinstance(module, str) and module and not is_keras_module(module):
            raise UnsupportedLayerError(
                "%s: object %s comes from module %r, outside Keras; refused before loading, "
                "since loading it would import and run that module" % (where, label, module))
        registered = obj.get("registered_name")
        if isinstance(registered, str) and ">" in registered:
            raise UnsupportedLayerError(
                "%s: object %s is the custom class %r; refused before loading, since loading "
                "it needs its Python code" % (where, label, registered))
        if not isinstance(cls, str):
            raise InvalidModelError("%s: class_name %r is not a string" % (where, cls))


def _h5_config(path: str) -> Optional[Any]:
    from converter.readers.keras_h5 import open_h5
    with open_h5(path, path) as f:  # also refuses data stored outside the file
        raw = f.attrs.get("model_config")
    if raw is None:
        return None
    return jsonio.loads(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw),
                        "%s: attribute 'model_config'" % path)


def _check_keras_v3(path: str) -> None:
    """config.json without code, and the weights stored inside the archive, read the way
    the .keras reader reads them (size-limited, CRC-checked)."""
    from converter.readers import keras_v3
    from converter.readers.keras_h5 import open_h5
    with keras_v3.open_zip(path) as archive:
        names = set(archive.namelist())
        if keras_v3.CONFIG_JSON not in names:
            raise InvalidModelError("%s: the archive has no %s" % (path, keras_v3.CONFIG_JSON))
        refuse_code(keras_v3.json_member(archive, keras_v3.CONFIG_JSON, path), path)
        if keras_v3.WEIGHTS_H5 in names:
            source = keras_v3.weights_source(archive, path)
            try:
                with open_h5(source, "%s!%s" % (path, keras_v3.WEIGHTS_H5)):
                    pass
            finally:
                source.close()


def _saved_model_configs(path: str) -> Iterator[Any]:
    """The per-object JSON metadata of a Keras SavedModel's keras_metadata.pb."""
    meta = os.path.join(path, "keras_metadata.pb")
    if not os.path.isfile(meta):
        return
    from tf_keras.protobuf import saved_metadata_pb2
    proto = saved_metadata_pb2.SavedMetadata()
    try:
        with open(meta, "rb") as f:
            proto.ParseFromString(f.read())
    except Exception as e:  # protobuf's DecodeError has no stable import path
        if type(e).__name__ != "DecodeError":
            raise
        raise InvalidModelError("%s: keras_metadata.pb is corrupt (%s)" % (path, e)) from None
    for node in proto.nodes:
        if node.metadata:
            yield jsonio.loads(node.metadata, "%s: keras_metadata.pb" % path)


def refuse_code_in_file(path: str) -> None:
    """``refuse_code`` on a Keras .h5, .keras file or Keras SavedModel directory."""
    if os.path.isdir(path):
        for config in _saved_model_configs(path):
            refuse_code(config, path)
        return
    if zipfile.is_zipfile(path):
        _check_keras_v3(path)
        return
    config = _h5_config(path)
    if config is not None:
        refuse_code(config, path)
