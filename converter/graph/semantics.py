"""The semantics guard: attribute values TF.js 4.22 computes differently from TensorFlow.

The op check (``ops.py``) makes sure TF.js *knows* every op; this module makes
sure it computes what TensorFlow computes. ``RULES`` is the one table of every
(op, attribute, value) for which TF.js 4.22's op mappers or its cpu/wasm kernels
differ from TensorFlow, each with the file of the ``@tensorflow/tfjs-*`` 4.22
npm packages (those the TF.js test harness installs) the behaviour comes from.
Each entry is either

- ``rewrite``: ``rewrite_semantics`` (a pipeline step before the TF.js
  fusions, main graph) replaces the node by ops TF.js computes exactly; the last
  new node takes the node's name, so readers and graph outputs are unchanged; or
- ``refuse``: the conversion fails with an ``UnsupportedOpError`` naming the
  node, op, attribute and value.

``check_semantics`` runs last (a pipeline step) on the final main graph, its
function library (``--control_flow_v2``) and the initializer: any node a rule
still matches is refused, including rewrite rules whose rewrite could not apply
(it says what the rewrite needs) and nodes inside function bodies or the
initializer, which are not rewritten. ``--skip_op_check`` does not skip it: a
model that runs and answers wrongly is worse than a refused one.

How the table was built: every op of ``tfjs_ops.json`` was compared, attribute
by attribute, between TensorFlow's op registry and the op mapper entries of
``tfjs-converter/dist/operations/op_list/*.js`` (attributes marked
``notSupported`` are never read; attributes without a ``defaultValue`` read as
undefined), then through ``operations/executors/*.js`` into tfjs-core's ops and
the ``tfjs-backend-cpu``/``tfjs-backend-wasm`` kernels, and suspicious cases
were run in TF.js (cpu and wasm) against TensorFlow. Run and found equal (no
entry): ResizeBilinear/ResizeNearestNeighbor with every align_corners /
half_pixel_centers combination, Cumsum/Cumprod exclusive/reverse, Conv2D and
DepthwiseConv2dNative EXPLICIT padding and dilations, Conv2DBackpropInput
SAME/EXPLICIT, AvgPool SAME, AvgPool3D, LRN, Round (half to even), FloorMod,
FloorDiv, CropAndResize (both methods), BatchMatMulV2 adj_x/adj_y (real),
ArgMax ties and negative axes, SparseToDense, MirrorPad, EuclideanNorm,
Unique/UniqueV2, TopKV2 sorted=true, GatherV2 with negative axis, GatherNd,
Bincount, DenseBincount on rank-2 input, ImageProjectiveTransformV3 with
fill_mode CONSTANT/NEAREST, Softmax/LogSoftmax, Erf, Selu,
Softplus, LeakyRelu alpha, Squeeze/Split/Pack/Unpack/Concat/ExpandDims/ReverseV2
and reductions with negative axes, StridedSlice without shrink_axis_mask or
with unit strides. TF.js maps float64 to float32 and int64 to int32 for every
op; that precision and range limit is the weights writer's (values that do not
fit are refused there) and is not repeated here. Left alone, as they differ only
on inputs TensorFlow rejects or on NaN: out-of-range gather indices,
``validate_indices``, Equal's ``incompatible_shape_error=false``, Sign/Maximum/Cast
of NaN.
"""

import dataclasses
import re
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np

from converter.errors import UnsupportedOpError
from converter.graph.optimize.batch_norm import (BATCH_NORM_LAYOUTS, TF_DEFAULT_EPSILON,
                                                 decompose_batch_norm_exactly)
from converter.graph.optimize.editor import GraphEditor, parse_input

# DataType enums (tensorflow/core/framework/types.proto).
_FLOAT, _INT32, _INT64, _BOOL, _COMPLEX64, _COMPLEX128, _BFLOAT16 = 1, 3, 9, 10, 8, 18, 14
# Integer types TF.js holds as int32 without wrapping at their own width (uint32/uint64
# values above 2**31 do not fit either).
_NARROW_INTS = {4: "uint8", 5: "int16", 6: "int8", 17: "uint16", 22: "uint32", 23: "uint64"}
_INT_RANGES = {10: (0, 1), 6: (-2 ** 7, 2 ** 7 - 1), 4: (0, 2 ** 8 - 1), 5: (-2 ** 15, 2 ** 15 - 1),
               17: (0, 2 ** 16 - 1), 3: (-2 ** 31, 2 ** 31 - 1), 22: (0, 2 ** 32 - 1),
               9: (-2 ** 63, 2 ** 63 - 1), 23: (0, 2 ** 64 - 1)}
_DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
                7: "string", 8: "complex64", 9: "int64", 10: "bool", 14: "bfloat16",
                17: "uint16", 18: "complex128", 19: "float16", 22: "uint32", 23: "uint64"}
_MAX_LISTED = 8
_MAX_ROUNDS = 4


# -- where a rule looks -----------------------------------------------------------------


class _Graph:
    """Nodes of one graph the rules look at: the main graph, the initializer or a function.

    Attributes:
      location: ``graph``, ``initializer`` or ``function <name>``, for messages.
    """

    def __init__(self, nodes, location: str, in_function: bool = False,
                 shapes: Optional[Callable[[], Dict]] = None):
        self.location = location
        self._in_function = in_function
        self._nodes = {n.name: n for n in nodes}
        self._shapes_fn = shapes
        self._shapes: Optional[Dict] = None
        self._consts: Dict[str, Optional[np.ndarray]] = {}
        self._read: Dict[str, Set[int]] = {}
        for node in nodes:
            for text in node.input:
                ref = self.ref(text)
                if ref is not None:
                    self._read.setdefault(ref[0], set()).add(ref[1])

    def ref(self, text: str) -> Optional[Tuple[str, int]]:
        """``(node, output index)`` of a data input, None for control inputs and arguments."""
        if text.startswith("^"):
            return None
        if not self._in_function:
            name, index, _ = parse_input(text)
            return name, index
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in self._nodes:
            return None  # a function argument
        return parts[0], _output_index(self._nodes[parts[0]].op, parts[1]) + int(parts[2])

    def node(self, name: str):
        return self._nodes.get(name)

    def const(self, text: str) -> Optional[np.ndarray]:
        """The value of a data input produced by output 0 of a Const, else None."""
        ref = self.ref(text)
        if ref is None or ref[1] != 0:
            return None
        node = self._nodes.get(ref[0])
        if node is None or node.op != "Const":
            return None
        if ref[0] not in self._consts:
            from converter.graph.optimize.editor import to_ndarray
            self._consts[ref[0]] = to_ndarray(node.attr["value"].tensor)
        return self._consts[ref[0]]

    def shape(self, text: str) -> Optional[Tuple[Optional[int], ...]]:
        """The static shape of a data input (main graph, output 0), None when unknown."""
        ref = self.ref(text)
        if ref is None or ref[1] != 0 or self._shapes_fn is None:
            return None
        if self._shapes is None:
            self._shapes = self._shapes_fn()
        return self._shapes.get(ref[0])

    def outputs_read(self, name: str) -> Set[int]:
        return self._read.get(name, set())

    def nodes(self) -> List[object]:
        return list(self._nodes.values())

    def shape_table(self) -> Dict:
        """All static shapes (computed once)."""
        if self._shapes is None:
            self._shapes = self._shapes_fn() if self._shapes_fn is not None else {}
        return self._shapes


@dataclasses.dataclass
class Site:
    """One node as a rule sees it.

    Attributes:
      node: the NodeDef.
      graph: the graph holding it.
    """

    node: object
    graph: _Graph

    @property
    def data(self) -> List[str]:
        return [i for i in self.node.input if not i.startswith("^")]

    def has(self, key: str) -> bool:
        return key in self.node.attr

    def attr(self, key: str):
        return self.node.attr[key] if key in self.node.attr else None

    def const(self, index: int) -> Optional[np.ndarray]:
        data = self.data
        return self.graph.const(data[index]) if index < len(data) else None

    def rank(self, index: int) -> Optional[int]:
        data = self.data
        shape = self.graph.shape(data[index]) if index < len(data) else None
        return None if shape is None else len(shape)

    def shape(self, index: int):
        data = self.data
        return self.graph.shape(data[index]) if index < len(data) else None


def _output_index(op: str, arg_name: str) -> int:
    """Position of output argument ``arg_name`` of ``op`` (function-body references)."""
    # pylint: disable-next=import-outside-toplevel
    from tensorflow.python.framework import op_def_registry
    op_def = op_def_registry.get(op)
    if op_def is not None:
        for i, arg in enumerate(op_def.output_arg):
            if arg.name == arg_name:
                return i
    return 0


def _s(site: Site, key: str, default: bytes = b"") -> bytes:
    value = site.attr(key)
    return value.s if value is not None else default


def _b(site: Site, key: str, default: bool = False) -> bool:
    value = site.attr(key)
    return value.b if value is not None else default


def _i(site: Site, key: str, default: int = 0) -> int:
    value = site.attr(key)
    return value.i if value is not None else default


def _ints(site: Site, key: str) -> List[int]:
    value = site.attr(key)
    return list(value.list.i) if value is not None else []


def _type(site: Site, key: str = "T") -> int:
    value = site.attr(key)
    return value.type if value is not None else 0


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# -- building replacement nodes ----------------------------------------------------------


class _Type(int):
    """Marks an attr value as a DataType enum."""


