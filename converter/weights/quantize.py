"""Weight quantization exactly as TF.js dequantizes it.

Affine uint8/uint16: ``value = q * scale + min`` with the range nudged so that 0
is exact when the range spans it (TF-Lite style); values are rounded half to even.
float16: IEEE half, round to nearest even. Only float32 tensors are quantized.

A quantization whose dequantized values do not fit the logical dtype (float32
overflowing to infinity, int32 wrapping around) is an error on both sides: the
quantizer refuses to write one and the dequantizer refuses to compute one.
"""

import fnmatch
import math
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from converter.errors import InvalidWeightsError, UsageError
from converter.model import Quantization, Tensor
from converter.weights import format as wf

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT32 = np.iinfo(np.int32)


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
    qmax = wf.AFFINE_QMAX[dtype]
    lo, hi = float(data.min()), float(data.max())
    if lo == hi:
        return lo, 1.0
    scale = (hi - lo) / qmax
    if lo <= 0.0 <= hi:
        zero_point = round(-lo / scale)  # round half to even, like np.round
        lo = -zero_point * scale
    return lo, scale


def range_problem(dtype: str, quantization: Quantization) -> Optional[str]:
    """Why the values TF.js dequantizes would not fit ``dtype``, or ``None``.

    Checked analytically, before any array is computed: ``q * scale + min`` is
    monotonic in ``q``, so its extremes are at ``q = 0`` and ``q = qmax``, computed
    in double precision as TF.js does. float32 values must stay finite once
    stored as float32; int32 values (``Math.round`` of them) within int32, which
    TF.js's ``Int32Array`` would otherwise wrap around.

    Args:
      dtype: the logical dtype, ``float32`` or ``int32``.
      quantization: an affine (``uint8``/``uint16``) quantization.

    Returns:
      A phrase for a message ("dequantizes to inf at q = 255, ..."), or ``None``.
    """
    qmax = wf.AFFINE_QMAX[quantization.dtype]
    try:
        lo, scale = float(quantization.min), float(quantization.scale)
    except (TypeError, ValueError, OverflowError):
        return "min %r and scale %r are not numbers" % (quantization.min, quantization.scale)
    if not (math.isfinite(lo) and math.isfinite(scale)):
        return "min %r and scale %r are not both finite" % (lo, scale)
    for q, value in ((0, lo), (qmax, qmax * scale + lo)):  # Python floats: inf, not OverflowError
        if dtype == "int32":
            rounded = math.floor(value + 0.5) if math.isfinite(value) else value
            if not math.isfinite(rounded) or not _INT32.min <= rounded <= _INT32.max:
                return ("dequantizes to %s at q = %d (Math.round of q * scale + min), outside the "
                        "int32 range [%d, %d]" % (rounded, q, _INT32.min, _INT32.max))
        elif not math.isfinite(value) or not _fits_float32(value):
            return ("dequantizes to %r at q = %d (q * scale + min), beyond the float32 range "
                    "+-%r" % (value, q, _FLOAT32_MAX))
    return None


def _fits_float32(value: float) -> bool:
    with np.errstate(over="ignore"):  # the overflow is the answer, not a warning
        return bool(np.isfinite(np.float32(value)))


