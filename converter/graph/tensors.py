"""TensorProto <-> numpy without TensorFlow, and the Const payload fields.

Graph constants are decoded here, one at a time, when the writer streams them;
the decoding follows TensorProto's rules (``tensor_content`` bytes, else the
typed ``*_val`` list, a short list repeating its last value to fill the shape).
"""

from typing import Tuple

import numpy as np

from converter.errors import InvalidModelError

# DataType enum values (tensorflow/core/framework/types.proto).
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_COMPLEX64, DT_INT64, DT_BOOL, DT_BFLOAT16, DT_UINT16, DT_COMPLEX128 = 8, 9, 10, 14, 17, 18
DT_HALF, DT_RESOURCE, DT_UINT32, DT_UINT64 = 19, 20, 22, 23

# dtype enum -> (numpy dtype of tensor_content, typed value field).
_LAYOUT = {
    DT_FLOAT: ("<f4", "float_val"),
    DT_DOUBLE: ("<f8", "double_val"),
    DT_INT32: ("<i4", "int_val"),
    DT_UINT8: ("<u1", "int_val"),
    DT_INT16: ("<i2", "int_val"),
    DT_INT8: ("<i1", "int_val"),
    DT_UINT16: ("<u2", "int_val"),
    DT_INT64: ("<i8", "int64_val"),
    DT_BOOL: ("bool", "bool_val"),
    DT_HALF: ("<f2", "half_val"),
    DT_BFLOAT16: ("<u2", "half_val"),
    DT_COMPLEX64: ("<c8", "scomplex_val"),
    DT_COMPLEX128: ("<c16", "dcomplex_val"),
    DT_UINT32: ("<u4", "uint32_val"),
    DT_UINT64: ("<u8", "uint64_val"),
}

# Every payload field of TensorProto; a written Const keeps only dtype and shape.
PAYLOAD_FIELDS = ("tensor_content", "half_val", "float_val", "double_val", "int_val",
                  "string_val", "scomplex_val", "int64_val", "bool_val", "dcomplex_val",
                  "resource_handle_val", "variant_val", "uint32_val", "uint64_val")


def shape_of(tensor_proto) -> Tuple[int, ...]:
    return tuple(int(d.size) for d in tensor_proto.tensor_shape.dim)


def to_numpy(tensor_proto, where: str) -> np.ndarray:
    """The value of a TensorProto as a numpy array (strings: object array of bytes).

    Raises:
      InvalidModelError: the dtype cannot be decoded, or the payload does not
        match the shape.
    """
    shape = shape_of(tensor_proto)
    count = int(np.prod(shape, dtype=np.int64))
    dtype = tensor_proto.dtype
    if dtype == DT_STRING:
        values = list(tensor_proto.string_val)
        return np.array(_fill(values, count, b"", where), dtype=object).reshape(shape)
    if dtype not in _LAYOUT:
        raise InvalidModelError("%s: constant of dtype enum %d cannot be stored in a TF.js "
                                "graph model" % (where, dtype))
    np_dtype, field = _LAYOUT[dtype]
    if tensor_proto.tensor_content:
        data = np.frombuffer(tensor_proto.tensor_content, dtype=np_dtype)
        if data.size != count:
            raise InvalidModelError("%s: tensor_content holds %d values, shape %s wants %d"
                                    % (where, data.size, list(shape), count))
    else:
        values = list(getattr(tensor_proto, field))
        if dtype in (DT_COMPLEX64, DT_COMPLEX128):
            pairs = [complex(values[i], values[i + 1]) for i in range(0, len(values), 2)]
            data = np.array(_fill(pairs, count, 0j, where), dtype=np_dtype)
        elif dtype in (DT_HALF, DT_BFLOAT16):
            data = np.array(_fill(values, count, 0, where), dtype=np.uint16)
            data = data.view(np.float16) if dtype == DT_HALF else data
        else:
            data = np.array(_fill(values, count, 0, where), dtype=np_dtype)
    if dtype == DT_BFLOAT16:
        data = (data.astype(np.uint32) << 16).view(np.float32)
    return data.reshape(shape)


def _fill(values, count, zero, where):
    if len(values) > count:
        raise InvalidModelError("%s: %d values for %d elements" % (where, len(values), count))
    if len(values) == count:
        return values
    return values + [values[-1] if values else zero] * (count - len(values))


def clear_payload(tensor_proto) -> None:
    """Drops a Const's values, keeping its dtype and shape."""
    for field in PAYLOAD_FIELDS:
        tensor_proto.ClearField(field)