class _Emitter:
    """Adds the nodes that replace one node; the last one (``final``) takes its name."""

    def __init__(self, editor: GraphEditor, node):
        self.editor = editor
        self.node = node
        self.prefix = node.name + "/tfjs_exact"

    def op(self, op: str, inputs: Sequence[str], name: Optional[str] = None, **attrs) -> str:
        new = self.editor.new_node(op, self.editor.unique_name(
            "%s/%s" % (self.prefix, name or op)), list(inputs), self.node.device)
        _set_attrs(new, attrs)
        self.editor.put(new)
        return new.name

    def const(self, value, name: str = "const") -> str:
        like = next((i for i in self.editor.data_inputs(self.node)
                     if self.editor.const_value(i) is not None), None)
        return self.editor.add_const("%s/%s" % (self.prefix, name), np.asarray(value), like=like)

    def final(self, op: str, inputs: Sequence[str], copy_attrs: bool = False, **attrs) -> None:
        new = self.editor.new_node(op, self.node.name,
                                   list(inputs) + self.editor.control_inputs(self.node),
                                   self.node.device)
        if copy_attrs:
            new.attr.MergeFrom(self.node.attr)
        _set_attrs(new, attrs)
        self.editor.put(new)  # replaces the node in place


def _set_attrs(node, attrs) -> None:
    for key, value in attrs.items():
        slot = node.attr[key]
        if isinstance(value, _Type):
            slot.type = int(value)
        elif isinstance(value, bool):
            slot.b = value
        elif isinstance(value, int):
            slot.i = value
        elif isinstance(value, float):
            slot.f = value
        elif isinstance(value, (bytes, str)):
            slot.s = value.encode("utf-8") if isinstance(value, str) else value
        elif isinstance(value, (list, tuple)):
            slot.list.Clear()
            slot.list.i.extend(int(v) for v in value)
        else:
            raise TypeError("attr %s: cannot set %r" % (key, value))


def _np_dtype(enum: int):
    from tensorflow.python.framework import dtypes  # pylint: disable=import-outside-toplevel
    return dtypes.as_dtype(enum).as_numpy_dtype


def _trunc_div(e: _Emitter, a: str, b: str, t: int, b_positive: bool = False) -> Tuple[str, str]:
    """``(floor quotient, correction)`` so that quotient + correction truncates toward zero.

    TF.js has only floor division for integers; C-style division differs when
    the quotient is negative and inexact.
    """
    zero = e.const(np.zeros((), _np_dtype(t)), "zero")
    quotient = e.op("FloorDiv", [a, b], "floor_div", T=_Type(t))
    remainder = e.op("FloorMod", [a, b], "floor_mod", T=_Type(t))
    inexact = e.op("NotEqual", [remainder, zero], "inexact", T=_Type(t))
    a_negative = e.op("Less", [a, zero], "a_negative", T=_Type(t))
    if b_positive:
        signs_differ = a_negative
    else:
        b_negative = e.op("Less", [b, zero], "b_negative", T=_Type(t))
        signs_differ = e.op("NotEqual", [a_negative, b_negative], "signs_differ",
                            T=_Type(_BOOL))
    adjust = e.op("LogicalAnd", [inexact, signs_differ], "adjust")
    correction = e.op("Cast", [adjust], "correction", SrcT=_Type(_BOOL), DstT=_Type(t),
                      Truncate=False)
    return quotient, correction


# -- the rules: match, rewrite -----------------------------------------------------------


class _CannotRewrite(Exception):
    """The rewrite needs something this graph does not provide (the guard refuses)."""


def _match_batch_norm_training(site: Site) -> Optional[str]:
    return "true" if _b(site, "is_training", True) else None


def _match_batch_norm_layout(site: Site) -> Optional[str]:
    fmt = _s(site, "data_format", b"NHWC")
    return _text(fmt) if fmt in (b"NCHW", b"NCDHW") else None


def _match_batch_norm_epsilon(site: Site) -> Optional[str]:
    return None if site.has("epsilon") else "absent (TensorFlow default 1e-4)"


def _match_batch_norm_outputs(site: Site) -> Optional[str]:
    read = sorted(i for i in site.graph.outputs_read(site.node.name) if i >= 1)
    return "read: %s" % ", ".join(str(i) for i in read) if read else None


def _rewrite_batch_norm(editor: GraphEditor, site: Site) -> None:
    fmt = _s(site, "data_format", b"NHWC")
    if not _b(site, "is_training", True) and fmt in (b"NHWC", b"NDHWC"):
        # Only the epsilon was missing: TF.js's batchNorm is right otherwise.
        editor.node(site.node.name).attr["epsilon"].f = TF_DEFAULT_EPSILON
        return
    if fmt not in BATCH_NORM_LAYOUTS or not decompose_batch_norm_exactly(
            editor, editor.node(site.node.name)):
        raise _CannotRewrite("needs T=float32 and its outputs 1-5 unread")


def _match_bias_add_layout(site: Site) -> Optional[str]:
    return "NCHW" if _s(site, "data_format") == b"NCHW" else None


def _rewrite_bias_add(editor: GraphEditor, site: Site) -> None:
    rank = site.rank(0)
    if rank is None:
        raise _CannotRewrite("needs the rank of its input known statically")
    e = _Emitter(editor, site.node)
    x, bias = site.data[:2]
    t = _type(site)
    shape = [-1] + [1] * (rank - 2)
    value = site.const(1)
    if value is not None:
        bias = e.const(value.reshape(shape), "bias")
    else:
        bias = e.op("Reshape", [bias, e.const(np.array(shape, np.int32), "shape")], "bias",
                    T=_Type(t), Tshape=_Type(_INT32))
    e.final("AddV2", [x, bias], T=_Type(t))


def _match_dtype(site: Site) -> Optional[str]:
    return _DTYPE_NAMES.get(_type(site), str(_type(site)))


def _match_always(site: Site) -> Optional[str]:
    return "any"


def _rewrite_mod(editor: GraphEditor, site: Site) -> None:
    # TF's Mod truncates (C fmod / %): the remainder has the dividend's sign.
    e = _Emitter(editor, site.node)
    a, b = site.data[:2]
    t = _type(site)
    zero = e.const(np.zeros((), _np_dtype(t)), "zero")
    floored = e.op("FloorMod", [a, b], "floor_mod", T=_Type(t))
    nonzero = e.op("NotEqual", [floored, zero], "nonzero", T=_Type(t))
    r_negative = e.op("Less", [floored, zero], "remainder_negative", T=_Type(t))
    a_negative = e.op("Less", [a, zero], "dividend_negative", T=_Type(t))
    signs_differ = e.op("NotEqual", [r_negative, a_negative], "signs_differ", T=_Type(_BOOL))
    adjust = e.op("LogicalAnd", [nonzero, signs_differ], "adjust")
    shifted = e.op("Sub", [floored, b], "shifted", T=_Type(t))
    e.final("SelectV2", [adjust, shifted, floored], T=_Type(t))


def _match_integer(site: Site) -> Optional[str]:
    # Narrower integers are refused by the dtype rule (TF.js does not wrap them).
    t = _type(site)
    return _DTYPE_NAMES[t] if t in (_INT32, _INT64) else None


def _rewrite_int_div(editor: GraphEditor, site: Site) -> None:
    e = _Emitter(editor, site.node)
    t = _type(site)
    quotient, correction = _trunc_div(e, site.data[0], site.data[1], t)
    e.final("AddV2", [quotient, correction], T=_Type(t))


def _rewrite_int_mean(editor: GraphEditor, site: Site) -> None:
    # TF's integer Mean is the integer sum divided (truncating) by the element count.
    t = _type(site)
    e = _Emitter(editor, site.node)
    x, axes = site.data[:2]
    total = e.op("Sum", [x, axes], "sum", T=_Type(t), Tidx=_Type(_type(site, "Tidx") or _INT32),
                 keep_dims=_b(site, "keep_dims"))
    count = e.op("FloorDiv", [e.op("Size", [x], "size", T=_Type(t), out_type=_Type(t)),
                              e.op("Size", [total], "sum_size", T=_Type(t), out_type=_Type(t))],
                 "count", T=_Type(t))
    quotient, correction = _trunc_div(e, total, count, t, b_positive=True)
    e.final("AddV2", [quotient, correction], T=_Type(t))


def _match_clip(site: Site) -> Optional[str]:
    # A computed bound may be a tensor: Minimum/Maximum are exact for scalars too.
    bad = []
    for i, name in ((1, "clip_value_min"), (2, "clip_value_max")):
        value = site.const(i)
        if value is None:
            bad.append("%s computed" % name)
        elif value.size != 1:
            bad.append("%s of shape %s" % (name, list(value.shape)))
    return ", ".join(bad) if bad else None


def _rewrite_clip(editor: GraphEditor, site: Site) -> None:
    e = _Emitter(editor, site.node)
    x, low, high = site.data[:3]
    t = _type(site)
    capped = e.op("Minimum", [x, high], "min", T=_Type(t))
    e.final("Maximum", [capped, low], T=_Type(t))


# NCHW/NCDHW -> NHWC/NDHWC: (rank, permutation to channels-last, back to channels-first).
_TO_LAST = {4: [0, 2, 3, 1], 5: [0, 2, 3, 4, 1]}
_TO_FIRST = {4: [0, 3, 1, 2], 5: [0, 4, 1, 2, 3]}
_CHANNELS_FIRST = {b"NCHW": 4, b"NCDHW": 5}
_CHANNELS_LAST_NAME = {4: b"NHWC", 5: b"NDHWC"}
_LAYOUT_LISTS = ("strides", "ksize", "dilations")


def _match_channels_first(site: Site) -> Optional[str]:
    fmt = _s(site, "data_format")
    return _text(fmt) if fmt in _CHANNELS_FIRST else None


