"""Writes a TF.js layers model as Keras 3 files (legacy HDF5 .h5 and .keras), with Keras.

The TF.js topology is Keras-2 style (``batch_input_shape``, nested-list
``inbound_nodes``, ``Model``/``Functional``/``Sequential``, TF.js defaults for
omitted keys). This module translates it into a Keras 3 config, builds the
``keras.Model`` with Keras itself (``keras.saving.deserialize_keras_object`` in
safe mode: the topology was already checked for code by
``readers/tfjs_topology.py`` and ``readers/code_check.py``), assigns the weights
by path, and saves with ``model.save``. Keras computes the shapes, orders a
functional model's layers and lays the files out; this module adds what Keras
lacks: the translation, checks with one-line errors, and byte-determinism.

Mapping rules, in brief:

* Layer classes, config keys, activations, initializers, regularizers and
  constraints are mapped through explicit tables. A class, key or value with no
  Keras 3 equivalent raises ``UnsupportedLayerError``; nothing is dropped
  silently except keys that do not change inference (``input_length``,
  ``implementation``, null initializer-only flags), which the tables list.
  TF.js ``hard_sigmoid`` (``0.2x + 0.5``) is refused: Keras 3's is ``x/6 + 0.5``.
* A key the topology omits means TF.js's default; where Keras 3's differs it
  is written explicitly (``data_format`` "channels_last", Softmax ``axis`` 1,
  LSTM/GRU ``recurrent_activation``, ThresholdedReLU ``theta``), or read from
  the weight shapes (GRU ``reset_after``, SeparableConv ``depth_multiplier``).
  ThresholdedReLU becomes ``ReLU(threshold=theta)``, the same function.
* A Sequential gets an explicit InputLayer built from its first layer's
  ``batch_input_shape`` and ``dtype``. Node indices of nested models drop the
  built-in node Keras 2 and TF.js count (Keras 3 keeps it only in a functional
  model's ``input_layers``/``output_layers``). Calls that can never get their
  inputs (cycles, missing layers or nodes) and layers not connected to the
  outputs (Keras would drop them and their weights) are refused.
* Tensors are found by name, not manifest order: for each variable of the
  built model, ``<layer>/<weight>`` optionally prefixed by enclosing model
  names; RNN, Bidirectional and TimeDistributed weights may carry one extra
  scope (``lstm/lstm_cell/kernel`` or TF.js's ``lstm/kernel``). A tensor whose
  shape differs from the variable Keras built, or that no variable claims, is
  an error.
* ``training_config`` is not carried over: the files are inference models and
  TF.js layers models hold no optimizer state.

Both outputs are deterministic: Keras's files are rewritten with fixed HDF5
library version bounds and no timestamps, the ``.keras`` zip with its entries
in a fixed order, a fixed date and no ``date_saved``.

``translate`` (the config and which tensors each layer claims) needs neither
TensorFlow nor Keras; building and saving import Keras (TensorFlow backend).
"""

import dataclasses
import json
import os
import re
import shutil
import tempfile
import zipfile
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from converter.errors import (ConversionError, InvalidModelError, UnsupportedLayerError,
                              UsageError)
from converter.model import LayersModel
from converter.tf_logs import native_stderr_silenced
from converter.weights import format as wf
from converter.weights.quantize import dequantize_tensor

# The Keras release the layout tests compare with (tests/test_keras_writers.py).
KERAS_VERSION = "3.15.1"

# HDF5 format bounds: "earliest" keeps old-style groups (which store no times);
# the v110 ceiling pins the layout so a newer libhdf5 writes the same bytes.
_HDF5_LIBVER = ("earliest", "v110")
# Every .keras entry gets this date, the zip epoch.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_ENTRIES = ("metadata.json", "config.json", "model.weights.h5")
# Weights are copied between files in chunks of this size.
_COPY_CHUNK = 4 << 20
# Keras errors are quoted on one line, cut to this length.
_MAX_QUOTE = 400


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
    keras_model = build_keras_model(model)
    with tempfile.TemporaryDirectory(prefix="keras_h5_") as tmp:
        saved, canonical = os.path.join(tmp, "model.h5"), os.path.join(tmp, "canonical.h5")
        _save(keras_model, saved)
        del keras_model  # its variables: one copy of the weights less from here on
        _canonical_h5(saved, canonical)
        # Copied by Python, not written by libhdf5: a full disk is a plain
        # OSError, and no half-written HDF5 file stays open inside the library.
        with open(canonical, "rb") as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)


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
    keras_model = build_keras_model(model)
    with tempfile.TemporaryDirectory(prefix="keras_v3_") as tmp:
        saved = os.path.join(tmp, "model.keras")
        _save(keras_model, saved)
        del keras_model
        _repack(saved, path, tmp)


