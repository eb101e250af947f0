"""Translates Keras 2 and Keras 3 model configs into the form TF.js 4.22 loads.

``tf.loadLayersModel`` (tfjs-layers 4.22) reads a Keras-2-style config: snake_case
keys that it camel-cases itself, ``batch_input_shape`` on input layers, dtype
strings, nested-list ``inbound_nodes`` (``[[layer, node, tensor, kwargs], ...]``)
and ``{"class_name", "config"}`` objects for initializers, regularizers and
constraints. Keras 3 writes ``batch_shape``, ``DTypePolicy`` objects,
``{"args", "kwargs"}`` nodes holding ``__keras_tensor__`` histories and
``module``/``registered_name`` keys, which TF.js refuses or ignores.

This module rewrites either dialect into the one TF.js accepts, layer by layer,
using an explicit table (``LAYER_RULES``) of the classes whose translation has
been checked against TF.js 4.22 predictions. Every config key of a supported
class is either passed on, dropped because it cannot change inference results,
or required to hold the one value TF.js implements; any other key or value is
refused with ``UnsupportedLayerError`` rather than silently ignored (TF.js
ignores config keys it does not know, which would change results unnoticed).

The same walk produces the weight plan: for every variable, in Keras order, the
name TF.js gives it (``LayerVariable.originalName``: ``dense/kernel``; RNN cell
weights without the cell scope, ``lstm/kernel``; Bidirectional
``bi/forward_lstm/kernel``; layers of nested models under their own name) and
where Keras 3 stores it in a ``.keras`` weights file
(``layers/dense/vars/0``).
"""

import dataclasses
import math
import re
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from converter.errors import InvalidModelError, UnsupportedLayerError

# Layer classes TF.js 4.22 can deserialize: the layer entries of
# ``tf.serialization.SerializationMap.getMap().classNameMap`` in
# @tensorflow/tfjs 4.22.0 (initializers, constraints, regularizers,
# optimizers and activations removed). Derived with:
#   node -e "const tf=require('@tensorflow/tfjs');
#            console.log(Object.keys(tf.serialization.SerializationMap.getMap().classNameMap))"
TFJS_LAYER_CLASSES = frozenset([
    "Activation", "Add", "AlphaDropout", "Average", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "BatchNormalization", "Bidirectional",
    "CategoryEncoding", "CenterCrop", "Concatenate", "Conv1D", "Conv2D",
    "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "ConvLSTM2D", "ConvLSTM2DCell",
    "Cropping2D", "Dense", "DepthwiseConv2D", "Dot", "Dropout", "ELU", "Embedding",
    "Flatten", "Functional", "GRU", "GRUCell", "GaussianDropout", "GaussianNoise",
    "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "InputLayer", "LSTM", "LSTMCell", "LayerNormalization",
    "LeakyReLU", "Masking", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "Maximum",
    "Minimum", "Model", "Multiply", "PReLU", "Permute", "RNN", "RandomWidth", "ReLU",
    "RepeatVector", "Rescaling", "Reshape", "Resizing", "SeparableConv2D",
    "Sequential", "SimpleRNN", "SimpleRNNCell", "Softmax", "SpatialDropout1D",
    "StackedRNNCells", "ThresholdedReLU", "TimeDistributed", "UpSampling2D",
    "ZeroPadding2D",
])

# Initializer, regularizer and constraint classes of the same registry.
TFJS_INITIALIZERS = frozenset([
    "Constant", "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "Identity",
    "LeCunNormal", "LeCunUniform", "Ones", "Orthogonal", "RandomNormal",
    "RandomUniform", "TruncatedNormal", "VarianceScaling", "Zeros",
])
TFJS_CONSTRAINTS = frozenset(["MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm"])

MODEL_CLASSES = frozenset(["Functional", "Model", "Sequential"])

# Class names older Keras versions wrote for layers TF.js knows by another name.
CLASS_RENAMES = {
    "BatchNormalizationV1": "BatchNormalization",
    "BatchNormalizationV2": "BatchNormalization",
    "UnifiedGRU": "GRU",
    "UnifiedLSTM": "LSTM",
    "GRUV2": "GRU",
    "LSTMV2": "LSTM",
}

# Keys that only record how a config was produced; they never reach TF.js.
_BOOKKEEPING_KEYS = frozenset(["module", "registered_name", "build_config",
                               "compile_config", "shared_object_id"])


@dataclasses.dataclass(frozen=True)
class WeightSlot:
    """One variable of the model, as the readers must fill it.

    Attributes:
      name: the TF.js weight name (``LayerVariable.originalName``).
      local: the Keras variable name (``kernel``).
      aliases: other names some Keras versions give the same variable (Keras 3
        calls a DepthwiseConv2D's ``depthwise_kernel`` ``kernel``).
      layer: the top-level layer that holds the variable (for a nested model,
        the model).
      owner: the Keras layer that created the variable (the inner layer of a
        nested model, ``forward_lstm`` inside a Bidirectional).
      v3_path: the dataset path in a Keras 3 ``model.weights.h5``.
      shape: the shape the layer's config implies, a None dimension being set
        by the layer's input; None when the config does not tell the rank.
    """

    name: str
    local: str
    aliases: Tuple[str, ...]
    layer: str
    owner: str
    v3_path: str
    shape: Optional[Tuple[Optional[int], ...]] = None


@dataclasses.dataclass(frozen=True)
class TranslatedModel:
    """A model config in TF.js form plus its weight plan.

    Attributes:
      model_config: ``{"class_name": ..., "config": ...}`` for
        ``modelTopology.model_config``.
      slots: every variable, in Keras weight order (layer by layer, each layer's
        variables in ``layer.weights`` order).
      layer_names: the top-level layers in config order.
    """

    model_config: Dict[str, Any]
    slots: Tuple[WeightSlot, ...]
    layer_names: Tuple[str, ...]

    def slots_of(self, layer: str) -> List[WeightSlot]:
        return [s for s in self.slots if s.layer == layer]


# --------------------------------------------------------------------------
# Value translations.

# Keras activation name -> TF.js activation name. TF.js camel-cases string
# values itself, so names are given in snake_case where that yields the TF.js
# class name (log_softmax -> logSoftmax).
_ACTIVATIONS = {
    "linear": "linear", "relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid",
    "tanh": "tanh", "softmax": "softmax", "softplus": "softplus",
    "softsign": "softsign", "selu": "selu", "elu": "elu", "swish": "swish",
    "silu": "swish", "gelu": "gelu", "mish": "mish", "log_softmax": "log_softmax",
}
# Keras 2 hard_sigmoid is clip(0.2x + 0.5) like TF.js; Keras 3 changed it to
# relu6(x + 3) / 6, which TF.js does not have.
_KERAS2_ONLY_ACTIVATIONS = {"hard_sigmoid": "hard_sigmoid"}

# Keras initializer names (class names of Keras 2 and 3, and the string
# shortcuts) -> (TF.js class, config keys TF.js reads).
_INITIALIZERS = {
    "Zeros": ("Zeros", ()), "zeros": ("Zeros", ()),
    "Ones": ("Ones", ()), "ones": ("Ones", ()),
    "Constant": ("Constant", ("value",)), "constant": ("Constant", ("value",)),
    "RandomNormal": ("RandomNormal", ("mean", "stddev", "seed")),
    "random_normal": ("RandomNormal", ("mean", "stddev", "seed")),
    "RandomUniform": ("RandomUniform", ("minval", "maxval", "seed")),
    "random_uniform": ("RandomUniform", ("minval", "maxval", "seed")),
    "TruncatedNormal": ("TruncatedNormal", ("mean", "stddev", "seed")),
    "truncated_normal": ("TruncatedNormal", ("mean", "stddev", "seed")),
    "VarianceScaling": ("VarianceScaling", ("scale", "mode", "distribution", "seed")),
    "variance_scaling": ("VarianceScaling", ("scale", "mode", "distribution", "seed")),
    "Orthogonal": ("Orthogonal", ("gain", "seed")),
    "OrthogonalInitializer": ("Orthogonal", ("gain", "seed")),
    "orthogonal": ("Orthogonal", ("gain", "seed")),
    "Identity": ("Identity", ("gain",)), "IdentityInitializer": ("Identity", ("gain",)),
    "identity": ("Identity", ("gain",)),
    "GlorotUniform": ("GlorotUniform", ("seed",)), "glorot_uniform": ("GlorotUniform", ("seed",)),
    "GlorotNormal": ("GlorotNormal", ("seed",)), "glorot_normal": ("GlorotNormal", ("seed",)),
    "HeUniform": ("HeUniform", ("seed",)), "he_uniform": ("HeUniform", ("seed",)),
    "HeNormal": ("HeNormal", ("seed",)), "he_normal": ("HeNormal", ("seed",)),
    "LecunUniform": ("LeCunUniform", ("seed",)), "lecun_uniform": ("LeCunUniform", ("seed",)),
    "LecunNormal": ("LeCunNormal", ("seed",)), "lecun_normal": ("LeCunNormal", ("seed",)),
}
# VarianceScaling distributions TF.js knows; Keras' untruncated_normal is
# TF.js' normal.
_DISTRIBUTIONS = {"normal": "normal", "untruncated_normal": "normal",
                  "truncated_normal": "truncated_normal", "uniform": "uniform"}