def _rewrite_channels_first(editor: GraphEditor, site: Site) -> None:
    """Transpose to channels-last, run the op there, transpose back (all exact)."""
    rank = _CHANNELS_FIRST[_s(site, "data_format")]
    to_last, to_first = _TO_LAST[rank], _TO_FIRST[rank]
    e = _Emitter(editor, site.node)
    data = list(site.data)
    t = _type(site)
    x_index = 2 if site.node.op == "Conv2DBackpropInput" else 0
    data[x_index] = e.op("Transpose", [data[x_index], e.const(np.array(to_last, np.int32),
                                                               "to_channels_last")],
                         "input_channels_last", T=_Type(t), Tperm=_Type(_INT32))
    if site.node.op == "Conv2DBackpropInput":
        sizes = site.const(0)
        if sizes is not None:
            data[0] = e.const(sizes[to_last], "input_sizes")
        else:
            data[0] = e.op("GatherV2", [data[0], e.const(np.array(to_last, np.int32), "perm"),
                                        e.const(np.int32(0), "axis")], "input_sizes",
                           Tparams=_Type(_INT32), Tindices=_Type(_INT32), Taxis=_Type(_INT32),
                           batch_dims=0)
    core = editor.new_node(site.node.op, editor.unique_name(e.prefix + "/" + site.node.op),
                           data, site.node.device)
    core.attr.MergeFrom(site.node.attr)
    core.attr["data_format"].s = _CHANNELS_LAST_NAME[rank]
    for key in _LAYOUT_LISTS:
        values = _ints(site, key)
        if len(values) == rank:
            _set_attrs(core, {key: [values[p] for p in to_last]})
    pads = _ints(site, "explicit_paddings")
    if len(pads) == 2 * rank:
        _set_attrs(core, {"explicit_paddings": [v for p in to_last
                                                for v in pads[2 * p:2 * p + 2]]})
    _fill_defaults(core)
    editor.put(core)
    e.final("Transpose", [core.name, e.const(np.array(to_first, np.int32), "to_channels_first")],
            T=_Type(t), Tperm=_Type(_INT32))


# TensorFlow attr defaults the TF.js op mappers lack (executors then read undefined).
_DEFAULTS = {
    "Conv2D": {"dilations": [1, 1, 1, 1]},
    "DepthwiseConv2dNative": {"dilations": [1, 1, 1, 1]},
    "Conv3D": {"dilations": [1, 1, 1, 1, 1], "data_format": b"NDHWC"},
    "DepthToSpace": {"data_format": b"NHWC"},
    "ImageProjectiveTransformV3": {"fill_mode": b"CONSTANT"},
}


def _fill_defaults(node) -> None:
    for key, value in _DEFAULTS.get(node.op, {}).items():
        if key not in node.attr:
            _set_attrs(node, {key: value})


def _match_missing_default(site: Site) -> Optional[str]:
    missing = [k for k in _DEFAULTS.get(site.node.op, {}) if not site.has(k)]
    return ("absent: " + ", ".join(missing)) if missing else None


def _rewrite_defaults(editor: GraphEditor, site: Site) -> None:
    _fill_defaults(editor.node(site.node.name))


def _match_strided_dilated(site: Site) -> Optional[str]:
    strides = _ints(site, "strides")[1:-1]
    dilations = _ints(site, "dilations")[1:-1]
    if any(s > 1 for s in strides) and any(d > 1 for d in dilations):
        return "strides %s with dilations %s" % (_ints(site, "strides"), _ints(site, "dilations"))
    return None


def _match_backprop_dilations(site: Site) -> Optional[str]:
    dilations = _ints(site, "dilations")
    return str(dilations) if any(d != 1 for d in dilations) else None


def _match_explicit(site: Site) -> Optional[str]:
    return "EXPLICIT" if _s(site, "padding") == b"EXPLICIT" else None


def _match_vect_c(site: Site) -> Optional[str]:
    return "NCHW_VECT_C" if _s(site, "data_format") == b"NCHW_VECT_C" else None


def _match_argmax_read(site: Site) -> Optional[str]:
    return "read" if 1 in site.graph.outputs_read(site.node.name) else None


