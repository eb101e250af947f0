"""The TF.js weights format: JSON keys, dtype names, byte encodings.

Every JSON key and dtype name of ``model.json`` and its ``weightsManifest`` is
defined here once. A group's tensors are encoded in manifest order and their
bytes concatenated; the stream is cut into shards every ``weight_shard_size_bytes``
bytes regardless of tensor boundaries (see docs/format.md).
"""

import math
import re
from typing import Optional

import numpy as np

from converter.errors import InvalidWeightsError

# model.json keys.
FORMAT = "format"
GENERATED_BY = "generatedBy"
CONVERTED_BY = "convertedBy"
MODEL_TOPOLOGY = "modelTopology"
WEIGHTS_MANIFEST = "weightsManifest"
USER_DEFINED_METADATA = "userDefinedMetadata"
SIGNATURE = "signature"
MODEL_INITIALIZER = "modelInitializer"
INITIALIZER_SIGNATURE = "initializerSignature"
TRAINING_CONFIG = "trainingConfig"

LAYERS_MODEL_FORMAT = "layers-model"
GRAPH_MODEL_FORMAT = "graph-model"

# weightsManifest keys.
PATHS = "paths"
WEIGHTS = "weights"
NAME = "name"
SHAPE = "shape"
DTYPE = "dtype"
QUANTIZATION = "quantization"
QUANT_MIN = "min"
QUANT_SCALE = "scale"
QUANT_ORIGINAL_DTYPE = "original_dtype"

MODEL_JSON = "model.json"
DEFAULT_SHARD_SIZE_BYTES = 4 * 1024 * 1024

# Logical dtypes TF.js decodes, with their numpy storage dtype (little-endian).
NUMPY_DTYPES = {
    "float32": np.dtype("<f4"),
    "int32": np.dtype("<i4"),
    "bool": np.dtype("bool"),
    "complex64": np.dtype("<c8"),
}
STRING = "string"
LOGICAL_DTYPES = tuple(NUMPY_DTYPES) + (STRING,)

# Quantized storage dtypes: name -> numpy dtype.
QUANTIZED_DTYPES = {
    "uint8": np.dtype("<u1"),
    "uint16": np.dtype("<u2"),
    "float16": np.dtype("<f2"),
}
# Affine storage dtypes with their largest stored value: TF.js computes
# ``q * scale + min`` for ``0 <= q <= qmax``.
AFFINE_QMAX = {"uint8": 255, "uint16": 65535}
AFFINE_DTYPES = tuple(AFFINE_QMAX)
# The logical dtypes each quantized storage dtype decodes to (tfjs-core
# ``decodeWeights``: int32 only from affine, by ``Math.round``).
QUANTIZED_LOGICAL_DTYPES = {"uint8": ("float32", "int32"), "uint16": ("float32", "int32"),
                            "float16": ("float32",)}
STRING_LENGTH_BYTES = 4
CONTENT_HASH_HEX_DIGITS = 16

# groupG-shardIofN.bin, or with --content_hash_shards groupG-shardIofN.<hash>.bin.
_SHARD_NAME = re.compile(r"^group(\d+)-shard(\d+)of(\d+)(?:\.[0-9a-f]{%d})?\.bin$"
                         % CONTENT_HASH_HEX_DIGITS)


def shard_file_name(group_index: int, shard_index: int, num_shards: int,
                    content_hash: Optional[str] = None) -> str:
    """File name of a shard; indices are 0-based, names 1-based.

    ``content_hash``: the shard's content hash (``CONTENT_HASH_HEX_DIGITS`` hex
    digits, see ``content_hash``), put before ``.bin`` so that a changed shard
    has a new URL and an unchanged one can be cached forever.
    """
    stem = "group%d-shard%dof%d" % (group_index + 1, shard_index + 1, num_shards)
    return "%s.%s.bin" % (stem, content_hash) if content_hash else stem + ".bin"


def content_hash(sha384_digest: bytes) -> str:
    """The file-name hash of a shard: the first 64 bits of its SHA-384, in hex.

    SHA-384 because that is the digest of the shard's SRI ``integrity`` string too
    (one hash per shard); 64 bits because a name only has to change when the
    content does, while integrity is what the browser checks.
    """
    return sha384_digest.hex()[:CONTENT_HASH_HEX_DIGITS]


def is_shard_file_name(name: str) -> bool:
    return _SHARD_NAME.match(name) is not None


