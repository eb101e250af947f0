"""Reads TF.js weight groups, validating the manifest before allocating anything.

Checks, in this order, each with its own message naming model.json and the
weight or shard: manifest structure; names unique; dtypes and quantization specs
known (finite ``min``, positive ``scale``, dequantized range within the logical
dtype: no float32 infinity, no int32 wrap-around); shard paths relative and inside
the model directory; shard files present; expected byte counts (arbitrary-precision
arithmetic, so no overflow) equal to the shard files' total size exactly; then the
bytes are read once and decoded, except that large fixed-width tensors stay in
the shards until a writer streams them (``stored.StoredTensor``).
"""

import math
import os
from typing import Any, Dict, List

import numpy as np

from converter import jsonio
from converter.errors import InvalidModelError, InvalidWeightsError
from converter.model import Quantization, Tensor
from converter.weights import format as wf
from converter.weights import quantize, stored


def _fail(where: str, message: str, *args):
    raise InvalidWeightsError("%s: %s" % (where, message % args))


def _check_spec(where: str, gi: int, spec: Any, seen: set) -> None:
    if not isinstance(spec, dict):
        _fail(where, "weightsManifest[%d].weights has a %s entry; want an object", gi, type(spec).__name__)
    name = spec.get(wf.NAME)
    if not isinstance(name, str) or not name:
        _fail(where, "weightsManifest[%d] has a weight without a name", gi)
    if name in seen:
        _fail(where, "weight %r is listed twice in weightsManifest", name)
    seen.add(name)
    shape = spec.get(wf.SHAPE)
    if not isinstance(shape, list) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        _fail(where, "weight %r has shape %r; want a list of non-negative integers", name, shape)
    dtype = spec.get(wf.DTYPE)
    if dtype not in wf.LOGICAL_DTYPES:
        _fail(where, "weight %r has unsupported dtype %r; want one of %s",
              name, dtype, ", ".join(wf.LOGICAL_DTYPES))
    q = spec.get(wf.QUANTIZATION)
    if q is None:
        return
    qdtype = q.get(wf.DTYPE) if isinstance(q, dict) else None
    if not isinstance(qdtype, str) or qdtype not in wf.QUANTIZED_DTYPES:
        shown = "{%r: %s%s}" % (wf.DTYPE, _brief(qdtype), ", ..." if len(q) > 1 else "") \
            if isinstance(q, dict) and wf.DTYPE in q else _brief(q)
        _fail(where, "weight %r has quantization %s; want a dtype of %s",
              name, shown, ", ".join(wf.QUANTIZED_DTYPES))
    allowed = wf.QUANTIZED_LOGICAL_DTYPES[qdtype]
    if dtype not in allowed:
        _fail(where, "weight %r is %s-quantized but its dtype is %s; want %s",
              name, qdtype, dtype, " or ".join(allowed))
    original = q.get(wf.QUANT_ORIGINAL_DTYPE)
    if original is not None and original != dtype:
        _fail(where, "weight %r has dtype %s but its quantization's %r is %s; want %r (or none)",
              name, dtype, wf.QUANT_ORIGINAL_DTYPE, _brief(original), dtype)
    if qdtype not in wf.AFFINE_DTYPES:
        return
    for key in (wf.QUANT_MIN, wf.QUANT_SCALE):
        v = q.get(key)
        if not _is_finite_number(v):
            _fail(where, "weight %r is %s-quantized but its %r is %s; want a finite number",
                  name, qdtype, key, _brief(v))
    quantization = _quantization(spec)
    if quantization.scale <= 0.0:
        _fail(where, "weight %r is %s-quantized but its %r is %r; want a positive number (TF.js "
              "quantizers write one; 1 for a constant tensor)", name, qdtype, wf.QUANT_SCALE,
              quantization.scale)
    problem = quantize.range_problem(dtype, quantization)
    if problem:
        _fail(where, "weight %r is %s-quantized with min %r and scale %r, which %s",
              name, qdtype, quantization.min, quantization.scale, problem)


