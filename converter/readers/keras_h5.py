"""Reads Keras HDF5 files (Keras 2 and Keras 3 ``.h5``) into a LayersModel.

Two layouts are read, with h5py and numpy only:

* a full model (``model.save("m.h5")`` in Keras 2, or in Keras 3 which keeps
  this legacy layout): root attributes ``keras_version``, ``backend``,
  ``model_config`` (JSON) and optionally ``training_config``; group
  ``model_weights`` with a ``layer_names`` attribute and one subgroup per
  layer whose ``weight_names`` attribute lists its datasets in
  ``layer.weights`` order;
* a Keras 2 weights-only file (``save_weights("w.h5")``): the same layer groups
  at the root, no config. Its weights keep the names the file gives them;
* a Keras 3 weights-only file (``save_weights("m.weights.h5")``): the object
  layout of a ``.keras`` archive's weights (see ``keras_v3``), no config. Layer
  names come from the ``name`` attribute Keras records on each ``vars`` group,
  layer classes from the group keys, and variable names from the layer table
  by variable count.

For full models the config is translated by ``keras_config`` and every weight
is named as TF.js names it; the file's own weight names are only checked
against that plan (they differ between Keras versions: Keras 3 prefixes a
Sequential model's name, Keras 2 appends ``:0``).
"""

import contextlib
import os
import re
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import h5py
import numpy as np

from converter import jsonio
from converter.errors import InvalidModelError, UnsupportedLayerError
from converter.model import LayersModel, Tensor
from converter.readers import hdf5_heaps, keras_config
from converter.readers.keras_config import TranslatedModel, WeightSlot
from converter.weights import format as wf
from converter.weights import stored

_H5_REASON = re.compile(r"\(([^()]*)\)\s*$")
_KEY_SUFFIX = re.compile(r"^(.*?)(?:_(\d+))?$")

# Top-level subtrees of a Keras 3 weights file that hold training state.
_TRAINING_STATE = ("optimizer", "metrics", "loss", "compile_metrics")


def read_keras_h5(path: str) -> LayersModel:
    """Reads a Keras ``.h5`` model or Keras 2 weights-only file.

    Args:
      path: the ``.h5`` file.

    Returns:
      The model: TF.js topology and weights, or for a weights-only file
      ``topology=None`` and ``generated_by=None``. Keras 3 weights-only files do
      not record layer order; their weights come layer key by layer key.

    Raises:
      InvalidModelError: the file is missing, not HDF5, corrupt, or not a Keras
        model.
      UnsupportedLayerError: the model has a layer TF.js cannot run.
      InvalidWeightsError: a weight value has no TF.js dtype.
    """
    check_file(path, "Keras .h5 file")
    with open_h5(path, path) as f, h5_errors(path):
        if "model_config" in f.attrs:
            return _read_full_model(f, path)
        if "layer_names" in f.attrs or "layer_names0" in f.attrs:
            return _read_weights_only(f, path)
        if isinstance(f.get("layers"), h5py.Group) or isinstance(f.get("vars"), h5py.Group):
            return _read_keras3_weights_only(f, path)
        raise InvalidModelError(
            "%s: HDF5 file is not a Keras model: no 'model_config' attribute (full "
            "model) and no 'layer_names' attribute (weights-only file)" % path)


def check_file(path: str, what: str) -> None:
    """Raises InvalidModelError unless ``path`` is an existing regular file."""
    if not os.path.exists(path):
        raise InvalidModelError("%s: no such file (want a %s)" % (path, what))
    if not os.path.isfile(path):
        raise InvalidModelError("%s: not a file (want a %s)" % (path, what))


# Within one conversion (``heap_checks_shared``), files whose global heaps passed
# the check, by identity (device, inode, size, mtime): the check reads the whole
# file (a second per 2 GB), and one conversion opens a file up to three times
# (code check, size check, reader). None outside: timestamps are coarse, so a
# file rewritten in place between conversions could look unchanged.
_HEAPS_CHECKED: Optional[set] = None