def num_shards(total_bytes: int, shard_size: int) -> int:
    """How many shards hold ``total_bytes``; a 0-byte group has no shard."""
    return -(-total_bytes // shard_size)


def describe_weight(name: str, where: Optional[str] = None) -> str:
    """``weight 'name' in file``: how messages name a weight (``where`` optional)."""
    return "weight %r%s" % (name, " in %s" % where if where else "")


def to_logical(name: str, data: np.ndarray, where: Optional[str] = None):
    """Narrows or widens ``data`` to a dtype TF.js decodes, losing no value.

    float64 -> float32 (an error if a finite value overflows), float16 -> float32,
    complex128 -> complex64 (likewise), int64/uint32/uint64 -> int32 (an error if a
    value does not fit), int8/int16/uint8/uint16 -> int32, str/bytes -> string.

    Args:
      name: the weight's name, for messages.
      data: the array.
      where: the source file, for messages.

    Returns:
      ``(logical_dtype_name, array)``.

    Raises:
      InvalidWeightsError: a value does not fit, or the dtype has no TF.js form.
    """
    kind, dt = data.dtype.kind, data.dtype
    if dt == np.float32 or dt == np.int32 or dt == np.bool_ or dt == np.complex64:
        return str(dt), data.astype(NUMPY_DTYPES[str(dt)], copy=False)
    if kind in "SU" or (kind == "O" and _all_text(data)):
        return STRING, np.vectorize(_as_bytes, otypes=[object])(data) if data.size else data.astype(object)
    if dt == np.float64 or dt == np.float16:
        with np.errstate(over="ignore"):  # overflow is detected and reported below
            out = data.astype(np.float32)
        _check_no_overflow(name, where, data, out, "float32")
        return "float32", out
    if dt == np.complex128:
        with np.errstate(over="ignore"):
            out = data.astype(np.complex64)
        _check_no_overflow(name, where, data.real, out.real, "complex64")
        _check_no_overflow(name, where, data.imag, out.imag, "complex64")
        return "complex64", out
    if kind in "iu":
        info = np.iinfo(np.int32)
        if data.size:
            lo, hi = int(data.min()), int(data.max())
            if lo < info.min or hi > info.max:
                bad = lo if lo < info.min else hi
                raise InvalidWeightsError(
                    "%s: %s value %d does not fit in int32 (TF.js has no 64-bit "
                    "integers; range is [%d, %d])"
                    % (describe_weight(name, where), dt.name, bad, info.min, info.max))
        return "int32", data.astype(np.int32)
    raise InvalidWeightsError(
        "%s: dtype %s is not supported by TF.js (supported: float16/32/64, "
        "int8..int64, uint8..uint64, bool, complex64/128, string)"
        % (describe_weight(name, where), dt.name))


def _all_text(data: np.ndarray) -> bool:
    return all(isinstance(v, (bytes, str)) for v in data.flat)


def _as_bytes(v) -> bytes:
    return v.encode("utf-8") if isinstance(v, str) else bytes(v)


def _check_no_overflow(name, where, wide, narrow, target):
    if not wide.size:
        return
    overflow = np.isfinite(wide) & ~np.isfinite(narrow)
    if overflow.any():
        bad = wide[overflow].flat[0]
        raise InvalidWeightsError(
            "%s: %s value %r overflows %s"
            % (describe_weight(name, where), wide.dtype.name, float(bad), target))


def storage_dtype(dtype: str, quantization) -> np.dtype:
    """numpy dtype of the stored bytes of a fixed-width tensor."""
    if quantization is not None:
        return QUANTIZED_DTYPES[quantization.dtype]
    return NUMPY_DTYPES[dtype]


def encoded_size(tensor) -> int:
    """Number of bytes ``tensor`` occupies in a shard stream."""
    if tensor.quantization is None and tensor.dtype == STRING:
        return sum(STRING_LENGTH_BYTES + len(v) for v in tensor.data.flat)
    # From the shape, not the data: a stored tensor's data is read on access.
    return math.prod(tensor.shape) * storage_dtype(tensor.dtype, tensor.quantization).itemsize


def encode(tensor):
    """The bytes of ``tensor`` in a shard stream (little-endian, C order).

    Returns a buffer (``bytes`` or a ``memoryview`` over the array, so large
    fixed-width tensors are not copied).
    """
    if tensor.quantization is None and tensor.dtype == STRING:
        parts = []
        for v in tensor.data.flat:
            parts.append(len(v).to_bytes(STRING_LENGTH_BYTES, "little"))
            parts.append(v)
        return b"".join(parts)
    dt = storage_dtype(tensor.dtype, tensor.quantization)
    flat = np.ascontiguousarray(tensor.data, dtype=dt).reshape(-1)
    return memoryview(flat.view(np.uint8))