# Longest repr of a manifest value quoted in a message.
_BRIEF_CHARS = 60


def _brief(value: Any) -> str:
    """``repr(value)``, cut to ``_BRIEF_CHARS`` (a hostile value may be huge)."""
    text = repr(value)
    return text if len(text) <= _BRIEF_CHARS else text[:_BRIEF_CHARS - 3] + "..."


def _is_finite_number(value: Any) -> bool:
    """A JSON number that is a finite float (JSON integers may exceed float's range)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _shard_path(where: str, model_dir: str, real_dir: str, path: Any) -> str:
    if not isinstance(path, str) or not path:
        _fail(where, "shard path %r is not a file name", path)
    if os.path.isabs(path) or "\\" in path or ".." in path.split("/"):
        _fail(where, "shard path %r escapes the model directory %s", path, model_dir)
    full = os.path.join(model_dir, path)
    real = os.path.realpath(full)
    if os.path.commonpath([real, real_dir]) != real_dir:
        _fail(where, "shard path %r resolves to %s, outside the model directory %s", path, real, model_dir)
    if not os.path.isfile(full):
        _fail(where, "shard file %s is missing", full)
    return full


def read_weight_groups(manifest: Any, model_dir: str, where: str) -> List[List[Tensor]]:
    """Reads every group of ``manifest`` from shard files in ``model_dir``.

    Quantized tensors are returned as stored (with their ``Quantization``); use
    ``quantize.dequantize_tensor`` for the values TF.js computes.

    Args:
      manifest: the parsed ``weightsManifest`` value.
      model_dir: the directory holding model.json.
      where: the model.json path, for messages.

    Raises:
      InvalidWeightsError: any check above fails.
    """
    if not isinstance(manifest, list):
        _fail(where, "weightsManifest is a %s; want a list of groups", type(manifest).__name__)
    seen: set = set()
    real_dir = os.path.realpath(model_dir)
    plans = []
    for gi, group in enumerate(manifest):
        if not isinstance(group, dict) or not isinstance(group.get(wf.PATHS), list) \
                or not isinstance(group.get(wf.WEIGHTS), list):
            _fail(where, "weightsManifest[%d] must be an object with lists 'paths' and 'weights'", gi)
        for spec in group[wf.WEIGHTS]:
            _check_spec(where, gi, spec, seen)
        files = [_shard_path(where, model_dir, real_dir, p) for p in group[wf.PATHS]]
        sizes = [os.path.getsize(f) for f in files]
        plans.append((group[wf.WEIGHTS], files, sizes))
    groups = []
    for specs, files, sizes in plans:
        have = sum(sizes)
        fixed = [s for s in specs if not _is_string(s)]
        want = sum(_fixed_size(s) for s in fixed)
        has_strings = len(fixed) != len(specs)
        if want > have or (not has_strings and want != have):
            _fail(where, "the weights %s need %d bytes but the shards %s hold %d bytes",
                  _names(specs), want, _names_of(files), have)
        if not has_strings:
            groups.append(_stored_group(where, specs, files, sizes))
            continue
        buf = bytearray(have)
        view = memoryview(buf)
        offset = 0
        for f, size in zip(files, sizes):
            with open(f, "rb") as fh:
                got = fh.readinto(view[offset:offset + size])
            if got != size:
                _fail(where, "shard file %s changed size while being read", f)
            offset += size
        groups.append(_decode_group(where, specs, buf, files))
    return groups


def _stored_group(where: str, specs, files, sizes) -> List[Tensor]:
    """A fixed-width group's tensors as the shard byte ranges holding them.

    Large tensors stay in the shards until written (``stored.StoredTensor``), so
    re-sharding a model of any size holds one chunk at a time; small ones are
    read now. The caller has checked that the sizes add up exactly.
    """
    out = []
    file_index, file_offset = 0, 0
    for spec in specs:
        q = _quantization(spec)
        dt = wf.storage_dtype(spec[wf.DTYPE], q)
        left = _fixed_size(spec)
        ranges = []
        while left:
            while file_offset == sizes[file_index]:
                file_index, file_offset = file_index + 1, 0
            n = min(left, sizes[file_index] - file_offset)
            ranges.append(stored.FileRange(files[file_index], file_offset, n))
            file_offset += n
            left -= n
        tensor = stored.StoredTensor(spec[wf.NAME], spec[wf.DTYPE], spec[wf.SHAPE], dt, ranges,
                                     where, q)
        out.append(stored.stored_or_read(tensor))
    return out


def _is_string(spec: Dict) -> bool:
    return spec[wf.DTYPE] == wf.STRING and spec.get(wf.QUANTIZATION) is None


def _fixed_size(spec: Dict) -> int:
    return math.prod(spec[wf.SHAPE]) * wf.storage_dtype(spec[wf.DTYPE], _quantization(spec)).itemsize


def _quantization(spec: Dict):
    """The checked spec's ``Quantization`` (floats; no min/scale for float16)."""
    q = spec.get(wf.QUANTIZATION)
    if q is None:
        return None
    if q[wf.DTYPE] not in wf.AFFINE_DTYPES:
        return Quantization(q[wf.DTYPE])
    return Quantization(q[wf.DTYPE], float(q[wf.QUANT_MIN]), float(q[wf.QUANT_SCALE]))