def build_keras_model(model: LayersModel):
    """The ``keras.Model`` of a TF.js layers model, built by Keras, with its weights.

    Raises:
      the errors of ``write_keras_h5``.
    """
    # Shapes the layer configs fix, checked before TensorFlow is imported (and
    # when it cannot be).
    from converter.readers.tfjs_topology import check_weight_shapes
    check_weight_shapes(model)
    translated = translate(model)
    with native_stderr_silenced():
        keras = _import_keras()
        try:
            keras_model = keras.saving.deserialize_keras_object(translated.config,
                                                                safe_mode=True)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise InvalidModelError("Keras %s cannot build the topology: %s"
                                    % (keras.__version__, _one_line(e))) from None
    _check_connected(keras_model, translated)
    _set_trainable(keras_model, translated)
    _assign_weights(keras_model, translated)
    return keras_model


def _import_keras():
    try:
        import keras  # pylint: disable=import-outside-toplevel
    except ImportError as e:
        raise ConversionError(
            "writing Keras .h5/.keras files (and TF.js layers models as graphs) needs Keras 3 "
            "with TensorFlow, which cannot be imported here (%s); install tensorflow and keras "
            "from requirements_lock.txt" % _one_line(e)) from None
    return keras


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= _MAX_QUOTE else text[:_MAX_QUOTE] + "..."


def _save(keras_model, path: str) -> None:
    try:
        if path.endswith(".h5"):
            # What model.save(path) runs for .h5, without its "legacy format" warning.
            from keras.src.legacy.saving import legacy_h5_format
            legacy_h5_format.save_model_to_hdf5(keras_model, path, include_optimizer=False)
        else:
            keras_model.save(path)
    except (ValueError, TypeError) as e:
        raise InvalidModelError("Keras cannot save the model: %s" % _one_line(e)) from None


# --------------------------------------------------------------------------
# Determinism: Keras's files rewritten without times, dates or varying order.


def _copy_h5(src: h5py.Group, dst: h5py.Group) -> None:
    """Copies attributes, groups and datasets (names sorted; no timestamps)."""
    _copy_attrs(src, dst)
    for name in sorted(src):
        item = src.get(name, getlink=True)
        if not isinstance(item, h5py.HardLink):
            raise InvalidModelError("Keras wrote a link %r in an HDF5 file" % name)
        obj = src[name]
        if isinstance(obj, h5py.Group):
            _copy_h5(obj, dst.create_group(name))
        else:
            data = obj[()]
            dataset = dst.create_dataset(name, data=data, dtype=obj.dtype, track_times=False)
            _copy_attrs(obj, dataset)


def _copy_attrs(src, dst) -> None:
    for name in sorted(src.attrs):
        dst.attrs.create(name, src.attrs[name], dtype=src.attrs.get_id(name).dtype)


def _canonical_h5(src_path: str, dst_path: str) -> None:
    with h5py.File(src_path, "r") as src, \
            h5py.File(dst_path, "w", libver=_HDF5_LIBVER) as dst:
        _copy_h5(src, dst)


def _repack(saved: str, path: str, tmp: str) -> None:
    """Rewrites Keras's ``.keras`` archive at ``saved`` deterministically to ``path``.

    The weights pass through files in ``tmp``, never whole in memory.
    """
    extracted, canonical = os.path.join(tmp, "extracted.h5"), os.path.join(tmp, "canonical.h5")
    with zipfile.ZipFile(saved) as archive:
        names = archive.namelist()
        if sorted(names) != sorted(_ZIP_ENTRIES):
            raise InvalidModelError("Keras wrote a .keras archive with entries %s; want %s"
                                    % (names, list(_ZIP_ENTRIES)))
        metadata = json.loads(archive.read("metadata.json"))
        # date_saved is left out: Keras does not read it and it would break
        # byte-identical output.
        metadata.pop("date_saved", None)
        config = _renumber_shared(json.loads(archive.read("config.json")), {})
        with archive.open("model.weights.h5") as src, open(extracted, "wb") as dst:
            shutil.copyfileobj(src, dst, _COPY_CHUNK)
    _canonical_h5(extracted, canonical)
    os.remove(extracted)
    small = {"metadata.json": json.dumps(metadata).encode("utf-8"),
             "config.json": json.dumps(config).encode("utf-8")}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for name in _ZIP_ENTRIES:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3  # Unix, whatever the host
            info.external_attr = 0o644 << 16
            if name in small:
                zf.writestr(info, small[name])
                continue
            # The size up front, as writestr sets it: the same header (and zip64
            # choice) as writing the bytes at once.
            info.file_size = os.path.getsize(canonical)
            with open(canonical, "rb") as src, zf.open(info, "w") as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)


