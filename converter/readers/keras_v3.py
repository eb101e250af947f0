"""Reads Keras 3 ``.keras`` archives into a LayersModel, in place.

A ``.keras`` file is a zip of ``config.json`` (the model config),
``metadata.json`` (``keras_version``) and ``model.weights.h5``. The weights file
is organised by object structure, not by weight name: a layer's variables are
datasets ``0``, ``1``, ... of ``layers/<key>/vars`` (``<key>`` the snake_case
class name, ``_1``, ``_2`` for repeats), RNN cells under ``cell/vars``,
Bidirectional halves under ``forward_layer``/``backward_layer``, nested models
under their own ``layers``. ``keras_config`` computes where each variable is and
what TF.js calls it.

Nothing is extracted: the archive members are read in memory, and the weights
file is opened by h5py through a read-only view of the archive when it is
stored uncompressed (Keras writes it so), or from memory otherwise. Stored
uncompressed, its large datasets are byte ranges of the archive itself, which the
writer streams (``keras_h5.read_tensor``'s ``backing``).
"""

import io
import os
import struct
import zipfile
import zlib
from typing import Any, List, Optional, Tuple

import h5py

from converter import jsonio
from converter.errors import InvalidModelError
from converter.model import LayersModel, Tensor
from converter.readers import keras_config
from converter.readers.keras_h5 import (check_all_read, check_file, h5_errors, layers_model,
                                         open_h5, read_tensor)

CONFIG_JSON = "config.json"
METADATA_JSON = "metadata.json"
WEIGHTS_H5 = "model.weights.h5"

_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_HEADER_SIGNATURE = b"PK\x03\x04"


def read_keras_v3(path: str) -> LayersModel:
    """Reads a Keras 3 ``.keras`` archive.

    Args:
      path: the ``.keras`` file.

    Returns:
      The model, with its config translated for TF.js and its weights named as
      TF.js names them.

    Raises:
      InvalidModelError: the file is missing, not a zip, lacks a member, or its
        members are corrupt or inconsistent with each other.
      UnsupportedLayerError: the model has a layer TF.js cannot run.
      InvalidWeightsError: a weight value has no TF.js dtype.
    """
    check_file(path, "Keras .keras archive")
    with open_zip(path) as archive:
        members = set(archive.namelist())
        for member in (CONFIG_JSON, WEIGHTS_H5):
            if member not in members:
                raise InvalidModelError("%s: the archive has no %s (members: %s)"
                                        % (path, member, ", ".join(sorted(members)) or "none"))
        config = json_member(archive, CONFIG_JSON, path)
        metadata = json_member(archive, METADATA_JSON, path) \
            if METADATA_JSON in members else {}
        version = metadata.get("keras_version") if isinstance(metadata, dict) else None
        keras_version = str(version) if version is not None else None
        translated = keras_config.translate_model_config(config, keras_version, path)
        where = "%s!%s" % (path, WEIGHTS_H5)
        source = weights_source(archive, path)
        try:
            backing = ((path, source.offset) if isinstance(source, _StoredMember)
                       else None)
            with open_h5(source, where) as weights, h5_errors(where):
                tensors = _read_weights(weights, translated, where, backing)
        finally:
            source.close()
    return layers_model(translated, tensors, keras_version, None, None)


# Members are read with a limit, never whole: a 1 MB archive can declare (and
# deflate to) gigabytes. config.json of the largest Keras application models is
# well under 1 MiB; 32 MiB leaves room for hand-built giants.
MAX_JSON_MEMBER_BYTES = 32 << 20
# A deflated weights member may expand at most this much: float weights barely
# compress (Keras itself stores them uncompressed), so more means a bomb.
MAX_WEIGHTS_EXPANSION = 100
_CHUNK = 1 << 20


# What zipfile raises on a damaged archive besides BadZipFile: a central directory
# naming an unknown zip version or compression (NotImplementedError), a name
# flagged UTF-8 that is not (UnicodeDecodeError), offsets past the end (ValueError,
# EOFError, OSError), a corrupt deflate stream (zlib.error), a member flagged
# encrypted (RuntimeError: password required).
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError,
              UnicodeDecodeError, ValueError, RuntimeError)


def open_zip(path: str) -> zipfile.ZipFile:
    """Opens a ``.keras`` archive; InvalidModelError (one line) if it is no readable zip."""
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise InvalidModelError(
            "%s: not a zip archive (a .keras file is a zip of %s, %s and %s)"
            % (path, CONFIG_JSON, METADATA_JSON, WEIGHTS_H5)) from None
    except ZIP_ERRORS as e:
        raise InvalidModelError("%s: cannot read the zip archive (%s: %s); the file is corrupt"
                                % (path, type(e).__name__, e)) from None