def quantize_tensor(tensor: Tensor, dtype: str, where: Optional[str] = None) -> Tensor:
    """Quantizes one float32 tensor to ``dtype`` (``uint8``, ``uint16``, ``float16``).

    float16 keeps infinities and NaN as they are (they are exact in half
    precision); affine quantization cannot represent them.

    Raises:
      InvalidWeightsError: the tensor holds NaN or infinity (affine), its range
        is so wide that the dequantized range overflows float32 (affine, a range
        near +-3.4e38), or a finite value overflows float16.
    """
    if tensor.quantization is not None or tensor.dtype != "float32":
        raise ValueError("only unquantized float32 tensors are quantized: %r" % tensor.name)
    what = wf.describe_weight(tensor.name, where)
    data = np.asarray(tensor.data, dtype=np.float32)
    if dtype == "float16":
        with np.errstate(over="ignore"):  # overflow is detected and reported below
            half = data.astype(np.float16)
        overflow = np.isfinite(data) & ~np.isfinite(half)
        if overflow.any():
            raise InvalidWeightsError(
                "%s: value %r overflows float16 (max 65504); exclude it from "
                "--quantize_float16" % (what, float(data[overflow].flat[0])))
        return Tensor(tensor.name, half, "float32", Quantization("float16"))
    if data.size == 0:
        return Tensor(tensor.name, data.astype(wf.QUANTIZED_DTYPES[dtype]), "float32",
                      Quantization(dtype, 0.0, 1.0))
    if not np.isfinite(data).all():
        raise InvalidWeightsError(
            "%s holds NaN or infinity and cannot be quantized to %s; exclude it "
            "from --quantize_%s" % (what, dtype, dtype))
    lo, scale = affine_range(data, dtype)
    quantization = Quantization(dtype, lo, scale)
    problem = range_problem("float32", quantization)
    if problem:
        raise InvalidWeightsError(
            "%s: its range [%r, %r] cannot be quantized to %s: the zero-exact affine range "
            "(min %r, scale %r) %s; exclude it from --quantize_%s"
            % (what, float(data.min()), float(data.max()), dtype, lo, scale, problem, dtype))
    qmax = wf.AFFINE_QMAX[dtype]
    q = np.round((np.clip(data.astype(np.float64), lo, lo + qmax * scale) - lo) / scale)
    # Rounding noise may not reach past qmax: the cast below would wrap it to 0.
    stored = np.clip(q, 0, qmax).astype(wf.QUANTIZED_DTYPES[dtype])
    return Tensor(tensor.name, stored, "float32", quantization)


def dequantize_tensor(tensor: Tensor, where: Optional[str] = None) -> Tensor:
    """The logical tensor TF.js reconstructs from a quantized one.

    Mirrors tfjs-core ``decodeWeight``: ``q * scale + min`` in double precision
    stored to float32, or ``Math.round`` (half up) of it for int32 tensors;
    float16 widened to float32 (infinities and NaN stay).

    Args:
      tensor: the tensor; returned as is when it is not quantized.
      where: the source file, for messages.

    Raises:
      InvalidWeightsError: the values do not fit the logical dtype (float32
        overflowing to infinity, int32 out of range), checked from ``min`` and
        ``scale`` before computing and on the computed values.
    """
    q = tensor.quantization
    if q is None:
        return tensor
    what = wf.describe_weight(tensor.name, where)
    if q.dtype not in wf.QUANTIZED_DTYPES:
        raise InvalidWeightsError("%s has quantization dtype %r; want one of %s"
                                  % (what, q.dtype, ", ".join(wf.QUANTIZED_DTYPES)))
    if tensor.dtype not in wf.QUANTIZED_LOGICAL_DTYPES[q.dtype]:
        raise InvalidWeightsError("%s is %s-quantized but its dtype is %s; want %s"
                                  % (what, q.dtype, tensor.dtype,
                                     " or ".join(wf.QUANTIZED_LOGICAL_DTYPES[q.dtype])))
    if q.dtype == "float16":
        return Tensor(tensor.name, tensor.data.astype(np.float32), tensor.dtype)
    problem = range_problem(tensor.dtype, q)
    if problem:
        raise InvalidWeightsError("%s is %s-quantized with min %r and scale %r, which %s"
                                  % (what, q.dtype, q.min, q.scale, problem))
    with np.errstate(over="ignore", invalid="ignore"):  # checked below
        values = tensor.data.astype(np.float64) * q.scale + q.min
        if tensor.dtype == "int32":
            values = np.floor(values + 0.5)
            bad = ~(np.isfinite(values) & (values >= _INT32.min) & (values <= _INT32.max))
        else:
            values = values.astype(np.float32)
            bad = ~np.isfinite(values)
    if bad.any():
        # Only stored values beyond qmax (an in-memory tensor, not a shard) get here.
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InvalidWeightsError(
            "%s: stored value %r at index %s dequantizes to %r, which does not fit %s"
            % (what, tensor.data[index].item(), list(index), float(values[index]), tensor.dtype))
    return Tensor(tensor.name, values.astype(wf.NUMPY_DTYPES[tensor.dtype]), tensor.dtype)


def quantize_groups(groups, patterns_by_dtype, where=None) -> List[List[Tensor]]:
    """Quantizes the float32 tensors of ``groups`` chosen by ``patterns_by_dtype``."""
    if not patterns_by_dtype:
        return [list(g) for g in groups]
    names = [t.name for g in groups for t in g if t.dtype == "float32" and t.quantization is None]
    chosen = resolve_dtype_map(names, patterns_by_dtype)
    return [[quantize_tensor(t, chosen[t.name], where) if t.name in chosen and t.quantization is None
             and t.dtype == "float32" else t for t in g] for g in groups]