def _renumber_shared(value: Any, ids: Dict[Any, int]) -> Any:
    """``shared_object_id`` values (Keras writes ``id(obj)``) as 1, 2, ... in order."""
    if isinstance(value, list):
        return [_renumber_shared(v, ids) for v in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        if key == "shared_object_id":
            out[key] = ids.setdefault(item, len(ids) + 1)
        else:
            out[key] = _renumber_shared(item, ids)
    return out


def _save_names_attr(group, name: str, values: List[bytes]) -> None:
    """Stores a name list as Keras does (chunked above the HDF5 header limit)."""
    from keras.src.legacy.saving.legacy_h5_format import save_attributes_to_hdf5_group
    save_attributes_to_hdf5_group(group, name, values)


# --------------------------------------------------------------------------
# Tensors: found by name, claimed once.


class _TensorPool:
    """The model's tensors by name; each is claimed by exactly one variable."""

    def __init__(self, model: LayersModel, shapes_only: bool = False):
        """``shapes_only``: hold zero-byte stand-ins of the right shape (a check
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
            self._arrays[tensor.name] = np.asarray(array, dtype=np.float32)
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

    def take(self, owner: "Owner", var_name: str,
             expected: Optional[Sequence[Optional[int]]]) -> np.ndarray:
        """The one tensor of ``owner``'s variable ``var_name``, shape-checked and claimed.

        ``expected``: the variable's shape; a None dimension matches any size,
        None any shape.
        """
        accepted = owner.aliases.get(var_name, (var_name,))
        found = self.find(owner.scopes, accepted, owner.deep)
        if not found:
            looked = " or ".join(repr(s + "/" + accepted[0]) for s in owner.scopes[:2])
            if owner.deep:
                looked += " (optionally with one inner scope, e.g. a cell name)"
            raise InvalidModelError("%s: no tensor for weight %r; looked for %s"
                                    % (owner.where, var_name, looked))
        if len(found) > 1:
            raise InvalidModelError("%s: weight %r matches several tensors: %s"
                                    % (owner.where, var_name, ", ".join(repr(f) for f in found)))
        array = self._arrays[found[0]]
        if expected is not None and (len(array.shape) != len(expected) or any(
                e is not None and e != a for e, a in zip(expected, array.shape))):
            raise InvalidModelError(
                "%s: tensor %r has shape %s; Keras builds weight %r with shape %s"
                % (owner.where, found[0], list(array.shape), var_name,
                   [e if e is not None else "?" for e in expected]))
        if found[0] in self._claimed:
            raise InvalidModelError(
                "tensor %r matches weights of both %s and %s; give the layers "
                "distinct names" % (found[0], self._claimed[found[0]], owner.where))
        self._claimed[found[0]] = owner.where
        return array

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
      kind: ``plain``, ``rnn``, ``bidirectional``, ``time_distributed``.
      data_format: the class takes ``data_format`` (written explicitly).
    """

    keys: Dict[str, _Rule]
    kind: str = "plain"
    data_format: bool = False


# --------------------------------------------------------------------------
# The layer table.

_NOISE = _keeps("seed")
_MERGE = _Spec({})

_LAYERS: Dict[str, _Spec] = {
    "Dense": _Spec(
        _rules(_keeps("units", "use_bias"), _inits("kernel_initializer", "bias_initializer"),
               _regs("kernel_regularizer", "bias_regularizer"),
               _constraints("kernel_constraint", "bias_constraint"),
               activation=_act, lora_rank=_only(None), lora_alpha=_only(None),
               quantization_config=_only(None))),
    "Conv1D": _Spec(_CONV, data_format=True),
    "Conv2D": _Spec(_CONV, data_format=True),
    "Conv3D": _Spec(_CONV, data_format=True),
    "Conv2DTranspose": _Spec(_CONV_TRANSPOSE, data_format=True),
    "Conv3DTranspose": _Spec(_CONV_TRANSPOSE, data_format=True),
    "DepthwiseConv2D": _Spec(_DEPTHWISE, data_format=True),
    "SeparableConv1D": _Spec(_SEPARABLE, data_format=True),
    "SeparableConv2D": _Spec(_SEPARABLE, data_format=True),
    "MaxPooling1D": _Spec(_POOL, data_format=True),
    "MaxPooling2D": _Spec(_POOL, data_format=True),
    "MaxPooling3D": _Spec(_POOL, data_format=True),
    "AveragePooling1D": _Spec(_POOL, data_format=True),
    "AveragePooling2D": _Spec(_POOL, data_format=True),
    "AveragePooling3D": _Spec(_POOL, data_format=True),
    "GlobalMaxPooling1D": _Spec(_GLOBAL_POOL, data_format=True),
    "GlobalMaxPooling2D": _Spec(_GLOBAL_POOL, data_format=True),
    "GlobalMaxPooling3D": _Spec(_GLOBAL_POOL, data_format=True),
    "GlobalAveragePooling1D": _Spec(_GLOBAL_POOL, data_format=True),
    "GlobalAveragePooling2D": _Spec(_GLOBAL_POOL, data_format=True),
    "GlobalAveragePooling3D": _Spec(_GLOBAL_POOL, data_format=True),
    "Flatten": _Spec(_keeps("data_format"), data_format=True),
    "Reshape": _Spec(_keeps("target_shape")),
    "Permute": _Spec(_keeps("dims")),
    "RepeatVector": _Spec(_keeps("n")),
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
               lora_rank=_only(None), lora_alpha=_only(None), quantization_config=_only(None))),
    "BatchNormalization": _Spec(
        _rules(_keeps("momentum", "epsilon", "center", "scale", "synchronized"),
               _inits("beta_initializer", "gamma_initializer", "moving_mean_initializer",
                      "moving_variance_initializer"),
               _regs("beta_regularizer", "gamma_regularizer"),
               _constraints("beta_constraint", "gamma_constraint"),
               axis=_int_axis, renorm=_keep_if(False), renorm_clipping=_keep_if(None),
               renorm_momentum=_keep)),
    "LayerNormalization": _Spec(
        _rules(_keeps("axis", "epsilon", "center", "scale"),
               _inits("beta_initializer", "gamma_initializer"),
               _regs("beta_regularizer", "gamma_regularizer"),
               _constraints("beta_constraint", "gamma_constraint"),
               rms_scaling=_only(False, None))),  # deprecated in Keras 3; TF.js has none
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
               _constraints("alpha_constraint"), shared_axes=_keep)),
    "Add": _MERGE, "Subtract": _MERGE, "Multiply": _MERGE, "Average": _MERGE,
    "Maximum": _MERGE, "Minimum": _MERGE,
    "Concatenate": _Spec(_keeps("axis")),
    "Dot": _Spec(_keeps("axes", "normalize")),
    "ZeroPadding1D": _Spec(_keeps("padding", "data_format"),
                           data_format=True),
    "ZeroPadding2D": _Spec(_keeps("padding", "data_format"),
                           data_format=True),
    "ZeroPadding3D": _Spec(_keeps("padding", "data_format"),
                           data_format=True),
    "Cropping1D": _Spec(_keeps("cropping")),
    "Cropping2D": _Spec(_keeps("cropping", "data_format"),
                        data_format=True),
    "Cropping3D": _Spec(_keeps("cropping", "data_format"),
                        data_format=True),
    "UpSampling1D": _Spec(_keeps("size")),
    "UpSampling2D": _Spec(_keeps("size", "data_format", "interpolation"),
                          data_format=True),
    "UpSampling3D": _Spec(_keeps("size", "data_format"), data_format=True),
    "SimpleRNN": _Spec(_RNN_BASE, kind="rnn"),
    "LSTM": _Spec(_rules(_RNN_BASE, recurrent_activation=_act, unit_forget_bias=_bool_or_default,
                         use_cudnn=_keep),
                  kind="rnn"),
    "GRU": _Spec(_rules(_RNN_BASE, recurrent_activation=_act, reset_after=_keep, use_cudnn=_keep),
                 kind="rnn"),
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