def _names(specs) -> str:
    names = [s[wf.NAME] for s in specs]
    return ", ".join(names[:3]) + (" and %d more" % (len(names) - 3) if len(names) > 3 else "")


def _names_of(files) -> str:
    return ", ".join(os.path.basename(f) for f in files) or "(none)"


def _decode_group(where, specs, buf: bytearray, files) -> List[Tensor]:
    out = []
    offset = 0
    total = len(buf)
    for spec in specs:
        name, shape, dtype = spec[wf.NAME], tuple(spec[wf.SHAPE]), spec[wf.DTYPE]
        q = _quantization(spec)
        if q is None and dtype == wf.STRING:
            values = []
            for _ in range(math.prod(shape)):
                if offset + wf.STRING_LENGTH_BYTES > total:
                    _fail(where, "string weight %r runs past the end of shards %s", name, _names_of(files))
                n = int.from_bytes(buf[offset:offset + wf.STRING_LENGTH_BYTES], "little")
                offset += wf.STRING_LENGTH_BYTES
                if offset + n > total:
                    _fail(where, "string weight %r has an element of %d bytes running past the end "
                          "of shards %s", name, n, _names_of(files))
                values.append(bytes(buf[offset:offset + n]))
                offset += n
            data = np.empty(len(values), dtype=object)
            data[:] = values
            out.append(Tensor(name, data.reshape(shape), dtype))
            continue
        dt = wf.storage_dtype(dtype, q)
        size = math.prod(shape) * dt.itemsize
        data = np.frombuffer(buf, dtype=dt, count=math.prod(shape), offset=offset).reshape(shape)
        offset += size
        out.append(Tensor(name, data, dtype, q))
    if offset != total:
        _fail(where, "shards %s hold %d bytes but the weights %s use %d",
              _names_of(files), total, _names(specs), offset)
    return out


def read_model_json(path: str) -> Dict:
    """Parses a model.json, with one-line errors for a missing or malformed file."""
    if os.path.isdir(path):
        path = os.path.join(path, wf.MODEL_JSON)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise InvalidModelError("%s: no such file" % path) from None
    except OSError as e:
        raise InvalidModelError("%s: cannot read: %s" % (path, e.strerror)) from None
    doc = jsonio.loads(raw, path)
    if not isinstance(doc, dict):
        raise InvalidModelError("%s: top level is a %s; want a JSON object" % (path, type(doc).__name__))
    return doc