@contextlib.contextmanager
def heap_checks_shared() -> Iterator[None]:
    """Checks each file's global heaps once while the block runs (one conversion)."""
    global _HEAPS_CHECKED
    outer = _HEAPS_CHECKED
    if outer is None:
        _HEAPS_CHECKED = set()
    try:
        yield
    finally:
        _HEAPS_CHECKED = outer


def _check_heaps_once(path: str, where: str) -> None:
    with open(path, "rb") as stream:
        st = os.fstat(stream.fileno())
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if _HEAPS_CHECKED is not None and key in _HEAPS_CHECKED:
            return
        hdf5_heaps.check_global_heaps(stream, where)
    if _HEAPS_CHECKED is not None:
        _HEAPS_CHECKED.add(key)


def open_h5(source, where: str) -> h5py.File:
    """Opens an HDF5 file read-only.

    Args:
      source: a path or a seekable binary file object.
      where: the name used in messages.

    Raises:
      InvalidModelError: not HDF5, or corrupt/truncated.
    """
    if isinstance(source, str) and not h5py.is_hdf5(source):
        raise InvalidModelError("%s: not an HDF5 file (no HDF5 signature)" % where)
    try:
        f = h5py.File(source, "r")
    except OSError as e:
        raise InvalidModelError("%s: cannot read HDF5 file (%s); the file is corrupt or "
                                "incomplete" % (where, h5_reason(e))) from None
    try:
        check_storage(f, where)
        if isinstance(source, str):
            _check_heaps_once(source, where)
        else:
            position = source.tell()
            try:
                hdf5_heaps.check_global_heaps(source, where)
            finally:
                source.seek(position)
    except BaseException:
        f.close()
        raise
    return f


