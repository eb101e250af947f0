"""Refuses HDF5 files whose global heap would make libhdf5 loop forever.

Variable-length strings (the attributes Keras writes: ``model_config``,
``layer_names``, ``weight_names``...) live in *global heap collections*: a
``GCOL`` signature, a version byte, the collection's size, then objects of a
16-byte header (index, reference count, reserved, size) and data padded to 8
bytes; index 0 is the free space that ends the collection. When libhdf5 (1.14,
as h5py wheels bundle it) loads a collection it steps from object to object by
the declared sizes and never checks that a step advances: a free-space object of
size 0 spins it forever, holding Python's GIL, on the first attribute read (a
mutation fuzzer finds such a file within minutes, tests/fuzz).

``check_global_heaps`` walks every collection the way libhdf5 will before any
attribute is read, and refuses a file in which a step would not advance or
would leave its collection. Collections are found by their signature anywhere
in the file (a dataset's declared storage may overlap a heap, so none is
skipped), read in 4 MiB chunks: one sequential pass, about a second per 2 GB
from the page cache. A signature inside weight bytes is taken for a collection
only if its version byte is 1 and its declared size fits the file (for random
bytes, one chance in 2^40 per occurrence).
"""

import struct
from typing import BinaryIO, Iterator

from converter.errors import InvalidModelError

_SIGNATURE = b"GCOL"
_HEADER = 16  # signature, version, 3 reserved bytes, 8-byte collection size
_OBJECT_HEADER = 16  # index (2), reference count (2), reserved (4), size (8)
_CHUNK = 4 << 20


def _signatures(stream: BinaryIO, start: int, end: int) -> Iterator[int]:
    """Offsets of ``GCOL`` in ``[start, end)``, read in 4 MiB chunks."""
    position = start
    after = start  # signatures before this were yielded already
    while position < end:
        # Each window starts 3 bytes early, so a signature across chunks is whole in one.
        begin = max(start, position - (len(_SIGNATURE) - 1))
        stream.seek(begin)
        data = stream.read(min(_CHUNK, end - position) + position - begin)
        if len(data) <= position - begin:
            return
        found = data.find(_SIGNATURE)
        while found != -1:
            if begin + found >= after:
                yield begin + found
                after = begin + found + 1
            found = data.find(_SIGNATURE, found + 1)
        position = begin + len(data)


def _walk(stream: BinaryIO, offset: int, file_size: int) -> str:
    """Why libhdf5 would not get through the collection at ``offset`` ("" if it would)."""
    stream.seek(offset)
    header = stream.read(_HEADER)
    if len(header) < _HEADER or header[4] != 1:
        return ""  # libhdf5 rejects it (or it is not a collection): an error, not a loop
    (size,) = struct.unpack_from("<Q", header, 8)
    end = offset + size
    if size < _HEADER or end > file_size:
        return ""  # libhdf5 fails to read it
    stream.seek(offset)
    data = stream.read(size)
    p = _HEADER
    while p < size:
        if p + _OBJECT_HEADER > size:
            return ""  # too small for an object: trailing free space
        index, _, _, object_size = struct.unpack_from("<HHIQ", data, p)
        need = _OBJECT_HEADER + ((object_size + 7) & ~7) if index else object_size
        if need == 0 or need > size - p:
            return ("object %d at byte %d has size %d, which %s" % (
                index, offset + p, object_size,
                "does not advance" if need == 0 else "runs past the collection's end"))
        p += need
    return ""


def check_global_heaps(stream: BinaryIO, where: str) -> None:
    """Raises InvalidModelError if a global heap collection of ``stream`` is malformed.

    ``stream``: the HDF5 file, seekable binary; ``where``: its name in messages.
    """
    stream.seek(0, 2)
    file_size = stream.tell()
    for offset in _signatures(stream, 0, file_size):
        why = _walk(stream, offset, file_size)
        if why:
            raise InvalidModelError("%s: corrupt HDF5 global heap at byte %d (%s); libhdf5 "
                                    "would loop on it forever" % (where, offset, why))