def _read_member(archive: zipfile.ZipFile, member: str, path: str, limit: int) -> bytes:
    """The bytes of ``member``, CRC-checked, refusing more than ``limit`` bytes."""
    info = archive.getinfo(member)
    if info.file_size > limit:
        raise InvalidModelError("%s: member %s declares %d bytes, over the %d-byte limit for it"
                                % (path, member, info.file_size, limit))
    try:
        with archive.open(member) as f:
            data = f.read(limit + 1)  # zipfile checks the CRC once the member is read
    except ZIP_ERRORS as e:
        raise InvalidModelError("%s: member %s is corrupt (%s)" % (path, member, e)) from None
    if len(data) > limit:
        raise InvalidModelError("%s: member %s holds over %d bytes, more than its header says"
                                % (path, member, limit))
    return data


def json_member(archive: zipfile.ZipFile, member: str, path: str) -> Any:
    data = _read_member(archive, member, path, MAX_JSON_MEMBER_BYTES)
    return jsonio.loads(data, "%s: %s" % (path, member))


class _StoredMember(io.RawIOBase):
    """A read-only, seekable view of an uncompressed zip member's bytes."""

    def __init__(self, path: str, offset: int, size: int):
        super().__init__()
        self._file = open(path, "rb")
        self._offset = offset
        self._size = size
        self._pos = 0

    @property
    def offset(self) -> int:
        """Where the member's bytes start in the archive."""
        return self._offset

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def readinto(self, buffer) -> int:
        n = max(0, min(len(buffer), self._size - self._pos))
        if n == 0:
            return 0
        self._file.seek(self._offset + self._pos)
        got = self._file.readinto(memoryview(buffer)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def weights_source(archive: zipfile.ZipFile, path: str) -> io.IOBase:
    """A seekable binary file of the weights member, for h5py."""
    info = archive.getinfo(WEIGHTS_H5)
    if info.flag_bits & 0x1:
        raise InvalidModelError("%s: member %s is encrypted" % (path, WEIGHTS_H5))
    if info.compress_type == zipfile.ZIP_STORED:
        # Uncompressed: h5py reads straight from the archive, once its CRC matched.
        offset = _data_offset(path, info)
        if offset + info.file_size > os.path.getsize(path):
            raise InvalidModelError("%s: member %s is truncated" % (path, WEIGHTS_H5))
        _check_crc(path, offset, info)
        return _StoredMember(path, offset, info.file_size)
    limit = MAX_WEIGHTS_EXPANSION * info.compress_size + _CHUNK
    return io.BytesIO(_read_member(archive, WEIGHTS_H5, path, limit))


def _check_crc(path: str, offset: int, info: zipfile.ZipInfo) -> None:
    crc, left = 0, info.file_size
    with open(path, "rb") as f:
        f.seek(offset)
        while left:
            chunk = f.read(min(_CHUNK, left))
            if not chunk:
                raise InvalidModelError("%s: member %s is truncated" % (path, WEIGHTS_H5))
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
    if crc != info.CRC:
        raise InvalidModelError("%s: member %s fails its CRC-32 check (stored %08x, computed "
                                "%08x); the archive is corrupt" % (path, WEIGHTS_H5, info.CRC, crc))


def _data_offset(path: str, info: zipfile.ZipInfo) -> int:
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        header = f.read(_LOCAL_HEADER.size)
    if len(header) != _LOCAL_HEADER.size:
        raise InvalidModelError("%s: member %s is truncated" % (path, WEIGHTS_H5))
    signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
    if signature != _LOCAL_HEADER_SIGNATURE:
        raise InvalidModelError("%s: member %s has a corrupt zip header" % (path, WEIGHTS_H5))
    return info.header_offset + _LOCAL_HEADER.size + name_length + extra_length


def _read_weights(weights: h5py.File, translated: keras_config.TranslatedModel,
                  where: str, backing: Optional[Tuple[str, int]] = None) -> List[Tensor]:
    tensors = []
    for slot in translated.slots:
        dataset = weights.get(slot.v3_path)
        if not isinstance(dataset, h5py.Dataset):
            raise InvalidModelError(
                "%s: weight %r of layer %r is missing (expected a dataset at %s)"
                % (where, slot.name, slot.layer, slot.v3_path))
        _check_owner(weights, slot, where)
        tensors.append(read_tensor(dataset, slot.name, where, slot.shape, backing))
    check_all_read(weights, {s.v3_path for s in translated.slots}, where)
    return tensors


def _check_owner(weights: h5py.File, slot: keras_config.WeightSlot, where: str) -> None:
    # Recent Keras 3 versions (3.15 does) record the layer name on each vars
    # group; when present it confirms the class-name-based path (RNN cells
    # carry the cell's name, which the config does not give).
    group_path = slot.v3_path.rsplit("/", 1)[0]
    if group_path.endswith("cell/vars"):
        return
    recorded: Optional[Any] = weights[group_path].attrs.get("name")
    if recorded is None:
        return
    recorded = recorded.decode("utf-8") if isinstance(recorded, bytes) else str(recorded)
    if recorded != slot.owner:
        raise InvalidModelError(
            "%s: %s holds the variables of layer %r, but the config puts layer %r there"
            % (where, group_path, recorded, slot.owner))
