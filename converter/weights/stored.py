"""Tensors whose values stay in their source file until a writer needs them.

A model of several GB cannot be held in memory whole, but most of its bytes
are already laid out as the writers want them: a Keras HDF5 dataset stored
contiguously and uncompressed is one byte range of the ``.h5`` (or of the
``.keras`` archive holding it uncompressed), and a TF.js weight is a byte range
of its group's concatenated shards. A ``StoredTensor`` records those ranges
and reads them only when its ``data`` is asked for (every time: nothing is
cached), or streams them in bounded chunks with ``chunks``, so a conversion
holds one tensor (or one chunk) at a time instead of the whole model.

The files are checked not to have changed (size, mtime, inode) since the
reader validated them before each read.
"""

import math
import os
from typing import Iterator, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from converter.errors import InvalidModelError
from converter.model import Quantization, Tensor

# Tensors smaller than this are read at once, as before: streaming them saves
# nothing and every later use would read the file again.
STORED_MIN_BYTES = 16 << 20
# The largest piece ``chunks`` reads at a time.
CHUNK_BYTES = 4 << 20


class FileRange(NamedTuple):
    """``size`` bytes of the file at ``path`` from ``offset``."""

    path: str
    offset: int
    size: int


class FileStamp(NamedTuple):
    """What must not change about a file between validation and reading."""

    size: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: str) -> "FileStamp":
        st = os.stat(path)
        return cls(st.st_size, st.st_mtime_ns, st.st_ino)


class StoredTensor(Tensor):
    """A ``Tensor`` whose ``data`` is read from file ranges on each access.

    The ranges, concatenated, hold the tensor's values in C order in the numpy
    dtype ``storage`` (little-endian), exactly as a TF.js shard stores them.
    """

    def __init__(self, name: str, dtype: str, shape: Sequence[int], storage: np.dtype,
                 ranges: Sequence[FileRange], where: str,
                 quantization: Optional[Quantization] = None):
        """
        Args:
          name: the weight name.
          dtype: the logical TF.js dtype.
          shape: the tensor's shape.
          storage: numpy dtype of the stored values.
          ranges: the byte ranges holding them, in order; their sizes add up to
            ``prod(shape) * storage.itemsize``.
          where: the source, for messages.
          quantization: as for ``Tensor``.
        """
        shape = tuple(int(d) for d in shape)
        storage = np.dtype(storage)
        want = math.prod(shape) * storage.itemsize
        have = sum(r.size for r in ranges)
        if want != have:
            raise ValueError("tensor %r needs %d bytes, its ranges hold %d" % (name, want, have))
        for key, value in (("name", name), ("dtype", dtype), ("quantization", quantization),
                           ("_shape", shape), ("storage", storage),
                           ("ranges", tuple(ranges)), ("where", where),
                           ("_stamps", {r.path: FileStamp.of(r.path) for r in ranges})):
            object.__setattr__(self, key, value)

    @property
    def shape(self) -> Tuple[int, ...]:
        return self._shape

    @property
    def nbytes(self) -> int:
        return sum(r.size for r in self.ranges)

    @property
    def data(self) -> np.ndarray:  # type: ignore[override]
        """The values, read now (a new array each time)."""
        buf = np.empty(self.nbytes, dtype=np.uint8)
        view = memoryview(buf)
        offset = 0
        for piece in self._pieces(self.nbytes):
            view[offset:offset + len(piece)] = piece
            offset += len(piece)
        return buf.view(self.storage).reshape(self._shape)

    def chunks(self, limit: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The stored bytes, in order, at most ``limit`` bytes at a time."""
        return self._pieces(limit)

    def _pieces(self, limit: int) -> Iterator[bytes]:
        for r in self.ranges:
            self._check_unchanged(r.path)
            with open(r.path, "rb") as f:
                f.seek(r.offset)
                left = r.size
                while left:
                    piece = f.read(min(limit, left))
                    if not piece:
                        raise InvalidModelError(
                            "%s: %s ends before weight %r does (it was truncated while being "
                            "converted)" % (self.where, r.path, self.name))
                    left -= len(piece)
                    yield piece

    def _check_unchanged(self, path: str) -> None:
        try:
            now = FileStamp.of(path)
        except OSError as e:
            raise InvalidModelError("%s: cannot read %s again for weight %r: %s"
                                    % (self.where, path, self.name, e.strerror)) from None
        if now != self._stamps[path]:
            raise InvalidModelError("%s: %s changed while being converted (weight %r); "
                                    "convert it again" % (self.where, path, self.name))

    def __repr__(self) -> str:
        return "StoredTensor(%r, %s, shape=%s, %d ranges)" % (
            self.name, self.dtype, list(self._shape), len(self.ranges))

    def __eq__(self, other) -> bool:
        return self is other

    __hash__ = object.__hash__


def stored_or_read(tensor: StoredTensor) -> Tensor:
    """``tensor`` itself when it is big enough to be worth streaming, else its
    values read now as a plain ``Tensor``."""
    if tensor.nbytes >= STORED_MIN_BYTES:
        return tensor
    return Tensor(tensor.name, tensor.data, tensor.dtype, tensor.quantization)


def encode_chunks(tensor: Tensor) -> Iterator:
    """The bytes of ``tensor`` in a shard stream, as a sequence of buffers.

    A ``StoredTensor`` whose stored bytes are already its shard bytes streams
    them in chunks of ``CHUNK_BYTES``; anything else is encoded in one piece
    (``format.encode``).
    """
    from converter.weights import format as wf
    if isinstance(tensor, StoredTensor) and tensor.storage == wf.storage_dtype(
            tensor.dtype, tensor.quantization):
        return tensor.chunks()
    return iter((wf.encode(tensor),))
