"""Writes a TF.js layers model as Keras 3 files: legacy HDF5 (.h5) and .keras.

The TF.js topology is Keras-2 style (``batch_input_shape``, nested-list
``inbound_nodes``, ``Model``/``Functional``/``Sequential``, initializers as
``{"class_name", "config"}``). Keras 3's legacy-HDF5 loader does not accept that
form as is: it turns ``batch_input_shape`` into ``input_shape`` (one batch axis
too many for a Sequential without an InputLayer) and cannot resolve a nested
model's Keras-2 node indices. Both writers therefore translate the topology into
the config Keras 3.15 itself writes, and lay the weights out the way Keras 3.15
saves them:

* ``write_keras_h5``: ``model_config``/``keras_version``/``backend`` attrs and
  ``model_weights/<layer>/<weight path>`` datasets with ``layer_names`` and
  ``weight_names`` attrs. Keras loads these by *order* (``model.layers`` with
  weights, each layer's trainable-then-non-trainable weights), so the writer
  reproduces Keras 3's graph ordering of a functional model's layers.
* ``write_keras_v3``: a zip of ``metadata.json``, ``config.json`` (module,
  class_name, config, registered_name, build_config) and ``model.weights.h5``
  (``layers/<snake_case class name>[_N]/vars/<i>``, RNN cells under ``cell``,
  Bidirectional under ``forward_layer``/``backward_layer``, TimeDistributed
  under ``layer``, nested models under their own ``layers``).

Mapping rules, in brief:

* Layer classes, config keys, activations, initializers, regularizers and
  constraints are mapped through explicit tables. A class, key or value with no
  Keras 3 equivalent raises ``UnsupportedLayerError``; nothing is dropped
  silently except keys that do not change inference (``input_length``,
  ``implementation``, null initializer-only flags), which the tables list.
  TF.js ``hard_sigmoid`` (``0.2x + 0.5``) is refused: Keras 3's is ``x/6 + 0.5``.
* Tensors are found by name, not manifest order: ``<layer>/<weight>``
  optionally prefixed by enclosing model names; RNN, Bidirectional and
  TimeDistributed weights may carry one extra scope (``lstm/lstm_cell/kernel``
  or TF.js's ``lstm/kernel``). Shapes are checked against the shapes Keras will
  build. A tensor no layer claims is an error.
* A key the topology omits means TF.js's default; where Keras 3's differs it
  is written explicitly (``data_format`` "channels_last", Softmax ``axis`` 1,
  LSTM/GRU ``recurrent_activation``, ThresholdedReLU ``theta``), or read from
  the weight shapes (GRU ``reset_after``, SeparableConv ``depth_multiplier``).
  ThresholdedReLU becomes ``ReLU(threshold=theta)``, the same function.
* A Sequential gets an explicit InputLayer built from its first layer's
  ``batch_input_shape`` and ``dtype``. Node indices of nested models drop the
  built-in node Keras 2 and TF.js count (Keras 3 keeps it only in a functional
  model's ``input_layers``/``output_layers``). A functional model's layers are
  written in Keras 3's graph order, the order its loaders assume.
* ``training_config`` is not carried over: the files are inference models and
  TF.js layers models hold no optimizer state.

Both outputs are deterministic: fixed HDF5 library version bounds, no
timestamps, and zip entries in a fixed order with a fixed date. Only h5py,
numpy, json and zipfile are used; TensorFlow and Keras are not imported.
"""

import dataclasses
import io
import json
import re
import zipfile
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from converter.errors import InvalidModelError, UnsupportedLayerError, UsageError
from converter.model import LayersModel
from converter.weights import format as wf
from converter.weights.quantize import dequantize_tensor

# The Keras release whose file layout these writers reproduce.
KERAS_VERSION = "3.15.1"
# Recorded as the saving backend; Keras reads it only for messages.
KERAS_BACKEND = "tensorflow"

# HDF5 format bounds: "earliest" keeps old-style groups (which store no times);
# the v110 ceiling pins the layout so a newer libhdf5 writes the same bytes.
_HDF5_LIBVER = ("earliest", "v110")
# Keras splits an HDF5 attribute above this size into numbered chunks.
_HDF5_ATTR_LIMIT = 64512
# Every .keras entry gets this date, the zip epoch.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_ENTRIES = ("metadata.json", "config.json", "model.weights.h5")

Shape = Tuple[Optional[int], ...]


# --------------------------------------------------------------------------
# Public API.


def write_keras_h5(model: LayersModel, path: str) -> None:
    """Writes ``model`` as a Keras 3 legacy HDF5 file.

    Args:
      model: a layers model with a topology; quantized tensors are dequantized.
      path: the output file, overwritten.

    Raises:
      UsageError: the model has no topology (weights-only source).
      InvalidModelError: the topology or a tensor is inconsistent.
      UnsupportedLayerError: a layer, config value or weight has no Keras 3 form.
    """
    root = _plan(model)
    config = _model_entry(root, legacy=True)
    with h5py.File(path, "w", libver=_HDF5_LIBVER) as f:
        f.attrs["keras_version"] = KERAS_VERSION
        f.attrs["backend"] = KERAS_BACKEND
        f.attrs["model_config"] = json.dumps(config).encode("utf-8")
        _write_legacy_weights(f.create_group("model_weights"), root)