# Keras regularizer -> TF.js L1L2 (the only regularizer TF.js has), as
# (l1 key or default, l2 key or default).
_REGULARIZERS = {
    "L1L2": ("l1", "l2"), "l1_l2": (0.01, 0.01),
    "L1": ("l1", 0.0), "l1": (0.01, 0.0),
    "L2": (0.0, "l2"), "l2": (0.0, 0.01),
}

_CONSTRAINTS = {
    "MaxNorm": ("MaxNorm", ("max_value", "axis")), "max_norm": ("MaxNorm", ()),
    "MinMaxNorm": ("MinMaxNorm", ("min_value", "max_value", "rate", "axis")),
    "min_max_norm": ("MinMaxNorm", ()),
    "NonNeg": ("NonNeg", ()), "non_neg": ("NonNeg", ()),
    "UnitNorm": ("UnitNorm", ("axis",)), "unit_norm": ("UnitNorm", ()),
}

_DTYPE_POLICY_CLASSES = frozenset(["DTypePolicy", "Policy", "FloatDTypePolicy"])

# Input dtypes -> the TF.js dtype holding the same values (TF.js has no 64-bit
# or small integer types; the converter narrows weights the same way).
_INPUT_DTYPES = {
    "float16": "float32", "bfloat16": "float32", "float32": "float32", "float64": "float32",
    "int8": "int32", "int16": "int32", "int32": "int32", "int64": "int32",
    "uint8": "int32", "uint16": "int32", "uint32": "int32", "uint64": "int32",
    "bool": "bool", "string": "string",
}


class _Context:
    """Where a translation is, for messages and version-dependent rules."""

    def __init__(self, keras_major: int, where: str):
        self.keras_major = keras_major
        self.where = where

    def unsupported(self, layer: str, cls: str, problem: str) -> UnsupportedLayerError:
        return UnsupportedLayerError("%s: layer %r (%s): %s" % (self.where, layer, cls, problem))

    def invalid(self, problem: str) -> InvalidModelError:
        return InvalidModelError("%s: %s" % (self.where, problem))


def _class_and_config(obj: Any, what: str, layer: str, cls: str, ctx: _Context):
    if isinstance(obj, str):
        return obj, {}
    if isinstance(obj, dict) and isinstance(obj.get("class_name"), str):
        config = obj.get("config") or {}
        if not isinstance(config, dict):
            raise ctx.unsupported(layer, cls, "%s has a non-dict config %r" % (what, config))
        return obj["class_name"], config
    raise ctx.unsupported(layer, cls, "%s %r is neither a name nor a {class_name, config} object"
                          % (what, obj))


def _initializer(value, key, layer, cls, ctx):
    if value is None:
        return None
    name, config = _class_and_config(value, key, layer, cls, ctx)
    if name not in _INITIALIZERS:
        raise ctx.unsupported(layer, cls, "%s %s has no TF.js equivalent (TF.js has %s)"
                              % (key, name, ", ".join(sorted(TFJS_INITIALIZERS))))
    tfjs_name, keys = _INITIALIZERS[name]
    out = {k: config[k] for k in keys if k in config}
    if "distribution" in out:
        if out["distribution"] not in _DISTRIBUTIONS:
            raise ctx.unsupported(layer, cls, "%s distribution %r has no TF.js equivalent"
                                  % (key, out["distribution"]))
        out["distribution"] = _DISTRIBUTIONS[out["distribution"]]
    if "value" in out and not isinstance(out["value"], (int, float)):
        raise ctx.unsupported(layer, cls, "%s Constant value %r is not a number (TF.js "
                              "Constant takes a scalar)" % (key, out["value"]))
    return {"class_name": tfjs_name, "config": out}


def _regularizer(value, key, layer, cls, ctx):
    if value is None:
        return None
    name, config = _class_and_config(value, key, layer, cls, ctx)
    if name not in _REGULARIZERS:
        raise ctx.unsupported(layer, cls, "%s %s has no TF.js equivalent (TF.js has L1L2, "
                              "which also expresses L1 and L2)" % (key, name))
    l1, l2 = (config.get(v, 0.0) if isinstance(v, str) else v for v in _REGULARIZERS[name])
    return {"class_name": "L1L2", "config": {"l1": l1, "l2": l2}}


def _constraint(value, key, layer, cls, ctx):
    if value is None:
        return None
    name, config = _class_and_config(value, key, layer, cls, ctx)
    if name not in _CONSTRAINTS:
        raise ctx.unsupported(layer, cls, "%s %s has no TF.js equivalent (TF.js has %s)"
                              % (key, name, ", ".join(sorted(TFJS_CONSTRAINTS))))
    tfjs_name, keys = _CONSTRAINTS[name]
    return {"class_name": tfjs_name, "config": {k: config[k] for k in keys if k in config}}


def _activation(value, key, layer, cls, ctx):
    if not isinstance(value, str):
        raise ctx.unsupported(layer, cls, "%s %r is not a built-in activation name (custom "
                              "activations cannot run in TF.js)" % (key, value))
    if value in _ACTIVATIONS:
        return _ACTIVATIONS[value]
    if value in _KERAS2_ONLY_ACTIVATIONS and ctx.keras_major < 3:
        return _KERAS2_ONLY_ACTIVATIONS[value]
    if value in _KERAS2_ONLY_ACTIVATIONS:
        raise ctx.unsupported(layer, cls, "%s %r: Keras 3 defines it as relu6(x + 3) / 6 but "
                              "TF.js as clip(0.2 * x + 0.5, 0, 1)" % (key, value))
    raise ctx.unsupported(layer, cls, "%s %r has no TF.js equivalent (TF.js has %s)"
                          % (key, value, ", ".join(sorted(set(_ACTIVATIONS)))))


