"""Reads TF.js weight groups, validating the manifest before allocating anything.

Checks, in this order, each with its own message naming model.json and the
weight or shard: manifest structure; names unique; dtypes and quantization specs
known; shard paths relative and inside the model directory; shard files present;
expected byte counts (arbitrary-precision arithmetic, so no overflow) equal to the
shard files' total size exactly; then the bytes are read once and decoded.
"""

import math
import os
from typing import Any, Dict, List

import numpy as np

from converter import jsonio
from converter.errors import InvalidModelError, InvalidWeightsError
from converter.model import Quantization, Tensor
from converter.weights import format as wf


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
    if not isinstance(q, dict) or q.get(wf.DTYPE) not in wf.QUANTIZED_DTYPES:
        _fail(where, "weight %r has quantization %r; want a dtype of %s",
              name, q, ", ".join(wf.QUANTIZED_DTYPES))
    if q[wf.DTYPE] == "float16":
        if dtype != "float32":
            _fail(where, "weight %r is float16-quantized but its dtype is %s; want float32", name, dtype)
        return
    if dtype not in ("float32", "int32"):
        _fail(where, "weight %r is %s-quantized but its dtype is %s; want float32 or int32",
              name, q[wf.DTYPE], dtype)
    for key in (wf.QUANT_MIN, wf.QUANT_SCALE):
        v = q.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            _fail(where, "weight %r is %s-quantized but its %r is %r; want a finite number",
                  name, q[wf.DTYPE], key, v)


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


def _is_string(spec: Dict) -> bool:
    return spec[wf.DTYPE] == wf.STRING and wf.QUANTIZATION not in spec


def _fixed_size(spec: Dict) -> int:
    return math.prod(spec[wf.SHAPE]) * wf.storage_dtype(spec[wf.DTYPE], _quantization(spec)).itemsize


def _quantization(spec: Dict):
    q = spec.get(wf.QUANTIZATION)
    if q is None:
        return None
    return Quantization(q[wf.DTYPE], q.get(wf.QUANT_MIN), q.get(wf.QUANT_SCALE))


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