def _rewrite_dilation(editor: GraphEditor, site: Site) -> None:
    """Dilation as a Maximum over one strided slice of x plus filter[i, j] per tap."""
    shape, filt = site.shape(0), site.const(1)
    if shape is None or len(shape) != 4 or None in shape[1:3] or filt is None:
        raise _CannotRewrite("needs the input's height and width known statically and a "
                             "constant filter")
    strides, rates = _ints(site, "strides"), _ints(site, "rates")
    same = _s(site, "padding") == b"SAME"
    out, pads = [], [[0, 0]]
    for axis in (1, 2):
        size, stride = shape[axis], strides[axis]
        effective = (filt.shape[axis - 1] - 1) * rates[axis] + 1
        count = -(-size // stride) if same else -(-(size - effective + 1) // stride)
        total = max((count - 1) * stride + effective - size, 0) if same else 0
        out.append(count)
        pads.append([total // 2, total - total // 2])
    pads.append([0, 0])
    e = _Emitter(editor, site.node)
    t = _Type(_type(site))
    i32 = _Type(_INT32)
    x = site.data[0]
    if any(sum(p) for p in pads):
        # TF skips taps outside the input: -inf padding never wins the max.
        x = e.op("PadV2", [x, e.const(np.array(pads, np.int32), "paddings"),
                           e.const(np.array(-np.inf, filt.dtype), "minus_infinity")],
                 "padded", T=t, Tpaddings=i32)
    step = e.const(np.array(strides, np.int32), "strides")
    taps = []
    for i in range(filt.shape[0]):
        for j in range(filt.shape[1]):
            top, left = i * rates[1], j * rates[2]
            window = e.op("StridedSlice", [
                x, e.const(np.array([0, top, left, 0], np.int32), "begin_%d_%d" % (i, j)),
                e.const(np.array([0, top + (out[0] - 1) * strides[1] + 1,
                                  left + (out[1] - 1) * strides[2] + 1, 0], np.int32),
                        "end_%d_%d" % (i, j)), step], "window_%d_%d" % (i, j),
                T=t, Index=i32, begin_mask=9, end_mask=9, ellipsis_mask=0, new_axis_mask=0,
                shrink_axis_mask=0)
            taps.append((window, e.const(filt[i, j], "filter_%d_%d" % (i, j))))
    best = None
    for k, (window, weight) in enumerate(taps):
        last = k == len(taps) - 1
        if best is None and last:
            e.final("AddV2", [window, weight], T=t)
            return
        value = e.op("AddV2", [window, weight], "tap_%d" % k, T=t)
        if best is None:
            best = value
        elif last:
            e.final("Maximum", [best, value], T=t)
        else:
            best = e.op("Maximum", [best, value], "max_%d" % k, T=t)


_FUSED_FIRST = (b"BiasAdd",)


def _match_fused_ops(site: Site) -> Optional[str]:
    from converter.graph.optimize.unfuse import BASE_OP_OF, FUSABLE_ACTIVATIONS
    ops = [s for s in site.attr("fused_ops").list.s] if site.has("fused_ops") else []
    allowed = FUSABLE_ACTIVATIONS[BASE_OP_OF[site.node.op]]
    good = (len(ops) in (1, 2) and ops[0] in _FUSED_FIRST
            and (len(ops) == 1 or ops[1].decode("utf-8", "replace") in allowed)
            and _s(site, "data_format", b"NHWC") == b"NHWC"
            and _s(site, "filter_format", b"HWIO") == b"HWIO")
    if good:
        return None
    return "[%s] data_format=%s filter_format=%s" % (
        ", ".join(_text(o) for o in ops), _text(_s(site, "data_format", b"NHWC")),
        _text(_s(site, "filter_format", b"HWIO")))


def _match_fill_mode(site: Site) -> Optional[str]:
    mode = _s(site, "fill_mode", b"CONSTANT").upper()
    return _text(mode) if mode in (b"REFLECT", b"WRAP") else None


def _rewrite_depth_to_space(editor: GraphEditor, site: Site) -> None:
    _rewrite_channels_first(editor, site)


def _match_one_hot_axis(site: Site) -> Optional[str]:
    axis = _i(site, "axis", -1)
    return None if axis == -1 else str(axis)


def _match_one_hot_dtype(site: Site) -> Optional[str]:
    t = _type(site)
    return None if t in (_INT32, _INT64) else _DTYPE_NAMES.get(t, str(t))


def _rewrite_one_hot(editor: GraphEditor, site: Site) -> None:
    """OneHot as int32 (the only dtype wasm writes right), transposed, then selected."""
    axis = _i(site, "axis", -1)
    rank = site.rank(0)
    if axis != -1 and rank is None:
        raise _CannotRewrite("needs the rank of the indices known statically")
    t = _type(site)
    select = t not in (_INT32, _INT64)
    transpose = axis != -1 and axis != rank
    if not select and not transpose:
        editor.node(site.node.name).attr["axis"].i = -1  # axis == rank is the last axis
        return
    e = _Emitter(editor, site.node)
    indices, depth, on, off = site.data[:4]
    ti = _Type(_type(site, "TI") or _INT32)
    hot_type = _INT32 if select else t
    hot_on, hot_off = (e.const(np.int32(1), "one"), e.const(np.int32(0), "zero")) if (
        select) else (on, off)
    hot = e.op("OneHot", [indices, depth, hot_on, hot_off], "one_hot", T=_Type(hot_type), TI=ti,
               axis=-1)
    if transpose:
        out_rank = rank + 1
        perm = list(range(axis)) + [out_rank - 1] + list(range(axis, out_rank - 1))
        perm_ref = e.const(np.array(perm, np.int32), "perm")
        if not select:
            e.final("Transpose", [hot, perm_ref], T=_Type(t), Tperm=_Type(_INT32))
            return
        hot = e.op("Transpose", [hot, perm_ref], "transposed", T=_Type(_INT32),
                   Tperm=_Type(_INT32))
    mask = e.op("Cast", [hot], "mask", SrcT=_Type(_INT32), DstT=_Type(_BOOL), Truncate=False)
    e.final("SelectV2", [mask, on, off], T=_Type(t))


def _match_one_hot_depth(site: Site) -> Optional[str]:
    depth = site.const(1)
    if depth is not None and depth.size == 1 and int(depth.reshape(-1)[0]) < 2:
        return str(int(depth.reshape(-1)[0]))
    return None


def _match_select(site: Site) -> Optional[str]:
    # Every Select becomes SelectV2 (the guard then needs no shapes); only a
    # vector condition with x of rank > 1 is read differently by TF.js.
    value = site.const(0)
    if value is not None and value.ndim == 0:
        return None
    cond_rank, x_rank = site.rank(0), site.rank(1)
    return "condition rank %s, x rank %s" % (
        "unknown" if cond_rank is None else cond_rank, "unknown" if x_rank is None else x_rank)


def _rewrite_select(editor: GraphEditor, site: Site) -> None:
    cond_rank, x_rank = site.rank(0), site.rank(1)
    e = _Emitter(editor, site.node)
    cond, x, y = site.data[:3]
    if cond_rank == 0 or (cond_rank is not None and cond_rank == x_rank) or x_rank in (0, 1):
        e.final("SelectV2", [cond, x, y], T=_Type(_type(site)))
        return
    if cond_rank != 1 or x_rank is None:
        raise _CannotRewrite()
    shaped = e.op("Reshape", [cond, e.const(np.array([-1] + [1] * (x_rank - 1), np.int32),
                                            "shape")], "condition", T=_Type(_BOOL),
                  Tshape=_Type(_INT32))
    e.final("SelectV2", [shaped, x, y], T=_Type(_type(site)))


def _band(site: Site, index: int) -> Optional[int]:
    value = site.const(index)
    return int(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _match_band_part(site: Site) -> Optional[str]:
    lower, upper = _band(site, 1), _band(site, 2)
    if lower is not None and upper is not None and (lower == upper or (lower < 0 and upper < 0)):
        return None
    return "num_lower=%s, num_upper=%s" % ("?" if lower is None else lower,
                                           "?" if upper is None else upper)


def _rewrite_band_part(editor: GraphEditor, site: Site) -> None:
    """``SelectV2(in_band, a, 0)`` with the band mask built from Range (exact)."""
    lower, upper = _band(site, 1), _band(site, 2)
    if lower is None or upper is None:
        raise _CannotRewrite("needs num_lower and num_upper constant")
    e = _Emitter(editor, site.node)
    a = site.data[0]
    t = _type(site)
    i32 = _Type(_INT32)
    shape = e.op("Shape", [a], "shape", T=_Type(t), out_type=i32)

    def dim(begin: int, end: int, end_mask: int, name: str) -> str:
        return e.op("StridedSlice", [shape, e.const(np.array([begin], np.int32), name + "_begin"),
                                     e.const(np.array([end], np.int32), name + "_end"),
                                     e.const(np.array([1], np.int32), name + "_stride")],
                    name, T=i32, Index=i32, begin_mask=0, end_mask=end_mask, ellipsis_mask=0,
                    new_axis_mask=0, shrink_axis_mask=1)

    rows, cols = dim(-2, -1, 0, "rows"), dim(-1, 0, 1, "cols")
    zero, one = e.const(np.int32(0), "zero"), e.const(np.int32(1), "one")
    row_ids = e.op("ExpandDims", [e.op("Range", [zero, rows, one], "row_range", Tidx=i32),
                                  e.const(np.int32(-1), "row_axis")], "row_ids", T=i32, Tdim=i32)
    col_ids = e.op("ExpandDims", [e.op("Range", [zero, cols, one], "col_range", Tidx=i32),
                                  e.const(np.int32(0), "col_axis")], "col_ids", T=i32, Tdim=i32)
    below = e.op("Sub", [row_ids, col_ids], "row_minus_col", T=i32)
    tests = []
    if lower >= 0:
        tests.append(e.op("LessEqual", [below, e.const(np.int32(lower), "num_lower")],
                          "within_lower", T=i32))
    if upper >= 0:
        tests.append(e.op("GreaterEqual", [below, e.const(np.int32(-upper), "minus_num_upper")],
                          "within_upper", T=i32))
    if not tests:
        e.final("Identity", [a], T=_Type(t))
        return
    in_band = tests[0] if len(tests) == 1 else e.op("LogicalAnd", tests, "in_band")
    zeros = e.op("ZerosLike", [a], "zeros", T=_Type(t))
    e.final("SelectV2", [in_band, a, zeros], T=_Type(t))


_EINSUM_LABEL = re.compile(r"^[A-Za-z]*$")


def _einsum_terms(equation: str):
    text = equation.replace(" ", "")
    if text.count("->") != 1:
        return None
    inputs, output = text.split("->")
    return inputs.split(","), output


def _match_einsum_unsupported(site: Site) -> Optional[str]:
    equation = _text(_s(site, "equation"))
    parsed = _einsum_terms(equation)
    if parsed is None or "." in equation or len(parsed[0]) > 2:
        return repr(equation)
    terms, output = parsed
    if any(not _EINSUM_LABEL.match(term) or len(set(term)) != len(term)
           for term in terms + [output]):
        return repr(equation)
    return None


def _einsum_private_sums(equation: str):
    """Per operand, the summed labels only that operand has (TF.js mis-sums them)."""
    parsed = _einsum_terms(equation)
    if parsed is None or len(parsed[0]) != 2:
        return None
    terms, output = parsed
    private = [[c for c in terms[k] if c not in output and c not in terms[1 - k]]
               for k in (0, 1)]
    return (terms, output, private) if any(private) else None


def _match_einsum_private(site: Site) -> Optional[str]:
    equation = _text(_s(site, "equation"))
    if _match_einsum_unsupported(site) is not None:
        return None
    return repr(equation) if _einsum_private_sums(equation) is not None else None


def _rewrite_einsum(editor: GraphEditor, site: Site) -> None:
    terms, output, private = _einsum_private_sums(_text(_s(site, "equation")))
    e = _Emitter(editor, site.node)
    data = list(site.data)
    t = _type(site)
    for k in (0, 1):
        if private[k]:
            axes = [terms[k].index(c) for c in private[k]]
            data[k] = e.op("Sum", [data[k], e.const(np.array(axes, np.int32), "axes%d" % k)],
                           "sum%d" % k, T=_Type(t), Tidx=_Type(_INT32), keep_dims=False)
            terms[k] = "".join(c for c in terms[k] if c not in private[k])
    e.final("Einsum", data[:2], copy_attrs=True, equation="%s->%s" % (",".join(terms), output))


def _match_adjoint_complex(site: Site) -> Optional[str]:
    if _type(site) in (_COMPLEX64, _COMPLEX128) and (_b(site, "adj_x") or _b(site, "adj_y")):
        return "adj_x=%s adj_y=%s" % (_b(site, "adj_x"), _b(site, "adj_y"))
    return None


def _match_axis_not_known_positive(site: Site) -> Optional[str]:
    axis = site.const(1)
    if axis is not None and axis.size == 1 and int(axis.reshape(-1)[0]) >= 0:
        return None
    return "unknown" if axis is None else str(int(axis.reshape(-1)[0]))


def _rewrite_cumulative_axis(editor: GraphEditor, site: Site) -> None:
    e = _Emitter(editor, site.node)
    x, axis = site.data[:2]
    value, rank = site.const(1), site.rank(0)
    if value is not None and rank is not None:
        axis = e.const(np.int32(int(value.reshape(-1)[0]) % rank), "axis")
    else:
        if _type(site, "Tidx") == _INT64:
            axis = e.op("Cast", [axis], "axis_int32", SrcT=_Type(_INT64), DstT=_Type(_INT32),
                        Truncate=False)
        rank_ref = e.op("Rank", [x], "rank", T=_Type(_type(site)))
        axis = e.op("FloorMod", [axis, rank_ref], "axis", T=_Type(_INT32))
    e.final(site.node.op, [x, axis], copy_attrs=True, Tidx=_Type(_INT32))


def _match_binary_output(site: Site) -> Optional[str]:
    return "true" if _b(site, "binary_output") and site.rank(0) != 2 else None


def _rewrite_binary_output(editor: GraphEditor, site: Site) -> None:
    e = _Emitter(editor, site.node)
    t = _type(site)
    empty = e.const(np.zeros((0,), _np_dtype(t)), "no_weights")
    counts = e.op("DenseBincount", [site.data[0], site.data[1], empty], "counts",
                  T=_Type(t), Tidx=_Type(_type(site, "Tidx") or _INT32), binary_output=False)
    zero = e.const(np.zeros((), _np_dtype(t)), "zero")
    seen = e.op("Greater", [counts, zero], "seen", T=_Type(t))
    # SelectV2, not Cast: TF.js cpu casts bool to a Uint8Array-backed tensor.
    e.final("SelectV2", [seen, e.const(np.ones((), _np_dtype(t)), "one"), zero], T=_Type(t))


def _slice_spec(site: Site):
    begin, end, strides = site.const(1), site.const(2), site.const(3)
    return begin, end, strides


def _match_strided_shrink(site: Site) -> Optional[str]:
    shrink = _i(site, "shrink_axis_mask")
    if not shrink:
        return None
    strides = site.const(3)
    if strides is None:
        return "shrink_axis_mask=%d with unknown strides" % shrink
    skip = _i(site, "new_axis_mask") | _i(site, "ellipsis_mask")
    if all(int(s) == 1 or (skip >> j) & 1 for j, s in enumerate(strides.reshape(-1))):
        return None
    return "shrink_axis_mask=%d with strides %s" % (shrink, strides.reshape(-1).tolist())


def _rewrite_strided_shrink(editor: GraphEditor, site: Site) -> None:
    """Slices keeping the shrunk axes (size 1, stride 1), then squeezes them."""
    begin, end, strides = _slice_spec(site)
    if begin is None or end is None or strides is None:
        raise _CannotRewrite("needs begin, end and strides constant")
    begin, end, strides = (np.array(v.reshape(-1)) for v in (begin, end, strides))
    shrink = _i(site, "shrink_axis_mask")
    begin_mask, end_mask = _i(site, "begin_mask"), _i(site, "end_mask")
    ellipsis = _i(site, "ellipsis_mask")
    count = len(begin)
    ellipsis_at = next((j for j in range(count) if (ellipsis >> j) & 1), None)
    squeeze = []
    for j in range(count):
        if not (shrink >> j) & 1:
            continue
        begin_mask &= ~(1 << j)
        strides[j] = 1
        if begin[j] == -1:
            end[j], end_mask = 0, end_mask | (1 << j)
        else:
            end[j], end_mask = begin[j] + 1, end_mask & ~(1 << j)
        squeeze.append(j if ellipsis_at is None or j < ellipsis_at else j - count)
    e = _Emitter(editor, site.node)
    t, index = _type(site), _type(site, "Index") or _INT32
    dtype = _np_dtype(index)
    sliced = e.op("StridedSlice", [site.data[0], e.const(begin.astype(dtype), "begin"),
                                   e.const(end.astype(dtype), "end"),
                                   e.const(strides.astype(dtype), "strides")], "slice",
                  T=_Type(t), Index=_Type(index), begin_mask=begin_mask, end_mask=end_mask,
                  ellipsis_mask=ellipsis, new_axis_mask=_i(site, "new_axis_mask"),
                  shrink_axis_mask=0)
    e.final("Squeeze", [sliced], T=_Type(t), squeeze_dims=squeeze)


def _match_batch_dims(site: Site) -> Optional[str]:
    batch_dims = _i(site, "batch_dims")
    return str(batch_dims) if batch_dims else None


def _rewrite_batch_dims(editor: GraphEditor, site: Site) -> None:
    """Batched gather as one flat gather: indices offset by batch * axis size.

    The gathered axis is first transposed next to the batch axes when it is
    not already there, and the result transposed to TF's output order.
    """
    params_rank, indices_rank = site.rank(0), site.rank(1)
    axis_value = site.const(2)
    if params_rank is None or indices_rank is None or axis_value is None:
        raise _CannotRewrite("needs the ranks of params and indices known statically and a "
                             "constant axis")
    batch = _i(site, "batch_dims")
    batch = batch + indices_rank if batch < 0 else batch
    axis = int(axis_value.reshape(-1)[0])
    axis = axis + params_rank if axis < 0 else axis
    e = _Emitter(editor, site.node)
    params, indices = site.data[:2]
    i32 = _Type(_INT32)
    tparams = _Type(_type(site, "Tparams"))
    if axis != batch:
        # Move the gathered axis next to the batch axes; the outer axes (between
        # them) are moved back in front of the indices' axes at the end.
        perm = list(range(batch)) + [axis] + list(range(batch, axis)) + list(
            range(axis + 1, params_rank))
        params = e.op("Transpose", [params, e.const(np.array(perm, np.int32), "params_perm")],
                      "params_axis_first", T=tparams, Tperm=i32)
    if _type(site, "Tindices") == _INT64:
        indices = e.op("Cast", [indices], "indices_int32", SrcT=_Type(_INT64), DstT=i32,
                       Truncate=False)
    shape = e.op("Shape", [params], "shape", T=tparams, out_type=i32)

    def part(begin: int, end: Optional[int], shrink: bool, name: str) -> str:
        return e.op("StridedSlice", [shape, e.const(np.array([begin], np.int32), name + "_begin"),
                                     e.const(np.array([end or 0], np.int32), name + "_end"),
                                     e.const(np.array([1], np.int32), name + "_stride")],
                    name, T=i32, Index=i32, begin_mask=0, end_mask=0 if end is not None else 1,
                    ellipsis_mask=0, new_axis_mask=0, shrink_axis_mask=1 if shrink else 0)

    batch_shape = part(0, batch, False, "batch_shape")
    size = part(batch, batch + 1, True, "axis_size")
    rest = part(batch + 1, None, False, "inner_shape")
    flat_shape = e.op("ConcatV2", [e.const(np.array([-1], np.int32), "minus_one"), rest,
                                   e.const(np.int32(0), "concat_axis")], "flat_shape", N=2, T=i32,
                      Tidx=i32)
    flat = e.op("Reshape", [params, flat_shape], "flat_params", T=tparams, Tshape=i32)
    batches = e.op("Prod", [batch_shape, e.const(np.array([0], np.int32), "prod_axis")],
                   "batches", T=i32, Tidx=i32, keep_dims=False)
    starts = e.op("Mul", [e.op("Range", [e.const(np.int32(0), "zero"), batches,
                                         e.const(np.int32(1), "one")], "batch_ids", Tidx=i32),
                          size], "batch_starts", T=i32)
    offsets_shape = e.op("ConcatV2", [batch_shape, e.const(np.ones(indices_rank - batch, np.int32),
                                                           "ones"),
                                      e.const(np.int32(0), "offsets_concat_axis")],
                         "offsets_shape", N=2, T=i32, Tidx=i32)
    offsets = e.op("Reshape", [starts, offsets_shape], "offsets", T=i32, Tshape=i32)
    flat_indices = e.op("AddV2", [indices, offsets], "flat_indices", T=i32)
    gather_inputs = [flat, flat_indices, e.const(np.int32(0), "gather_axis")]
    if axis == batch:
        e.final("GatherV2", gather_inputs, Tparams=tparams, Tindices=i32, Taxis=i32,
                batch_dims=0)
        return
    gathered = e.op("GatherV2", gather_inputs, "gathered", Tparams=tparams, Tindices=i32,
                    Taxis=i32, batch_dims=0)
    n_indices, n_outer = indices_rank - batch, axis - batch
    out_rank = batch + n_indices + n_outer + params_rank - axis - 1
    perm = (list(range(batch)) + list(range(batch + n_indices, batch + n_indices + n_outer))
            + list(range(batch, batch + n_indices)) + list(range(batch + n_indices + n_outer,
                                                                 out_rank)))
    e.final("Transpose", [gathered, e.const(np.array(perm, np.int32), "output_perm")], T=tparams,
            Tperm=i32)


def _match_unsorted(site: Site) -> Optional[str]:
    return "false" if not _b(site, "sorted", True) else None


def _rewrite_sorted(editor: GraphEditor, site: Site) -> None:
    editor.node(site.node.name).attr["sorted"].b = True


def _fft_length(site: Site) -> Optional[int]:
    value = site.const(1)
    return int(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _match_rfft_length(site: Site) -> Optional[str]:
    # Proven only structurally (the rewrite's Slice to fft_length), so the guard
    # needs no shapes; an RFFT whose input already has that length gets one too.
    length = _fft_length(site)
    producer = site.graph.ref(site.data[0])
    node = site.graph.node(producer[0]) if producer else None
    if length is not None and node is not None and node.op == "Slice" and producer[1] == 0:
        size = site.graph.const(node.input[2])
        if size is not None and size.size and int(size.reshape(-1)[-1]) == length:
            return None
    return "?" if length is None else str(length)


def _rewrite_rfft(editor: GraphEditor, site: Site) -> None:
    """Pads with zeros then slices the inner dimension to fft_length, as TF's RFFT does."""
    length, rank = _fft_length(site), site.rank(0)
    if length is None or rank is None:
        raise _CannotRewrite("needs a constant fft_length and the input's rank known statically")
    e = _Emitter(editor, site.node)
    t = _type(site, "Treal") or _FLOAT
    pads = np.zeros((rank, 2), np.int32)
    pads[-1, 1] = length
    padded = e.op("Pad", [site.data[0], e.const(pads, "paddings")], "padded", T=_Type(t),
                  Tpaddings=_Type(_INT32))
    size = np.full((rank,), -1, np.int32)
    size[-1] = length
    cropped = e.op("Slice", [padded, e.const(np.zeros((rank,), np.int32), "begin"),
                             e.const(size, "size")], "cropped", T=_Type(t), Index=_Type(_INT32))
    e.final("RFFT", [cropped, site.data[1]], copy_attrs=True)


def _match_irfft_length(site: Site) -> Optional[str]:
    length, shape = _fft_length(site), site.shape(0)
    inner = shape[-1] if shape else None
    if length is not None and inner is not None and 2 * (inner - 1) == length:
        return None
    return "%s (input's inner dimension %s)" % ("?" if length is None else length,
                                                "unknown" if inner is None else inner)


def _match_regex_rewrite(site: Site) -> Optional[str]:
    rewrite = _s(site, "rewrite")
    return repr(_text(rewrite)) if b"\\" in rewrite or b"$" in rewrite else None


# RE2 syntax JavaScript's RegExp reads differently or rejects.
_RE2_ONLY = re.compile(r"\(\?[^:=!]|\\[pPzAQECsS]|\[\[:")


def _match_regex_pattern(site: Site) -> Optional[str]:
    pattern = _text(_s(site, "pattern"))
    return repr(pattern) if _RE2_ONLY.search(pattern) else None


def _match_fake_quant(site: Site) -> Optional[str]:
    return "num_bits=%d narrow_range=%s" % (_i(site, "num_bits", 8), _b(site, "narrow_range"))


def _nudge(low: float, high: float, num_bits: int, narrow: bool):
    """``(nudged_min, nudged_max, scale, quant_zero)`` as TF computes them, in float32.

    From ``Nudge`` and ``FakeQuantWithMinMaxVarsFunctor`` of TensorFlow's
    ``core/kernels/fake_quant_ops_functor.h``.
    """
    f = np.float32
    quant_min = f(1 if narrow else 0)
    quant_max = f((1 << num_bits) - 1)
    scale = (f(high) - f(low)) / (quant_max - quant_min)
    inv_scale = (quant_max - quant_min) / (f(high) - f(low))
    zero_from_min = quant_min - f(low) / scale
    if zero_from_min < quant_min:
        nudged_zero = quant_min
    elif zero_from_min > quant_max:
        nudged_zero = quant_max
    else:  # std::round: halves away from zero
        nudged_zero = f(np.floor(zero_from_min + f(0.5)))
    nudged_min = (quant_min - nudged_zero) * scale
    nudged_max = (quant_max - nudged_zero) * scale
    quant_zero = f(np.floor(-nudged_min * inv_scale + f(0.5)))
    return nudged_min, nudged_max, scale, quant_zero


def _rewrite_fake_quant(editor: GraphEditor, site: Site) -> None:
    """TF's formula op by op: floor((clamp(x) - min) / scale - zero + 0.5) * scale."""
    low, high = site.const(1), site.const(2)
    if low is None or high is None or low.size != 1 or high.size != 1:
        raise _CannotRewrite("needs min and max constant scalars")
    low, high = float(low.reshape(-1)[0]), float(high.reshape(-1)[0])
    e = _Emitter(editor, site.node)
    f32 = _Type(_FLOAT)
    if low == 0.0 and high == 0.0:
        e.final("ZerosLike", site.data[:1], T=f32)
        return
    nudged_min, nudged_max, scale, quant_zero = _nudge(low, high, _i(site, "num_bits", 8),
                                                       _b(site, "narrow_range"))
    c = lambda v, n: e.const(np.float32(v), n)  # noqa: E731
    capped = e.op("Minimum", [site.data[0], c(nudged_max, "nudged_max")], "capped", T=f32)
    clamped = e.op("Maximum", [capped, c(nudged_min, "nudged_min")], "clamped", T=f32)
    shifted = e.op("Sub", [clamped, c(nudged_min, "shift")], "shifted", T=f32)
    steps = e.op("RealDiv", [shifted, c(scale, "step")], "steps", T=f32)
    centered = e.op("Sub", [steps, c(quant_zero, "quant_zero")], "centered", T=f32)
    rounded = e.op("Floor", [e.op("AddV2", [centered, c(0.5, "half")], "plus_half", T=f32)],
                   "rounded", T=f32)
    e.final("Mul", [rounded, c(scale, "scale")], T=f32)


def _match_random_int(site: Site) -> Optional[str]:
    low, high = site.const(1), site.const(2)
    return "[%s, %s)" % ("?" if low is None else low.reshape(-1)[0],
                         "?" if high is None else high.reshape(-1)[0])


def _rewrite_identity(editor: GraphEditor, site: Site) -> None:
    e = _Emitter(editor, site.node)
    e.final("Identity", site.data[:1], T=_Type(_type(site)))


def _match_ensure_shape(site: Site) -> Optional[str]:
    value = site.attr("shape")
    if value is None:
        return "any"
    dims = [d.size for d in value.shape.dim]
    return "unknown rank" if value.shape.unknown_rank else str(dims)


# Ops whose outputs only copy, select or compare input values: integers of any width
# pass through them unchanged in TF.js's int32.
_VALUE_PRESERVING = frozenset({
    "Placeholder", "PlaceholderWithDefault", "Const", "Identity", "IdentityN", "Snapshot",
    "StopGradient", "Reshape", "Squeeze", "ExpandDims", "Transpose", "Tile", "BroadcastTo",
    "Pad", "PadV2", "MirrorPad", "Slice", "StridedSlice", "Reverse", "ReverseV2", "Concat",
    "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "Gather", "GatherV2", "GatherNd",
    "TensorScatterUpdate", "Max", "Min", "ArgMax", "ArgMin", "Maximum", "Minimum", "Equal",
    "NotEqual", "Greater", "GreaterEqual", "Less", "LessEqual", "Select", "SelectV2", "Where",
    "Shape", "ShapeN", "Size", "Rank", "ZerosLike", "OnesLike", "Fill", "Relu", "Relu6",
    "ClipByValue", "Unique", "UniqueV2", "TopKV2", "SpaceToBatchND", "BatchToSpaceND",
    "DepthToSpace", "ResizeNearestNeighbor", "ResizeBilinear", "CropAndResize", "MaxPool",
    "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond", "OneHot", "BitwiseAnd",
    "LookupTableFind", "LookupTableFindV2", "LookupTableImport", "LookupTableImportV2",
    "InitializeTable", "InitializeTableV2", "EnsureShape", "Print",
})


def _match_narrow_int(site: Site) -> Optional[str]:
    op = site.node.op
    if op == "Cast":
        src, dst = _type(site, "SrcT"), _type(site, "DstT")
        if dst not in _NARROW_INTS:
            return None
        low, high = _INT_RANGES[dst]
        src_range = _INT_RANGES.get(src)
        if src_range is not None and low <= src_range[0] and src_range[1] <= high:
            return None
        return "DstT=%s (from %s)" % (_NARROW_INTS[dst], _DTYPE_NAMES.get(src, src))
    if op in _VALUE_PRESERVING or op.startswith("TensorList") or op.startswith("TensorArray"):
        return None
    t = _type(site)
    return "T=%s" % _NARROW_INTS[t] if t in _NARROW_INTS else None


def _match_bfloat16(site: Site) -> Optional[str]:
    for key in ("T", "DstT", "SrcT", "dtype", "Tparams"):
        if _type(site, key) == _BFLOAT16:
            return "%s=bfloat16" % key
    return None


# -- the table ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Rule:
    """One (op, attribute, value) TF.js 4.22 computes differently from TensorFlow.

    Attributes:
      key: a short name (tests map every rule to a case by it).
      ops: the TF op names (``*`` for every op).
      attribute: the attribute (or input, or output) whose value differs.
      values: the values that differ, in words.
      action: ``rewrite`` or ``refuse``.
      tfjs: where in ``@tensorflow/tfjs-*`` 4.22 the behaviour comes from.
      why: what TF.js computes instead of TensorFlow's result.
      fix: for refusals, what the user can do; for rewrites, what the rewrite needs.
      match: ``match(site) -> found value`` (text) or None when the node is fine.
      rewrite: ``rewrite(editor, site)`` for rewrite rules.
    """

    key: str
    ops: Tuple[str, ...]
    attribute: str
    values: str
    action: str
    tfjs: str
    why: str
    fix: str
    match: Callable[[Site], Optional[str]]
    rewrite: Optional[Callable[[GraphEditor, Site], None]] = None


_BN = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_CONV_POOL_2D = ("Conv2D", "DepthwiseConv2dNative", "MaxPool", "AvgPool", "Conv2DBackpropInput")
_SPATIAL_3D = ("Conv3D", "MaxPool3D", "AvgPool3D")
_FUSED = ("_FusedConv2D", "_FusedMatMul", "FusedDepthwiseConv2dNative")
_CONVERTER = "tfjs-converter/dist/operations/"
_CPU = "tfjs-backend-cpu/dist/kernels/"
_WASM = "tfjs-backend-wasm/dist/kernels/"
_CORE = "tfjs-core/dist/ops/"

RULES: Tuple[Rule, ...] = (
    # -- normalization --
    Rule("bn_training", _BN, "is_training", "true", "rewrite",
         _CONVERTER + "executors/normalization_executor.js: batchNorm(x, mean, variance, offset, "
         "scale) whatever is_training is; " + _CPU + "BatchNorm.js reads mean[i % mean.length]",
         "TF.js normalizes by the (empty) moving statistics instead of the batch statistics "
         "(tf_keras LayerNormalization -> NaN)",
         "T is float32 and no node reads the batch statistics (outputs 1-5)",
         _match_batch_norm_training, _rewrite_batch_norm),
    Rule("bn_channels_first", _BN, "data_format", "NCHW, NCDHW", "rewrite",
         _CONVERTER + "op_list/normalization.js: data_format notSupported; batchNorm broadcasts "
         "scale/offset/mean/variance along the last axis",
         "TF.js applies the per-channel parameters along the last axis",
         "T is float32 and no node reads the batch statistics (outputs 1-5)",
         _match_batch_norm_layout, _rewrite_batch_norm),
    Rule("bn_epsilon", _BN, "epsilon", "absent", "rewrite",
         _CONVERTER + "op_list/normalization.js: epsilon defaultValue 0.001",
         "TF.js uses epsilon 1e-3 where TensorFlow's default is 1e-4", "",
         _match_batch_norm_epsilon, _rewrite_batch_norm),
    Rule("bn_statistics_read", _BN, "outputs 1-5", "read", "refuse",
         _CONVERTER + "executors/normalization_executor.js returns [batchNorm(...)] only",
         "TF.js produces no batch mean/variance or reserve-space outputs",
         "export the model for inference (training=False) so only output 0 is used",
         _match_batch_norm_outputs),
    # -- arithmetic --
    Rule("bias_add_nchw", ("BiasAdd",), "data_format", "NCHW", "rewrite",
         _CONVERTER + "op_list/arithmetic.js: data_format notSupported; executor ops.add",
         "TF.js adds the bias along the last axis",
         "the rank of the input is known statically",
         _match_bias_add_layout, _rewrite_bias_add),
    Rule("mod", ("Mod",), "T", "any", "rewrite",
         _CONVERTER + "executors/arithmetic_executor.js maps Mod like FloorMod to ops.mod; "
         + _CPU + "Mod.js: (a % b + b) % b",
         "TF.js floors the remainder; TensorFlow's Mod truncates (sign of the dividend)", "",
         _match_dtype, _rewrite_mod),
    Rule("int_div", ("Div",), "T", "int32, int64", "rewrite",
         _CORE + "div.js: int32 / int32 -> floorDiv",
         "TF.js floors the integer quotient; TensorFlow's Div truncates toward zero", "",
         _match_integer, _rewrite_int_div),
    Rule("clip_tensor_bounds", ("ClipByValue",),
         "clip_value_min, clip_value_max", "non-scalar tensor", "rewrite",
         _CONVERTER + "op_list/basic_math.js: clipValueMin/Max type 'number'; "
         "executors/utils.js getParamValue reads dataSync()[0]",
         "TF.js clips every element with the first element of min and max", "",
         _match_clip, _rewrite_clip),
    # -- convolution and pooling --
    Rule("channels_first", _CONV_POOL_2D + _SPATIAL_3D, "data_format", "NCHW, NCDHW", "rewrite",
         _CONVERTER + "executors/convolution_executor.js reads strides[1..2] / dilations[1..2] "
         "(channels-last positions); op_list/convolution.js: data_format notSupported for "
         "MaxPool, AvgPool, *3D pools, Conv2DBackpropInput; " + _CPU
         + "DepthwiseConv2dNative.js and " + _WASM + "DepthwiseConv2dNative.js ignore it; "
         + _WASM + "Conv2D.js and " + _CORE + "conv3d.js throw",
         "TF.js runs the op channels-last (wrong axes, strides or shapes) or throws", "",
         _match_channels_first, _rewrite_channels_first),
    Rule("vect_c", ("MaxPool", "DepthToSpace"), "data_format", "NCHW_VECT_C", "refuse",
         _CONVERTER + "op_list/convolution.js: MaxPool data_format notSupported; " + _CPU
         + "DepthToSpace.js asserts NHWC",
         "TF.js has no NCHW_VECT_C layout: it pools channels-last or throws",
         "export the model with NHWC layout (a CPU export)", _match_vect_c),
    Rule("missing_defaults", tuple(_DEFAULTS),
         "dilations / data_format / fill_mode", "absent", "rewrite",
         _CONVERTER + "op_list/convolution.js (dilations), op_list/convolution.js Conv3D "
         "data_format defaultValue 'NHWC', op_list/transformation.js DepthToSpace and "
         "op_list/image.js fill_mode without defaultValue; executors index or upper-case them",
         "TF.js reads undefined (TypeError) or a wrong default (Conv3D 'NHWC' throws)", "",
         _match_missing_default, _rewrite_defaults),
    Rule("strided_dilated", ("Conv2D", "DepthwiseConv2dNative", "Conv3D"),
         "strides, dilations", "both > 1",
         "refuse",
         _CORE + "conv2d.js, conv3d.js and " + _CPU + "DepthwiseConv2dNative.js assert "
         "eitherStridesOrDilationsAreOne",
         "TF.js throws 'Either strides or dilations must be 1' when the model runs",
         "use strides 1 and subsample after the convolution (a strided slice)",
         _match_strided_dilated),
    Rule("backprop_dilations", ("Conv2DBackpropInput",), "dilations", "!= 1", "refuse",
         _CONVERTER + "op_list/convolution.js: dilations notSupported; executor calls "
         "conv2dTranspose without dilations",
         "TF.js runs the transposed convolution undilated",
         "use dilations 1 (dilate the filter with zeros instead)", _match_backprop_dilations),
    Rule("maxpool_explicit", ("MaxPool",), "padding", "EXPLICIT", "refuse",
         _CONVERTER + "op_list/convolution.js: explicit_paddings notSupported; "
         + _CORE + "conv_util.js getPadAndOutInfo throws 'Unknown padding parameter: explicit'",
         "TF.js throws when the model runs",
         "pad explicitly (tf.pad with -inf) and use VALID pooling", _match_explicit),
    Rule("argmax_read", ("MaxPoolWithArgmax",), "output 1 (argmax)", "read", "refuse",
         _CPU + "MaxPoolWithArgmax.js writes the indexes with x's dtype (float32) but "
         "returns them as int32",
         "TF.js cpu returns float32 bit patterns as the argmax indexes (wasm is right)",
         "use MaxPool, or compute the indexes another way", _match_argmax_read),
    Rule("dilation2d", ("Dilation2D",), "(op)", "any", "rewrite",
         _WASM + "Dilation2D.js -> C++ kernel whose running max starts at FLT_MIN "
         "(measured: a window with x + filter all negative gives 1.1754944e-38; cpu is right)",
         "TF.js wasm returns 1.2e-38 instead of negative maxima",
         "the input's height and width are known statically and the filter is a constant",
         _match_always, _rewrite_dilation),
    Rule("fused_ops", _FUSED, "fused_ops / data_format / filter_format",
         "anything but [BiasAdd(, activation both backends run)], NHWC, HWIO", "refuse",
         _CONVERTER + "executors/convolution_executor.js fusedConvAndDepthWiseParams throws on "
         "FusedBatchNorm; " + _WASM + "FusedConv2D.js FusableActivation, rank-1 bias, NHWC only",
         "TF.js throws or runs a different fusion",
         "the converter splits such fusions in the main graph; convert without "
         "--control_flow_v2 so loop bodies are lowered into it", _match_fused_ops),
    # -- image --
    Rule("transform_fill_mode", ("ImageProjectiveTransformV3",),
         "fill_mode", "REFLECT, WRAP", "refuse",
         _WASM + "Transform.js (REFLECT) and " + _CPU + "Transform.js (WRAP) map coordinates "
         "outside the image differently from TensorFlow (measured)",
         "TF.js returns different values near the borders (wasm REFLECT, cpu WRAP)",
         "use fill_mode CONSTANT or NEAREST", _match_fill_mode),
    # -- transformation --
    Rule("depth_to_space_nchw", ("DepthToSpace",), "data_format", "NCHW", "rewrite",
         _CPU + "DepthToSpace.js asserts NHWC (throws); " + _WASM + "DepthToSpace.js runs it",
         "TF.js cpu throws", "", _match_channels_first, _rewrite_depth_to_space),
    Rule("ensure_shape", ("EnsureShape",), "shape", "any", "rewrite",
         _CONVERTER + "op_list/transformation.js reads shape from input 1 (TF has an attr)",
         "TF.js throws 'Cannot read properties of undefined (reading 'split')'", "",
         _match_ensure_shape, _rewrite_identity),
    # -- creation --
    Rule("one_hot_axis", ("OneHot",), "axis", "!= -1", "rewrite",
         _CONVERTER + "op_list/creation.js: axis notSupported",
         "TF.js always puts the one-hot dimension last",
         "the rank of the indices is known statically",
         _match_one_hot_axis, _rewrite_one_hot),
    Rule("one_hot_dtype", ("OneHot",), "T", "not int32/int64", "rewrite",
         _WASM + "OneHot.js: the C++ kernel writes int32 values whatever the dtype",
         "TF.js wasm returns int32 bit patterns as float/bool values", "",
         _match_one_hot_dtype, _rewrite_one_hot),
    Rule("one_hot_depth", ("OneHot",), "depth", "< 2", "refuse",
         _CORE + "one_hot.js: throws 'depth must be >=2'",
         "TF.js throws when the model runs", "compute the one-hot with Equal instead",
         _match_one_hot_depth),
    Rule("random_uniform_int", ("RandomUniformInt",), "minval, maxval (inputs)", "any", "refuse",
         _CONVERTER + "op_list/creation.js reads minval/maxval as attrs, which TF does not have",
         "TF.js draws from [0, 0)", "draw with RandomUniform and scale, floor and cast",
         _match_random_int),
    # -- logical --
    Rule("select_vector", ("Select",),
         "condition rank", "1 with x of rank > 1 (or unknown)", "rewrite",
         _CORE + "where.js broadcasts condition against the trailing axes (SelectV2)",
         "TF.js selects along the last axis instead of the first",
         "the condition is a scalar or a vector, or has x's rank, with ranks known statically",
         _match_select, _rewrite_select),
    # -- matrices --
    Rule("band_part", ("MatrixBandPart",), "num_upper (input 2)", "!= num_lower", "rewrite",
         _CONVERTER + "op_list/matrices.js: numUpper reads input index 1 (num_lower)",
         "TF.js uses num_lower for both bands (causal masks become all ones)",
         "num_lower and num_upper are constants", _match_band_part, _rewrite_band_part),
    Rule("einsum_private_sum", ("Einsum",),
         "equation", "a summed label in only one of two operands", "rewrite",
         _CPU + "Einsum.js / tfjs-core/dist/backends/einsum_util.js getEinsumPermutation: "
         "an operand joining after the first reduction is indexed with stale axes",
         "TF.js returns a wrong shape and values", "", _match_einsum_private, _rewrite_einsum),
    Rule("einsum_unsupported", ("Einsum",),
         "equation", "ellipsis, a label repeated in an operand, > 2 operands",
         "refuse",
         "tfjs-core/dist/backends/einsum_util.js: decodeEinsumEquation throws",
         "TF.js throws when the model runs",
         "write the contraction with explicit labels, Transpose, MatMul and Sum",
         _match_einsum_unsupported),
    Rule("adjoint_complex", ("BatchMatMul", "BatchMatMulV2"),
         "adj_x, adj_y", "true with complex T", "refuse",
         _CONVERTER + "op_list/matrices.js maps adj_x/adj_y to transposeA/B (no conjugate)",
         "TF.js transposes without conjugating", "conjugate explicitly (tf.math.conj)",
         _match_adjoint_complex),
    # -- reduction --
    Rule("int_mean", ("Mean",), "T", "int32, int64", "rewrite",
         _CPU + "Mean.js and " + _WASM + "Mean.js cast to float32 and return float32",
         "TF.js returns the fractional mean; TensorFlow truncates", "",
         _match_integer, _rewrite_int_mean),
    Rule("cumulative_axis", ("Cumsum", "Cumprod"),
         "axis (input 1)", "negative or not constant", "rewrite",
         _CPU + "Cumsum.js/Cumprod.js and " + _WASM + "Cumsum.js/Cumprod.js call "
         "getAxesPermutation([axis]) without normalizing",
         "TF.js cpu returns an empty tensor; wasm corrupts its memory", "",
         _match_axis_not_known_positive, _rewrite_cumulative_axis),
    Rule("binary_output", ("DenseBincount",), "binary_output", "true (input of rank 1)", "rewrite",
         _CPU + "DenseBincount.js: rank-1 input goes through bincountImpl without binaryOutput",
         "TF.js cpu returns counts instead of 0/1", "",
         _match_binary_output, _rewrite_binary_output),
    # -- slicing and gathering --
    Rule("strided_shrink", ("StridedSlice",),
         "shrink_axis_mask", "set, with a stride != 1", "rewrite",
         _CPU + "StridedSlice.js / StridedSlice_impl.js and " + _WASM + "StridedSlice.js index "
         "the output shape without the shrunk axes against full-rank begin/strides",
         "TF.js reads the wrong elements", "begin, end and strides are constants",
         _match_strided_shrink, _rewrite_strided_shrink),
    Rule("gather_batch_dims", ("GatherV2",), "batch_dims", "!= 0", "rewrite",
         _WASM + "GatherV2.js: the C++ Gather kernel with batchSize > 1 (measured; cpu right)",
         "TF.js wasm gathers from the wrong batch",
         "axis is a constant and the ranks of params and indices are known statically",
         _match_batch_dims, _rewrite_batch_dims),
    Rule("topk_unsorted", ("TopKV2",), "sorted", "false", "rewrite",
         _CPU + "TopK_impl.js returns select() order when unsorted",
         "TensorFlow leaves the order unspecified (its heap order); TF.js's differs. "
         "Rewritten to sorted=true: both backends then return TensorFlow's sorted=true order",
         "", _match_unsorted, _rewrite_sorted),
    # -- spectral --
    Rule("rfft_length", ("RFFT",),
         "fft_length (input 1)", "!= the input's inner dimension", "rewrite",
         _CONVERTER + "executors/spectral_executor.js calls ops.rfft(x) without fft_length",
         "TF.js transforms the whole inner dimension",
         "fft_length is a constant and the input's rank is known statically",
         _match_rfft_length, _rewrite_rfft),
    Rule("irfft_length", ("IRFFT",),
         "fft_length (input 1)", "!= 2 * (inner dimension - 1), or unknown",
         "refuse",
         _CONVERTER + "executors/spectral_executor.js calls ops.irfft(x) without fft_length",
         "TF.js returns 2 * (n - 1) samples", "crop or pad the spectrum to fft_length / 2 + 1 "
         "bins, with a static shape", _match_irfft_length),
    # -- strings --
    Rule("regex_rewrite", ("StaticRegexReplace",), "rewrite", "containing \\ or $", "refuse",
         _CPU + "StaticRegexReplace.js: String.replace(RegExp, rewrite) (JavaScript syntax)",
         "JavaScript reads RE2's \\1 literally and $ as a group reference",
         "use a rewrite without backslashes or dollar signs", _match_regex_rewrite),
    Rule("regex_pattern", ("StaticRegexReplace",),
         "pattern", "RE2-only syntax ((?flags), \\p, \\z, \\A, \\Q, "
         "\\C, \\s, [[:class:]])", "refuse",
         _CPU + "StaticRegexReplace.js: new RegExp(pattern) (JavaScript syntax)",
         "JavaScript rejects or reads the pattern differently",
         "write the pattern in the syntax RE2 and JavaScript share", _match_regex_pattern),
    # -- quantization --
    Rule("fake_quant", ("FakeQuantWithMinMaxVars",),
         "min, max, num_bits, narrow_range", "any", "rewrite",
         _CONVERTER + "executors/graph_executor.js: FakeQuantWithMinMaxVars 'currently ignored' "
         "(identity)",
         "TF.js passes the input through unquantized", "min and max are constant scalars",
         _match_fake_quant, _rewrite_fake_quant),
    # -- dtypes --
    Rule("narrow_int", ("*",),
         "T / DstT", "int8, uint8, int16, uint16, uint32, uint64 on arithmetic",
         "refuse",
         _CONVERTER + "operation_mapper.js parseDtypeParam: int8/uint8 -> int32, others -> null",
         "TF.js computes in int32 without wrapping at the type's width",
         "cast to int32 (or float32) before the arithmetic", _match_narrow_int),
    Rule("bfloat16", ("*",), "T / DstT / SrcT / dtype", "bfloat16", "refuse",
         _CONVERTER + "operation_mapper.js parseDtypeParam: bfloat16 -> null",
         "TF.js has no bfloat16 and fails to cast to it",
         "export with a float32 dtype policy", _match_bfloat16),
)

_BY_OP: Dict[str, List[Rule]] = {}
_ANY_OP: List[Rule] = []
for _rule in RULES:
    if _rule.ops == ("*",):
        _ANY_OP.append(_rule)
    for _op in _rule.ops:
        _BY_OP.setdefault(_op, []).append(_rule)


def rules_for(op: str) -> List[Rule]:
    """The rules that look at nodes of ``op``, in table order."""
    return _BY_OP.get(op, []) + _ANY_OP


def _matches(graph: _Graph, nodes) -> List[Tuple[Rule, Site, str]]:
    """``(rule, site, found value)`` per matching rule; a node any refuse rule matches
    yields only its refusals (rewriting it first would gain nothing and rename it)."""
    found = []
    for node in nodes:
        site = Site(node, graph)
        hits = [(rule, site, value) for rule in rules_for(node.op)
                for value in [rule.match(site)] if value is not None]
        refusals = [hit for hit in hits if hit[0].action == "refuse"]
        found.extend(refusals or hits)
    return found


def matching_rules(graph_def, node_name: str) -> List[Rule]:
    """The rules node ``node_name`` of ``graph_def`` matches (with TF's static shapes).

    For tests and debugging: which table entries a node exercises.
    """
    from converter.graph.optimize.editor import static_shapes
    graph = _Graph(list(graph_def.node), "graph", shapes=lambda: static_shapes(graph_def))
    site = Site(graph.node(node_name), graph)
    return [rule for rule in rules_for(site.node.op) if rule.match(site) is not None]


# -- the rewrite pass (main graph) -------------------------------------------------------


def rewrite_semantics(graph_def, output_node_names):
    """Rewrites every node a ``rewrite`` rule of ``RULES`` matches (a pipeline step).

    Nodes whose rewrite needs facts the graph lacks (a static rank, a constant
    input) are left as they are; ``check_semantics`` refuses them later. Fused
    ops from upstream (TF's remapper) are split first, so their channels-first
    or training-mode parts are seen.

    Args:
      graph_def: a frozen GraphDef TensorFlow can import (after Grappler, before
        the TF.js fusions); not modified.
      output_node_names: nodes whose names and values must be preserved.

    Returns:
      ``graph_def`` itself when nothing needs rewriting (no copy), else a new
      GraphDef.
    """
    from converter.graph.optimize.editor import static_shapes
    from converter.graph.optimize.unfuse import BASE_OP_OF, expand_fused_ops
    if any(node.op in BASE_OP_OF for node in graph_def.node):
        graph_def = expand_fused_ops(graph_def, output_node_names)
    probe = _Graph(list(graph_def.node), "graph", shapes=lambda: static_shapes(graph_def))
    if not any(rule.rewrite is not None for rule, _, _ in _matches(probe, probe.nodes())):
        return graph_def
    editor = GraphEditor(graph_def, output_node_names)
    shapes: Dict[str, Dict] = {}

    def lazy_shapes():
        if "shapes" not in shapes:
            shapes["shapes"] = probe.shape_table()
        return shapes["shapes"]

    # A name is rewritten once: the replacement (same name) must not be taken for
    # the original (an attribute edited in place would match again). Nodes the
    # rewrites add are looked at in the next round.
    rewritten: Set[str] = set()
    failed: Set[Tuple[str, int]] = set()
    for _ in range(_MAX_ROUNDS):
        graph = _Graph(editor.nodes(), "graph", shapes=lazy_shapes)
        progress = False
        for rule, site, _ in _matches(graph, editor.nodes()):
            key = (site.node.name, id(rule))
            if rule.rewrite is None or site.node.name in rewritten or key in failed:
                continue
            try:
                rule.rewrite(editor, site)
            except _CannotRewrite:
                failed.add(key)
                continue
            rewritten.add(site.node.name)
            progress = True
        if not progress:
            break
    return editor.to_graph_def()


# -- the guard ----------------------------------------------------------------------------


def _final_shapes(graph_def):
    """Static shapes of a final graph (TF.js-only fused ops expanded back to TF ops)."""
    from converter.graph.optimize.editor import static_shapes
    from converter.graph.optimize.unfuse import expand_fused_ops
    try:
        return static_shapes(expand_fused_ops(graph_def, []))
    except UnsupportedOpError:
        return {}


def graphs_to_check(graphs: Sequence[Tuple[str, object]]) -> List[_Graph]:
    """The main graph, initializer and every library function, as rule targets."""
    out = []
    for label, graph_def in graphs:
        out.append(_Graph(list(graph_def.node), label,
                          shapes=(lambda g=graph_def: _final_shapes(g))
                          if label == "graph" else None))
        for func in graph_def.library.function:
            out.append(_Graph(list(func.node_def), "function %s" % func.signature.name,
                              in_function=True))
    return out


def describe(rule: Rule, site: Site, value: str, version: str) -> str:
    """One refusal: node, op, attribute, value, what TF.js does, where, and the fix."""
    if rule.action == "refuse":
        fix = rule.fix
    elif site.graph.location == "graph":
        fix = "not rewritten: the converter rewrites it exactly when %s" % (
            rule.fix or "it is in the main graph")
    else:
        fix = ("not rewritten: the converter rewrites it only in the main graph; convert "
               "without --control_flow_v2 so loop and branch bodies are lowered into it")
    return ("node %s (%s) in %s: %s = %s: TensorFlow.js %s differs from TensorFlow: %s "
            "[%s]; fix: %s" % (site.node.name, site.node.op, site.graph.location,
                               rule.attribute, value, version, rule.why, rule.tfjs, fix))


def check_semantics(graphs: Sequence[Tuple[str, object]], where: str) -> None:
    """Refuses every node that TF.js would compute differently from TensorFlow.

    Args:
      graphs: ``(label, GraphDef)`` pairs (``graph``, ``initializer``); their
        function libraries are checked too.
      where: the source, for the message.

    Raises:
      UnsupportedOpError: one entry per offending node (the first few listed).
    """
    from converter.graph.ops import tfjs_version
    found = []
    for graph in graphs_to_check(graphs):
        for rule, site, value in _matches(graph, graph.nodes()):
            found.append(describe(rule, site, value, tfjs_version()))
    if not found:
        return
    more = "" if len(found) <= _MAX_LISTED else "; ... %d more" % (len(found) - _MAX_LISTED)
    raise UnsupportedOpError("%s: %d node(s) would run in TensorFlow.js but compute something "
                             "else than in TensorFlow: %s%s" % (
                                 where, len(found), "; ".join(found[:_MAX_LISTED]), more))