def dtype_name(value: Any) -> Optional[str]:
    """The dtype string of a Keras 2 dtype string or a Keras 2/3 dtype policy.

    Returns ``None`` when ``value`` is neither.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("class_name"), str) \
            and value["class_name"] in _DTYPE_POLICY_CLASSES:
        config = value.get("config")
        name = config.get("name") if isinstance(config, dict) else None
        return name if isinstance(name, str) else None
    return None


def _layer_dtype(value, key, layer, cls, ctx):
    if value is None:
        return None
    name = dtype_name(value)
    if name != "float32":
        raise ctx.unsupported(layer, cls, "dtype policy %r: TF.js layers compute in float32 "
                              "only; save the model with the float32 policy"
                              % (name if name is not None else value,))
    return name


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_finite(v) -> bool:
    return (_is_int(v) or isinstance(v, float)) and math.isfinite(v)


def _checked(test: Callable[[Any], bool], want: str) -> Callable:
    """A value kind that passes values ``test`` accepts and refuses the rest,
    naming the layer, the key, the value and what it must be."""
    def check(value, key, layer, cls, ctx):
        if not test(value):
            raise ctx.invalid("layer %r (%s): %s is %.100r; it must be %s"
                              % (layer, cls, key, value, want))
        return value
    return check


def _positive_ints(v) -> bool:
    values = v if isinstance(v, (list, tuple)) else [v]
    return bool(values) and all(_is_int(x) and x > 0 for x in values)


# Config values whose range the layer's arithmetic needs: a zero stride or
# pool size divides by zero, a negative size allocates nonsense, a NaN epsilon
# or rate turns every output into NaN.
_VALUE_CHECKS = {
    **{k: _checked(lambda v: _is_int(v) and v > 0, "a positive integer")
       for k in ("units", "filters", "input_dim", "output_dim", "depth_multiplier", "n")},
    **{k: _checked(_positive_ints, "a positive integer or a list of them")
       for k in ("kernel_size", "pool_size", "dilation_rate", "size")},
    # A pooling layer's strides may be null (then its pool_size).
    "strides": _checked(lambda v: v is None or _positive_ints(v),
                        "a positive integer or a list of them"),
    **{k: _checked(lambda v: _is_finite(v) and v >= 0, "a finite number >= 0")
       for k in ("epsilon", "stddev", "theta")},
    "rate": _checked(lambda v: _is_finite(v) and 0 <= v < 1, "a number in [0, 1)"),
    "momentum": _checked(_is_finite, "a finite number"),
    "max_value": _checked(lambda v: v is None or (_is_finite(v) and v >= 0),
                          "null or a finite number >= 0"),
    **{k: _checked(lambda v: v is None or _is_finite(v), "null or a finite number")
       for k in ("alpha", "mask_value")},
    "axis": _checked(lambda v: _is_int(v) or (isinstance(v, (list, tuple)) and bool(v)
                                              and all(_is_int(x) for x in v)),
                     "an integer or a list of integers"),
}



def check_config_values(config: dict, layer: Any, cls: str, where: str) -> None:
    """Raises InvalidModelError for the first value of ``config`` out of its
    range (the table above), naming ``where``, the layer and the key."""
    ctx = _Context(3, where)
    for key, value in config.items():
        check = _VALUE_CHECKS.get(key)
        if check is not None:
            check(value, key, layer, cls, ctx)

def _value_kind(key: str) -> Optional[Callable]:
    if key in _VALUE_CHECKS:
        return _VALUE_CHECKS[key]
    if key.endswith("_initializer"):
        return _initializer
    if key.endswith("_regularizer"):
        return _regularizer
    if key.endswith("_constraint"):
        return _constraint
    if key in ("activation", "recurrent_activation"):
        return _activation
    if key == "dtype":
        return _layer_dtype
    return None


# --------------------------------------------------------------------------
# The layer table.

@dataclasses.dataclass(frozen=True)
class _Var:
    """A variable of a layer: its Keras name, where Keras 3 stores it, and the
    shape the layer's config implies (None: not known from the config alone;
    a None dimension: set by the input, e.g. a Dense kernel's first)."""

    local: str
    aliases: Tuple[str, ...] = ()
    group: str = "vars"   # "cell/vars" for RNN layers
    shape: Optional[Tuple[Optional[int], ...]] = None


def _positive(value) -> Optional[int]:
    """A config dimension, or None when it is not a positive int (the config
    checks report that; the shape check then leaves the dimension open)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _dims(c, key: str, n: int) -> Tuple[Optional[int], ...]:
    """``kernel_size``-like config values: an int or a list of ``n`` ints."""
    value = c.get(key)
    if isinstance(value, (list, tuple)) and len(value) == n:
        return tuple(_positive(v) for v in value)
    return (_positive(value),) * n if not isinstance(value, (list, tuple)) else (None,) * n


def _times(value: Optional[int], k: int) -> Optional[int]:
    return None if value is None else value * k


def _single_axis(c) -> bool:
    axis = c.get("axis", -1)
    return (isinstance(axis, int) and not isinstance(axis, bool)) or \
        (isinstance(axis, (list, tuple)) and len(axis) == 1)


@dataclasses.dataclass(frozen=True)
class _Fixed:
    """A config key TF.js lacks, allowed only where it has no effect."""

    allowed: Callable[[Any], bool]
    want: str


def _is_none(v):
    return v is None


def _is_false(v):
    return v is False or v is None


def _is_zero(v):
    return v in (0, 0.0, None)


def _is_one(v):
    return v == 1 or v is None


def _all_ones(v):
    return v is None or v == 1 or (isinstance(v, (list, tuple)) and all(x == 1 for x in v))


def _channels_last(v):
    return v in ("channels_last", None)


_NONE = _Fixed(_is_none, "None")
_FALSE = _Fixed(_is_false, "False")
_ZERO = _Fixed(_is_zero, "0")
_CHANNELS_LAST = _Fixed(_channels_last, "'channels_last' (the TF.js layout)")


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """How one Keras layer class is translated.

    Attributes:
      weights: the layer's variables in Keras order, given its config.
      keep: config keys passed to TF.js (values of ``*_initializer``,
        ``*_regularizer``, ``*_constraint``, ``activation`` keys translated).
      fixed: keys TF.js lacks, with the value(s) at which dropping them changes
        nothing; any other value is refused.
      drop: keys that cannot change inference results (random seeds, training-
        only settings, performance hints).
      rename: Keras key -> TF.js key.
      allowed: kept keys whose values TF.js implements only in part.
      rank: output ranks given the config and the input ranks (for the axis
        checks of later layers).
    """

    weights: Callable[[Dict[str, Any]], Tuple[_Var, ...]] = lambda c: ()
    keep: Tuple[str, ...] = ()
    fixed: Mapping[str, _Fixed] = dataclasses.field(default_factory=dict)
    drop: Tuple[str, ...] = ()
    rename: Mapping[str, str] = dataclasses.field(default_factory=dict)
    allowed: Mapping[str, _Fixed] = dataclasses.field(default_factory=dict)
    rank: Callable[[Dict[str, Any], List[int]], List[int]] = lambda c, ins: [max(ins)]


def _bias(c, size: Optional[int]):
    return (_Var("bias", shape=(size,)),) if c.get("use_bias", True) else ()


def _dense(c):
    units = _positive(c.get("units"))
    return (_Var("kernel", shape=(None, units)),) + _bias(c, units)


def _conv(rank: int, transpose: bool = False):
    def weights(c):
        filters = _positive(c.get("filters"))
        # Conv kernels are (*kernel_size, in, filters); transposed ones (*kernel_size, filters, in).
        channels = (filters, None) if transpose else (None, filters)
        return (_Var("kernel", shape=_dims(c, "kernel_size", rank) + channels),) + _bias(c, filters)
    return weights


def _depthwise(c):
    # Keras 3 names the depthwise variable "kernel".
    multiplier = _positive(c.get("depth_multiplier", 1))
    return (_Var("depthwise_kernel", ("kernel",),
                 shape=_dims(c, "kernel_size", 2) + (None, multiplier)),) + _bias(c, None)


def _separable(c):
    filters = _positive(c.get("filters"))
    multiplier = _positive(c.get("depth_multiplier", 1))
    return (_Var("depthwise_kernel", shape=_dims(c, "kernel_size", 2) + (None, multiplier)),
            _Var("pointwise_kernel", shape=(1, 1, None, filters))) + _bias(c, filters)


def _batch_norm(c):
    shape = (None,) if _single_axis(c) else None
    return (((_Var("gamma", shape=shape),) if c.get("scale", True) else ())
            + ((_Var("beta", shape=shape),) if c.get("center", True) else ())
            + (_Var("moving_mean", shape=shape), _Var("moving_variance", shape=shape)))


def _layer_norm(c):
    shape = (None,) if _single_axis(c) else None
    return (((_Var("gamma", shape=shape),) if c.get("scale", True) else ())
            + ((_Var("beta", shape=shape),) if c.get("center", True) else ()))


def _embedding(c):
    return (_Var("embeddings", shape=(_positive(c.get("input_dim")),
                                      _positive(c.get("output_dim")))),)


def _rnn(gates: int):
    """An RNN layer's cell variables; ``gates``: 4 for LSTM, 3 for GRU, 1 for SimpleRNN."""
    def weights(c):
        width = _times(_positive(c.get("units")), gates)
        out = (_Var("kernel", group="cell/vars", shape=(None, width)),
               _Var("recurrent_kernel", group="cell/vars",
                    shape=(_positive(c.get("units")), width)))
        return out + ((_Var("bias", group="cell/vars", shape=(width,)),)
                      if c.get("use_bias", True) else ())
    return weights


