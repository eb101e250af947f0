"""Writes weight groups as TF.js shard files and returns their manifest.

Tensors are written one at a time; a ``stored.StoredTensor`` is copied from its
source file in bounded chunks, so writing holds no more than one chunk of it.
"""

import hashlib
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from converter.errors import InvalidWeightsError, UsageError
from converter.model import Tensor
from converter.weights import format as wf
from converter.weights.stored import encode_chunks


def manifest_entry(tensor: Tensor) -> Dict:
    """The ``weightsManifest`` entry of one tensor."""
    entry = {wf.NAME: tensor.name, wf.SHAPE: list(tensor.shape), wf.DTYPE: tensor.dtype}
    q = tensor.quantization
    if q is not None:
        spec = {wf.DTYPE: q.dtype, wf.QUANT_ORIGINAL_DTYPE: tensor.dtype}
        if q.dtype in wf.AFFINE_DTYPES:
            spec[wf.QUANT_MIN] = float(q.min)
            spec[wf.QUANT_SCALE] = float(q.scale)
        entry[wf.QUANTIZATION] = spec
    return entry


def check_shard_size(shard_size: int) -> int:
    if isinstance(shard_size, bool) or not isinstance(shard_size, int) or shard_size <= 0:
        raise UsageError("--weight_shard_size_bytes must be a positive integer, got %r" % (shard_size,))
    return shard_size


class _ShardStream:
    """Writes a byte stream into consecutive files of at most ``shard_size`` bytes;
    with ``hashed``, hashes each file (SHA-384, into ``digests``) as it goes."""

    def __init__(self, directory: str, paths: Sequence[str], shard_size: int,
                 name_of: Optional[Callable[[int], str]] = None, hashed: bool = False):
        self._directory = directory
        self._paths = list(paths)
        self._name_of = name_of or self._paths.__getitem__
        self._shard_size = shard_size
        self._index = -1
        self._file = None
        self._hash = None
        self._hashed = hashed
        self._room = 0
        self.digests: List[bytes] = []

    def write(self, buf) -> None:
        view = memoryview(buf).cast("B")
        while len(view):
            if self._room == 0:
                self._next_file()
            n = min(self._room, len(view))
            self._file.write(view[:n])
            if self._hash is not None:
                self._hash.update(view[:n])
            view = view[n:]
            self._room -= n

    def _end_file(self):
        if self._file is not None:
            self._file.close()
            if self._hash is not None:
                self.digests.append(self._hash.digest())
            self._file = None

    def _next_file(self):
        self._end_file()
        self._index += 1
        self._file = open(os.path.join(self._directory, self._name_of(self._index)), "wb")
        self._hash = hashlib.sha384() if self._hashed else None
        self._room = self._shard_size

    @property
    def num_files(self) -> int:
        return self._index + 1

    def close(self, check: bool = True) -> None:
        self._end_file()
        if check and self._index + 1 != len(self._paths):
            raise AssertionError("wrote %d of %d shards" % (self._index + 1, len(self._paths)))


def _final_names(directory: str, provisional: Sequence[str], group_index: int,
                 digests: Sequence[bytes], content_hash: bool) -> List[str]:
    """Renames a group's shards from their provisional names to their final ones."""
    n = len(provisional)
    paths = [wf.shard_file_name(group_index, i, n,
                                wf.content_hash(digests[i]) if content_hash else None)
             for i in range(n)]
    for old, new in zip(provisional, paths):
        if old != new:
            os.replace(os.path.join(directory, old), os.path.join(directory, new))
    return paths


def write_weight_groups(groups: Sequence[Sequence[Tensor]], directory: str,
                        shard_size: int = wf.DEFAULT_SHARD_SIZE_BYTES,
                        content_hash: bool = False) -> List[Dict]:
    """Writes every group's shards into ``directory``.

    Tensors are encoded in order and the group's byte stream is cut every
    ``shard_size`` bytes; a group of 0 bytes gets no file. With
    ``content_hash``, shard names carry their content hash
    (``groupG-shardIofN.<hash>.bin``, see ``format.content_hash``).

    Returns:
      The ``weightsManifest`` list, one entry per group.

    Raises:
      InvalidWeightsError: two tensors share a name, or a tensor's dtype is not a
        TF.js dtype.
      UsageError: ``shard_size`` is not a positive integer.
    """
    check_shard_size(shard_size)
    seen = set()
    for tensor in (t for g in groups for t in g):
        if tensor.name in seen:
            raise InvalidWeightsError("two weights are named %r; weight names must be unique" % tensor.name)
        seen.add(tensor.name)
        if tensor.dtype not in wf.LOGICAL_DTYPES:
            raise InvalidWeightsError("weight %r has dtype %r; want one of %s"
                                      % (tensor.name, tensor.dtype, ", ".join(wf.LOGICAL_DTYPES)))
    manifest = []
    for gi, group in enumerate(groups):
        total = sum(wf.encoded_size(t) for t in group)
        n = wf.num_shards(total, shard_size)
        paths = [wf.shard_file_name(gi, i, n) for i in range(n)]
        stream = _ShardStream(directory, paths, shard_size, hashed=content_hash)
        for tensor in group:
            for buf in encode_chunks(tensor):
                stream.write(buf)
        stream.close()
        paths = _final_names(directory, paths, gi, stream.digests, content_hash)
        manifest.append({wf.PATHS: paths, wf.WEIGHTS: [manifest_entry(t) for t in group]})
    return manifest


def write_weight_stream(tensors: Iterable[Tensor], directory: str,
                        shard_size: int = wf.DEFAULT_SHARD_SIZE_BYTES,
                        group_index: int = 0, content_hash: bool = False) -> Dict:
    """Writes one group from an iterator, holding one tensor at a time.

    The total size is unknown until the iterator ends, so shards are written
    under provisional names and renamed to ``groupG-shardIofN.bin`` (with
    ``content_hash``: ``groupG-shardIofN.<hash>.bin``) at the end.

    Returns:
      The group's ``weightsManifest`` entry.

    Raises:
      InvalidWeightsError: two tensors share a name, or a dtype is not a TF.js dtype.
      UsageError: ``shard_size`` is not a positive integer.
    """
    check_shard_size(shard_size)
    provisional = ".partial-group%d-shard%%d.bin" % (group_index + 1)
    seen = set()
    entries = []
    total = 0

    stream = _ShardStream(directory, (), shard_size, lambda i: provisional % (i + 1),
                          hashed=content_hash)
    for tensor in tensors:
        if tensor.name in seen:
            raise InvalidWeightsError("two weights are named %r; weight names must be unique"
                                      % tensor.name)
        seen.add(tensor.name)
        if tensor.dtype not in wf.LOGICAL_DTYPES:
            raise InvalidWeightsError("weight %r has dtype %r; want one of %s"
                                      % (tensor.name, tensor.dtype, ", ".join(wf.LOGICAL_DTYPES)))
        entries.append(manifest_entry(tensor))
        for buf in encode_chunks(tensor):
            total += memoryview(buf).nbytes
            stream.write(buf)
        # Let go of this tensor before the iterator makes the next one.
        del tensor, buf
    stream.close(check=False)
    count = stream.num_files
    n = wf.num_shards(total, shard_size)
    if n != count:
        raise AssertionError("wrote %d shards for %d bytes" % (count, total))
    paths = _final_names(directory, [provisional % (i + 1) for i in range(n)], group_index,
                         stream.digests, content_hash)
    return {wf.PATHS: paths, wf.WEIGHTS: entries}