def check_storage(f: h5py.File, where: str) -> None:
    """Refuses data stored outside the file: soft and external links, external storage,
    virtual datasets (each could pull another local file's bytes into the output).

    Raises:
      InvalidModelError: naming the first such dataset or link by its HDF5 path.
    """
    found = []

    def visit(name, link):
        if isinstance(link, (h5py.SoftLink, h5py.ExternalLink)):
            kind = "a soft link" if isinstance(link, h5py.SoftLink) else "an external link"
            found.append("%s is %s (to %s)" % (name, kind, getattr(link, "filename", None)
                                                 or link.path))
            return True  # stop
        return None

    try:
        f.visititems_links(visit)
        if not found:
            f.visititems(lambda name, obj: _stored_inside(name, obj, found))
    except (OSError, RuntimeError, SystemError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise InvalidModelError("%s: cannot read the HDF5 structure (%s); the file is corrupt"
                                % (where, h5_reason(e) if isinstance(e, OSError) else e)) from None
    if found:
        raise InvalidModelError("%s: %s; only datasets stored in the file itself are read"
                                % (where, found[0]))


def _stored_inside(name: str, obj, found: list):
    if isinstance(obj, h5py.Dataset):
        if obj.external:
            found.append("dataset %s uses external storage (%s)"
                         % (name, obj.external[0][0].decode("utf-8", "replace")
                            if isinstance(obj.external[0][0], bytes) else obj.external[0][0]))
            return True
        if obj.is_virtual:
            found.append("dataset %s is a virtual dataset" % name)
            return True
    return None


@contextlib.contextmanager
def h5_errors(where: str) -> Iterator[None]:
    """Errors libhdf5 raises reading a corrupt file's objects become InvalidModelError.

    h5py raises OSError, RuntimeError (and, from its lock on a failing call,
    SystemError) for damage found only when an attribute or dataset is read.
    """
    try:
        yield
    except (OSError, RuntimeError, SystemError, ValueError, TypeError) as e:
        # h5py's ValueError/TypeError (a stored type numpy has no dtype for) mean damage;
        # raised by our code or numpy they are bugs and pass through.
        if isinstance(e, (ValueError, TypeError)) and not _raised_in_h5py(e):
            raise
        raise InvalidModelError("%s: cannot read HDF5 file (%s); the file is corrupt"
                                % (where, h5_reason(e))) from None


def _raised_in_h5py(error: BaseException) -> bool:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "h5py" in tb.tb_frame.f_code.co_filename


def h5_reason(error: BaseException) -> str:
    """The one-line reason inside an h5py error message."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    match = _H5_REASON.search(text)
    return match.group(1) if match else text


# Largest ratio of a filtered (compressed) dataset's logical size to its bytes in
# the file. Trained float weights barely compress (about 1.1:1 with gzip); even a
# 95%-pruned kernel stays under 20:1. A dataset declaring more is a
# decompression bomb (deflate reaches about 1032:1 on zeros).
MAX_FILTER_RATIO = 64


def check_dataset(dataset, name: str, where: str,
                  shape: Optional[Tuple[Optional[int], ...]] = None) -> None:
    """Refuses, before a byte is read, a weight dataset that cannot be a layer's:
    a shape other than the one its layer's config implies, a non-numeric dtype,
    or a declared size the file does not hold (an unwritten or sparse dataset
    reads back as fill values; a compressed one beyond any real ratio is a bomb).

    Raises:
      InvalidModelError: naming the weight, its shape and dtype, and why.
    """
    if not isinstance(dataset, h5py.Dataset):
        raise InvalidModelError("%s: weight %r is not an HDF5 dataset" % (where, name))
    try:
        got, dtype = tuple(dataset.shape or ()), dataset.dtype
        stored = dataset.id.get_storage_size()
        filters = dataset.id.get_create_plist().get_nfilters()
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise InvalidModelError("%s: cannot read weight %r's header (%s); the file is corrupt"
                                % (where, name, h5_reason(e) if isinstance(e, OSError) else e)
                                ) from None
    described = "weight %r (shape %s, %s)" % (name, list(got), dtype)
    if dtype.kind not in "fiub":
        raise InvalidModelError("%s: %s: a layer weight must hold numbers" % (where, described))
    if shape is not None and (len(got) != len(shape) or any(
            want is not None and have != want for have, want in zip(got, shape))):
        raise InvalidModelError(
            "%s: %s does not have the shape its layer's config implies: %s"
            % (where, described, "[%s]" % ", ".join("?" if d is None else str(d) for d in shape)))
    declared = int(np.prod(got, dtype=np.float64) * dtype.itemsize) if got else dtype.itemsize
    if declared and (stored < declared if filters == 0 else declared > stored * MAX_FILTER_RATIO):
        raise InvalidModelError(
            "%s: %s declares %d bytes but the file stores %d bytes of it (%s); refusing to "
            "read it" % (where, described, declared, stored,
                         "unwritten or sparse" if filters == 0 else
                         "compressed beyond %d:1" % MAX_FILTER_RATIO))


def read_tensor(dataset, name: str, where: str,
                shape: Optional[Tuple[Optional[int], ...]] = None,
                backing: Optional[Tuple[str, int]] = None) -> Tensor:
    """Reads one dataset as a tensor named ``name`` in a TF.js dtype.

    Args:
      dataset: the HDF5 dataset.
      name: the TF.js weight name.
      where: the source file, for messages.
      shape: the shape its layer's config implies (None dimensions are free),
        or None when not known.
      backing: ``(path, offset)`` of the HDF5 file's bytes on disk (offset 0
        for an ``.h5``; the member's offset for one stored in a ``.keras``), or
        None (the HDF5 file is in memory). With it, a large float32/int32
        dataset stored contiguously is not read now but streamed by the writer
        (``stored.StoredTensor``).

    Raises:
      InvalidModelError: the data cannot be read (truncated file), or
        ``check_dataset`` refuses it.
      InvalidWeightsError: a value has no TF.js form.
    """
    check_dataset(dataset, name, where, shape)
    if backing is not None:
        kept = _stored_tensor(dataset, name, where, backing)
        if kept is not None:
            return kept
    try:
        array = np.asarray(dataset[()])
    except (OSError, RuntimeError, ValueError, TypeError) as e:
        raise InvalidModelError("%s: cannot read weight %r (%s); the file is corrupt or "
                                "truncated" % (where, name, h5_reason(e) if isinstance(e, OSError)
                                               else e)) from None
    dtype, data = wf.to_logical(name, array, where)
    return Tensor(name=name, data=data, dtype=dtype)


# Datasets the writers can copy byte for byte: their TF.js dtype is their own.
_STREAMED_DTYPES = {np.dtype("<f4"): "float32", np.dtype("<i4"): "int32"}


def _stored_tensor(dataset, name: str, where: str,
                   backing: Tuple[str, int]) -> Optional[stored.StoredTensor]:
    """The dataset as a byte range of its file, or None to read it now.

    Only an unfiltered, contiguous (and, by ``check_dataset``, fully written)
    float32/int32 dataset of at least ``stored.STORED_MIN_BYTES`` is kept in
    place; its first and last values are compared with HDF5's own reading of
    them, so a misread layout can only mean reading it now.
    """
    dtype = dataset.dtype
    if dtype not in _STREAMED_DTYPES or dataset.nbytes < stored.STORED_MIN_BYTES:
        return None
    try:
        plist = dataset.id.get_create_plist()
        if plist.get_layout() != h5py.h5d.CONTIGUOUS or plist.get_nfilters():
            return None
        offset = dataset.id.get_offset()
    except (OSError, RuntimeError, ValueError) as e:
        raise InvalidModelError("%s: cannot read weight %r's header (%s); the file is corrupt"
                                % (where, name, h5_reason(e) if isinstance(e, OSError) else e)
                                ) from None
    if offset is None:
        return None
    path, base = backing
    start, size = base + offset, int(dataset.nbytes)
    if start + size > os.path.getsize(path):
        raise InvalidModelError("%s: weight %r runs past the end of the file (%d bytes from "
                                "offset %d of %s); the file is truncated"
                                % (where, name, size, start, path))
    tensor = stored.StoredTensor(name, _STREAMED_DTYPES[dtype], dataset.shape, dtype,
                                 [stored.FileRange(path, start, size)], where)
    ends = [(0,) * dataset.ndim, tuple(d - 1 for d in dataset.shape)]
    with open(path, "rb") as f:
        for index, at in zip(ends, (start, start + size - dtype.itemsize)):
            f.seek(at)
            raw = np.frombuffer(f.read(dtype.itemsize), dtype=dtype)
            if raw.size != 1 or raw.tobytes() != np.asarray(dataset[index], dtype).tobytes():
                return None
    return tensor


def attr_text(value: Any) -> str:
    """An HDF5 string attribute as ``str`` (h5py gives ``bytes`` for old files)."""
    if isinstance(value, np.ndarray) and value.shape == ():
        value = value[()]
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8")
    return str(value)


# An attribute may declare at most this many bytes in memory (elements times
# the element size): h5py allocates the whole array before libhdf5 reads a byte,
# so a damaged dataspace would otherwise cost gigabytes. Keras splits list
# attributes into chunks under the 64 KiB object-header limit; the largest
# model_config is under 1 MiB.
MAX_ATTRIBUTE_BYTES = 64 << 20


def read_attr(attrs, name: str) -> Any:
    """``attrs[name]``, refused (InvalidModelError) if its declared size is absurd."""
    aid = attrs.get_id(name)
    elements = 1
    for d in aid.shape or ():
        elements *= int(d)
    declared = elements * max(int(aid.dtype.itemsize), 1)
    if declared > MAX_ATTRIBUTE_BYTES:
        where = getattr(getattr(attrs, "_id", None), "name", None) or "/"
        raise InvalidModelError(
            "%s: attribute %r of %s declares %d elements (%d bytes), over the %d-byte limit; "
            "the file is corrupt" % (attrs_file(attrs), name, where.decode("utf-8", "replace")
                                     if isinstance(where, bytes) else where, elements, declared,
                                     MAX_ATTRIBUTE_BYTES))
    return attrs[name]


def attrs_file(attrs) -> str:
    try:
        return h5py.h5f.get_name(attrs._id.fid if hasattr(attrs._id, "fid") else attrs._id).decode(
            "utf-8", "replace")
    except Exception:  # pylint: disable=broad-except  (only for the message)
        return "HDF5 file"


def attr_list(group: h5py.Group, name: str) -> List[str]:
    """A string-list attribute, reassembled if Keras split it.

    Keras writes a list attribute larger than the HDF5 object-header limit as
    ``name0``, ``name1``, ... chunks.
    """
    if name in group.attrs:
        chunks = [read_attr(group.attrs, name)]
    else:
        chunks = []
        while "%s%d" % (name, len(chunks)) in group.attrs:
            chunks.append(read_attr(group.attrs, "%s%d" % (name, len(chunks))))
    return [attr_text(v) for chunk in chunks for v in np.asarray(chunk).reshape(-1)]


def json_attr(attrs, name: str, where: str) -> Any:
    return jsonio.loads(attr_text(read_attr(attrs, name)), "%s: attribute %r" % (where, name))


def layers_model(translated: TranslatedModel, tensors: Sequence[Tensor],
                 keras_version: Optional[str], backend: Optional[str],
                 training_config: Optional[Dict[str, Any]]) -> LayersModel:
    """Assembles the LayersModel of a translated full model."""
    topology: Dict[str, Any] = {}
    if keras_version is not None:
        topology["keras_version"] = keras_version
    if backend is not None:
        topology["backend"] = backend
    topology["model_config"] = translated.model_config
    if training_config is not None:
        topology["training_config"] = training_config
    return LayersModel(
        topology=topology,
        groups=(list(tensors),),
        generated_by="keras v%s" % keras_version if keras_version is not None else None,
        layer_of={s.name: s.layer for s in translated.slots})


def _read_full_model(f: h5py.File, path: str) -> LayersModel:
    model_config = json_attr(f.attrs, "model_config", path)
    weights = f.get("model_weights")
    if not isinstance(weights, h5py.Group):
        raise InvalidModelError("%s: has a model_config but no 'model_weights' group" % path)
    # Keras writes the version on the root and on model_weights; old files only
    # on one of them.
    version_attrs = f.attrs if "keras_version" in f.attrs else weights.attrs
    keras_version = attr_text(read_attr(version_attrs, "keras_version")) \
        if "keras_version" in version_attrs else None
    backend = attr_text(read_attr(f.attrs, "backend")) if "backend" in f.attrs else None
    training_config = json_attr(f.attrs, "training_config", path) \
        if "training_config" in f.attrs else None
    translated = keras_config.translate_model_config(model_config, keras_version, path)

    file_layers = attr_list(weights, "layer_names")
    config_layers = set(translated.layer_names)
    for layer in file_layers:
        if layer not in config_layers and _weight_names(weights, layer, path):
            raise InvalidModelError("%s: model_weights has weights for layer %r, which the "
                                    "model config does not have" % (path, layer))
    _check_no_model_level_weights(weights, path)

    nested = _nested_model_layers(model_config)
    tensors: List[Tensor] = []
    for layer in translated.layer_names:
        slots = translated.slots_of(layer)
        names = _weight_names(weights, layer, path) if layer in weights else []
        if not slots and not names:
            continue
        if len(names) != len(slots):
            raise InvalidModelError(
                "%s: layer %r has %d weights in the file (%s) but its config implies %d "
                "(%s)" % (path, layer, len(names), ", ".join(names) or "none", len(slots),
                          ", ".join(s.local for s in slots) or "none"))
        pairs = (_match_by_name(names, slots, layer, path) if layer in nested
                 else _match_by_position(names, slots, layer, path))
        by_slot = {slot.name: name for name, slot in pairs}
        group = weights[layer]
        for slot in slots:
            tensors.append(read_tensor(group[by_slot[slot.name]], slot.name, path, slot.shape,
                                       backing=(path, 0)))
    return layers_model(translated, tensors, keras_version, backend, training_config)


def _weight_names(weights: h5py.Group, layer: str, path: str) -> List[str]:
    group = weights.get(layer)
    if not isinstance(group, h5py.Group):
        raise InvalidModelError("%s: layer_names lists layer %r but the file has no group "
                                "for it" % (path, layer))
    names = attr_list(group, "weight_names")
    for name in names:
        if not isinstance(group.get(name), h5py.Dataset):
            raise InvalidModelError("%s: layer %r lists weight %r but has no dataset for it"
                                    % (path, layer, name))
    return names


def _check_no_model_level_weights(weights: h5py.Group, path: str) -> None:
    # Keras 3 stores variables created on the model itself (outside any layer)
    # here; TF.js models have no such variables.
    group = weights.get("top_level_model_weights")
    if isinstance(group, h5py.Group) and attr_list(group, "weight_names"):
        raise UnsupportedLayerError(
            "%s: the model has variables outside its layers (%s); TF.js layers models "
            "hold weights in layers only" % (path, ", ".join(attr_list(group, "weight_names"))))


def _nested_model_layers(model_config: Dict[str, Any]) -> set:
    config = model_config.get("config")
    layers = config if isinstance(config, list) else (config or {}).get("layers", [])
    return {(e.get("config") or {}).get("name", e.get("name")) for e in layers
            if e.get("class_name") in keras_config.MODEL_CLASSES}


def _local(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    return last[:-2] if last.endswith(":0") else last


def _match_by_position(names, slots: List[WeightSlot], layer, path):
    # A plain layer (or wrapper) stores its weights in layer.weights order,
    # which the plan follows; the name check catches a wrong plan.
    for index, (name, slot) in enumerate(zip(names, slots)):
        if _local(name) != slot.local and _local(name) not in slot.aliases:
            raise InvalidModelError(
                "%s: layer %r: weight %d is %r in the file but the config implies %r"
                % (path, layer, index, name, slot.local))
    return list(zip(names, slots))


def _match_by_name(names, slots: List[WeightSlot], layer, path):
    # A nested model lists its weights in Keras 2 as trainable-then-non-
    # trainable, in Keras 3 layer by layer, so match each name to the slot whose
    # variable name ends it and whose layer appears in its path: the layer that
    # created the variable, or the TF.js scope (Keras 2 names a TimeDistributed's
    # variables after the wrapper, Keras 3 after the wrapped layer).
    remaining = list(slots)
    pairs = []
    for name in names:
        parts = name.split("/")[:-1]
        local = _local(name)
        matches = [s for s in remaining
                   if (local == s.local or local in s.aliases)
                   and (s.owner in parts or s.name.split("/")[-2] in parts)]
        if len(matches) != 1:
            raise InvalidModelError(
                "%s: nested model %r: cannot match file weight %r to %s of the config's "
                "weights (%s)" % (path, layer, name, "any" if not matches else "exactly one",
                                  ", ".join(s.name for s in remaining)))
        remaining.remove(matches[0])
        pairs.append((name, matches[0]))
    return pairs


def check_all_read(weights: h5py.Group, read: set, where: str) -> None:
    """Raises InvalidModelError if a Keras 3 layout holds variables left unread.

    Top-level subtrees holding training state (optimizer, metrics) are skipped:
    TF.js layers models load neither.
    """
    unread: List[str] = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and name not in read \
                and name.split("/", 1)[0] not in _TRAINING_STATE:
            unread.append(name)

    weights.visititems(visit)
    if unread:
        raise InvalidModelError(
            "%s: %d variables are not accounted for by the model (%s%s)"
            % (where, len(unread), ", ".join(unread[:5]), ", ..." if len(unread) > 5 else ""))


def _read_weights_only(f: h5py.File, path: str) -> LayersModel:
    tensors: List[Tensor] = []
    layer_of: Dict[str, str] = {}
    for layer in attr_list(f, "layer_names"):
        for weight in _weight_names(f, layer, path):
            # Like the official converter: the file's name without ":0". TF.js
            # loadWeights also accepts these names for RNN cells
            # (lstm/lstm_cell/kernel), dropping the cell segment.
            name = weight[:-2] if weight.endswith(":0") else weight
            tensors.append(read_tensor(f[layer][weight], name, path, backing=(path, 0)))
            layer_of[name] = layer
    return LayersModel(topology=None, groups=(tensors,), generated_by=None, layer_of=layer_of)


class _Keras3WeightsReader:
    """Names the variables of a Keras 3 weights-only file by its structure."""

    def __init__(self, f: h5py.File, path: str):
        self.f = f
        self.path = path
        self.tensors: List[Tensor] = []
        self.layer_of: Dict[str, str] = {}
        self.read: set = set()

    def container(self, group: h5py.Group, top: Optional[str]) -> None:
        layers = group.get("layers")
        if not isinstance(layers, h5py.Group):
            return
        for key in sorted(layers, key=_natural_key):
            self.layer(layers[key], key, top)

    def layer(self, group: h5py.Group, key: str, top: Optional[str]) -> None:
        name = self._layer_name(group)
        top = top or name
        if isinstance(group.get("layers"), h5py.Group):            # nested model
            self._own_vars_empty(group, name)
            self.container(group, top)
        elif isinstance(group.get("forward_layer"), h5py.Group):   # Bidirectional
            for direction in ("forward_layer", "backward_layer"):
                half = group[direction]
                scope = "%s/%s" % (name, self._layer_name(half))
                self.variables(_cell_or_own_vars(half), "LSTM", scope, top, name)
        elif isinstance(group.get("layer"), h5py.Group):           # TimeDistributed
            if _datasets(_cell_or_own_vars(group["layer"])):
                raise InvalidModelError(
                    "%s: layer %r wraps a layer whose class the weights file does not "
                    "record, so its variables cannot be named; convert the full model "
                    "(.keras) instead" % (self.path, name))
        else:
            vars_group = _cell_or_own_vars(group)
            if not _datasets(vars_group):
                return
            cls = keras_config.class_for_v3_key(key)
            if cls is None:
                raise InvalidModelError(
                    "%s: layer %r is stored as %r, a class this converter does not know, "
                    "so its variables cannot be named" % (self.path, name, key))
            self.variables(vars_group, cls, name, top, name)

    def variables(self, vars_group: h5py.Group, cls: str, scope: str, top: str,
                  layer: str) -> None:
        count = len(_datasets(vars_group))
        names = keras_config.local_names_for_count(cls, count)
        if names is None:
            raise InvalidModelError(
                "%s: layer %r (%s) has %d variables, which do not identify its weight "
                "names without the model config; convert the full model (.keras) instead"
                % (self.path, layer, cls, count))
        for index, local in enumerate(names):
            dataset = vars_group.get(str(index))
            name = "%s/%s" % (scope, local)
            self.tensors.append(read_tensor(dataset, name, self.path, backing=(self.path, 0)))
            self.layer_of[name] = top
            self.read.add("%s/%d" % (vars_group.name.lstrip("/"), index))

    def _layer_name(self, group: h5py.Group) -> str:
        vars_group = group.get("vars")
        name = vars_group.attrs.get("name") if isinstance(vars_group, h5py.Group) else None
        if name is None:
            raise InvalidModelError(
                "%s: %s records no layer name (Keras versions before the name attribute); "
                "convert the full model (.keras) instead" % (self.path, group.name))
        return attr_text(name)

    def _own_vars_empty(self, group: h5py.Group, name: str) -> None:
        if _datasets(group["vars"]):
            raise UnsupportedLayerError(
                "%s: model %r has variables outside its layers; TF.js layers models hold "
                "weights in layers only" % (self.path, name))


def _datasets(group: h5py.Group) -> List[str]:
    return [k for k in group if isinstance(group[k], h5py.Dataset)]


def _cell_or_own_vars(group: h5py.Group) -> h5py.Group:
    # RNN layers keep their variables on the cell.
    cell = group.get("cell")
    return cell["vars"] if isinstance(cell, h5py.Group) else group["vars"]


def _natural_key(key: str):
    base, number = _KEY_SUFFIX.match(key).groups()
    return base, int(number or 0)


def _read_keras3_weights_only(f: h5py.File, path: str) -> LayersModel:
    own = f.get("vars")
    if isinstance(own, h5py.Group) and _datasets(own):
        raise UnsupportedLayerError(
            "%s: the model has variables outside its layers; TF.js layers models hold "
            "weights in layers only" % path)
    reader = _Keras3WeightsReader(f, path)
    reader.container(f, None)
    check_all_read(f, reader.read, path)
    return LayersModel(topology=None, groups=(reader.tensors,), generated_by=None,
                       layer_of=reader.layer_of)