def _rnn_rank(states: int):
    """Output ranks of an RNN layer with ``states`` state tensors."""
    def rank(c, ins):
        out = [3 if c.get("return_sequences") else 2]
        return out + [2] * states if c.get("return_state") else out
    return rank


def _minus_one(c, ins):
    return [ins[0] - 1]


def _dot_rank(c, ins):
    # batch_dot contracts one axis of each input and shares the batch axis.
    return [max(2, ins[0] + ins[1] - 3)] if len(ins) == 2 else [max(ins)]


_INIT_REG_CONS = ("kernel_initializer", "bias_initializer", "kernel_regularizer",
                  "bias_regularizer", "kernel_constraint", "bias_constraint")
_CONV_KEEP = ("filters", "kernel_size", "strides", "padding", "dilation_rate",
              "activation", "use_bias") + _INIT_REG_CONS
_CONV_FIXED = {"groups": _Fixed(_is_one, "1"), "data_format": _CHANNELS_LAST}
_RNN_KEEP = ("units", "activation", "use_bias", "kernel_initializer",
             "recurrent_initializer", "bias_initializer", "kernel_regularizer",
             "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
             "recurrent_constraint", "bias_constraint", "dropout",
             "recurrent_dropout", "return_sequences", "return_state", "go_backwards")
# stateful RNNs carry state between predict calls, which TF.js does differently
# (fixed batch size); time_major changes the input layout TF.js expects.
_RNN_FIXED = {"time_major": _FALSE, "stateful": _FALSE}
# seed: dropout randomness; implementation/unroll: speed only.
# zero_output_for_mask is checked by _Walker.check_masking.
_RNN_DROP = ("seed", "implementation", "unroll", "zero_output_for_mask")
_POOL_KEEP = ("pool_size", "strides", "padding")
# TF.js refuses to call a layer that has an activity regularizer; it only adds a
# training loss, so it is dropped.
_ALWAYS_DROPPED = ("activity_regularizer",)
_GLOBAL_POOL_FIXED = {"data_format": _CHANNELS_LAST, "keepdims": _FALSE}

LAYER_RULES: Dict[str, LayerRule] = {
    "Dense": LayerRule(
        _dense, ("units", "activation", "use_bias") + _INIT_REG_CONS,
        {"quantization_config": _NONE, "lora_rank": _NONE, "lora_alpha": _NONE}),
    "Conv1D": LayerRule(
        _conv(1), _CONV_KEEP, _CONV_FIXED,
        allowed={"padding": _Fixed(lambda v: v in ("valid", "same"),
                                   "'valid' or 'same' (TF.js conv1d has no causal padding)")}),
    "Conv2D": LayerRule(_conv(2), _CONV_KEEP, _CONV_FIXED),
    "Conv2DTranspose": LayerRule(
        _conv(2, transpose=True), tuple(k for k in _CONV_KEEP if k != "dilation_rate"),
        dict(_CONV_FIXED, output_padding=_NONE,
             dilation_rate=_Fixed(_all_ones, "1 (TF.js has no dilated transposed conv)"))),
    "DepthwiseConv2D": LayerRule(
        _depthwise,
        ("kernel_size", "strides", "padding", "depth_multiplier", "dilation_rate",
         "activation", "use_bias", "depthwise_initializer", "bias_initializer",
         "depthwise_regularizer", "bias_regularizer", "depthwise_constraint",
         "bias_constraint"),
        _CONV_FIXED),
    "SeparableConv2D": LayerRule(
        _separable,
        ("filters", "kernel_size", "strides", "padding", "depth_multiplier",
         "dilation_rate", "activation", "use_bias", "depthwise_initializer",
         "pointwise_initializer", "bias_initializer", "depthwise_regularizer",
         "pointwise_regularizer", "bias_regularizer", "depthwise_constraint",
         "pointwise_constraint", "bias_constraint"),
        _CONV_FIXED,
        # Keras 2 lists the unused Conv kernel_* settings too.
        drop=("kernel_initializer", "kernel_regularizer", "kernel_constraint")),
    "BatchNormalization": LayerRule(
        _batch_norm,
        ("axis", "momentum", "epsilon", "center", "scale", "beta_initializer",
         "gamma_initializer", "moving_mean_initializer", "moving_variance_initializer",
         "beta_regularizer", "gamma_regularizer", "beta_constraint", "gamma_constraint"),
        {"renorm": _FALSE, "renorm_clipping": _NONE},
        # Both only matter while training.
        drop=("synchronized", "renorm_momentum")),
    "LayerNormalization": LayerRule(
        _layer_norm,
        ("axis", "epsilon", "center", "scale", "beta_initializer", "gamma_initializer",
         "beta_regularizer", "gamma_regularizer"),
        {"rms_scaling": _FALSE, "beta_constraint": _NONE, "gamma_constraint": _NONE}),
    "Embedding": LayerRule(
        _embedding,
        ("input_dim", "output_dim", "embeddings_initializer", "embeddings_regularizer",
         "embeddings_constraint", "mask_zero", "input_length"),
        {"quantization_config": _NONE, "lora_rank": _NONE, "lora_alpha": _NONE,
         "sparse": _FALSE},
        rank=lambda c, ins: [ins[0] + 1]),
    "LSTM": LayerRule(_rnn(4), _RNN_KEEP + ("recurrent_activation", "unit_forget_bias"),
                      _RNN_FIXED, _RNN_DROP, rank=_rnn_rank(2)),
    "GRU": LayerRule(
        _rnn(3), _RNN_KEEP + ("recurrent_activation",),
        dict(_RNN_FIXED, reset_after=_Fixed(
            _is_false, "False (TF.js implements only the reset_after=False variant; "
            "build the GRU with reset_after=False)")),
        _RNN_DROP, rank=_rnn_rank(1)),
    "SimpleRNN": LayerRule(_rnn(1), _RNN_KEEP, _RNN_FIXED, _RNN_DROP, rank=_rnn_rank(1)),
    "MaxPooling1D": LayerRule(keep=_POOL_KEEP, fixed={"data_format": _CHANNELS_LAST}),
    "MaxPooling2D": LayerRule(keep=_POOL_KEEP, fixed={"data_format": _CHANNELS_LAST}),
    "AveragePooling1D": LayerRule(keep=_POOL_KEEP, fixed={"data_format": _CHANNELS_LAST}),
    "AveragePooling2D": LayerRule(keep=_POOL_KEEP, fixed={"data_format": _CHANNELS_LAST}),
    "GlobalAveragePooling1D": LayerRule(fixed=_GLOBAL_POOL_FIXED, rank=_minus_one),
    "GlobalAveragePooling2D": LayerRule(fixed=_GLOBAL_POOL_FIXED, rank=_minus_one),
    "GlobalMaxPooling1D": LayerRule(fixed=_GLOBAL_POOL_FIXED, rank=_minus_one),
    "GlobalMaxPooling2D": LayerRule(fixed=_GLOBAL_POOL_FIXED, rank=_minus_one),
    "Flatten": LayerRule(fixed={"data_format": _CHANNELS_LAST}, rank=lambda c, ins: [2]),
    "Reshape": LayerRule(keep=("target_shape",),
                         rank=lambda c, ins: [len(c.get("target_shape") or ()) + 1]),
    "Permute": LayerRule(keep=("dims",)),
    "RepeatVector": LayerRule(keep=("n",), rank=lambda c, ins: [3]),
    "Dropout": LayerRule(keep=("rate", "noise_shape"), drop=("seed",)),
    "SpatialDropout1D": LayerRule(keep=("rate",), drop=("seed", "noise_shape")),
    "GaussianNoise": LayerRule(keep=("stddev",), drop=("seed",)),
    "GaussianDropout": LayerRule(keep=("rate",), drop=("seed",)),
    "AlphaDropout": LayerRule(keep=("rate",), drop=("seed", "noise_shape")),
    "Masking": LayerRule(keep=("mask_value",)),
    "ThresholdedReLU": LayerRule(keep=("theta",)),
    "Activation": LayerRule(keep=("activation",)),
    "ReLU": LayerRule(keep=("max_value",),
                      fixed={"negative_slope": _ZERO, "threshold": _ZERO}),
    # Keras 3 renamed alpha to negative_slope.
    "LeakyReLU": LayerRule(keep=("alpha",), rename={"negative_slope": "alpha"}),
    "PReLU": LayerRule(lambda c: (_Var("alpha"),),
                       ("alpha_initializer", "alpha_regularizer", "alpha_constraint",
                        "shared_axes")),
    "ELU": LayerRule(fixed={"alpha": _Fixed(lambda v: v in (1, 1.0, None),
                                            "1.0 (TF.js ELU layer has no other alpha)")}),
    "Softmax": LayerRule(keep=("axis",)),
    "ZeroPadding2D": LayerRule(keep=("padding",), fixed={"data_format": _CHANNELS_LAST}),
    "Cropping2D": LayerRule(keep=("cropping",), fixed={"data_format": _CHANNELS_LAST}),
    "UpSampling2D": LayerRule(
        keep=("size",),
        fixed={"data_format": _CHANNELS_LAST,
               "interpolation": _Fixed(lambda v: v in ("nearest", None), "'nearest'")}),
    "Rescaling": LayerRule(keep=("scale", "offset")),
    "Add": LayerRule(),
    "Multiply": LayerRule(),
    "Average": LayerRule(),
    "Maximum": LayerRule(),
    "Minimum": LayerRule(),
    "Concatenate": LayerRule(keep=("axis",)),
    "Dot": LayerRule(keep=("axes", "normalize"), rank=_dot_rank),
}

