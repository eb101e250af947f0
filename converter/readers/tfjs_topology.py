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
  shapes disagree with the topology (``check_weights_match``: the Keras
  writer's translation and the readers' per-layer weight rules, without
  TensorFlow; classes and values with no Keras 3 form are not TF.js problems
  and pass).

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
    shapes (or a tensor is missing or unclaimed), as the Keras writer would.

    Messages start with ``where``. Classes and values with no Keras 3 form pass
    (a limit of that writer, not a fault of the model).
    """
    try:
        check_weight_shapes(model)
    except UnsupportedLayerError:
        pass
    except InvalidModelError as e:
        raise InvalidModelError(prefixed(str(e), where)) from None


def check_weight_shapes(model) -> None:
    """The weight check, without TensorFlow or Keras, its messages naming layers.

    The Keras writer's translation (``writers.keras.translate``, which needs no
    Keras) says which tensors each layer owns, the readers' per-layer rules
    (``keras_config.LAYER_RULES``) which variables a layer has and the shape its
    config implies. The one dimension a config leaves open, the layer's input
    features, is filled where the layer before fixes it (``_input_features``);
    elsewhere it stays open (Keras, or TF.js's loader, checks it). When a layer
    has no rule, its weights are not checked and unclaimed tensors are not
    reported. The Keras writer runs this before it imports Keras.

    Raises:
      InvalidModelError, UnsupportedLayerError: the translation's errors; a
        tensor missing, unclaimed or of another shape than its variable's.
    """
    if model.topology is None:
        return
    from converter.writers import keras as keras_writer  # pylint: disable=import-outside-toplevel
    translated = keras_writer.translate(model, shapes_only=True)
    features = _input_features(model.topology)
    complete = True
    for address, owner in translated.owners.items():
        rule = keras_config.LAYER_RULES.get(owner.class_name)
        if rule is None:
            complete = False
            continue
        for var in rule.weights(owner.config):
            shape = _filled(owner, var, features.get(address))
            checked = keras_writer.Owner(owner.where, owner.class_name, owner.config,
                                         owner.scopes, owner.deep,
                                         {var.local: (var.local,) + var.aliases})
            translated.pool.take(checked, var.local, shape)
    if complete:
        translated.pool.check_all_claimed()


# (Keras class, variable) -> the axis that holds the layer's input features.
_INPUT_AXIS = {
    ("Dense", "kernel"): 0, ("Conv1D", "kernel"): -2, ("Conv2D", "kernel"): -2,
    ("Conv2DTranspose", "kernel"): -1, ("DepthwiseConv2D", "depthwise_kernel"): -2,
    ("SeparableConv2D", "depthwise_kernel"): -2, ("LSTM", "kernel"): 0, ("GRU", "kernel"): 0,
    ("SimpleRNN", "kernel"): 0, ("BatchNormalization", "gamma"): 0,
    ("BatchNormalization", "beta"): 0, ("BatchNormalization", "moving_mean"): 0,
    ("BatchNormalization", "moving_variance"): 0, ("LayerNormalization", "gamma"): 0,
    ("LayerNormalization", "beta"): 0,
}


def _filled(owner, var, features):
    """``var.shape`` with the input-feature axis set when ``features`` is known."""
    shape = var.shape
    if shape is None or (owner.class_name == "GRU" and var.local == "bias"
                         and owner.config.get("reset_after")):
        return None  # rank not told by the config (a reset_after GRU bias is 2-D)
    axis = _INPUT_AXIS.get((owner.class_name, var.local))
    if axis is None or features is None or shape[axis] is not None:
        return shape
    if owner.class_name in ("BatchNormalization", "LayerNormalization") and \
            owner.config.get("axis", -1) not in (-1, [-1]):
        return shape
    shape = list(shape)
    shape[axis] = features
    return tuple(shape)


# Layers whose output has as many features (last axis) as their input.
_SAME_FEATURES = frozenset([
    "Activation", "ActivityRegularization", "AlphaDropout", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "Cropping1D", "Cropping2D",
    "Cropping3D", "Dropout", "ELU", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "LayerNormalization", "LeakyReLU", "Masking",
    "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "PReLU", "ReLU", "RepeatVector", "Rescaling",
    "Softmax", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "ThresholdedReLU",
    "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum",
])
# Layers whose config fixes their output features: class -> config key.
_FIXED_FEATURES = {
    "Dense": "units", "Conv1D": "filters", "Conv2D": "filters", "Conv3D": "filters",
    "Conv2DTranspose": "filters", "Conv3DTranspose": "filters", "SeparableConv1D": "filters",
    "SeparableConv2D": "filters", "Embedding": "output_dim", "LSTM": "units", "GRU": "units",
    "SimpleRNN": "units",
}


def _input_features(topology):
    """Layer address -> the size of its (first call's) input's last axis, where known."""
    out = {}
    root = topology.get("model_config", topology) if isinstance(topology, dict) else None
    if isinstance(root, dict):
        _model_features(root, (), None, out, 0)
    return out


def _count(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def _last(shape):
    return _count(shape[-1]) if isinstance(shape, list) and shape else None


def _model_features(entry, chain, features, out, depth):
    """Records the input features of a model's layers; returns its output's."""
    config = entry.get("config")
    if entry.get("class_name") == "Sequential" and isinstance(config, list):
        config = {"name": "sequential", "layers": config}
    if depth > _MAX_DEPTH or not isinstance(config, dict) or \
            not isinstance(config.get("layers"), list):
        return None
    chain = chain + (str(config.get("name")),)
    layers = [e for e in config["layers"] if isinstance(e, dict)]
    if entry.get("class_name") == "Sequential":
        for index, layer in enumerate(layers):
            lconfig = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            if index == 0 and ("batch_input_shape" in lconfig or "batch_shape" in lconfig):
                features = _last(lconfig.get("batch_input_shape", lconfig.get("batch_shape")))
            if layer.get("class_name") != "InputLayer":
                features = _layer_features(layer, chain, features, out, depth)
        return features
    values = {}  # (layer name, TF.js node index) -> output features
    for layer in layers:
        if layer.get("class_name") == "InputLayer":
            lconfig = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            values[(layer.get("name"), 0)] = _last(
                lconfig.get("batch_input_shape", lconfig.get("batch_shape")))
    pending = [(layer, i, node) for layer in layers if layer.get("class_name") != "InputLayer"
               for i, node in enumerate(layer.get("inbound_nodes") or []) if isinstance(node, list)]
    while pending:
        left = []
        for layer, index, node in pending:
            refs = [(r[0], r[1]) for r in node if isinstance(r, list) and len(r) >= 2]
            if not all(ref in values for ref in refs):
                left.append((layer, index, node))
                continue
            ins = [values[ref] for ref in refs]
            cls = layer.get("class_name")
            lconfig = layer.get("config") if isinstance(layer.get("config"), dict) else {}
            if cls == "Concatenate":
                first = sum(ins) if lconfig.get("axis", -1) == -1 and None not in ins else None
            else:
                first = ins[0] if ins else None
            if cls in keras_config.MODEL_CLASSES:
                result = _model_features(layer, chain, first, out, depth + 1) if index == 0 \
                    else values.get((layer.get("name"), 1))
                values[(layer.get("name"), index + 1)] = result
            elif cls == "Concatenate":
                values[(layer.get("name"), index)] = first
            else:
                result = _layer_features(layer, chain, first, out, depth, record=index == 0)
                values[(layer.get("name"), index)] = result
        if len(left) == len(pending):
            break  # a cycle or a missing reference: the writer's translation reports it
        pending = left
    refs = config.get("output_layers")
    if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
        refs = [refs]
    if isinstance(refs, list) and refs and isinstance(refs[0], list) and len(refs[0]) >= 2:
        return values.get((refs[0][0], refs[0][1]))
    return None


def _layer_features(layer, chain, features, out, depth, record=True):
    """Records a layer's input features; returns its output's."""
    cls = layer.get("class_name")
    if cls in keras_config.MODEL_CLASSES:
        return _model_features(layer, chain, features, out, depth + 1)
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    name = str(config.get("name", layer.get("name")))
    if record:
        out[chain + (name,)] = features
    if config.get("data_format") == "channels_first":
        return None
    inner = config.get("layer") if isinstance(config.get("layer"), dict) else None
    if cls == "TimeDistributed" and inner is not None:
        return _layer_features(inner, chain + (name,), features, out, depth)
    if cls == "Bidirectional" and inner is not None:
        inner_config = inner.get("config") if isinstance(inner.get("config"), dict) else {}
        base = str(inner_config.get("name", ""))
        base = base[len("forward_"):] if base.startswith("forward_") else base
        backward = config.get("backward_layer")
        backward_name = backward.get("config", {}).get("name") if isinstance(backward, dict) \
            and isinstance(backward.get("config"), dict) else "backward_" + base
        for sub in ("forward_" + base, backward_name):
            out[chain + (name, str(sub))] = features
        units = _count(inner_config.get("units"))
        if config.get("merge_mode", "concat") == "concat":
            return None if units is None else 2 * units
        return units
    if cls in _FIXED_FEATURES:
        return _count(config.get(_FIXED_FEATURES[cls]))
    if cls == "DepthwiseConv2D":
        multiplier = config.get("depth_multiplier", 1)
        return None if features is None or _count(multiplier) is None else features * multiplier
    if cls in _SAME_FEATURES:
        return features
    return None


def prefixed(message: str, where: str) -> str:
    """``message`` starting with ``where:`` (added when it does not name it)."""
    return message if message.startswith(where) else "%s: %s" % (where, message)
