"""Checks a TF.js layers model's topology before any output is written.

A model.json comes from anywhere; every output path (another TF.js model, a
Keras file, a graph model) must refuse what TF.js itself could not run or
would run into garbage, with the same message:

- a layer class TF.js 4.22 does not have (``Lambda``, a custom class), at any
  depth (nested models, wrappers);
- a ``module`` outside Keras on any layer or config object (TF.js ignores the
  key, but a Keras loader would import it);
- a config value out of its range: the same table the Keras readers apply
  (``keras_config.check_config_values``: positive ``units``/``filters``/sizes and
  strides, finite ``epsilon``/``rate``, ...);
- for a TF.js output, whose writer copies the topology as is: weights whose
  shapes disagree with the topology (the Keras writer's shape inference,
  ``writers.keras.plan``, run without writing anything; classes and values it
  has no Keras 3 form for are not TF.js problems and pass).

Messages start with the model.json path.
"""

from typing import Any

from converter.errors import InvalidModelError, UnsupportedLayerError
from converter.readers import keras_config

# Modules a Keras 3 config object may name. Anything else would be imported
# by a Keras loader.
_KERAS_MODULES = ("keras", "tf_keras")
_KERAS_MODULE_PREFIXES = ("keras.", "tf_keras.")
_MAX_DEPTH = 64


def check_topology(topology: Any, where: str) -> None:
    """Raises UnsupportedLayerError / InvalidModelError for the first problem found."""
    if topology is None:
        return
    if not isinstance(topology, dict):
        raise InvalidModelError("%s: modelTopology is a %s; want an object"
                                % (where, type(topology).__name__))
    root = topology.get("model_config", topology)
    if not isinstance(root, dict):
        raise InvalidModelError("%s: model_config is a %s; want an object"
                                % (where, type(root).__name__))
    _check_modules(topology, where, "modelTopology", 0)
    _check_layer(root, where, "the root model", 0)


def _check_modules(value: Any, where: str, path: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidModelError("%s: %s nests deeper than %d levels" % (where, path, _MAX_DEPTH))
    if isinstance(value, dict):
        module = value.get("module")
        if module is not None and not (isinstance(module, str) and (
                module in _KERAS_MODULES or module.startswith(_KERAS_MODULE_PREFIXES))):
            raise UnsupportedLayerError(
                "%s: %s names module %.100r; only Keras's own modules are accepted (a custom "
                "module is code, which cannot run in TF.js)" % (where, path, module))
        for key, item in value.items():
            _check_modules(item, where, "%s.%s" % (path, key), depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_modules(item, where, "%s[%d]" % (path, index), depth + 1)


def _check_layer(entry: Any, where: str, what: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise InvalidModelError("%s: models nest deeper than %d levels" % (where, _MAX_DEPTH))
    if not isinstance(entry, dict):
        raise InvalidModelError("%s: %s is a %s; want a {\"class_name\", \"config\"} object"
                                % (where, what, type(entry).__name__))
    cls = entry.get("class_name")
    config = entry.get("config")
    if not isinstance(cls, str):
        raise InvalidModelError("%s: %s has class_name %.100r; want a string" % (where, what, cls))
    name = config.get("name") if isinstance(config, dict) else None
    label = "layer %r (%s)" % (name, cls) if isinstance(name, str) else "%s (%s)" % (what, cls)
    if cls not in keras_config.TFJS_LAYER_CLASSES and cls not in keras_config.MODEL_CLASSES:
        raise UnsupportedLayerError(
            "%s: %s: TF.js 4.22 has no layer class %s%s" % (
                where, label, cls, "; Lambda layers hold Python code, which cannot run in TF.js"
                if cls == "Lambda" else ""))
    if cls == "Sequential" and isinstance(config, list):
        layers = config  # the oldest Keras 2 form: a bare list
        config = {}
    elif not isinstance(config, dict):
        raise InvalidModelError("%s: %s has config %.100r; want an object" % (where, label, config))
    else:
        layers = config.get("layers", [])
    if cls not in keras_config.MODEL_CLASSES:
        keras_config.check_config_values(config, name, cls, where)
    if cls in keras_config.MODEL_CLASSES:
        if not isinstance(layers, list):
            raise InvalidModelError("%s: %s has layers %.100r; want a list" % (where, label, layers))
        for index, layer in enumerate(layers):
            _check_layer(layer, where, "layer %d of %s" % (index, label), depth + 1)
    for key in ("layer", "backward_layer"):
        if config.get(key) is not None:
            _check_layer(config[key], where, "the %s of %s" % (key, label), depth + 1)


def check_weights_match(model, where: str) -> None:
    """Raises InvalidModelError when the weights disagree with the topology's
    shapes (or a tensor is missing or unclaimed), as the Keras writer would."""
    if model.topology is None:
        return
    from converter.writers import keras as keras_writer  # pylint: disable=import-outside-toplevel
    try:
        keras_writer.plan(model)
    except UnsupportedLayerError:
        pass  # no Keras 3 form: a limit of that writer, not a fault of the model
    except InvalidModelError as e:
        raise InvalidModelError(prefixed(str(e), where)) from None


def prefixed(message: str, where: str) -> str:
    """``message`` starting with ``where:`` (added when it does not name it)."""
    return message if message.startswith(where) else "%s: %s" % (where, message)