# Layers TF.js cannot run, with the reason given to the user.
_REFUSED = {
    "Lambda": "Lambda layers hold Python code, which cannot run in TF.js; replace "
              "the Lambda with built-in layers or a custom TF.js layer",
    "TFOpLambda": "TensorFlow ops used directly on Keras tensors are saved as "
                  "TFOpLambda layers, which cannot run in TF.js; use the equivalent "
                  "Keras layers",
    "SlicingOpLambda": "tensor slicing on Keras tensors is saved as a SlicingOpLambda "
                       "layer, which cannot run in TF.js",
}

_RNN_CLASSES = ("LSTM", "GRU", "SimpleRNN")

# Keras 3 ops called on symbolic tensors (``a + b``) are saved as operations
# named like layers; these have an equivalent TF.js merge layer.
_OP_TO_LAYER = {"Add": "Add", "Multiply": "Multiply", "Maximum": "Maximum",
                "Minimum": "Minimum"}


def supported_layer_classes() -> Tuple[str, ...]:
    """Keras layer classes this converter translates (besides models and wrappers)."""
    return tuple(sorted(set(LAYER_RULES) | {"InputLayer", "Bidirectional", "TimeDistributed"}
                        | set(CLASS_RENAMES)))


# --------------------------------------------------------------------------
# Translation.

_SNAKE_1 = re.compile(r"(.)([A-Z][a-z]+)")
_SNAKE_2 = re.compile(r"([a-z])([A-Z])")


def v3_key(class_name: str) -> str:
    """The key Keras 3 stores a layer of ``class_name`` under in a weights file."""
    name = re.sub(r"\W+", "", class_name)
    return _SNAKE_2.sub(r"\1_\2", _SNAKE_1.sub(r"\1_\2", name)).lower()


# Configs that change which variables a layer has; tried in turn to name the
# variables of a layer known only by class and variable count.
_VARIANTS = ({}, {"use_bias": False}, {"center": False}, {"scale": False},
             {"center": False, "scale": False})


def class_for_v3_key(key: str) -> Optional[str]:
    """The table class a Keras 3 weights-file key (``dense_2``) stands for."""
    classes = {v3_key(c): c for c in LAYER_RULES}
    if key in classes:
        return classes[key]
    match = re.match(r"^(.*)_\d+$", key)
    return classes.get(match.group(1)) if match else None


def local_names_for_count(cls: str, count: int) -> Optional[Tuple[str, ...]]:
    """Keras variable names of a ``cls`` layer with ``count`` variables.

    Returns ``None`` unless exactly one config variant of the class has that
    many variables (BatchNormalization with 3 could lack gamma or beta).
    """
    found = {tuple(v.local for v in LAYER_RULES[cls].weights(variant))
             for variant in _VARIANTS}
    matches = [names for names in found if len(names) == count]
    return matches[0] if len(matches) == 1 else None


def keras_major(version: Optional[str]) -> int:
    """Major version of a ``keras_version`` string; 2 when unknown (pre-3 files)."""
    if version is None:
        return 2
    match = re.match(r"\s*(\d+)", str(version))
    return int(match.group(1)) if match else 2