def write_keras_v3(model: LayersModel, path: str) -> None:
    """Writes ``model`` as a Keras 3 ``.keras`` archive.

    Args:
      model: a layers model with a topology; quantized tensors are dequantized.
      path: the output file, overwritten.

    Raises:
      UsageError: the model has no topology (weights-only source).
      InvalidModelError: the topology or a tensor is inconsistent.
      UnsupportedLayerError: a layer, config value or weight has no Keras 3 form.
    """
    root = _plan(model)
    config = _model_entry(root, legacy=False)
    # date_saved is left out: Keras does not read it and it would break
    # byte-identical output.
    metadata = {"keras_version": KERAS_VERSION}
    weights = io.BytesIO()
    with h5py.File(weights, "w", libver=_HDF5_LIBVER) as f:
        _write_saveable(f, root.layer, "")
    contents = {
        "metadata.json": json.dumps(metadata).encode("utf-8"),
        "config.json": json.dumps(config).encode("utf-8"),
        "model.weights.h5": weights.getbuffer(),  # no copy of the weights
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in _ZIP_ENTRIES:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, whatever the host
            info.external_attr = 0o644 << 16
            zf.writestr(info, contents[name])


# --------------------------------------------------------------------------
# The planned model: Keras 3 objects with their configs, shapes and weights.


@dataclasses.dataclass
class _Var:
    """One Keras variable: its name in its layer, value and trainable flag."""

    name: str
    value: np.ndarray
    trainable: bool


@dataclasses.dataclass
class _Node:
    """One call of a layer inside a functional model.

    ``inputs`` holds ``(layer name, Keras 3 node index, tensor index)``;
    ``input_specs`` and ``outputs`` hold ``(shape, dtype)`` per tensor.
    """

    inputs: List[Tuple[str, int, int]]
    kwargs: Dict[str, Any]
    input_specs: List[Tuple[Shape, str]] = dataclasses.field(default_factory=list)
    outputs: List[Tuple[Shape, str]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Layer:
    """A Keras 3 saveable: a layer, an RNN cell or a model.

    Attributes:
      class_name: the Keras 3 class (``Functional`` for a TF.js ``Model``).
      name: the object's name.
      config: the Keras 3 config body (no module/class wrapper).
      trainable: the layer's ``trainable`` flag.
      vars: own variables in Keras order (trainable then non-trainable).
      sublayers: tracked sublayers as ``(attribute, layer)``; Keras saves them
        under the attribute name and counts their weights after ``vars``.
      model: set for a nested or root model.
      build_shape: the ``build_config`` input shape; ``None`` writes none.
      nodes: calls inside the enclosing functional model.
      path: the Keras variable path prefix (``seq/dense``), for weight names.
      spec: the layer's mapping (``None`` for models, cells and InputLayers).
      chain: names of the enclosing models, outermost first.
      scopes: tensor-name prefixes of the layer's weights, most specific first;
        ``None`` derives them from ``chain`` and ``name``.
      built: whether the layer has been called (and its weights taken).
    """

    class_name: str
    name: str
    config: Dict[str, Any]
    trainable: bool = True
    vars: List[_Var] = dataclasses.field(default_factory=list)
    sublayers: List[Tuple[str, "_Layer"]] = dataclasses.field(default_factory=list)
    model: Optional["_Model"] = None
    build_shape: Any = None
    nodes: List[_Node] = dataclasses.field(default_factory=list)
    path: str = ""
    spec: Optional["_Spec"] = None
    chain: Tuple[str, ...] = ()
    scopes: Optional[List[str]] = None
    built: bool = False


@dataclasses.dataclass
class _Model:
    """A Sequential or functional model.

    Attributes:
      layer: the model as a saveable (its config is filled in last).
      sequential: True for a Sequential model.
      layers: ``model.layers`` in Keras 3 order (a Sequential's InputLayer
        excluded).
      input_layer: a Sequential's InputLayer (config only).
      inputs, outputs: a functional model's ``[name, node, tensor]`` refs,
        already in Keras 3's ``input_layers``/``output_layers`` convention.
      output_specs: ``(shape, dtype)`` of each model output.
    """

    layer: _Layer
    sequential: bool
    layers: List[_Layer]
    input_layer: Optional[_Layer] = None
    inputs: List[List[Any]] = dataclasses.field(default_factory=list)
    outputs: List[List[Any]] = dataclasses.field(default_factory=list)
    output_specs: List[Tuple[Shape, str]] = dataclasses.field(default_factory=list)


def plan(model: LayersModel) -> None:
    """Checks that ``model`` could be written (the topology maps and every tensor
    matches the shape Keras builds), without reading or copying weight values.

    Raises:
      the errors of ``write_keras_h5``.
    """
    _plan(model, shapes_only=True)


def _plan(model: LayersModel, shapes_only: bool = False) -> _Model:
    if model.topology is None:
        raise UsageError(
            "the model has no topology (it comes from a weights-only source); Keras "
            ".h5 and .keras files need a topology to rebuild the model. Convert from "
            "a model.json with modelTopology, a full Keras model or a .keras file")
    config = _root_config(model.topology)
    pool = _TensorPool(model, shapes_only)
    root = _Planner(pool).model(config, chain=(), where="the root model")
    pool.check_all_claimed()
    return root


def _root_config(topology: Any) -> Dict[str, Any]:
    if not isinstance(topology, dict):
        raise InvalidModelError(
            "modelTopology is a %s; want an object" % type(topology).__name__)
    config = topology.get("model_config", topology)
    if not isinstance(config, dict) or "class_name" not in config:
        raise InvalidModelError(
            "modelTopology has no model_config with a class_name; want "
            "{\"model_config\": {\"class_name\": ..., \"config\": ...}}")
    return config


# --------------------------------------------------------------------------
# Tensors: found by name, claimed once, shape-checked.


class _TensorPool:
    """The model's tensors by name; each is claimed by exactly one variable."""

    def __init__(self, model: LayersModel, shapes_only: bool = False):
        """``shapes_only``: hold zero-byte stand-ins of the right shape (planning
        reads shapes only), so checking a model costs no copy of its weights."""
        self._arrays: Dict[str, np.ndarray] = {}
        for tensor in model.tensors():
            if tensor.name in self._arrays:
                raise InvalidModelError("tensor %r appears twice in the weights" % tensor.name)
            if shapes_only:
                if tensor.dtype != "float32":
                    raise InvalidModelError(
                        "tensor %r has dtype %s; Keras layer weights are float32"
                        % (tensor.name, tensor.dtype))
                self._arrays[tensor.name] = np.lib.stride_tricks.as_strided(
                    np.zeros(1, np.float32), tensor.shape, (0,) * len(tensor.shape),
                    writeable=False)
                continue
            plain = dequantize_tensor(tensor)
            if plain.dtype != "float32":
                raise InvalidModelError(
                    "tensor %r has dtype %s; Keras layer weights are float32"
                    % (tensor.name, plain.dtype))
            _, array = wf.to_logical(tensor.name, np.asarray(plain.data))
            self._arrays[tensor.name] = np.ascontiguousarray(array, dtype=np.float32)
        # (scope, weight) -> names "<scope>/<one token>/<weight>".
        self._deep: Dict[Tuple[str, str], List[str]] = {}
        for name in self._arrays:
            parts = name.split("/")
            if len(parts) >= 3:
                self._deep.setdefault(("/".join(parts[:-2]), parts[-1]), []).append(name)
        self._claimed: Dict[str, str] = {}

    def find(self, scopes: Sequence[str], names: Sequence[str], deep: bool) -> List[str]:
        """Tensor names for a weight, most specific scope first.

        ``scopes`` are alternative prefixes, most specific first; ``names`` the
        accepted weight names. Returns the matches of the first scope that has
        any (exact ``scope/name`` before ``scope/<x>/name``).
        """
        for scope in scopes:
            exact = [scope + "/" + n for n in names if scope + "/" + n in self._arrays]
            if exact:
                return exact
        if deep:
            for scope in scopes:
                found = [m for n in names for m in self._deep.get((scope, n), [])]
                if found:
                    return found
        return []

    def array(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def claim(self, name: str, owner: str) -> np.ndarray:
        if name in self._claimed:
            raise InvalidModelError(
                "tensor %r matches weights of both %s and %s; give the layers "
                "distinct names" % (name, self._claimed[name], owner))
        self._claimed[name] = owner
        return self._arrays[name]

    def check_all_claimed(self) -> None:
        unused = [n for n in self._arrays if n not in self._claimed]
        if unused:
            shown = ", ".join(repr(n) for n in unused[:5])
            more = " and %d more" % (len(unused) - 5) if len(unused) > 5 else ""
            raise InvalidModelError(
                "tensor(s) %s%s match no weight of any layer in the topology; the "
                "weights and the topology do not belong together" % (shown, more))


# --------------------------------------------------------------------------
# Nested Keras objects: activations, initializers, regularizers, constraints.

# TF.js activation name -> Keras 3 name, same function.
_ACTIVATIONS = {
    "linear": "linear", "relu": "relu", "relu6": "relu6", "elu": "elu", "selu": "selu",
    "sigmoid": "sigmoid", "tanh": "tanh", "softmax": "softmax",
    "log_softmax": "log_softmax", "softplus": "softplus", "softsign": "softsign",
    "swish": "swish", "mish": "mish", "gelu": "gelu",
}
_ACTIVATION_MISMATCH = {
    "hard_sigmoid": "TF.js computes hard_sigmoid as clip(0.2*x + 0.5, 0, 1) but Keras 3 "
                    "as clip(x/6 + 0.5, 0, 1), so predictions would differ",
    "gelu_new": "TF.js gelu_new is the tanh approximation of GELU, which Keras 3 "
                "cannot name in a config",
}

_INITIALIZERS = {
    "Zeros": "Zeros", "Ones": "Ones", "Constant": "Constant",
    "RandomNormal": "RandomNormal", "RandomUniform": "RandomUniform",
    "TruncatedNormal": "TruncatedNormal", "VarianceScaling": "VarianceScaling",
    "Orthogonal": "Orthogonal", "Identity": "Identity",
    "GlorotNormal": "GlorotNormal", "GlorotUniform": "GlorotUniform",
    "HeNormal": "HeNormal", "HeUniform": "HeUniform",
    "LecunNormal": "LecunNormal", "LecunUniform": "LecunUniform",
    "LeCunNormal": "LecunNormal", "LeCunUniform": "LecunUniform",
}
_REGULARIZERS = {"L1L2": "L1L2", "L1": "L1", "L2": "L2",
                 "OrthogonalRegularizer": "OrthogonalRegularizer"}
_CONSTRAINTS = {"MaxNorm": "MaxNorm", "MinMaxNorm": "MinMaxNorm", "NonNeg": "NonNeg",
                "UnitNorm": "UnitNorm"}
_OBJECT_KINDS = {
    "initializer": ("keras.initializers", _INITIALIZERS),
    "regularizer": ("keras.regularizers", _REGULARIZERS),
    "constraint": ("keras.constraints", _CONSTRAINTS),
}


def _keras_object(where: str, key: str, value: Any, kind: str) -> Any:
    if value is None:
        return None
    module, table = _OBJECT_KINDS[kind]
    if not isinstance(value, dict) or not isinstance(value.get("class_name"), str):
        raise UnsupportedLayerError(
            "%s: %s %r is not a {\"class_name\", \"config\"} %s object"
            % (where, key, value, kind))
    class_name = table.get(value["class_name"])
    if class_name is None:
        raise UnsupportedLayerError(
            "%s: %s class %r has no Keras 3 equivalent (supported: %s)"
            % (where, key, value["class_name"], ", ".join(sorted(set(table.values())))))
    config = value.get("config") or {}
    if not isinstance(config, dict):
        raise InvalidModelError("%s: %s config is %r; want an object" % (where, key, config))
    config = dict(config)
    if class_name == "VarianceScaling" and config.get("distribution") == "normal":
        # Both TF.js and Keras 2 draw "normal" from a truncated normal.
        config["distribution"] = "truncated_normal"
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": None}


def _activation(where: str, key: str, value: Any) -> str:
    if isinstance(value, str) and value in _ACTIVATIONS:
        return _ACTIVATIONS[value]
    if isinstance(value, str) and value in _ACTIVATION_MISMATCH:
        raise UnsupportedLayerError(
            "%s: %s %r cannot be mapped: %s" % (where, key, value, _ACTIVATION_MISMATCH[value]))
    raise UnsupportedLayerError(
        "%s: %s %r has no Keras 3 equivalent (supported: %s)"
        % (where, key, value, ", ".join(sorted(_ACTIVATIONS))))


def _dtype_policy(name: str) -> Dict[str, Any]:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _dtype_name(where: str, value: Any) -> str:
    if value is None:
        return "float32"
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("config"), dict) and \
            isinstance(value["config"].get("name"), str):
        return value["config"]["name"]
    raise InvalidModelError("%s: dtype %r is neither a name nor a dtype policy" % (where, value))


# --------------------------------------------------------------------------
# Config key rules. Each rule maps one source key to the Keras 3 config.

_Rule = Callable[[str, str, Any, Dict[str, Any]], None]


def _keep(where, key, value, out):
    out[key] = value


def _drop(where, key, value, out):
    """The key does not change inference and Keras 3 has no such argument."""


def _only(*neutral) -> _Rule:
    """Drops the key when it holds a neutral value; any other value is refused."""

    def rule(where, key, value, out):
        if value not in neutral:
            raise UnsupportedLayerError(
                "%s: %s=%r is not supported by Keras 3 (only %s)"
                % (where, key, value, " or ".join(repr(v) for v in neutral)))
    return rule


def _keep_if(*allowed) -> _Rule:
    """Keeps a Keras 3 key when it holds a value these writers can honour."""

    def rule(where, key, value, out):
        if value not in allowed:
            raise UnsupportedLayerError(
                "%s: %s=%r is not supported (only %s)"
                % (where, key, value, " or ".join(repr(v) for v in allowed)))
        out[key] = value
    return rule


def _wrapped(where, key, value, out):
    """A wrapped layer's config; the wrapper's planner translates it."""


def _rename(new_key: str) -> _Rule:
    def rule(where, key, value, out):
        out[new_key] = value
    return rule


def _bool_or_default(where, key, value, out):
    """A boolean that TF.js may leave null; null means the Keras default."""
    if value is not None:
        out[key] = bool(value)


def _init(where, key, value, out):
    out[key] = _keras_object(where, key, value, "initializer")


def _reg(where, key, value, out):
    out[key] = _keras_object(where, key, value, "regularizer")


def _constraint(where, key, value, out):
    out[key] = _keras_object(where, key, value, "constraint")


def _act(where, key, value, out):
    out[key] = _activation(where, key, value)


def _int_axis(where, key, value, out):
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        raise UnsupportedLayerError("%s: %s=%r; Keras 3 wants one integer axis"
                                    % (where, key, value))
    out[key] = value


def _rules(*groups: Dict[str, _Rule], **extra: _Rule) -> Dict[str, _Rule]:
    merged: Dict[str, _Rule] = {}
    for group in groups:
        merged.update(group)
    merged.update(extra)
    return merged


def _inits(*names):
    return {n: _init for n in names}


def _regs(*names):
    return {n: _reg for n in names}


def _constraints(*names):
    return {n: _constraint for n in names}


def _keeps(*names):
    return {n: _keep for n in names}


_CONV_TRANSPOSE = _rules(
    _keeps("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
           "use_bias", "output_padding"),
    _inits("kernel_initializer", "bias_initializer"),
    _regs("kernel_regularizer", "bias_regularizer"),
    _constraints("kernel_constraint", "bias_constraint"),
    activation=_act)
_CONV = _rules({k: v for k, v in _CONV_TRANSPOSE.items() if k != "output_padding"},
               groups=_keep)
_DEPTHWISE = _rules(
    _keeps("kernel_size", "strides", "padding", "depth_multiplier", "data_format",
           "dilation_rate", "use_bias"),
    _inits("depthwise_initializer", "bias_initializer"),
    _regs("depthwise_regularizer", "bias_regularizer"),
    _constraints("depthwise_constraint", "bias_constraint"),
    activation=_act)
_SEPARABLE = _rules(
    _keeps("filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate",
           "depth_multiplier", "use_bias"),
    _inits("depthwise_initializer", "pointwise_initializer", "bias_initializer"),
    _regs("depthwise_regularizer", "pointwise_regularizer", "bias_regularizer"),
    _constraints("depthwise_constraint", "pointwise_constraint", "bias_constraint"),
    activation=_act)
_POOL = _keeps("pool_size", "strides", "padding", "data_format")
_GLOBAL_POOL = _keeps("data_format", "keepdims")
_RNN_BASE = _rules(
    _keeps("return_sequences", "return_state", "go_backwards", "stateful", "unroll",
           "zero_output_for_mask", "units", "use_bias", "dropout", "recurrent_dropout",
           "seed"),
    _inits("kernel_initializer", "recurrent_initializer", "bias_initializer"),
    _regs("kernel_regularizer", "recurrent_regularizer", "bias_regularizer"),
    _constraints("kernel_constraint", "recurrent_constraint", "bias_constraint"),
    activation=_act,
    implementation=_drop,  # a TF.js/Keras 2 compute strategy; same results
    time_major=_only(False, None))
_DATA_FORMAT_DEFAULT = "channels_last"


@dataclasses.dataclass(frozen=True)
class _Spec:
    """How one layer class maps to Keras 3.

    Attributes:
      keys: rules for the class's config keys (besides the generic ones).
      weights: ``(config, input_shape, where) -> [(name, accepted tensor
        names, shape, trainable)]`` in Keras variable order.
      shape: ``(config, input_shapes, where) -> [output shapes]``.
      kind: ``plain``, ``rnn``, ``bidirectional``, ``time_distributed``.
      data_format: the class takes ``data_format`` (written explicitly).
      cell: the Keras 3 cell class and name of an RNN layer.
      merge: the layer takes a list of inputs (Add, Concatenate, Dot, ...).
    """

    keys: Dict[str, _Rule]
    weights: Callable = lambda config, shape, where: []
    shape: Callable = lambda config, shapes, where: [shapes]
    kind: str = "plain"
    data_format: bool = False
    cell: Optional[Tuple[str, str]] = None
    merge: bool = False


# --------------------------------------------------------------------------
# Shape arithmetic, as Keras 3 computes it.


def _tuple(where: str, key: str, value: Any, rank: int) -> Tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,) * rank
    if isinstance(value, (list, tuple)) and len(value) == rank and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise InvalidModelError("%s: %s=%r; want an integer or %d integers"
                            % (where, key, value, rank))


def _conv_length(n, k, stride, padding, dilation):
    if n is None:
        return None
    span = (k - 1) * dilation + 1
    if padding in ("same", "causal"):
        return -(-n // stride)
    return -(-(n - span + 1) // stride)


def _deconv_length(n, k, stride, padding, output_padding, dilation):
    if n is None:
        return None
    k = k + (k - 1) * (dilation - 1)
    if output_padding is None:
        return n * stride + max(k - stride, 0) if padding == "valid" else n * stride
    pad = k // 2 if padding == "same" else 0
    return (n - 1) * stride + k - 2 * pad + output_padding


def _split_channels(config, shape: Shape) -> Tuple[Shape, Optional[int]]:
    if config.get("data_format") == "channels_first":
        return tuple(shape[2:]), shape[1]
    return tuple(shape[1:-1]), shape[-1]


def _join_channels(config, batch, spatial, channels) -> Shape:
    if config.get("data_format") == "channels_first":
        return (batch, channels) + tuple(spatial)
    return (batch,) + tuple(spatial) + (channels,)


def _conv_spatial(config, shape, rank, where, transpose=False):
    spatial, _ = _split_channels(config, shape)
    if len(spatial) != rank:
        raise InvalidModelError("%s: input shape %s has no %d spatial axes"
                                % (where, list(shape), rank))
    kernel = _tuple(where, "kernel_size", config.get("kernel_size"), rank)
    strides = _tuple(where, "strides", config.get("strides", 1), rank)
    dilation = _tuple(where, "dilation_rate", config.get("dilation_rate", 1), rank)
    padding = config.get("padding", "valid")
    if padding not in ("valid", "same", "causal"):
        raise UnsupportedLayerError("%s: padding %r is not supported" % (where, padding))
    if transpose:
        out_pad = config.get("output_padding")
        if out_pad is None:
            out_pad = (None,) * rank
        else:
            out_pad = _tuple(where, "output_padding", out_pad, rank)
        out = [_deconv_length(n, k, s, padding, p, d)
               for n, k, s, p, d in zip(spatial, kernel, strides, out_pad, dilation)]
    else:
        out = [_conv_length(n, k, s, padding, d)
               for n, k, s, d in zip(spatial, kernel, strides, dilation)]
    if any(n is not None and n <= 0 for n in out):
        raise InvalidModelError("%s: input shape %s gives an empty output %s"
                                % (where, list(shape), out))
    return out, kernel


def _conv(rank):
    def weights(config, shape, where):
        _, channels = _split_channels(config, shape)
        kernel = _tuple(where, "kernel_size", config.get("kernel_size"), rank)
        groups = config.get("groups", 1)
        in_channels = None if channels is None else channels // groups
        out = [("kernel", ("kernel",), kernel + (in_channels, config["filters"]), True)]
        if config.get("use_bias", True):
            out.append(("bias", ("bias",), (config["filters"],), True))
        return out

    def shape(config, shapes, where):
        spatial, _ = _conv_spatial(config, shapes, rank, where)
        return [_join_channels(config, shapes[0], spatial, config["filters"])]
    return weights, shape


def _conv_transpose(rank):
    def weights(config, shape, where):
        _, channels = _split_channels(config, shape)
        kernel = _tuple(where, "kernel_size", config.get("kernel_size"), rank)
        out = [("kernel", ("kernel",), kernel + (config["filters"], channels), True)]
        if config.get("use_bias", True):
            out.append(("bias", ("bias",), (config["filters"],), True))
        return out

    def shape(config, shapes, where):
        spatial, _ = _conv_spatial(config, shapes, rank, where, transpose=True)
        return [_join_channels(config, shapes[0], spatial, config["filters"])]
    return weights, shape


def _depthwise(rank):
    def weights(config, shape, where):
        _, channels = _split_channels(config, shape)
        kernel = _tuple(where, "kernel_size", config.get("kernel_size"), rank)
        multiplier = config.get("depth_multiplier", 1)
        out = [("kernel", ("kernel", "depthwise_kernel"), kernel + (channels, multiplier), True)]
        if config.get("use_bias", True):
            out.append(("bias", ("bias",), (_mul(channels, multiplier),), True))
        return out

    def shape(config, shapes, where):
        spatial, _ = _conv_spatial(config, shapes, rank, where)
        _, channels = _split_channels(config, shapes)
        out_channels = _mul(channels, config.get("depth_multiplier", 1))
        return [_join_channels(config, shapes[0], spatial, out_channels)]
    return weights, shape


def _separable(rank):
    def weights(config, shape, where):
        _, channels = _split_channels(config, shape)
        kernel = _tuple(where, "kernel_size", config.get("kernel_size"), rank)
        multiplier = config.get("depth_multiplier", 1)
        out = [("depthwise_kernel", ("depthwise_kernel",), kernel + (channels, multiplier), True),
               ("pointwise_kernel", ("pointwise_kernel",),
                (1,) * rank + (_mul(channels, multiplier), config["filters"]), True)]
        if config.get("use_bias", True):
            out.append(("bias", ("bias",), (config["filters"],), True))
        return out

    def shape(config, shapes, where):
        spatial, _ = _conv_spatial(config, shapes, rank, where)
        return [_join_channels(config, shapes[0], spatial, config["filters"])]
    return weights, shape


def _mul(a, b):
    return None if a is None or b is None else a * b


def _pool(rank):
    def shape(config, shapes, where):
        spatial, channels = _split_channels(config, shapes)
        if len(spatial) != rank:
            raise InvalidModelError("%s: input shape %s has no %d spatial axes"
                                    % (where, list(shapes), rank))
        pool = _tuple(where, "pool_size", config.get("pool_size", 2), rank)
        strides = config.get("strides")
        strides = pool if strides is None else _tuple(where, "strides", strides, rank)
        padding = config.get("padding", "valid")
        out = [_conv_length(n, k, s, padding, 1) for n, k, s in zip(spatial, pool, strides)]
        return [_join_channels(config, shapes[0], out, channels)]
    return shape


def _global_pool(config, shapes, where):
    spatial, channels = _split_channels(config, shapes)
    if config.get("keepdims"):
        return [_join_channels(config, shapes[0], (1,) * len(spatial), channels)]
    return [(shapes[0], channels)]


def _dense_weights(config, shape, where):
    out = [("kernel", ("kernel",), (shape[-1], config["units"]), True)]
    if config.get("use_bias", True):
        out.append(("bias", ("bias",), (config["units"],), True))
    return out


def _flatten_shape(config, shapes, where):
    rest = shapes[1:]
    size = None if any(d is None for d in rest) else int(np.prod(rest, dtype=np.int64))
    return [(shapes[0], size)]


def _reshape_shape(config, shapes, where):
    target = list(config.get("target_shape") or [])
    if -1 in target:
        known = shapes[1:]
        rest = [d for d in target if d != -1]
        if all(d is not None for d in known) and all(rest):
            size = int(np.prod(known, dtype=np.int64)) // int(np.prod(rest, dtype=np.int64))
            target[target.index(-1)] = size
        else:
            target[target.index(-1)] = None
    return [(shapes[0],) + tuple(target)]


def _permute_shape(config, shapes, where):
    dims = config.get("dims") or []
    if sorted(dims) != list(range(1, len(shapes))):
        raise InvalidModelError("%s: dims %r do not permute input shape %s"
                                % (where, dims, list(shapes)))
    return [(shapes[0],) + tuple(shapes[d] for d in dims)]


def _embedding_weights(config, shape, where):
    return [("embeddings", ("embeddings",), (config["input_dim"], config["output_dim"]), True)]


def _bn_weights(config, shape, where):
    axis = config.get("axis", -1)
    if not -len(shape) <= axis < len(shape):
        raise InvalidModelError("%s: axis %d is outside input shape %s"
                                % (where, axis, list(shape)))
    dim = (shape[axis],)
    out = []
    if config.get("scale", True):
        out.append(("gamma", ("gamma",), dim, True))
    if config.get("center", True):
        out.append(("beta", ("beta",), dim, True))
    out.append(("moving_mean", ("moving_mean",), dim, False))
    out.append(("moving_variance", ("moving_variance",), dim, False))
    return out


def _ln_weights(config, shape, where):
    axis = config.get("axis", -1)
    axes = axis if isinstance(axis, list) else [axis]
    for a in axes:
        if not isinstance(a, int) or not -len(shape) <= a < len(shape):
            raise InvalidModelError("%s: axis %r is outside input shape %s"
                                    % (where, axis, list(shape)))
    dims = tuple(shape[a] for a in axes)
    out = []
    if config.get("scale", True):
        out.append(("gamma", ("gamma",), dims, True))
    if config.get("center", True):
        out.append(("beta", ("beta",), dims, True))
    return out


def _prelu_weights(config, shape, where):
    dims = list(shape[1:])
    shared = config.get("shared_axes") or []
    shared = [shared] if isinstance(shared, int) else shared
    for axis in shared:
        dims[axis - 1] = 1
    return [("alpha", ("alpha",), tuple(dims), True)]


def _repeat_shape(config, shapes, where):
    return [(shapes[0], config["n"], shapes[1])]


def _embedding_shape(config, shapes, where):
    return [tuple(shapes) + (config["output_dim"],)]


def _dense_shape(config, shapes, where):
    return [tuple(shapes[:-1]) + (config["units"],)]


def _broadcast(where, a: Shape, b: Shape) -> Shape:
    if len(a) < len(b):
        a, b = b, a
    head = a[:len(a) - len(b)]
    out = []
    for x, y in zip(a[len(a) - len(b):], b):
        if x is None or y is None:
            out.append(None)
        elif x == 1:
            out.append(y)
        elif y == 1 or x == y:
            out.append(x)
        else:
            raise InvalidModelError("%s: input shapes %s and %s do not broadcast"
                                    % (where, list(a), list(b)))
    return tuple(head) + tuple(out)


def _merge_shape(config, shapes, where):
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise InvalidModelError("%s: a merge layer needs at least 2 inputs" % where)
    out = tuple(shapes[0][1:])
    for s in shapes[1:]:
        out = _broadcast(where, out, tuple(s[1:]))
    batches = [s[0] for s in shapes if s[0] is not None]
    return [(batches[0] if batches else None,) + out]


def _concat_shape(config, shapes, where):
    if not isinstance(shapes, list) or len(shapes) < 2:
        raise InvalidModelError("%s: Concatenate needs at least 2 inputs" % where)
    rank = len(shapes[0])
    axis = config.get("axis", -1) % rank
    out = list(shapes[0])
    for s in shapes[1:]:
        if len(s) != rank:
            raise InvalidModelError("%s: inputs of ranks %d and %d" % (where, rank, len(s)))
        for i, d in enumerate(s):
            if i == axis:
                out[i] = None if out[i] is None or d is None else out[i] + d
            elif out[i] is None:
                out[i] = d
    return [tuple(out)]


def _dot_shape(config, shapes, where):
    if not isinstance(shapes, list) or len(shapes) != 2:
        raise InvalidModelError("%s: Dot needs exactly 2 inputs" % where)
    a, b = list(shapes[0]), list(shapes[1])
    axes = config.get("axes")
    axes = [axes, axes] if isinstance(axes, int) else list(axes)
    axes = [axes[0] % len(a), axes[1] % len(b)]
    a.pop(axes[0])
    b.pop(axes[1])
    b.pop(0)
    out = a + b
    if len(out) == 1:
        out.append(1)
    return [tuple(out)]


def _pairs(where, key, value, rank) -> List[Tuple[int, int]]:
    if isinstance(value, int) and not isinstance(value, bool):
        return [(value, value)] * rank
    if isinstance(value, (list, tuple)) and len(value) == rank:
        out = []
        for v in value:
            if isinstance(v, int) and not isinstance(v, bool):
                out.append((v, v))
            elif isinstance(v, (list, tuple)) and len(v) == 2:
                out.append((v[0], v[1]))
            else:
                raise InvalidModelError("%s: %s=%r" % (where, key, value))
        return out
    if rank == 1 and isinstance(value, (list, tuple)) and len(value) == 2:
        return [(value[0], value[1])]
    raise InvalidModelError("%s: %s=%r; want %d pairs" % (where, key, value, rank))


def _padding_like(rank, key, sign):
    def shape(config, shapes, where):
        spatial, channels = _split_channels(config, shapes)
        pads = _pairs(where, key, config.get(key, 1 if sign > 0 else 0), rank)
        out = [None if n is None else n + sign * (lo + hi) for n, (lo, hi) in zip(spatial, pads)]
        return [_join_channels(config, shapes[0], out, channels)]
    return shape


def _upsampling(rank):
    def shape(config, shapes, where):
        spatial, channels = _split_channels(config, shapes)
        size = _tuple(where, "size", config.get("size", 2), rank)
        out = [None if n is None else n * s for n, s in zip(spatial, size)]
        return [_join_channels(config, shapes[0], out, channels)]
    return shape


def _upsampling1d(config, shapes, where):
    size = config.get("size", 2)
    return [(shapes[0], None if shapes[1] is None else shapes[1] * size, shapes[2])]


def _rnn_weights(gates: int):
    def weights(config, shape, where):
        units = config["units"]
        out = [("kernel", ("kernel",), (shape[-1], gates * units), True),
               ("recurrent_kernel", ("recurrent_kernel",), (units, gates * units), True)]
        if config.get("use_bias", True):
            bias = (2, gates * units) if config.get("reset_after") else (gates * units,)
            out.append(("bias", ("bias",), bias, True))
        return out
    return weights


def _rnn_shape(states: int):
    def shape(config, shapes, where):
        if len(shapes) != 3:
            raise InvalidModelError("%s: input shape %s is not (batch, time, features)"
                                    % (where, list(shapes)))
        units = config["units"]
        if config.get("return_sequences"):
            out = [(shapes[0], shapes[1], units)]
        else:
            out = [(shapes[0], units)]
        if config.get("return_state"):
            out += [(shapes[0], units)] * states
        return out
    return shape


# --------------------------------------------------------------------------
# The layer table.

_W_CONV1, _S_CONV1 = _conv(1)
_W_CONV2, _S_CONV2 = _conv(2)
_W_CONV3, _S_CONV3 = _conv(3)
_W_CONVT2, _S_CONVT2 = _conv_transpose(2)
_W_CONVT3, _S_CONVT3 = _conv_transpose(3)
_W_DW2, _S_DW2 = _depthwise(2)
_W_SEP1, _S_SEP1 = _separable(1)
_W_SEP2, _S_SEP2 = _separable(2)
_NOISE = _keeps("seed")
_MERGE = _Spec({}, shape=_merge_shape, merge=True)

_LAYERS: Dict[str, _Spec] = {
    "Dense": _Spec(
        _rules(_keeps("units", "use_bias"), _inits("kernel_initializer", "bias_initializer"),
               _regs("kernel_regularizer", "bias_regularizer"),
               _constraints("kernel_constraint", "bias_constraint"),
               activation=_act, lora_rank=_only(None), lora_alpha=_only(None),
               quantization_config=_only(None)),
        _dense_weights, _dense_shape),
    "Conv1D": _Spec(_CONV, _W_CONV1, _S_CONV1, data_format=True),
    "Conv2D": _Spec(_CONV, _W_CONV2, _S_CONV2, data_format=True),
    "Conv3D": _Spec(_CONV, _W_CONV3, _S_CONV3, data_format=True),
    "Conv2DTranspose": _Spec(_CONV_TRANSPOSE, _W_CONVT2, _S_CONVT2, data_format=True),
    "Conv3DTranspose": _Spec(_CONV_TRANSPOSE, _W_CONVT3, _S_CONVT3, data_format=True),
    "DepthwiseConv2D": _Spec(_DEPTHWISE, _W_DW2, _S_DW2, data_format=True),
    "SeparableConv1D": _Spec(_SEPARABLE, _W_SEP1, _S_SEP1, data_format=True),
    "SeparableConv2D": _Spec(_SEPARABLE, _W_SEP2, _S_SEP2, data_format=True),
    "MaxPooling1D": _Spec(_POOL, shape=_pool(1), data_format=True),
    "MaxPooling2D": _Spec(_POOL, shape=_pool(2), data_format=True),
    "MaxPooling3D": _Spec(_POOL, shape=_pool(3), data_format=True),
    "AveragePooling1D": _Spec(_POOL, shape=_pool(1), data_format=True),
    "AveragePooling2D": _Spec(_POOL, shape=_pool(2), data_format=True),
    "AveragePooling3D": _Spec(_POOL, shape=_pool(3), data_format=True),
    "GlobalMaxPooling1D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "GlobalMaxPooling2D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "GlobalMaxPooling3D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "GlobalAveragePooling1D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "GlobalAveragePooling2D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "GlobalAveragePooling3D": _Spec(_GLOBAL_POOL, shape=_global_pool, data_format=True),
    "Flatten": _Spec(_keeps("data_format"), shape=_flatten_shape, data_format=True),
    "Reshape": _Spec(_keeps("target_shape"), shape=_reshape_shape),
    "Permute": _Spec(_keeps("dims"), shape=_permute_shape),
    "RepeatVector": _Spec(_keeps("n"), shape=_repeat_shape),
    "Activation": _Spec({"activation": _act}),
    "Dropout": _Spec(_keeps("rate", "noise_shape", "seed")),
    "SpatialDropout1D": _Spec(_rules(_keeps("rate", "seed"), noise_shape=_only(None))),
    "SpatialDropout2D": _Spec(_rules(_keeps("rate", "seed"), noise_shape=_only(None)),
                              data_format=True),
    "SpatialDropout3D": _Spec(_rules(_keeps("rate", "seed"), noise_shape=_only(None)),
                              data_format=True),
    "GaussianNoise": _Spec(_rules(_NOISE, stddev=_keep)),
    "GaussianDropout": _Spec(_rules(_NOISE, rate=_keep)),
    "AlphaDropout": _Spec(_rules(_NOISE, rate=_keep, noise_shape=_keep)),
    "Masking": _Spec(_keeps("mask_value")),
    "Embedding": _Spec(
        _rules(_keeps("input_dim", "output_dim"), _inits("embeddings_initializer"),
               _regs("embeddings_regularizer"), _constraints("embeddings_constraint"),
               mask_zero=_bool_or_default,
               input_length=_drop,  # Keras 3 reads the length from the input shape
               lora_rank=_only(None), lora_alpha=_only(None), quantization_config=_only(None)),
        _embedding_weights, _embedding_shape),
    "BatchNormalization": _Spec(
        _rules(_keeps("momentum", "epsilon", "center", "scale", "synchronized"),
               _inits("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                      "moving_variance_initializer"),
               _regs("beta_regularizer", "gamma_regularizer"),
               _constraints("beta_constraint", "gamma_constraint"),
               axis=_int_axis, renorm=_keep_if(False), renorm_clipping=_keep_if(None),
               renorm_momentum=_keep),
        _bn_weights),
    "LayerNormalization": _Spec(
        _rules(_keeps("axis", "epsilon", "center", "scale"),
               _inits("beta_initializer", "gamma_initializer"),
               _regs("beta_regularizer", "gamma_regularizer"),
               _constraints("beta_constraint", "gamma_constraint"),
               rms_scaling=_only(False, None)),  # deprecated in Keras 3; TF.js has none
        _ln_weights),
    "ReLU": _Spec(_keeps("max_value", "negative_slope", "threshold")),
    "LeakyReLU": _Spec({"negative_slope": _keep, "alpha": _rename("negative_slope")}),
    "ELU": _Spec(_keeps("alpha")),
    # TF.js ThresholdedReLU is x * (x > theta); Keras 3 ReLU(threshold=theta)
    # computes where(x > theta, x, 0), the same function.
    "ThresholdedReLU": _Spec({"theta": _rename("threshold")}),
    "Rescaling": _Spec(_keeps("scale", "offset")),
    "Softmax": _Spec(_keeps("axis")),
    "PReLU": _Spec(
        _rules(_inits("alpha_initializer"), _regs("alpha_regularizer"),
               _constraints("alpha_constraint"), shared_axes=_keep),
        _prelu_weights),
    "Add": _MERGE, "Subtract": _MERGE, "Multiply": _MERGE, "Average": _MERGE,
    "Maximum": _MERGE, "Minimum": _MERGE,
    "Concatenate": _Spec(_keeps("axis"), shape=_concat_shape, merge=True),
    "Dot": _Spec(_keeps("axes", "normalize"), shape=_dot_shape, merge=True),
    "ZeroPadding1D": _Spec(_keeps("padding", "data_format"), shape=_padding_like(1, "padding", 1),
                           data_format=True),
    "ZeroPadding2D": _Spec(_keeps("padding", "data_format"), shape=_padding_like(2, "padding", 1),
                           data_format=True),
    "ZeroPadding3D": _Spec(_keeps("padding", "data_format"), shape=_padding_like(3, "padding", 1),
                           data_format=True),
    "Cropping1D": _Spec(_keeps("cropping"), shape=_padding_like(1, "cropping", -1)),
    "Cropping2D": _Spec(_keeps("cropping", "data_format"), shape=_padding_like(2, "cropping", -1),
                        data_format=True),
    "Cropping3D": _Spec(_keeps("cropping", "data_format"), shape=_padding_like(3, "cropping", -1),
                        data_format=True),
    "UpSampling1D": _Spec(_keeps("size"), shape=_upsampling1d),
    "UpSampling2D": _Spec(_keeps("size", "data_format", "interpolation"), shape=_upsampling(2),
                          data_format=True),
    "UpSampling3D": _Spec(_keeps("size", "data_format"), shape=_upsampling(3), data_format=True),
    "SimpleRNN": _Spec(_RNN_BASE, _rnn_weights(1), _rnn_shape(1), kind="rnn",
                       cell=("SimpleRNNCell", "simple_rnn_cell")),
    "LSTM": _Spec(_rules(_RNN_BASE, recurrent_activation=_act, unit_forget_bias=_bool_or_default,
                         use_cudnn=_keep),
                  _rnn_weights(4), _rnn_shape(2), kind="rnn", cell=("LSTMCell", "lstm_cell")),
    "GRU": _Spec(_rules(_RNN_BASE, recurrent_activation=_act, reset_after=_keep, use_cudnn=_keep),
                 _rnn_weights(3), _rnn_shape(1), kind="rnn", cell=("GRUCell", "gru_cell")),
    "Bidirectional": _Spec({"merge_mode": _keep, "layer": _wrapped, "backward_layer": _wrapped},
                           kind="bidirectional"),
    "TimeDistributed": _Spec({"layer": _wrapped}, kind="time_distributed"),
}
# Keras 2 spellings TF.js topologies may still carry.
_ALIASES = {
    "Convolution1D": "Conv1D", "Convolution2D": "Conv2D", "Convolution3D": "Conv3D",
    "Conv2DTranspose": "Conv2DTranspose", "Deconvolution2D": "Conv2DTranspose",
    "Deconvolution3D": "Conv3DTranspose", "SeparableConvolution2D": "SeparableConv2D",
    "SeparableConvolution1D": "SeparableConv1D", "MaxPool1D": "MaxPooling1D",
    "MaxPool2D": "MaxPooling2D", "MaxPool3D": "MaxPooling3D", "AvgPool1D": "AveragePooling1D",
    "AvgPool2D": "AveragePooling2D", "AvgPool3D": "AveragePooling3D",
    "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D",
    "GlobalAvgPool1D": "GlobalAveragePooling1D", "GlobalAvgPool2D": "GlobalAveragePooling2D",
    "BatchNormalizationV1": "BatchNormalization", "BatchNormalizationV2": "BatchNormalization",
    "UnifiedLSTM": "LSTM", "UnifiedGRU": "GRU", "LSTMV2": "LSTM", "GRUV2": "GRU",
}
# TF.js defaults that differ from Keras 3's, for keys a topology may omit:
# the topology means TF.js's value, so it is written explicitly.
_TFJS_DEFAULTS = {
    "LSTM": {"recurrent_activation": "hard_sigmoid"},
    "GRU": {"recurrent_activation": "hard_sigmoid"},
    "Softmax": {"axis": 1},
    "ThresholdedReLU": {"theta": 1.0},
}
# Layers Keras 3 writes under another class.
_KERAS_CLASS = {"ThresholdedReLU": "ReLU"}
# Keras 3 classes whose instances record no build shapes (they keep the
# default Layer.build): Keras writes no build_config for them.
_NO_BUILD_CONFIG = frozenset([
    "Activation", "AlphaDropout", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
    "Dropout", "ELU", "GaussianDropout", "GaussianNoise", "GlobalAveragePooling1D",
    "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
    "GlobalMaxPooling2D", "GlobalMaxPooling3D", "LeakyReLU", "Masking", "MaxPooling1D",
    "MaxPooling2D", "MaxPooling3D", "ReLU", "Reshape", "Softmax", "SpatialDropout1D",
    "SpatialDropout2D", "SpatialDropout3D",
])
_UNSUPPORTED_WHY = {
    "ConvLSTM2D": "its weights need a layout these writers do not map",
    "Lambda": "TF.js cannot hold Python code",
}
# Keys every layer may carry. A batch_input_shape past a Sequential's first
# layer is inert (Keras 2 and TF.js ignore it once the layer is connected).
_GENERIC_KEYS = ("name", "trainable", "dtype", "batch_input_shape", "batch_shape",
                 "activity_regularizer")
_MODEL_CLASSES = {"Sequential": "Sequential", "Model": "Functional", "Functional": "Functional"}
_RNN_CLASSES = ("SimpleRNN", "LSTM", "GRU")


def _snake_case(class_name: str) -> str:
    """The attribute-style name Keras 3 gives a class in model.weights.h5."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(base: str, used: Dict[str, int]) -> str:
    if base in used:
        used[base] += 1
        return "%s_%d" % (base, used[base])
    used[base] = 0
    return base


# --------------------------------------------------------------------------
# Planning: topology -> Keras 3 objects.


def _describe(chain: Sequence[str], name: Any, class_name: Any) -> str:
    return "layer %r (%s)" % ("/".join(tuple(chain) + (str(name),)), class_name)


def _shape_list(shape) -> Any:
    if isinstance(shape, list):
        return [_shape_list(s) for s in shape]
    return list(shape)


class _Planner:
    """Turns the TF.js topology into ``_Model``/``_Layer`` objects."""

    def __init__(self, pool: _TensorPool):
        self._pool = pool

    # ---- models

    def model(self, entry: Dict[str, Any], chain: Tuple[str, ...], where: str,
              path_prefix: str = "") -> _Model:
        class_name = entry.get("class_name")
        if class_name not in _MODEL_CLASSES:
            raise InvalidModelError(
                "%s has class_name %r; want Sequential, Model or Functional" % (where, class_name))
        config = entry.get("config")
        if class_name == "Sequential" and isinstance(config, list):
            config = {"name": "sequential", "layers": config}  # Keras < 2.2.3 form
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise InvalidModelError("%s: config has no list of layers" % where)
        name = config.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidModelError("%s: config has no name" % where)
        trainable = config.get("trainable", True)
        if _MODEL_CLASSES[class_name] == "Sequential":
            return self._sequential(config, name, bool(trainable), chain, path_prefix)
        return self._functional(config, name, bool(trainable), chain)

    def _sequential(self, config, name, trainable, chain, path_prefix) -> _Model:
        chain = chain + (name,)
        # A Sequential builds its layers inside its own name scope.
        path = (path_prefix + "/" if path_prefix else "") + name
        entries = list(config["layers"])
        if not entries:
            raise InvalidModelError("Sequential %r has no layers" % "/".join(chain))
        input_layer, entries = self._sequential_input(entries, chain)
        used_names = {input_layer.name}
        layers = []
        shape, dtype = tuple(input_layer.config["batch_shape"]), input_layer.config["dtype"]
        for entry in entries:
            class_name = entry.get("class_name") if isinstance(entry, dict) else None
            where = _describe(chain, _entry_name(entry), class_name)
            layer = self.layer(entry, chain, path, where)
            if layer.name in used_names:
                raise InvalidModelError("%s: the name %r is used twice in Sequential %r"
                                        % (where, layer.name, "/".join(chain)))
            used_names.add(layer.name)
            outputs = self._call(layer, shape)
            if len(outputs) != 1:
                raise InvalidModelError("%s: a Sequential layer must have one output, this one "
                                        "has %d" % (where, len(outputs)))
            shape, dtype = outputs[0]
            layers.append(layer)
        model_layer = _Layer("Sequential", name, {}, trainable=trainable,
                             sublayers=[], build_shape=list(input_layer.config["batch_shape"]))
        model = _Model(model_layer, True, layers, input_layer=input_layer,
                       output_specs=[(shape, dtype)])
        model_layer.model = model
        model_layer.config = {
            "name": name, "trainable": trainable, "dtype": _dtype_policy("float32"),
            "layers": None,  # filled by the emitter
            "build_input_shape": list(input_layer.config["batch_shape"]),
        }
        return model

    def _sequential_input(self, entries, chain):
        first = entries[0]
        if not isinstance(first, dict):
            raise InvalidModelError("Sequential %r: layer entry %r is not an object"
                                    % ("/".join(chain), first))
        config = first.get("config") if isinstance(first.get("config"), dict) else {}
        if first.get("class_name") == "InputLayer":
            return self._input_layer(config, chain, _entry_name(first)), entries[1:]
        shape = config.get("batch_input_shape", config.get("batch_shape"))
        dtype = config.get("dtype")
        if shape is None and first.get("class_name") in _MODEL_CLASSES:
            inner = self._peek_model_input(first, chain)
            if inner is not None:
                shape, dtype = inner
        if shape is None:
            raise InvalidModelError(
                "Sequential %r: the first layer %r has no batch_input_shape, so Keras cannot "
                "build the model" % ("/".join(chain), config.get("name")))
        names = {_entry_name(e) for e in entries}
        input_name = _unique_free("input_layer", names)
        dtype = _dtype_name(_describe(chain, config.get("name"), first.get("class_name")), dtype)
        return self._input_layer({"batch_input_shape": shape, "dtype": dtype},
                                 chain, input_name), entries

    def _peek_model_input(self, entry, chain):
        config = entry.get("config")
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            return None
        if not config["layers"]:
            return None
        first = config["layers"][0]
        if not isinstance(first, dict) or not isinstance(first.get("config"), dict):
            return None
        inner = first["config"]
        shape = inner.get("batch_input_shape", inner.get("batch_shape"))
        return (shape, inner.get("dtype")) if shape is not None else None

    def _input_layer(self, config, chain, name) -> _Layer:
        where = _describe(chain, name, "InputLayer")
        if not isinstance(name, str) or not name:
            raise InvalidModelError("%s: InputLayer has no name" % where)
        shape = config.get("batch_input_shape", config.get("batch_shape"))
        if not isinstance(shape, list) or not all(d is None or _is_count(d) for d in shape):
            raise InvalidModelError("%s: batch_input_shape %r is not a list of sizes"
                                    % (where, shape))
        for key in config:
            if key not in ("batch_input_shape", "batch_shape", "dtype", "sparse", "ragged", "name",
                           "optional"):
                raise UnsupportedLayerError("%s: config key %r has no Keras 3 equivalent"
                                            % (where, key))
        for key in ("sparse", "ragged", "optional"):
            if config.get(key):
                raise UnsupportedLayerError("%s: %s inputs are not supported" % (where, key))
        dtype = _dtype_name(where, config.get("dtype"))
        return _Layer("InputLayer", name, {
            "batch_shape": list(shape), "dtype": dtype, "sparse": False, "ragged": False,
            "name": name, "optional": False})

    def _functional(self, config, name, trainable, chain) -> _Model:
        chain = chain + (name,)
        entries = config["layers"]
        by_name: Dict[str, _Layer] = {}
        order: List[str] = []
        for entry in entries:
            if not isinstance(entry, dict):
                raise InvalidModelError("model %r: layer entry %r is not an object"
                                        % ("/".join(chain), entry))
            lname = _entry_name(entry)
            where = _describe(chain, lname, entry.get("class_name"))
            if not isinstance(lname, str) or not lname:
                raise InvalidModelError("%s: the layer entry has no name" % where)
            inner = entry.get("config")
            if isinstance(inner, dict) and "name" in inner and inner["name"] != lname:
                raise InvalidModelError("%s: entry name %r differs from its config name %r"
                                        % (where, lname, inner["name"]))
            if lname in by_name:
                raise InvalidModelError("%s: the name %r is used twice in model %r"
                                        % (where, lname, "/".join(chain)))
            if entry.get("class_name") == "InputLayer":
                layer = self._input_layer(inner if isinstance(inner, dict) else {}, chain, lname)
                layer.nodes = [_Node([], {}, outputs=[(tuple(layer.config["batch_shape"]),
                                                       layer.config["dtype"])])]
            else:
                # Functional models do not open a name scope for their layers.
                layer = self.layer(entry, chain, "", where)
                layer.nodes = [self._node(n, chain, lname) for n in _inbound(entry, where)]
            by_name[lname] = layer
            order.append(lname)
        inputs = _refs(config.get("input_layers"), "input_layers", chain)
        outputs = _refs(config.get("output_layers"), "output_layers", chain)
        for ref in inputs:
            if ref[0] not in by_name or by_name[ref[0]].class_name != "InputLayer":
                raise InvalidModelError("model %r: input %r is not an InputLayer of the model"
                                        % ("/".join(chain), ref[0]))
        self._resolve_nodes(by_name, order, chain)
        keras_inputs = [self._keras_ref(by_name, r, chain, "input_layers") for r in inputs]
        keras_outputs = [self._keras_ref(by_name, r, chain, "output_layers") for r in outputs]
        layers = _keras_layer_order(by_name, [_node_ref(by_name, r) for r in inputs],
                                    [_node_ref(by_name, r) for r in outputs], chain)
        output_specs = []
        for ref in outputs:
            layer, node_index, tensor_index = _node_ref(by_name, ref)
            output_specs.append(by_name[layer].nodes[node_index].outputs[tensor_index])
        model_layer = _Layer("Functional", name, {}, trainable=trainable, build_shape=None)
        model = _Model(model_layer, False, [by_name[n] for n in layers],
                       inputs=keras_inputs, outputs=keras_outputs, output_specs=output_specs)
        model_layer.model = model
        model_layer.config = {"name": name, "trainable": trainable, "layers": None,
                              "input_layers": None, "output_layers": None}
        return model

    def _node(self, node, chain, lname) -> _Node:
        where = _describe(chain, lname, "node")
        if not isinstance(node, list) or not node:
            raise InvalidModelError("%s: inbound node %r is not a non-empty list of [layer, node, "
                                    "tensor, kwargs] entries" % (where, node))
        refs, kwargs = [], None
        for item in node:
            if not isinstance(item, list) or len(item) not in (3, 4) or \
                    not isinstance(item[0], str) or not all(_is_count(v) for v in item[1:3]):
                raise InvalidModelError("%s: inbound entry %r is not [layer, node, tensor, kwargs]"
                                        % (where, item))
            refs.append((item[0], item[1], item[2]))
            item_kwargs = item[3] if len(item) == 4 else {}
            if not isinstance(item_kwargs, dict) or any(
                    isinstance(v, (list, dict)) for v in item_kwargs.values()):
                raise UnsupportedLayerError(
                    "%s: call arguments %r are not supported (only plain values)"
                    % (where, item_kwargs))
            if kwargs is not None and item_kwargs != kwargs:
                raise InvalidModelError("%s: the inputs of one call carry different kwargs"
                                        % where)
            kwargs = item_kwargs
        return _Node(refs, dict(kwargs or {}))

    def _resolve_nodes(self, by_name, order, chain):
        """Computes node outputs in dependency order, as Keras calls the layers."""
        pending = {n: list(range(len(by_name[n].nodes))) for n in order
                   if by_name[n].class_name != "InputLayer"}
        done = {n: (1 if by_name[n].class_name == "InputLayer" else 0) for n in order}
        while pending:
            progress = False
            for lname in order:
                if lname not in pending:
                    continue
                layer = by_name[lname]
                while pending[lname]:
                    index = pending[lname][0]
                    node = layer.nodes[index]
                    specs = self._input_specs(by_name, done, node, chain, lname)
                    if specs is None:
                        break
                    shapes = [s for s, _ in specs]
                    outputs = self._call(layer, shapes[0] if len(shapes) == 1 else shapes)
                    node.input_specs = specs
                    node.outputs = outputs
                    node.inputs = [(n, _keras_node_index(by_name[n], i), t)
                                   for n, i, t in node.inputs]
                    done[lname] += 1
                    pending[lname].pop(0)
                    progress = True
                if not pending[lname]:
                    del pending[lname]
            if not progress:
                stuck = ", ".join(sorted(pending))
                raise InvalidModelError(
                    "model %r: the calls of layer(s) %s never get their inputs (a cycle, or a "
                    "reference to a missing layer or node)" % ("/".join(chain), stuck))

    def _input_specs(self, by_name, done, node, chain, lname):
        """The inputs' ``(shape, dtype)``, or None while one is not computed yet."""
        where = _describe(chain, lname, "node")
        specs = []
        for ref_name, index, tensor in node.inputs:
            if ref_name not in by_name:
                raise InvalidModelError("%s: input from unknown layer %r" % (where, ref_name))
            source = by_name[ref_name]
            keras_index = _keras_node_index(source, index)
            if keras_index < 0:
                raise InvalidModelError(
                    "%s: input %r node %d refers to the nested model's own input node; want >= 1"
                    % (where, ref_name, index))
            if keras_index >= len(source.nodes):
                raise InvalidModelError("%s: layer %r has no node %d" % (where, ref_name, index))
            if keras_index >= done[ref_name]:
                return None
            outputs = source.nodes[keras_index].outputs
            if tensor >= len(outputs):
                raise InvalidModelError("%s: layer %r node %d has no output %d"
                                        % (where, ref_name, index, tensor))
            specs.append(outputs[tensor])
        return specs

    def _keras_ref(self, by_name, ref, chain, key):
        name, index, tensor = ref
        if name not in by_name:
            raise InvalidModelError("model %r: %s names unknown layer %r"
                                    % ("/".join(chain), key, name))
        layer = by_name[name]
        keras_index = _keras_node_index(layer, index)
        if keras_index < 0 or keras_index >= len(layer.nodes) or \
                tensor >= len(layer.nodes[keras_index].outputs):
            raise InvalidModelError("model %r: %s entry %r refers to a missing node or tensor"
                                    % ("/".join(chain), key, list(ref)))
        # Keras 3 counts a nested functional model's built-in node in these two
        # lists only (Keras 2 counted it everywhere, Keras 3 never for Sequential).
        if layer.class_name == "Functional":
            return [name, keras_index + 1, tensor]
        return [name, keras_index, tensor]

    # ---- layers

    def layer(self, entry: Any, chain: Tuple[str, ...], path: str, where: str) -> _Layer:
        if not isinstance(entry, dict):
            raise InvalidModelError("%s: layer entry %r is not an object" % (where, entry))
        class_name = entry.get("class_name")
        if class_name in _MODEL_CLASSES:
            return self.model(entry, chain, where, path).layer
        config = entry.get("config")
        if not isinstance(config, dict):
            raise InvalidModelError("%s: layer has no config object" % where)
        name = config.get("name", entry.get("name"))
        where = _describe(chain, name, class_name)
        if not isinstance(name, str) or not name:
            raise InvalidModelError("%s: layer has no name" % where)
        keras_class = _ALIASES.get(class_name, class_name)
        spec = _LAYERS.get(keras_class)
        if spec is None:
            why = _UNSUPPORTED_WHY.get(class_name, "no Keras 3 mapping is defined for it")
            raise UnsupportedLayerError("%s: cannot write this layer to Keras 3: %s"
                                        % (where, why))
        defaults = _TFJS_DEFAULTS.get(keras_class, {})
        config = dict(config, **{k: v for k, v in defaults.items() if k not in config})
        keras_config = self._config(config, spec, keras_class, where)
        keras_class = _KERAS_CLASS.get(keras_class, keras_class)
        layer = _Layer(keras_class, name, keras_config, trainable=keras_config["trainable"],
                       path=(path + "/" if path else "") + name, spec=spec, chain=chain)
        if spec.kind == "bidirectional":
            self._bidirectional(layer, config, chain, where)
        elif spec.kind == "time_distributed":
            self._time_distributed(layer, config, chain, where)
        return layer

    def _config(self, config, spec, keras_class, where) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "name": config.get("name"),
            "trainable": bool(config.get("trainable", True)),
            "dtype": _dtype_policy(_dtype_name(where, config.get("dtype"))),
        }
        for key, value in config.items():
            if key in _GENERIC_KEYS:
                continue
            rule = spec.keys.get(key)
            if rule is None:
                raise UnsupportedLayerError(
                    "%s: config key %r (value %r) has no Keras 3 equivalent" % (where, key, value))
            rule(where, key, value, out)
        regularizer = config.get("activity_regularizer")
        if regularizer is not None:
            out["activity_regularizer"] = _keras_object(where, "activity_regularizer", regularizer,
                                                        "regularizer")
        if spec.data_format and out.get("data_format") is None:
            # TF.js 1D layers have no data_format and mean channels_last; Keras 3
            # would read the user's image_data_format instead.
            out["data_format"] = _DATA_FORMAT_DEFAULT
        return out

    def _bidirectional(self, layer, config, chain, where):
        inner = config.get("layer")
        if not isinstance(inner, dict) or inner.get("class_name") not in _RNN_CLASSES:
            raise UnsupportedLayerError(
                "%s: wraps %r; only SimpleRNN, LSTM and GRU are supported"
                % (where, inner.get("class_name") if isinstance(inner, dict) else inner))
        inner_config = inner.get("config") if isinstance(inner.get("config"), dict) else {}
        base = _strip_prefix(str(inner_config.get("name", "")), "forward_")
        backward = config.get("backward_layer")
        forward_entry = {"class_name": inner["class_name"],
                         "config": dict(inner_config, name="forward_" + base)}
        if backward is None:
            backward_config = dict(inner_config, name="backward_" + base,
                                   go_backwards=not inner_config.get("go_backwards", False))
            backward_entry = {"class_name": inner["class_name"], "config": backward_config}
        else:
            if not isinstance(backward, dict) or backward.get("class_name") not in _RNN_CLASSES:
                raise UnsupportedLayerError("%s: backward_layer must be SimpleRNN, LSTM or GRU"
                                            % where)
            backward_entry = backward
        halves = []
        for attr, entry, prefix in (("forward_layer", forward_entry, "forward_"),
                                    ("backward_layer", backward_entry, "backward_")):
            sub = self.layer(entry, chain + (layer.name,), layer.path, where)
            # TF.js scopes the halves' weights as <prefix><inner name>; Keras 3
            # strips an inner "forward_" first. Accept both spellings.
            names = [sub.name, prefix + str(inner_config.get("name", ""))]
            sub.scopes = [s + "/" + n for s in _scopes(chain, layer.name)
                          for n in dict.fromkeys(names)]
            layer.sublayers.append((attr, sub))
            halves.append(sub)
        if bool(halves[0].config.get("return_sequences")) != \
                bool(halves[1].config.get("return_sequences")):
            raise InvalidModelError("%s: forward and backward layers differ in "
                                    "return_sequences" % where)
        merge = layer.config.get("merge_mode", "concat")
        if merge not in ("concat", "sum", "mul", "ave", None):
            raise UnsupportedLayerError("%s: merge_mode %r is not supported" % (where, merge))
        layer.config["merge_mode"] = merge

    def _time_distributed(self, layer, config, chain, where):
        inner = config.get("layer")
        inner_class = inner.get("class_name") if isinstance(inner, dict) else inner
        if not isinstance(inner, dict) or inner_class in _MODEL_CLASSES or \
                inner_class in ("Bidirectional", "TimeDistributed"):
            raise UnsupportedLayerError("%s: wrapping %r is not supported" % (where, inner_class))
        sub = self.layer(inner, chain + (layer.name,), layer.path, where)
        # TF.js names the wrapped weights after the wrapper (td/kernel), Keras
        # 3 after both (time_distributed/dense/kernel).
        sub.scopes = _scopes(chain, layer.name) + _scopes(chain, sub.name)
        layer.sublayers.append(("layer", sub))

    # ---- calling a layer: shapes, build config and weights

    def _call(self, layer: _Layer, shapes) -> List[Tuple[Shape, str]]:
        """Output specs of one call; the first call also builds the layer."""
        if layer.model is not None:
            return list(layer.model.output_specs)
        spec = layer.spec
        where = _describe(layer.chain, layer.name, layer.class_name)
        if spec.merge != isinstance(shapes, list):
            raise InvalidModelError("%s: called on %s; it takes %s" % (
                where, "%d inputs" % len(shapes) if isinstance(shapes, list) else "one input",
                "a list of inputs" if spec.merge else "one input"))
        if not layer.built:
            layer.built = True
            layer.build_shape = _shape_list(shapes)
            self._build(layer, shapes, where)
        if spec.kind == "bidirectional":
            return self._bidirectional_outputs(layer, shapes)
        if spec.kind == "time_distributed":
            _, sub = layer.sublayers[0]
            if not isinstance(shapes, tuple) or len(shapes) < 3:
                raise InvalidModelError("%s: input shape %s has no time axis" % (where, shapes))
            inner = self._call(sub, (shapes[0],) + tuple(shapes[2:]))
            return [((shapes[0], shapes[1]) + tuple(s[1:]), "float32") for s, _ in inner]
        return [(tuple(s), "float32") for s in spec.shape(layer.config, shapes, where)]

    def _bidirectional_outputs(self, layer, shapes):
        forward = self._call(layer.sublayers[0][1], shapes)
        backward = self._call(layer.sublayers[1][1], shapes)
        merge = layer.config["merge_mode"]
        f_out, b_out = forward[0][0], backward[0][0]
        if merge == "concat":
            last = None if f_out[-1] is None or b_out[-1] is None else f_out[-1] + b_out[-1]
            outs = [(tuple(f_out[:-1]) + (last,), "float32")]
        elif merge is None:
            outs = [forward[0], backward[0]]
        else:
            outs = [forward[0]]
        return outs + forward[1:] + backward[1:]

    def _build(self, layer: _Layer, shape, where):
        spec = layer.spec
        if spec.kind in ("bidirectional", "time_distributed"):
            return  # built through their sublayers' calls
        if spec.kind == "rnn":
            self._complete_rnn(layer)
        if layer.class_name in ("SeparableConv1D", "SeparableConv2D") and \
                "depth_multiplier" not in layer.config:
            self._infer_depth_multiplier(layer, where)
        slots = spec.weights(layer.config, shape, where)
        owner = layer
        if spec.kind == "rnn":
            cell_class, cell_name = spec.cell
            owner = _Layer(cell_class, cell_name, {}, trainable=layer.trainable,
                           path=layer.path + "/" + cell_name)
            layer.sublayers.append(("cell", owner))
        for var_name, accepted, expected, trainable in slots:
            # RNN weights may sit under a cell scope, wrapped layers' under
            # their own name: allow one inner scope for both.
            deep = spec.kind == "rnn" or layer.scopes is not None
            array = self._take(layer, var_name, accepted, expected, where, deep)
            owner.vars.append(_Var(var_name, array, trainable and owner.trainable))

    def _scopes_of(self, layer):
        if layer.scopes is not None:
            return layer.scopes
        return _scopes(layer.chain, layer.name)

    def _take(self, layer, var_name, accepted, expected, where, deep) -> np.ndarray:
        scopes = self._scopes_of(layer)
        found = self._pool.find(scopes, accepted, deep)
        if not found:
            looked = " or ".join(repr(s + "/" + accepted[0]) for s in scopes[:2])
            if deep:
                looked += " (optionally with one inner scope, e.g. a cell name)"
            raise InvalidModelError("%s: no tensor for weight %r; looked for %s"
                                    % (where, var_name, looked))
        if len(found) > 1:
            raise InvalidModelError("%s: weight %r matches several tensors: %s"
                                    % (where, var_name, ", ".join(repr(f) for f in found)))
        array = self._pool.array(found[0])
        if len(array.shape) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, array.shape)):
            raise InvalidModelError(
                "%s: tensor %r has shape %s; Keras builds weight %r with shape %s"
                % (where, found[0], list(array.shape), var_name,
                   [e if e is not None else "?" for e in expected]))
        return self._pool.claim(found[0], where)

    def _complete_rnn(self, layer):
        config = layer.config
        if layer.class_name == "GRU" and "reset_after" not in config:
            # Keras 3 defaults reset_after to True, TF.js to False. A bias tells
            # which one the weights were trained with (2-D exactly when set);
            # without one, the TF.js default is what the topology means.
            found = self._pool.find(self._scopes_of(layer), ("bias",), True) \
                if config.get("use_bias", True) else []
            config["reset_after"] = len(found) == 1 and self._pool.array(found[0]).ndim == 2

    def _infer_depth_multiplier(self, layer, where):
        found = self._pool.find(self._scopes_of(layer), ("depthwise_kernel",), False)
        if len(found) != 1:
            raise InvalidModelError("%s: no depth_multiplier in the config and no single "
                                    "depthwise_kernel tensor to read it from" % where)
        # TF.js omits depth_multiplier from SeparableConv configs.
        layer.config["depth_multiplier"] = int(self._pool.array(found[0]).shape[-1])


def _strip_prefix(text: str, prefix: str) -> str:
    return text[len(prefix):] if text.startswith(prefix) else text


def _unique_free(base: str, taken) -> str:
    if base not in taken:
        return base
    index = 1
    while "%s_%d" % (base, index) in taken:
        index += 1
    return "%s_%d" % (base, index)


def _entry_name(entry: Any) -> Any:
    if not isinstance(entry, dict):
        return None
    config = entry.get("config")
    if isinstance(config, dict) and "name" in config:
        return config["name"]
    return entry.get("name")


def _scopes(chain: Sequence[str], name: str) -> List[str]:
    """Name prefixes of a layer's tensors, most specific first."""
    return ["/".join(tuple(chain[i:]) + (name,)) for i in range(len(chain) + 1)]


def _inbound(entry, where) -> List[Any]:
    nodes = entry.get("inbound_nodes", [])
    if not isinstance(nodes, list):
        raise InvalidModelError("%s: inbound_nodes is %r; want a list" % (where, nodes))
    for node in nodes:
        if isinstance(node, dict):
            raise InvalidModelError(
                "%s: inbound node %r is in the Keras 3 form; a TF.js topology uses "
                "[[layer, node, tensor, kwargs], ...]" % (where, node))
    return nodes


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _refs(value, key, chain) -> List[Tuple[str, int, int]]:
    if isinstance(value, list) and len(value) == 3 and isinstance(value[0], str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise InvalidModelError("model %r: %s is %r; want [[layer, node, tensor], ...]"
                                % ("/".join(chain), key, value))
    out = []
    for ref in value:
        if not isinstance(ref, list) or len(ref) != 3 or not isinstance(ref[0], str) or \
                not all(_is_count(v) for v in ref[1:]):
            raise InvalidModelError("model %r: %s entry %r is not [layer, node, tensor]"
                                    % ("/".join(chain), key, ref))
        out.append((ref[0], ref[1], ref[2]))
    return out


def _keras_node_index(layer: _Layer, index: int) -> int:
    """Keras 3 node index of a Keras-2/TF.js one.

    Keras 2 and TF.js give a nested model a built-in node 0; Keras 3 does not
    keep it in the model's inbound nodes.
    """
    return index - 1 if layer.model is not None else index


def _node_ref(by_name, ref) -> Tuple[str, int, int]:
    name, index, tensor = ref
    return name, _keras_node_index(by_name[name], index), tensor


# --------------------------------------------------------------------------
# Keras 3's layer order of a functional model (ops/function.py map_graph):
# depth-first from the outputs, then by depth from the inputs, ties broken by
# the order the traversal first met each layer.


def _keras_layer_order(by_name: Dict[str, _Layer], inputs, outputs, chain) -> List[str]:
    finished, in_progress = set(), set()
    ordered_nodes: List[Tuple[str, int]] = []
    first_seen: Dict[str, int] = {}

    def parents(node):
        layer = by_name[node[0]]
        if layer.class_name == "InputLayer":
            return []
        return [(n, i) for n, i, _ in layer.nodes[node[1]].inputs]

    # Iterative depth-first search; a frame is (node, its parents, next index).
    stack: List[Tuple[Tuple[str, int], List[Tuple[str, int]], int]] = []

    def enter(node):
        if node in in_progress:
            raise InvalidModelError("model %r: layer %r is part of a cycle"
                                    % ("/".join(chain), node[0]))
        first_seen.setdefault(node[0], len(first_seen))
        in_progress.add(node)
        stack.append((node, parents(node), 0))

    for output in outputs:
        root = (output[0], output[1])
        if root in finished:
            continue
        enter(root)
        while stack:
            node, deps, i = stack[-1]
            if i < len(deps):
                stack[-1] = (node, deps, i + 1)
                dep = deps[i]
                if dep not in finished:
                    enter(dep)
                continue
            stack.pop()
            in_progress.discard(node)
            finished.add(node)
            ordered_nodes.append(node)

    in_graph = set(ordered_nodes)
    node_depth: Dict[Tuple[str, int], int] = {}
    layer_depth: Dict[str, int] = {}
    for node in reversed(ordered_nodes):
        depth = node_depth.setdefault(node, 0)
        depth = max(depth, layer_depth.get(node[0], 0))
        layer_depth[node[0]] = depth
        node_depth[node] = depth
        for dep in parents(node):
            if dep in in_graph:
                node_depth[dep] = max(depth + 1, node_depth.get(dep, 0))
    for name, _, _ in inputs:
        if name not in layer_depth:
            layer_depth[name] = 0
            first_seen[name] = -1
    by_depth: Dict[int, List[str]] = {}
    for name, depth in layer_depth.items():
        by_depth.setdefault(depth, []).append(name)
    order = []
    for depth in sorted(by_depth, reverse=True):
        order.extend(sorted(by_depth[depth], key=lambda n: first_seen[n]))
    dropped = [n for n in by_name if n not in layer_depth]
    if dropped:
        raise InvalidModelError(
            "model %r: layer(s) %s are not connected to the model outputs; Keras 3 would "
            "drop them and their weights" % ("/".join(chain), ", ".join(repr(n) for n in dropped)))
    return order


# --------------------------------------------------------------------------
# Config emission.


def _model_entry(model: _Model, legacy: bool) -> Dict[str, Any]:
    """A model's serialized config, at the top level or as a layer entry.

    ``legacy`` selects the legacy-HDF5 form: layer-list entries and the model
    itself without module/registered_name/build_config/compile_config (nested
    objects such as initializers and wrapped layers keep them, as Keras writes).
    """
    layer = model.layer
    config = dict(layer.config)
    if model.sequential:
        entries = [_plain_entry(model.input_layer, legacy, in_list=True)]
        entries += [_layer_entry(l, legacy, functional=False) for l in model.layers]
        config["layers"] = entries
    else:
        config["layers"] = [_layer_entry(l, legacy, functional=True) for l in model.layers]
        config["input_layers"] = _unwrap(model.inputs)
        config["output_layers"] = _unwrap(model.outputs)
    if legacy:
        return {"class_name": layer.class_name, "config": config}
    if model.sequential:
        out = {"module": "keras", "class_name": "Sequential", "config": config,
               "registered_name": None}
    else:
        out = {"module": "keras.src.models.functional", "class_name": "Functional",
               "config": config, "registered_name": "Functional"}
    out["build_config"] = {"input_shape": layer.build_shape}
    out["compile_config"] = {}
    return out


def _unwrap(refs):
    return refs[0] if len(refs) == 1 else refs


def _layer_entry(layer: _Layer, legacy: bool, functional: bool) -> Dict[str, Any]:
    """An entry of a model's ``layers`` list; functional ones carry name and nodes."""
    if layer.model is not None:
        entry = _model_entry(layer.model, legacy)
    else:
        entry = _plain_entry(layer, legacy, in_list=True)
    if functional:
        entry["name"] = layer.name
        entry["inbound_nodes"] = [_node_entry(layer, node) for node in layer.nodes] \
            if layer.class_name != "InputLayer" else []
    return entry


def _plain_entry(layer: _Layer, legacy: bool, in_list: bool) -> Dict[str, Any]:
    """A layer's serialized form; ``in_list`` for entries of a ``layers`` list."""
    config = _full_config(layer, legacy)
    if legacy and in_list:
        return {"class_name": layer.class_name, "config": config}
    entry = {"module": "keras.layers", "class_name": layer.class_name, "config": config,
             "registered_name": None}
    if layer.class_name != "InputLayer" and layer.built and \
            layer.class_name not in _NO_BUILD_CONFIG:
        entry["build_config"] = {"input_shape": layer.build_shape}
    return entry


def _full_config(layer: _Layer, legacy: bool) -> Dict[str, Any]:
    config = dict(layer.config)
    for attr, sub in layer.sublayers:
        if attr == "cell":
            continue
        key = "layer" if attr in ("forward_layer", "layer") else "backward_layer"
        config[key] = _plain_entry(sub, legacy, in_list=False)
    return config


def _node_entry(layer: _Layer, node: _Node) -> Dict[str, Any]:
    """One call in Keras 3's form: ``__keras_tensor__`` arguments with histories."""
    tensors = []
    for (name, index, tensor), (shape, dtype) in zip(node.inputs, node.input_specs):
        tensors.append({"class_name": "__keras_tensor__",
                        "config": {"shape": list(shape), "dtype": dtype,
                                   "keras_history": [name, index, tensor]}})
    args = [tensors[0]] if len(tensors) == 1 else [tensors]
    return {"args": args, "kwargs": dict(node.kwargs)}


# --------------------------------------------------------------------------
# Weights: .keras layout.


def _write_saveable(f: h5py.File, layer: _Layer, path: str) -> None:
    """Writes ``<path>/vars`` of a saveable, then its layers and sublayers."""
    group = f.create_group(path + "/vars" if path else "vars")
    group.attrs["name"] = layer.name
    for index, var in enumerate(layer.vars):
        group.create_dataset(str(index), data=var.value, track_times=False)
    if layer.model is not None:
        used: Dict[str, int] = {}
        for child in layer.model.layers:
            child_name = _unique(_snake_case(child.class_name), used)
            _write_saveable(f, child, _join(path, "layers", child_name))
    for attr, sub in sorted(layer.sublayers, key=lambda item: item[0]):
        _write_saveable(f, sub, _join(path, attr))


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


# --------------------------------------------------------------------------
# Weights: legacy HDF5 layout.


def _all_vars(layer: _Layer) -> List[Tuple[_Var, str]]:
    """``layer.weights`` in Keras order with each variable's path."""
    out = [(v, layer.path + "/" + v.name if layer.path else v.name) for v in layer.vars]
    if layer.model is not None:
        for child in layer.model.layers:
            out.extend(_all_vars(child))
    for _, sub in layer.sublayers:
        out.extend(_all_vars(sub))
    return out


def _legacy_weights(layer: _Layer) -> List[Tuple[_Var, str]]:
    """Keras's legacy order: trainable weights, then non-trainable ones."""
    weights = _all_vars(layer)
    if not layer.trainable:
        return weights
    return [w for w in weights if w[0].trainable] + [w for w in weights if not w[0].trainable]


def _save_names_attr(group, name: str, values: List[bytes]) -> None:
    """Stores a name list as Keras does: chunked when above the header limit."""
    data = np.asarray(values) if values else np.asarray([], dtype=np.float64)
    chunks = 1
    parts = [data]
    while any(p.nbytes > _HDF5_ATTR_LIMIT for p in parts):
        chunks += 1
        parts = np.array_split(data, chunks)
    if chunks == 1:
        group.attrs[name] = data
    else:
        for index, part in enumerate(parts):
            group.attrs["%s%d" % (name, index)] = part


def _write_legacy_weights(group, root: _Model) -> None:
    _save_names_attr(group, "layer_names", [l.name.encode("utf-8") for l in root.layers])
    group.attrs["backend"] = KERAS_BACKEND.encode("utf-8")
    group.attrs["keras_version"] = KERAS_VERSION.encode("utf-8")
    for layer in sorted(root.layers, key=lambda l: l.name):
        layer_group = group.create_group(layer.name)
        weights = _legacy_weights(layer)
        names = [path.encode("utf-8") for _, path in weights]
        _save_names_attr(layer_group, "weight_names", names)
        for (var, path) in weights:
            layer_group.create_dataset(path, data=var.value, track_times=False)
    top = group.create_group("top_level_model_weights")
    _save_names_attr(top, "weight_names", [])
