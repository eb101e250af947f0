"""Weight quantization exactly as TF.js dequantizes it.

Affine uint8/uint16: ``value = q * scale + min`` with the range nudged so that 0
is exact when the range spans it (TF-Lite style); values are rounded half to even.
float16: IEEE half, round to nearest even. Only float32 tensors are quantized.
"""

import fnmatch
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from converter.errors import InvalidWeightsError, UsageError
from converter.model import Quantization, Tensor
from converter.weights import format as wf

_QMAX = {"uint8": 255, "uint16": 65535}


def resolve_dtype_map(
    names: Iterable[str], patterns_by_dtype: Dict[str, Optional[Sequence[str]]]
) -> Dict[str, str]:
    """Chooses the quantized dtype of each weight name.

    Args:
      names: the names of the float32 weights.
      patterns_by_dtype: ``{"uint8": ["conv*/kernel"], "float16": None, ...}``; a
        ``None`` value is the pattern-less fallthrough (every weight no other
        pattern claims). Patterns are shell wildcards (``*`` also matches ``/``).

    Returns:
      ``{name: dtype}`` for the names that get quantized.

    Raises:
      UsageError: two fallthroughs, an unknown dtype, or a name claimed by two dtypes.
    """
    unknown = sorted(set(patterns_by_dtype) - set(wf.QUANTIZED_DTYPES))
    if unknown:
        raise UsageError("unknown quantization dtype %s (choose from %s)"
                         % (", ".join(unknown), ", ".join(wf.QUANTIZED_DTYPES)))
    fallthrough = sorted(d for d, p in patterns_by_dtype.items() if p is None)
    if len(fallthrough) > 1:
        raise UsageError(
            "only one quantization flag may be given without patterns, got %s; give "
            "the others explicit patterns" % " and ".join("--quantize_" + d for d in fallthrough))
    explicit = {d: list(p) for d, p in patterns_by_dtype.items() if p is not None}
    result = {}
    for name in names:
        claimed = sorted(d for d, pats in explicit.items()
                         if any(fnmatch.fnmatchcase(name, pat) for pat in pats))
        if len(claimed) > 1:
            raise UsageError("weight %r matches the patterns of %s; make them disjoint"
                             % (name, " and ".join("--quantize_" + d for d in claimed)))
        if claimed:
            result[name] = claimed[0]
        elif fallthrough:
            result[name] = fallthrough[0]
    return result


def affine_range(data: np.ndarray, dtype: str):
    """``(min, scale)`` of the affine quantization of ``data`` (float64 math)."""
    qmax = _QMAX[dtype]
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        return lo, 1.0
    scale = (hi - lo) / qmax
    if lo <= 0.0 <= hi:
        zero_point = round(-lo / scale)  # round half to even, like np.round
        lo = -zero_point * scale
    return lo, scale


def quantize_tensor(tensor: Tensor, dtype: str, where: Optional[str] = None) -> Tensor:
    """Quantizes one float32 tensor to ``dtype`` (``uint8``, ``uint16``, ``float16``).

    Raises:
      InvalidWeightsError: the tensor holds NaN or infinity (affine), or a finite
        value overflows float16.
    """
    if tensor.quantization is not None or tensor.dtype != "float32":
        raise ValueError("only unquantized float32 tensors are quantized: %r" % tensor.name)
    data = np.asarray(tensor.data, dtype=np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):  # overflow is detected and reported below
            half = data.astype(np.float16)
        overflow = np.isfinite(data) & ~np.isfinite(half)
        if overflow.any():
            raise InvalidWeightsError(
                "weight %r%s: value %r overflows float16 (max 65504); exclude it from "
                "--quantize_float16" % (tensor.name, " in %s" % where if where else "",
                                        float(data[overflow].flat[0])))
        return Tensor(tensor.name, half, "float32", Quantization("float16"))
    if data.size == 0:
        return Tensor(tensor.name, data.astype(wf.QUANTIZED_DTYPES[dtype]), "float32",
                      Quantization(dtype, 0.0, 1.0))
    if not np.isfinite(data).all():
        raise InvalidWeightsError(
            "weight %r%s holds NaN or infinity and cannot be quantized to %s; exclude it "
            "from --quantize_%s" % (tensor.name, " in %s" % where if where else "", dtype, dtype))
    lo, scale = affine_range(data, dtype)
    hi = lo + _QMAX[dtype] * scale
    q = np.round((np.clip(data.astype(np.float64), lo, hi) - lo) / scale)
    stored = q.astype(wf.QUANTIZED_DTYPES[dtype])
    return Tensor(tensor.name, stored, "float32", Quantization(dtype, lo, scale))


def dequantize_tensor(tensor: Tensor) -> Tensor:
    """The logical tensor TF.js reconstructs from a quantized one.

    Mirrors tfjs-core ``decodeWeight``: ``q * scale + min`` in double precision
    stored to float32, or ``Math.round`` (half up) of it for int32 tensors.
    """
    q = tensor.quantization
    if q is None:
        return tensor
    if q.dtype == "float16":
        values = tensor.data.astype(np.float32)
    else:
        values = tensor.data.astype(np.float64) * q.scale + q.min
    if tensor.dtype == "int32":
        values = np.floor(values + 0.5)
    return Tensor(tensor.name, values.astype(wf.NUMPY_DTYPES[tensor.dtype]), tensor.dtype)


def quantize_groups(groups, patterns_by_dtype, where=None) -> List[List[Tensor]]:
    """Quantizes the float32 tensors of ``groups`` chosen by ``patterns_by_dtype``."""
    if not patterns_by_dtype:
        return [list(g) for g in groups]
    names = [t.name for g in groups for t in g if t.dtype == "float32" and t.quantization is None]
    chosen = resolve_dtype_map(names, patterns_by_dtype)
    return [[quantize_tensor(t, chosen[t.name], where) if t.name in chosen and t.quantization is None
             and t.dtype == "float32" else t for t in g] for g in groups]