class _Walker:
    """Translates one model config and collects its weight slots.

    Besides the config, the walk tracks the rank of every tensor (from the input
    shapes through each layer's ``rank`` rule): TF.js computes some layers only
    over the last axis, and Keras 2 saves axes as positive indices.
    """

    def __init__(self, ctx: _Context):
        self.ctx = ctx
        self.slots: List[WeightSlot] = []
        self.has_mask_source = False
        self.zero_output_layers: List[Tuple[str, str]] = []

    # -- models ------------------------------------------------------------

    def model(self, entry: Dict[str, Any], top_layer: Optional[str],
              v3_prefix: str) -> Tuple[Dict[str, Any], List[int]]:
        """Translates a Functional/Sequential ``{"class_name", "config"}``.

        Returns:
          The TF.js entry and the ranks of the model's outputs.
        """
        cls = entry.get("class_name")
        config = entry.get("config")
        if cls == "Sequential":
            return self._sequential(config, top_layer, v3_prefix)
        if cls in ("Functional", "Model"):
            return self._functional(cls, config, top_layer, v3_prefix)
        raise self.ctx.invalid("model_config class_name is %r; want Sequential, Functional "
                               "or Model (subclassed models have no config TF.js can load)"
                               % (cls,))

    def _sequential(self, config, top_layer, v3_prefix):
        if isinstance(config, list):      # Keras <= 2.2.4 wrote the layer list alone
            config = {"layers": config}
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise self.ctx.invalid("Sequential config has no 'layers' list")
        name = config.get("name")
        if not config["layers"]:
            raise self.ctx.invalid("Sequential model %r has no layers" % (name,))
        layers_out = []
        keys: Dict[str, int] = {}
        rank = self._sequential_input_rank(name, config)
        for layer_entry in config["layers"]:
            cls, lname, lconfig = self._entry(layer_entry)
            if cls in _REFUSED:
                raise self.ctx.unsupported(lname, cls, _REFUSED[cls])
            if cls == "InputLayer":
                layers_out.append({"class_name": "InputLayer",
                                   "config": self._input_layer(lname, lconfig)})
                continue
            path = self._v3_child(v3_prefix + "layers/", cls, keys)
            tcls, tconfig, ranks = self._layer(cls, lname, lconfig, top_layer or lname, path,
                                               [rank])
            layers_out.append({"class_name": tcls, "config": tconfig})
            rank = ranks[0]
        first = layers_out[0]
        if first["class_name"] != "InputLayer" and "batch_input_shape" not in first["config"]:
            # TF.js takes a Sequential model's input shape from its first layer.
            first["config"]["batch_input_shape"] = config["build_input_shape"]
        out = {"layers": layers_out}
        if name is not None:
            out["name"] = name
        return {"class_name": "Sequential", "config": out}, [rank]

    def _sequential_input_rank(self, name, config) -> int:
        first = config["layers"][0]
        first_config = first.get("config") if isinstance(first, dict) else None
        if isinstance(first_config, dict):
            shape = first_config.get("batch_input_shape", first_config.get("batch_shape"))
            if isinstance(shape, list):
                return len(shape)
        if isinstance(config.get("build_input_shape"), list):
            return len(config["build_input_shape"])
        raise self.ctx.invalid(
            "Sequential model %r has no input shape (no InputLayer, no batch_input_shape, "
            "no build_input_shape); TF.js needs one: build the model with keras.Input "
            "before saving" % (name,))

    def _functional(self, cls, config, top_layer, v3_prefix):
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise self.ctx.invalid("%s config has no 'layers' list" % cls)
        classes = {}
        for layer_entry in config["layers"]:
            lcls, lname, _ = self._entry(layer_entry)
            classes[lname] = lcls
        # (layer, TF.js node index) -> ranks of that call's outputs.
        ranks: Dict[Tuple[str, int], List[int]] = {}
        layers_out = []
        keys: Dict[str, int] = {}
        for layer_entry in config["layers"]:
            cls_, lname, lconfig = self._entry(layer_entry)
            if cls_ in _REFUSED:
                # Before the nodes: these layers use call formats of their own.
                raise self.ctx.unsupported(lname, cls_, _REFUSED[cls_])
            nodes = self._nodes(layer_entry.get("inbound_nodes", []), lname, cls_, classes)
            node_ranks = [[self._rank_of(ranks, n, lname) for n in node] for node in nodes]
            if cls_ == "InputLayer":
                self._v3_child(v3_prefix + "layers/", cls_, keys)
                tcls, tconfig = "InputLayer", self._input_layer(lname, lconfig)
                ranks[(lname, 0)] = [len(tconfig["batch_input_shape"])]
            elif self._is_op(layer_entry, lconfig):
                tcls, tconfig = self._op(cls_, lname, layer_entry, nodes)
                for index, ins in enumerate(node_ranks):
                    ranks[(lname, index)] = [max(ins)]
            else:
                if not node_ranks:
                    raise self.ctx.invalid("layer %r (%s) is never called" % (lname, cls_))
                path = self._v3_child(v3_prefix + "layers/", cls_, keys)
                tcls, tconfig, out_ranks = self._layer(cls_, lname, lconfig, top_layer or lname,
                                                       path, node_ranks[0])
                # A model's node 0 is its own; its calls follow.
                first = 1 if cls_ in MODEL_CLASSES else 0
                if first:
                    ranks[(lname, 0)] = out_ranks
                for index in range(len(nodes)):
                    ranks[(lname, first + index)] = out_ranks
            layers_out.append({"class_name": tcls, "config": tconfig, "name": lname,
                               "inbound_nodes": nodes})
        outputs = self._endpoints(config.get("output_layers"), "output_layers", classes)
        out = {
            "name": config.get("name"),   # null lets TF.js generate one
            "layers": layers_out,
            "input_layers": self._endpoints(config.get("input_layers"), "input_layers", classes),
            "output_layers": outputs,
        }
        out_ranks = [self._rank_of(ranks, o, "output_layers") for o in outputs]
        return ({"class_name": "Functional" if cls == "Functional" else "Model", "config": out},
                out_ranks)

    def _rank_of(self, ranks, ref, user) -> int:
        name, node, tensor = ref[0], ref[1], ref[2]
        outs = ranks.get((name, node))
        if outs is None or tensor >= len(outs):
            raise self.ctx.invalid("%r uses output %d of call %d of layer %r, which the "
                                   "layers before it do not produce" % (user, tensor, node, name))
        return outs[tensor]

    def _entry(self, entry) -> Tuple[str, str, Dict[str, Any]]:
        if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str):
            raise self.ctx.invalid("a layer entry is not a {class_name, config} object: %.200r"
                                   % (entry,))
        config = entry.get("config")
        if not isinstance(config, dict):
            raise self.ctx.invalid("layer entry %r has no config dict" % entry["class_name"])
        name = config.get("name", entry.get("name"))
        if not isinstance(name, str):
            raise self.ctx.invalid("a %s layer has no name" % entry["class_name"])
        return CLASS_RENAMES.get(entry["class_name"], entry["class_name"]), name, config

    @staticmethod
    def _v3_child(prefix: str, cls: str, keys: Dict[str, int]) -> str:
        # Keras 3 stores the layers of a container under the snake_case class
        # name, suffixed _1, _2, ... for the second, third, ... of a class.
        key = v3_key(cls)
        count = keys.get(key, 0)
        keys[key] = count + 1
        return prefix + (key if count == 0 else "%s_%d" % (key, count))

    # -- graph connectivity -------------------------------------------------

    @staticmethod
    def _node_shift(layer_name: str, classes: Dict[str, str]) -> int:
        # A TF.js model used as a layer has node 0 linking its own inputs to its
        # outputs, so its call sites count from 1 (as in Keras 2). Keras 3
        # histories leave that node out: a Functional's own node is not one of
        # the outer model's nodes, and a Sequential has none.
        return 1 if classes.get(layer_name) in MODEL_CLASSES else 0

    def _endpoint_shift(self, layer_name: str, classes: Dict[str, str]) -> int:
        # Keras 3 input_layers/output_layers count a Functional's own node but a
        # Keras 3 Sequential has none (TF.js's has).
        if self.ctx.keras_major >= 3 and classes.get(layer_name) == "Sequential":
            return 1
        return 0

    def _nodes(self, nodes, lname, cls, classes):
        if not isinstance(nodes, list):
            raise self.ctx.invalid("layer %r: inbound_nodes is not a list" % lname)
        out = []
        for node in nodes:
            if isinstance(node, dict):
                out.append(self._keras3_node(node, lname, cls, classes))
            elif isinstance(node, list):
                out.append(self._keras2_node(node, lname, cls))
            else:
                raise self.ctx.invalid("layer %r: inbound node %.200r is neither a list nor "
                                       "an {args, kwargs} object" % (lname, node))
        return out

    def _keras2_node(self, node, lname, cls):
        out = []
        for item in node:
            if not (isinstance(item, list) and len(item) in (3, 4) and isinstance(item[0], str)
                    and isinstance(item[1], int) and isinstance(item[2], int)):
                raise self.ctx.invalid("layer %r: inbound node entry %.200r is not "
                                       "[layer, node_index, tensor_index, kwargs]" % (lname, item))
            kwargs = item[3] if len(item) == 4 else {}
            self._check_call_kwargs(kwargs, lname, cls)
            out.append([item[0], item[1], item[2], {}])
        return out

    def _keras3_node(self, node, lname, cls, classes):
        args = node.get("args", [])
        kwargs = node.get("kwargs", {})
        self._check_call_kwargs(kwargs, lname, cls)
        tensors = []
        for arg in args:
            items = arg if isinstance(arg, list) else [arg]
            for item in items:
                history = _keras_history(item)
                if history is None:
                    raise self.ctx.unsupported(
                        lname, cls, "called with a non-tensor argument %.100r; TF.js layers "
                        "take tensors only" % (item,))
                tensors.append(history)
        if not tensors:
            raise self.ctx.invalid("layer %r: an inbound node has no input tensors" % lname)
        return [[name, index + self._node_shift(name, classes), tensor, {}]
                for name, index, tensor in tensors]

    def _check_call_kwargs(self, kwargs, lname, cls):
        if not isinstance(kwargs, dict):
            raise self.ctx.invalid("layer %r: call kwargs %.100r is not a dict" % (lname, kwargs))
        for key, value in kwargs.items():
            # mask=None and training=False/None are what an inference call uses.
            if key == "mask" and value is None:
                continue
            if key == "training" and value in (None, False):
                continue
            raise self.ctx.unsupported(
                lname, cls, "called with %s=%.100r; TF.js layers models only pass tensors "
                "between layers" % (key, value))

    def _endpoints(self, value, key, classes):
        if isinstance(value, dict):
            raise self.ctx.unsupported(
                "<model>", "Functional", "%s is a dict (named inputs/outputs); TF.js "
                "layers models take lists" % key)
        if not isinstance(value, list):
            raise self.ctx.invalid("model config has no %s list" % key)
        if len(value) == 3 and isinstance(value[0], str):   # Keras 3 single endpoint
            value = [value]
        out = []
        for item in value:
            if not (isinstance(item, list) and len(item) == 3 and isinstance(item[0], str)):
                raise self.ctx.invalid("%s entry %.100r is not [layer, node, tensor]"
                                       % (key, item))
            out.append([item[0], item[1] + self._endpoint_shift(item[0], classes), item[2]])
        return out

    # -- ops ----------------------------------------------------------------

    @staticmethod
    def _is_op(entry, config) -> bool:
        # Keras 3 operations (keras.ops.add via ``a + b``) serialize only their
        # name and arguments, without the "dtype" (and mostly "trainable") of
        # every Keras 3 layer config. .keras files also name the module.
        module = entry.get("module")
        if isinstance(module, str):
            return module.startswith("keras.src.ops")
        nodes = entry.get("inbound_nodes") or []
        keras3_nodes = bool(nodes) and all(isinstance(n, dict) for n in nodes)
        return keras3_nodes and "trainable" not in config and "dtype" not in config and \
            entry.get("class_name") not in MODEL_CLASSES | {"InputLayer"}

    def _op(self, cls, lname, entry, nodes):
        if cls not in _OP_TO_LAYER:
            raise self.ctx.unsupported(
                lname, cls, "Keras operation %s applied to symbolic tensors has no TF.js "
                "layer; use a Keras layer instead" % cls)
        extra = sorted(set(entry["config"]) - {"name"})
        if extra:
            raise self.ctx.unsupported(lname, cls, "Keras operation with arguments %s has no "
                                       "TF.js layer" % ", ".join(extra))
        for node in nodes:
            if len(node) < 2:
                raise self.ctx.unsupported(lname, cls, "Keras operation applied to a "
                                           "constant has no TF.js layer")
        return _OP_TO_LAYER[cls], {"name": lname, "trainable": True}

    # -- layers -------------------------------------------------------------

    def _input_layer(self, lname, config):
        out = {"name": lname}
        shape = config.get("batch_input_shape", config.get("batch_shape"))
        if not isinstance(shape, list):
            raise self.ctx.invalid("input layer %r has no batch_shape / batch_input_shape"
                                   % lname)
        out["batch_input_shape"] = shape
        dtype = dtype_name(config.get("dtype", "float32"))
        if dtype not in _INPUT_DTYPES:
            raise self.ctx.unsupported(lname, "InputLayer", "input dtype %r has no TF.js "
                                       "equivalent" % (config.get("dtype"),))
        out["dtype"] = _INPUT_DTYPES[dtype]
        for key in ("sparse", "ragged", "optional"):
            if config.get(key):
                raise self.ctx.unsupported(lname, "InputLayer", "%s inputs are not "
                                           "supported by TF.js" % key)
        known = {"name", "batch_input_shape", "batch_shape", "dtype", "sparse", "ragged",
                 "optional"} | _BOOKKEEPING_KEYS
        for key in config:
            if key not in known:
                raise self.ctx.unsupported(lname, "InputLayer", "config key %r is not "
                                           "known to this converter" % key)
        out["sparse"] = False
        return out

    def _layer(self, cls, lname, config, top_layer, v3_path, in_ranks):
        """Translates one non-input layer.

        Returns:
          (TF.js class, TF.js config, output ranks).
        """
        if cls in _REFUSED:
            raise self.ctx.unsupported(lname, cls, _REFUSED[cls])
        if cls in MODEL_CLASSES:
            # Nested model: TF.js names its weights by the inner layers' names.
            entry, out_ranks = self.model({"class_name": cls, "config": config}, top_layer,
                                          v3_path + "/")
            return entry["class_name"], entry["config"], out_ranks
        if cls == "Bidirectional":
            return self._bidirectional(lname, config, top_layer, v3_path, in_ranks)
        if cls == "TimeDistributed":
            return self._time_distributed(lname, config, top_layer, v3_path, in_ranks)
        rule = self._rule(cls, lname)
        out = self._layer_config(cls, lname, config, rule, in_ranks)
        self._add_weights(rule.weights(config), lname, lname, top_layer, v3_path)
        if (cls == "Embedding" and config.get("mask_zero")) or cls == "Masking":
            self.has_mask_source = True
        if cls in _RNN_CLASSES and config.get("zero_output_for_mask") \
                and config.get("return_sequences"):
            self.zero_output_layers.append((lname, cls))
        return cls, out, rule.rank(config, in_ranks)

    def _rule(self, cls, lname) -> LayerRule:
        rule = LAYER_RULES.get(cls)
        if rule is None:
            if cls in TFJS_LAYER_CLASSES:
                raise self.ctx.unsupported(lname, cls, "TF.js has this class but its "
                                           "translation is not verified by this converter")
            raise self.ctx.unsupported(lname, cls, "TF.js 4.22 has no layer class %s" % cls)
        return rule

    def _layer_config(self, cls, lname, config, rule: LayerRule, in_ranks):
        out = {"name": lname}
        for key, value in config.items():
            if key in _BOOKKEEPING_KEYS or key == "name" or key in _ALWAYS_DROPPED:
                continue
            if key == "trainable":
                out[key] = bool(value)
                continue
            if key == "batch_input_shape":     # Keras 2 first layer of a Sequential
                out[key] = value
                continue
            if key in rule.fixed:
                fixed = rule.fixed[key]
                if not fixed.allowed(value):
                    raise self.ctx.unsupported(lname, cls, "%s=%r is not supported by TF.js "
                                               "(supported: %s)" % (key, value, fixed.want))
                continue
            if key in rule.drop:
                continue
            target = rule.rename.get(key, key)
            if key == "dtype" or target in rule.keep:
                if key in rule.allowed and not rule.allowed[key].allowed(value):
                    raise self.ctx.unsupported(lname, cls, "%s=%r is not supported by TF.js "
                                               "(supported: %s)"
                                               % (key, value, rule.allowed[key].want))
                kind = _value_kind(key)
                value = kind(value, key, lname, cls, self.ctx) if kind else value
                if value is not None or key != "dtype":
                    out[target] = value
                continue
            raise self.ctx.unsupported(lname, cls, "config key %r is not known to this "
                                       "converter (value %.100r)" % (key, value))
        return _normalize(cls, lname, out, in_ranks[0], self.ctx)

    def _add_weights(self, variables, scope, owner, top_layer, v3_path):
        counters: Dict[str, int] = {}
        for var in variables:
            index = counters.get(var.group, 0)
            counters[var.group] = index + 1
            self.slots.append(WeightSlot(
                name="%s/%s" % (scope, var.local), local=var.local, aliases=var.aliases,
                layer=top_layer, owner=owner,
                v3_path="%s/%s/%d" % (v3_path, var.group, index), shape=var.shape))

    def _wrapped(self, lname, cls, config, key):
        inner = config.get(key)
        if not isinstance(inner, dict) or not isinstance(inner.get("class_name"), str) \
                or not isinstance(inner.get("config"), dict):
            raise self.ctx.invalid("layer %r (%s) has no %r layer config" % (lname, cls, key))
        return CLASS_RENAMES.get(inner["class_name"], inner["class_name"]), inner["config"]

    def _wrapper_keys(self, lname, cls, config, handled):
        out = {"name": lname}
        for key, value in config.items():
            if key in handled or key in _BOOKKEEPING_KEYS:
                continue
            if key == "trainable":
                out[key] = bool(value)
            elif key == "dtype":
                _layer_dtype(value, key, lname, cls, self.ctx)
            else:
                raise self.ctx.unsupported(lname, cls, "config key %r is not known to this "
                                           "converter" % key)
        return out

    def _bidirectional(self, lname, config, top_layer, v3_path, in_ranks):
        inner_cls, inner_config = self._wrapped(lname, "Bidirectional", config, "layer")
        if inner_cls not in _RNN_CLASSES:
            raise self.ctx.unsupported(lname, "Bidirectional", "wraps %s; TF.js Bidirectional "
                                       "is verified for LSTM, GRU and SimpleRNN" % inner_cls)
        inner_name = inner_config.get("name")
        if not isinstance(inner_name, str):
            raise self.ctx.invalid("layer %r (Bidirectional): wrapped layer has no name" % lname)
        # Keras 3 saves the wrapped layer already renamed forward_<name>; TF.js
        # adds the forward_/backward_ prefixes itself.
        base = inner_name[len("forward_"):] if (
            self.ctx.keras_major >= 3 and inner_name.startswith("forward_")) else inner_name
        if config.get("backward_layer") is not None:
            self._check_mirror(lname, inner_cls, inner_config, config["backward_layer"])
        rule = LAYER_RULES[inner_cls]
        inner_out = self._layer_config(inner_cls, base, dict(inner_config, name=base), rule,
                                       in_ranks)
        weights = rule.weights(inner_config)
        for direction in ("forward", "backward"):
            owner = "%s_%s" % (direction, base)
            self._add_weights(weights, "%s/%s" % (lname, owner), owner, top_layer,
                              "%s/%s_layer" % (v3_path, direction))
        # Keras zeroes a Bidirectional's masked output steps (Keras 3 records it
        # as zero_output_for_mask, Keras 2 does it implicitly).
        if inner_config.get("return_sequences"):
            self.zero_output_layers.append((lname, "Bidirectional"))
        out = self._wrapper_keys(lname, "Bidirectional", config,
                                 {"name", "layer", "backward_layer", "merge_mode"})
        out["layer"] = {"class_name": inner_cls, "config": inner_out}
        merge_mode = config.get("merge_mode", "concat")
        if merge_mode not in ("concat", "sum", "ave", "mul", None):
            raise self.ctx.unsupported(lname, "Bidirectional", "merge_mode %r is not supported "
                                       "by TF.js" % (merge_mode,))
        out["merge_mode"] = merge_mode
        inner_ranks = rule.rank(inner_config, in_ranks)
        ranks = inner_ranks[:1] * (2 if merge_mode is None else 1)
        if inner_config.get("return_state"):
            ranks += inner_ranks[1:] * 2
        return "Bidirectional", out, ranks

    def _check_mirror(self, lname, inner_cls, forward, backward):
        # TF.js builds the backward layer as a copy of the forward one with
        # go_backwards flipped; a different backward layer cannot be expressed.
        if not isinstance(backward, dict) or \
                CLASS_RENAMES.get(backward.get("class_name"), backward.get("class_name")) \
                != inner_cls:
            raise self.ctx.unsupported(lname, "Bidirectional", "backward layer is not a %s; "
                                       "TF.js mirrors the forward layer" % inner_cls)
        ignore = {"name", "go_backwards"} | _BOOKKEEPING_KEYS

        def strip(c):
            return {k: _strip_bookkeeping(v) for k, v in c.items() if k not in ignore}

        bconfig = backward.get("config") or {}
        if strip(forward) != strip(bconfig) or \
                bool(forward.get("go_backwards")) == bool(bconfig.get("go_backwards")):
            raise self.ctx.unsupported(lname, "Bidirectional", "backward layer differs from "
                                       "the forward layer beyond go_backwards; TF.js mirrors "
                                       "the forward layer")

    def _time_distributed(self, lname, config, top_layer, v3_path, in_ranks):
        inner_cls, inner_config = self._wrapped(lname, "TimeDistributed", config, "layer")
        if inner_cls in _RNN_CLASSES or inner_cls not in LAYER_RULES:
            raise self.ctx.unsupported(lname, "TimeDistributed", "wraps %s; TimeDistributed "
                                       "is verified for single-step layers of the table only"
                                       % inner_cls)
        rule = LAYER_RULES[inner_cls]
        inner_name = inner_config.get("name")
        step_ranks = [in_ranks[0] - 1]
        inner_out = self._layer_config(inner_cls, inner_name, inner_config, rule, step_ranks)
        # TF.js builds the wrapped layer inside the wrapper's name scope only.
        self._add_weights(rule.weights(inner_config), lname, inner_name, top_layer,
                          v3_path + "/layer")
        out = self._wrapper_keys(lname, "TimeDistributed", config, {"name", "layer"})
        out["layer"] = {"class_name": inner_cls, "config": inner_out}
        return "TimeDistributed", out, [rule.rank(inner_config, step_ranks)[0] + 1]

    def check_masking(self):
        """Refuses RNNs that zero masked steps when the model has a mask.

        Keras then outputs zeros at masked steps; TF.js repeats the previous
        output. Without a mask source the difference cannot arise.
        """
        if self.has_mask_source and self.zero_output_layers:
            lname, cls = self.zero_output_layers[0]
            raise self.ctx.unsupported(
                lname, cls, "returns sequences with masked steps zeroed (zero_output_for_mask) "
                "and the model has a mask (Masking or Embedding(mask_zero=True)): TF.js "
                "repeats the previous output at masked steps instead")