# TF.js names of Keras 3 variables that TF.js spells otherwise.
_VAR_ALIASES = {"DepthwiseConv2D": {"kernel": ("kernel", "depthwise_kernel")}}


def _snake_case(class_name: str) -> str:
    """The attribute-style name Keras 3 gives a class in model.weights.h5."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


# --------------------------------------------------------------------------
# Translation: TF.js topology -> Keras 3 config, and who owns which tensors.


@dataclasses.dataclass
class Owner:
    """A layer that owns variables, as the translation sees it.

    Attributes:
      where: the layer as error messages name it (``layer 'm/d' (Dense)``).
      class_name: its Keras 3 class.
      config: its Keras 3 config body (the dict inside the translated config).
      scopes: tensor-name prefixes of its weights, most specific first.
      deep: a weight may carry one inner scope (RNN cells, wrapped layers).
      aliases: Keras variable name -> accepted tensor weight names.
    """

    where: str
    class_name: str
    config: Dict[str, Any]
    scopes: List[str]
    deep: bool
    aliases: Dict[str, Tuple[str, ...]]


@dataclasses.dataclass
class Translation:
    """A TF.js topology in Keras 3 terms.

    Attributes:
      config: the root model's serialized Keras 3 config (module, class_name,
        config, registered_name), for ``keras.saving.deserialize_keras_object``.
      owners: layer address (enclosing model and wrapper names, then the
        layer's) -> the layer's Owner, for every layer that may own variables.
      trainable: address -> ``trainable`` of every model and layer.
      functional_layers: address of each functional model -> its layer names.
      pool: the model's tensors.
    """

    config: Dict[str, Any]
    owners: Dict[Tuple[str, ...], Owner]
    trainable: Dict[Tuple[str, ...], bool]
    functional_layers: Dict[Tuple[str, ...], List[str]]
    pool: _TensorPool


def translate(model: LayersModel, shapes_only: bool = False) -> Translation:
    """Translates ``model``'s topology (no TensorFlow or Keras needed).

    ``shapes_only``: the pool holds shape stand-ins, not the weight values.

    Raises:
      UsageError: the model has no topology.
      InvalidModelError / UnsupportedLayerError: as ``write_keras_h5``.
    """
    if model.topology is None:
        raise UsageError(
            "the model has no topology (it comes from a weights-only source); Keras "
            ".h5 and .keras files need a topology to rebuild the model. Convert from "
            "a model.json with modelTopology, a full Keras model or a .keras file")
    config = _root_config(model.topology)
    pool = _TensorPool(model, shapes_only)
    translator = _Translator(pool)
    root = translator.model(config, chain=(), where="the root model")
    for owner in translator.owners.values():
        translator.complete(owner)
    return Translation(root, translator.owners, translator.trainable,
                       translator.functional_layers, pool)


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


def _describe(chain: Sequence[str], name: Any, class_name: Any) -> str:
    return "layer %r (%s)" % ("/".join(tuple(chain) + (str(name),)), class_name)


def _serialized(module: str, class_name: str, config: Dict[str, Any],
                registered_name: Optional[str] = None) -> Dict[str, Any]:
    return {"module": module, "class_name": class_name, "config": config,
            "registered_name": registered_name}


class _Translator:
    """Turns the TF.js topology into Keras 3 configs, recording the owners."""

    def __init__(self, pool: _TensorPool):
        self._pool = pool
        self.owners: Dict[Tuple[str, ...], Owner] = {}
        self.trainable: Dict[Tuple[str, ...], bool] = {}
        self.functional_layers: Dict[Tuple[str, ...], List[str]] = {}

    # ---- models

    def model(self, entry: Dict[str, Any], chain: Tuple[str, ...], where: str
              ) -> Dict[str, Any]:
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
        trainable = bool(config.get("trainable", True))
        self.trainable[chain + (name,)] = trainable
        if _MODEL_CLASSES[class_name] == "Sequential":
            return self._sequential(config, name, trainable, chain)
        return self._functional(config, name, trainable, chain)

    def _sequential(self, config, name, trainable, chain) -> Dict[str, Any]:
        chain = chain + (name,)
        entries = list(config["layers"])
        if not entries:
            raise InvalidModelError("Sequential %r has no layers" % "/".join(chain))
        input_layer, entries = self._sequential_input(entries, chain)
        used_names = {input_layer["config"]["name"]}
        layers = [input_layer]
        for entry in entries:
            class_name = entry.get("class_name") if isinstance(entry, dict) else None
            where = _describe(chain, _entry_name(entry), class_name)
            layer = self.layer(entry, chain, where)
            layer_name = layer["config"]["name"]
            if layer_name in used_names:
                raise InvalidModelError("%s: the name %r is used twice in Sequential %r"
                                        % (where, layer_name, "/".join(chain)))
            used_names.add(layer_name)
            layers.append(layer)
        return _serialized("keras", "Sequential", {
            "name": name, "trainable": trainable, "dtype": _dtype_policy("float32"),
            "layers": layers, "build_input_shape": list(input_layer["config"]["batch_shape"])})

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
            inner = _peek_model_input(first)
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

    def _input_layer(self, config, chain, name) -> Dict[str, Any]:
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
        return _serialized("keras.layers", "InputLayer", {
            "batch_shape": list(shape), "dtype": _dtype_name(where, config.get("dtype")),
            "sparse": False, "ragged": False, "name": name, "optional": False})

    def _functional(self, config, name, trainable, chain) -> Dict[str, Any]:
        chain = chain + (name,)
        entries = config["layers"]
        nodes: Dict[str, List[List[Tuple[str, int, int, Dict[str, Any]]]]] = {}
        is_model: Dict[str, bool] = {}
        layers: List[Dict[str, Any]] = []
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
            if lname in nodes:
                raise InvalidModelError("%s: the name %r is used twice in model %r"
                                        % (where, lname, "/".join(chain)))
            if entry.get("class_name") == "InputLayer":
                layer = self._input_layer(inner if isinstance(inner, dict) else {}, chain, lname)
                nodes[lname] = []
            else:
                # Functional models do not open a name scope for their layers.
                layer = self.layer(entry, chain, where)
                nodes[lname] = [_node(n, chain, lname) for n in _inbound(entry, where)]
            is_model[lname] = entry.get("class_name") in _MODEL_CLASSES
            layers.append(dict(layer, name=lname))
        inputs = _refs(config.get("input_layers"), "input_layers", chain)
        outputs = _refs(config.get("output_layers"), "output_layers", chain)
        for ref in inputs:
            if ref[0] not in nodes or layers[list(nodes).index(ref[0])]["class_name"] != \
                    "InputLayer":
                raise InvalidModelError("model %r: input %r is not an InputLayer of the model"
                                        % ("/".join(chain), ref[0]))
        _check_calls(nodes, is_model, chain)
        for layer in layers:
            # Keras 3 reads the Keras-2 list form; node indices in its own counting.
            layer["inbound_nodes"] = [
                [[n, _keras_node_index(is_model[n], i), t, kwargs] for n, i, t, kwargs in node]
                for node in nodes[layer["name"]]]
        self.functional_layers[chain] = list(nodes)
        return _serialized("keras.src.models.functional", "Functional", {
            "name": name, "trainable": trainable, "layers": layers,
            "input_layers": _unwrap([self._keras_ref(nodes, is_model, r, chain, "input_layers")
                                     for r in inputs]),
            "output_layers": _unwrap([self._keras_ref(nodes, is_model, r, chain,
                                                      "output_layers") for r in outputs])},
            "Functional")

    def _keras_ref(self, nodes, is_model, ref, chain, key):
        name, index, tensor = ref
        if name not in nodes:
            raise InvalidModelError("model %r: %s names unknown layer %r"
                                    % ("/".join(chain), key, name))
        count = max(1, len(nodes[name]))  # an InputLayer has its own node
        keras_index = _keras_node_index(is_model[name], index)
        if keras_index < 0 or keras_index >= count:
            raise InvalidModelError("model %r: %s entry %r refers to a missing node or tensor"
                                    % ("/".join(chain), key, list(ref)))
        return [name, index, tensor]

    # ---- layers

    def layer(self, entry: Any, chain: Tuple[str, ...], where: str) -> Dict[str, Any]:
        if not isinstance(entry, dict):
            raise InvalidModelError("%s: layer entry %r is not an object" % (where, entry))
        class_name = entry.get("class_name")
        if class_name in _MODEL_CLASSES:
            return self.model(entry, chain, where)
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
        keras_config = self._config(config, spec, where)
        keras_class = _KERAS_CLASS.get(keras_class, keras_class)
        address = chain + (name,)
        self.trainable[address] = keras_config["trainable"]
        if spec.kind == "bidirectional":
            self._bidirectional(keras_config, config, chain, name, where)
        elif spec.kind == "time_distributed":
            self._time_distributed(keras_config, config, chain, name, where)
        else:
            self.owners[address] = Owner(where, keras_class, keras_config, _scopes(chain, name),
                                         spec.kind == "rnn", _VAR_ALIASES.get(keras_class, {}))
        return _serialized("keras.layers", keras_class, keras_config)

    def _config(self, config, spec, where) -> Dict[str, Any]:
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

    def _bidirectional(self, keras_config, config, chain, name, where):
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
        for key, entry, prefix in (("layer", forward_entry, "forward_"),
                                   ("backward_layer", backward_entry, "backward_")):
            sub = self.layer(entry, chain + (name,), where)
            sub_name = sub["config"]["name"]
            # TF.js scopes the halves' weights as <prefix><inner name>; Keras 3
            # strips an inner "forward_" first. Accept both spellings.
            names = [sub_name, prefix + str(inner_config.get("name", ""))]
            owner = self.owners[chain + (name, sub_name)]
            owner.scopes = [s + "/" + n for s in _scopes(chain, name)
                            for n in dict.fromkeys(names)]
            owner.deep = True
            keras_config[key] = sub
            halves.append(sub["config"])
        if bool(halves[0].get("return_sequences")) != bool(halves[1].get("return_sequences")):
            raise InvalidModelError("%s: forward and backward layers differ in "
                                    "return_sequences" % where)
        merge = keras_config.get("merge_mode", "concat")
        if merge not in ("concat", "sum", "mul", "ave", None):
            raise UnsupportedLayerError("%s: merge_mode %r is not supported" % (where, merge))
        keras_config["merge_mode"] = merge

    def _time_distributed(self, keras_config, config, chain, name, where):
        inner = config.get("layer")
        inner_class = inner.get("class_name") if isinstance(inner, dict) else inner
        if not isinstance(inner, dict) or inner_class in _MODEL_CLASSES or \
                inner_class in ("Bidirectional", "TimeDistributed"):
            raise UnsupportedLayerError("%s: wrapping %r is not supported" % (where, inner_class))
        sub = self.layer(inner, chain + (name,), where)
        sub_name = sub["config"]["name"]
        # TF.js names the wrapped weights after the wrapper (td/kernel), Keras
        # 3 after both (time_distributed/dense/kernel).
        owner = self.owners[chain + (name, sub_name)]
        owner.scopes = _scopes(chain, name) + _scopes(chain, sub_name)
        owner.deep = True
        keras_config["layer"] = sub

    # ---- keys read from the weights

    def complete(self, owner: Owner) -> None:
        """Fills config keys TF.js omits whose value the weights tell."""
        config = owner.config
        if owner.class_name == "GRU" and "reset_after" not in config:
            # Keras 3 defaults reset_after to True, TF.js to False. A bias tells
            # which one the weights were trained with (2-D exactly when set);
            # without one, the TF.js default is what the topology means.
            found = self._pool.find(owner.scopes, ("bias",), True) \
                if config.get("use_bias", True) else []
            config["reset_after"] = len(found) == 1 and self._pool.array(found[0]).ndim == 2
        if owner.class_name in ("SeparableConv1D", "SeparableConv2D") and \
                "depth_multiplier" not in config:
            found = self._pool.find(owner.scopes, ("depthwise_kernel",), False)
            if len(found) != 1:
                raise InvalidModelError("%s: no depth_multiplier in the config and no single "
                                        "depthwise_kernel tensor to read it from" % owner.where)
            # TF.js omits depth_multiplier from SeparableConv configs.
            config["depth_multiplier"] = int(self._pool.array(found[0]).shape[-1])


def _peek_model_input(entry):
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


def _node(node, chain, lname) -> List[Tuple[str, int, int, Dict[str, Any]]]:
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
        refs.append((item[0], item[1], item[2], dict(item_kwargs)))
    return refs


def _check_calls(nodes, is_model, chain) -> None:
    """Refuses calls that can never get their inputs, in the order Keras calls them.

    Keras needs each input node to exist before a call; the tensor indices are
    Keras's to check.
    """
    where_model = "/".join(chain)
    done = {n: (1 if not calls and not is_model[n] else 0) for n, calls in nodes.items()}
    pending = {n: list(range(len(calls))) for n, calls in nodes.items() if calls}
    while pending:
        progress = False
        for lname in list(pending):
            while pending[lname]:
                node = nodes[lname][pending[lname][0]]
                ready = True
                for ref_name, index, _, _ in node:
                    where = _describe(chain, lname, "node")
                    if ref_name not in nodes:
                        raise InvalidModelError("%s: input from unknown layer %r"
                                                % (where, ref_name))
                    keras_index = _keras_node_index(is_model[ref_name], index)
                    if keras_index < 0:
                        raise InvalidModelError(
                            "%s: input %r node %d refers to the nested model's own input "
                            "node; want >= 1" % (where, ref_name, index))
                    if keras_index >= max(len(nodes[ref_name]), 1):
                        raise InvalidModelError("%s: layer %r has no node %d"
                                                % (where, ref_name, index))
                    if keras_index >= done[ref_name]:
                        ready = False
                        break
                if not ready:
                    break
                done[lname] += 1
                pending[lname].pop(0)
                progress = True
            if not pending[lname]:
                del pending[lname]
        if not progress:
            raise InvalidModelError(
                "model %r: the calls of layer(s) %s never get their inputs (a cycle, or a "
                "reference to a missing layer or node)" % (where_model, ", ".join(sorted(pending))))


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


def _unwrap(refs):
    return refs[0] if len(refs) == 1 else refs


def _keras_node_index(is_model: bool, index: int) -> int:
    """Keras 3 node index of a Keras-2/TF.js one in ``inbound_nodes``.

    Keras 2 and TF.js give a nested model a built-in node 0; Keras 3 does not
    keep it in the model's inbound nodes (its ``input_layers``/``output_layers``
    still count it for a nested functional model, and Keras subtracts it there).
    """
    return index - 1 if is_model else index


# --------------------------------------------------------------------------
# The built model: connectivity, trainable flags, weights.


def _is_model(layer) -> bool:
    import keras  # pylint: disable=import-outside-toplevel
    return isinstance(layer, keras.Model)


def _walk(layer, chain: Tuple[str, ...]) -> Iterator[Tuple[Tuple[str, ...], Any, bool]]:
    """``(address, layer, is_leaf)`` of a built layer and everything inside it."""
    import keras  # pylint: disable=import-outside-toplevel
    address = chain + (layer.name,)
    if _is_model(layer):
        yield address, layer, False
        for sub in layer.layers:
            yield from _walk(sub, address)
    elif isinstance(layer, keras.layers.Bidirectional):
        yield address, layer, False
        yield from _walk(layer.forward_layer, address)
        yield from _walk(layer.backward_layer, address)
    elif isinstance(layer, keras.layers.TimeDistributed):
        yield address, layer, False
        yield from _walk(layer.layer, address)
    else:
        yield address, layer, True


def _check_connected(keras_model, translated: Translation) -> None:
    built = {address: layer for address, layer, _ in _walk(keras_model, ())}
    for chain, names in translated.functional_layers.items():
        model = built.get(chain)
        kept = {layer.name for layer in model.layers} if model is not None else set()
        dropped = [n for n in names if n not in kept]
        if dropped:
            raise InvalidModelError(
                "model %r: layer(s) %s are not connected to the model outputs; Keras 3 would "
                "drop them and their weights"
                % ("/".join(chain), ", ".join(repr(n) for n in dropped)))


def _set_trainable(keras_model, translated: Translation) -> None:
    # Sequential.from_config does not apply its config's trainable flag.
    for address, layer, _ in _walk(keras_model, ()):
        if translated.trainable.get(address) is False and layer.trainable:
            layer.trainable = False


def _assign_weights(keras_model, translated: Translation) -> None:
    pool = translated.pool
    for address, layer, leaf in _walk(keras_model, ()):
        if not leaf:
            continue
        owner = translated.owners.get(address)
        if owner is None:
            if layer.weights:
                raise InvalidModelError("Keras built weights for layer %r, which the "
                                        "topology does not name" % "/".join(address))
            continue
        for variable in layer.weights:
            variable.assign(pool.take(owner, variable.name, tuple(variable.shape)))
    pool.check_all_claimed()