def _strip_bookkeeping(value):
    if isinstance(value, dict):
        return {k: _strip_bookkeeping(v) for k, v in value.items()
                if k not in _BOOKKEEPING_KEYS}
    if isinstance(value, list):
        return [_strip_bookkeeping(v) for v in value]
    return value


def _keras_history(item) -> Optional[Tuple[str, int, int]]:
    if not (isinstance(item, dict) and item.get("class_name") == "__keras_tensor__"):
        return None
    history = (item.get("config") or {}).get("keras_history")
    if not (isinstance(history, list) and len(history) == 3 and isinstance(history[0], str)):
        return None
    return history[0], int(history[1]), int(history[2])


def _last_axis(value, rank, lname, cls, ctx):
    """-1 if ``value`` (an int or a one-element list) names the last axis."""
    axis = value[0] if isinstance(value, list) and len(value) == 1 else value
    if not isinstance(axis, int) or (axis != -1 and axis != rank - 1):
        raise ctx.unsupported(lname, cls, "axis=%r with input rank %d: TF.js computes this "
                              "layer correctly over the last axis only" % (value, rank))
    return -1


def _normalize(cls, lname, out, in_rank, ctx):
    """Per-class value fixes after the generic key pass."""
    if cls in ("BatchNormalization", "LayerNormalization", "Softmax"):
        out["axis"] = _last_axis(out.get("axis", -1), in_rank, lname, cls, ctx)
    if cls == "Rescaling":
        for key in ("scale", "offset"):
            if key in out and not isinstance(out[key], (int, float)):
                raise ctx.unsupported(lname, cls, "%s=%r: TF.js Rescaling takes scalars only"
                                      % (key, out[key]))
    return out


def translate_model_config(model_config: Dict[str, Any], keras_version: Optional[str],
                           where: str) -> TranslatedModel:
    """Translates a Keras model config into the form TF.js 4.22 loads.

    Args:
      model_config: the ``{"class_name", "config"}`` dict Keras saved (``model_config``
        attribute of an h5 file, or ``config.json`` of a ``.keras`` archive).
      keras_version: the Keras version that wrote it (``"2.15.0"``, ``"3.15.1"``);
        selects version-dependent rules. ``None`` means Keras 2.
      where: the source file, for messages.

    Returns:
      The translated config and the weight plan.

    Raises:
      InvalidModelError: the config is malformed.
      UnsupportedLayerError: a layer, setting or connection TF.js cannot run.
    """
    if not isinstance(model_config, dict):
        raise InvalidModelError("%s: model config is not a JSON object" % where)
    walker = _Walker(_Context(keras_major(keras_version), where))
    translated, _ = walker.model(model_config, None, "")
    walker.check_masking()
    names = _top_layer_names(model_config)
    _check_unique_names(walker.slots, where)
    return TranslatedModel(translated, tuple(walker.slots), names)


def _top_layer_names(model_config) -> Tuple[str, ...]:
    config = model_config.get("config")
    layers = config if isinstance(config, list) else config.get("layers", [])
    return tuple((e.get("config") or {}).get("name", e.get("name")) for e in layers)


def _check_unique_names(slots: Sequence[WeightSlot], where: str) -> None:
    seen: Dict[str, WeightSlot] = {}
    for slot in slots:
        if slot.name in seen:
            raise InvalidModelError(
                "%s: two weights would both be named %r in TF.js (layers %r and %r); TF.js "
                "names nested-model weights by the inner layer names, so rename one layer"
                % (where, slot.name, seen[slot.name].layer, slot.layer))
        seen[slot.name] = slot
