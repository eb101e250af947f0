"""Batch-norm folding, and batch norms rewritten into ops TF.js computes exactly.

Two folding passes:

- ``decompose_batch_norms``: an inference ``FusedBatchNorm{,V2,V3}`` with
  constant parameters that follows a foldable conv/matmul becomes
  ``x * scale + offset`` with constant ``scale``/``offset``;
- ``fold_affine_into_weights``: a chain of per-channel ``Mul``/``RealDiv``/
  ``Add``/``AddV2``/``Sub``/``BiasAdd`` by constants after ``Conv2D``,
  ``DepthwiseConv2dNative`` or ``MatMul`` (the form Keras 3 exports leave
  behind, ``x * scale + offset``) is folded: the scale into the filter, the
  offsets into one ``BiasAdd`` with a rank-1 bias. That is also bias-add
  normalization: ``Add(conv, const)`` becomes ``BiasAdd``.

Guarantees: only float32, NHWC, constant weights, per-channel constants (a
constant that varies along any other axis, or would broadcast the output to a
bigger shape, stops the chain); every folded intermediate has exactly one
reader and is not a graph output; the chain's last node name is kept, so
readers and outputs are unchanged. A filter shared by other nodes is copied,
never modified.

And one rewrite the semantics guard (``converter/graph/semantics.py``) runs:
``decompose_batch_norm_exactly`` turns a ``FusedBatchNorm{,V2,V3}`` that TF.js
would compute wrongly (training mode, channels-first layouts) into
Mean/SquaredDifference/Rsqrt/Sub/Mul/AddV2, ops both TF.js backends compute as
TensorFlow does.
"""

from typing import List, Optional, Tuple

import numpy as np

from converter.graph.optimize.editor import (GraphEditor, attr_b, attr_f, attr_s, attr_type,
                                             dtype_enum, parse_input)
from converter.graph.optimize.unfuse import per_channel

_FOLDABLE = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
_BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3")
_FLOAT = 1  # DT_FLOAT


def weights_layout(editor: GraphEditor, node) -> Optional[Tuple[np.ndarray, int, int]]:
    """``(weights, output channels, output rank)`` of a foldable conv/matmul, or None.

    None when the op is not Conv2D/DepthwiseConv2dNative/MatMul, not float32,
    not NHWC, or its weights are not a Const.
    """
    if node.op not in _FOLDABLE or attr_type(node) != _FLOAT:
        return None
    if node.op != "MatMul" and attr_s(node, "data_format") not in (b"", b"NHWC"):
        return None
    data = editor.data_inputs(node)
    if len(data) != 2:
        return None
    weights = editor.const_value(data[1])
    if weights is None or weights.dtype != np.float32:
        return None
    if node.op == "MatMul":
        if weights.ndim != 2:
            return None
        channels = weights.shape[0] if attr_b(node, "transpose_b") else weights.shape[1]
        return weights, int(channels), 2
    if weights.ndim != 4:
        return None
    channels = weights.shape[3] * (weights.shape[2] if node.op == "DepthwiseConv2dNative" else 1)
    return weights, int(channels), 4


def scale_weights(op: str, weights: np.ndarray, scale: np.ndarray, transpose_b: bool = False):
    """``weights`` with output channel ``c`` multiplied by ``scale[c]``."""
    scale = scale.astype(np.float64)
    if op == "Conv2D":
        out = weights * scale
    elif op == "DepthwiseConv2dNative":
        out = weights * scale.reshape(weights.shape[2], weights.shape[3])
    elif transpose_b:
        out = weights * scale[:, None]
    else:
        out = weights * scale[None, :]
    return out.astype(weights.dtype)


def decompose_batch_norms(graph_def, output_node_names):
    """Rewrites inference FusedBatchNorms after a foldable conv/matmul as ``x*s + o``.

    The Mul/AddV2 pair then folds into the conv's weights
    (``fold_affine_into_weights``). Other batch norms are left alone (TF.js runs
    ``FusedBatchNorm`` as one kernel).
    """
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if node.op not in _BATCH_NORMS or attr_b(node, "is_training", True):
            continue
        if attr_s(node, "data_format") not in (b"", b"NHWC") or attr_type(node) != _FLOAT:
            continue
        data = editor.data_inputs(node)
        if len(data) != 5 or editor.control_inputs(node):
            continue
        # Outputs 1..5 (batch statistics) must be unused.
        if any(parse_input(i)[0] == node.name and parse_input(i)[1] != 0
               for reader in editor.consumers(node.name) for i in editor.node(reader).input):
            continue
        producer, index, _ = parse_input(data[0])
        if producer not in editor or index != 0:
            continue
        sole = editor.sole_data_consumer(producer)
        if sole is None or sole.name != node.name:
            continue
        if weights_layout(editor, editor.node(producer)) is None:
            continue
        params = [editor.const_value(i) for i in data[1:]]
        if any(p is None for p in params):
            continue
        gamma, beta, mean, variance = (p.astype(np.float64) for p in params)
        epsilon = node.attr["epsilon"].f if "epsilon" in node.attr else 1e-4
        scale = gamma / np.sqrt(variance + epsilon)
        offset = beta - mean * scale
        scale_name = editor.add_const(node.name + "/folded_scale", scale.astype(np.float32),
                                      like=data[1])
        offset_name = editor.add_const(node.name + "/folded_offset", offset.astype(np.float32),
                                       like=data[2])
        mul = editor.new_node("Mul", editor.unique_name(node.name + "/scaled"),
                              [data[0], scale_name], node.device)
        mul.attr["T"].type = _FLOAT
        editor.put(mul)
        add = editor.new_node("AddV2", node.name, [mul.name, offset_name], node.device)
        add.attr["T"].type = _FLOAT
        editor.put(add)
    return editor.to_graph_def()


def fold_affine_into_weights(graph_def, output_node_names):
    """Folds per-channel constant Mul/Div/Add/Sub/BiasAdd chains into conv/matmul weights.

    Returns a GraphDef where each folded chain is ``op(x, w') -> BiasAdd(b)``
    (no BiasAdd when the chain only scaled), the BiasAdd named like the
    chain's last node.
    """
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if node.name not in editor:
            continue
        layout = weights_layout(editor, node)
        if layout is None:
            continue
        weights, channels, rank = layout
        scale = np.ones((channels,), np.float64)
        bias = None
        chain = []
        current = node
        while True:
            step = _affine_step(editor, current, channels, rank)
            if step is None:
                break
            reader, kind, value = step
            if kind == "mul":
                scale, bias = scale * value, None if bias is None else bias * value
            elif kind == "div":
                scale, bias = scale / value, None if bias is None else bias / value
            elif kind == "add":
                bias = value if bias is None else bias + value
            elif kind == "sub":
                bias = -value if bias is None else bias - value
            else:  # "rsub": value - x
                scale, bias = -scale, value if bias is None else value - bias
            chain.append(reader)
            current = reader
        if not chain:
            continue
        _rewrite_chain(editor, node, weights, scale, bias, chain)
    return editor.to_graph_def()


def _affine_step(editor: GraphEditor, current, channels: int, rank: int):
    """``(reader, kind, per-channel float64 value)`` if ``current``'s reader is affine."""
    reader = editor.sole_data_consumer(current.name)
    if reader is None or editor.control_inputs(reader):
        return None
    if attr_type(reader) != _FLOAT:
        return None
    data = editor.data_inputs(reader)
    if len(data) != 2:
        return None
    refs = [parse_input(d) for d in data]
    if refs[0][:2] == (current.name, 0):
        const_index = 1
    elif refs[1][:2] == (current.name, 0):
        const_index = 0
    else:
        return None
    value = editor.const_value(data[const_index])
    if value is None or value.dtype != np.float32:
        return None
    if reader.op == "BiasAdd":
        if const_index != 1 or attr_s(reader, "data_format") not in (b"", b"NHWC"):
            return None
        if value.shape != (channels,):
            return None
        vector = value
        kind = "add"
    else:
        vector = per_channel(value, channels, rank)
        if vector is None:
            return None
        if reader.op in ("Add", "AddV2"):
            kind = "add"
        elif reader.op == "Mul":
            kind = "mul"
        elif reader.op == "Sub":
            kind = "sub" if const_index == 1 else "rsub"
        elif reader.op == "RealDiv" and const_index == 1 and np.all(vector != 0):
            kind = "div"
        else:
            return None
    return reader, kind, vector.astype(np.float64)


def _rewrite_chain(editor: GraphEditor, node, weights, scale, bias, chain) -> None:
    last = chain[-1]
    data = editor.data_inputs(node)
    inputs = [data[0], data[1]]
    if not np.all(scale == 1.0):
        folded = scale_weights(node.op, weights, scale,
                               node.op == "MatMul" and attr_b(node, "transpose_b"))
        inputs[1] = editor.add_const(node.name + "/folded_weights", folded, like=data[1])
    # ``put`` under the last node's name replaces it in place (graph order kept).
    for step in chain[:-1]:
        editor.remove(step.name)
    controls = editor.control_inputs(node)
    if bias is None:
        # Only scaling: the conv itself takes the chain's name.
        editor.remove(node.name)
        conv = editor.new_node(node.op, last.name, inputs + controls, node.device)
        conv.attr.MergeFrom(node.attr)
        editor.put(conv)
        return
    editor.replace_inputs(node, inputs + controls)
    bias_name = editor.add_const(last.name + "/bias", bias.astype(np.float32), like=data[1])
    bias_add = editor.new_node("BiasAdd", last.name, [node.name, bias_name], node.device)
    bias_add.attr["T"].type = dtype_enum("float32")
    bias_add.attr["data_format"].s = b"NHWC"
    editor.put(bias_add)


_SUMS = ("AddN", "Add", "AddV2")


def push_constant_adds_into_convs(graph_def, output_node_names):
    """Moves ``Add(sum(..., conv, ...), const)`` into ``sum(..., conv + const, ...)``.

    ``BiasAdd`` counts as an Add of a per-channel constant: an LSTM cell's
    ``BiasAdd(MatMul(x, W) + MatMul(h, U), b)`` becomes
    ``(MatMul(x, W) + b) + MatMul(h, U)``, whose first term fuses.

    Grappler's arithmetic optimizer turns a residual ``(conv*s + o) + r`` into
    ``AddN(conv', r) + o``, which hides the BN offset ``o`` from
    ``fold_affine_into_weights``. Runs after that pass: the per-channel
    constant joins the conv's BiasAdd (or becomes one), and the sum node takes
    the Add's name. The conv, its BiasAdd and the sum must each have one reader.
    """
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if node.op not in ("Add", "AddV2", "BiasAdd") or node.name not in editor:
            continue
        if attr_type(node) != _FLOAT or editor.control_inputs(node):
            continue
        data = editor.data_inputs(node)
        if len(data) != 2 or attr_s(node, "data_format") not in (b"", b"NHWC"):
            continue
        values = [editor.const_value(d) for d in data]
        if node.op == "BiasAdd" and (values[1] is None or values[1].ndim != 1):
            continue
        if (values[0] is None) == (values[1] is None):
            continue
        const = values[0] if values[0] is not None else values[1]
        const_ref = data[0] if values[0] is not None else data[1]
        sum_ref = data[1] if values[0] is not None else data[0]
        sum_name, index, _ = parse_input(sum_ref)
        if index != 0 or const.dtype != np.float32:
            continue
        total = editor.node(sum_name)
        sole = editor.sole_data_consumer(sum_name)
        if total.op not in _SUMS or sole is None or sole.name != node.name:
            continue
        if editor.control_inputs(total):
            continue
        target = _pushable_term(editor, total, const)
        if target is None:
            continue
        term_index, vector, bias_add = target
        terms = editor.data_inputs(total)
        if bias_add is not None:
            # conv -> BiasAdd(b) already: the constant joins b.
            data = editor.data_inputs(bias_add)
            summed = editor.const_value(data[1]).astype(np.float64) + vector
            bias_name = editor.add_const(bias_add.name + "/bias", summed.astype(np.float32),
                                         like=data[1])
            editor.replace_inputs(bias_add, [data[0], bias_name])
        else:
            conv_name = parse_input(terms[term_index])[0]
            bias_name = editor.add_const(node.name + "/pushed_bias", vector.astype(np.float32),
                                         like=const_ref)
            bias_add = editor.new_node("BiasAdd",
                                       editor.unique_name(conv_name + "/pushed_bias_add"),
                                       [conv_name, bias_name], node.device)
            bias_add.attr["T"].type = _FLOAT
            bias_add.attr["data_format"].s = b"NHWC"
            editor.put(bias_add)
            terms[term_index] = bias_add.name
        merged = editor.new_node(total.op, node.name, terms, total.device)
        merged.attr.MergeFrom(total.attr)
        editor.put(merged)  # replaces the Add in place
        editor.remove(total.name)
    return editor.to_graph_def()


def _pushable_term(editor: GraphEditor, total, const):
    """``(input index, per-channel vector, BiasAdd or None)`` of a conv term of ``total``.

    The term is a foldable conv/matmul, or a ``BiasAdd`` of a constant rank-1
    bias on one; each node involved has one reader.
    """
    for i, ref in enumerate(editor.data_inputs(total)):
        if editor.const_value(ref) is not None:
            return None
        name, index, _ = parse_input(ref)
        sole = editor.sole_data_consumer(name) if index == 0 and name in editor else None
        if sole is None or sole.name != total.name:
            continue
        term = editor.node(name)
        bias_add = None
        if term.op == "BiasAdd" and not editor.control_inputs(term):
            bias_add = term
            data = editor.data_inputs(term)
            bias = editor.const_value(data[1])
            conv_name, conv_index, _ = parse_input(data[0])
            sole = editor.sole_data_consumer(conv_name) if conv_name in editor else None
            if (bias is None or bias.ndim != 1 or conv_index != 0 or sole is None
                    or sole.name != term.name or attr_s(term, "data_format") not in (b"", b"NHWC")):
                continue
            term = editor.node(conv_name)
        layout = weights_layout(editor, term)
        if layout is None or (bias_add is not None and bias.shape != (layout[1],)):
            continue
        _, channels, rank = layout
        vector = per_channel(const, channels, rank)
        if vector is not None:
            return i, vector.astype(np.float64), bias_add
    return None


# -- exact decomposition for TF.js ----------------------------------------------------

# TensorFlow's FusedBatchNorm* default epsilon (TF.js's op mapper defaults to 1e-3).
TF_DEFAULT_EPSILON = 1e-4
_INT32 = 3  # DT_INT32
# data_format -> (rank, channel axis).
BATCH_NORM_LAYOUTS = {b"NHWC": (4, 3), b"NCHW": (4, 1), b"NDHWC": (5, 4), b"NCDHW": (5, 1)}


def batch_norm_outputs_read(editor: GraphEditor, node) -> List[int]:
    """The outputs >= 1 of a FusedBatchNorm* that some node reads (batch statistics)."""
    read = set()
    for reader in editor.consumers(node.name):
        for text in editor.node(reader).input:
            name, index, control = parse_input(text)
            if name == node.name and not control and index >= 1:
                read.add(index)
    return sorted(read)


def decompose_batch_norm_exactly(editor: GraphEditor, node) -> bool:
    """Rewrites one ``FusedBatchNorm{,V2,V3}`` into ops TF.js computes like TensorFlow.

    TF.js runs every FusedBatchNorm as ``batchNorm(x, mean, variance, offset,
    scale)`` with the parameters broadcast along the last axis: it ignores
    ``is_training`` (tf_keras's LayerNormalization lowers to a training-mode
    batch norm with empty mean/variance, which TF.js turns into NaN) and
    ``data_format`` (channels-first parameters land on the wrong axis).

    Training mode becomes TensorFlow's own formula over the normalized axes (all
    but the channel axis)::

        mean = Mean(x, axes, keep_dims)      var = Mean(SquaredDifference(x, mean), axes)
        y = (x - mean) * (Rsqrt(var + epsilon) * scale) + offset

    Inference mode becomes ``y = x * s + o`` with ``s = scale / sqrt(variance +
    epsilon)`` and ``o = offset - mean * s`` folded in float64 when the
    parameters are constants, else the same formula as ops. Channels-first
    parameters are reshaped to ``[C, 1, 1(, 1)]``. A ``scale`` of ones and an
    ``offset`` of zeros (constants, or ``Fill`` of one) are dropped. The last
    node takes the batch norm's name, so readers and graph outputs are unchanged.

    Args:
      editor: the graph being edited.
      node: a FusedBatchNorm* NodeDef of ``editor``.

    Returns:
      False (graph unchanged) when the node cannot be rewritten exactly: its
      batch statistics (outputs 1..5) are read, ``T`` is not float32, or the
      data_format is unknown; the semantics guard then refuses it.
    """
    if attr_type(node) != _FLOAT or batch_norm_outputs_read(editor, node):
        return False
    layout = BATCH_NORM_LAYOUTS.get(attr_s(node, "data_format", b"NHWC"))
    data = editor.data_inputs(node)
    if layout is None or len(data) != 5:
        return False
    rank, channel_axis = layout
    x, scale, offset, mean, variance = data
    epsilon = attr_f(node, "epsilon", TF_DEFAULT_EPSILON)
    channels_last = channel_axis == rank - 1
    param_shape = [-1] + [1] * (rank - 1 - channel_axis)
    prefix = node.name + "/tfjs_exact"

    def emit(op: str, inputs, name: str, **attrs) -> str:
        new = editor.new_node(op, editor.unique_name(prefix + "/" + name), inputs, node.device)
        new.attr["T"].type = _FLOAT
        for key, value in attrs.items():
            if isinstance(value, bool):
                new.attr[key].b = value
            else:
                new.attr[key].type = value
        editor.put(new)
        return new.name

    def const(name: str, value) -> str:
        return editor.add_const(prefix + "/" + name, np.asarray(value), like=scale)

    def per_channel_param(ref: str, name: str) -> str:
        """``ref`` shaped to broadcast along the channel axis."""
        if channels_last:
            return ref
        value = editor.const_value(ref)
        if value is not None:
            return const(name, value.astype(np.float32).reshape(param_shape))
        return emit("Reshape", [ref, const(name + "_shape", np.array(param_shape, np.int32))],
                    name, Tshape=_INT32)

    def final(op: str, inputs) -> None:
        out = editor.new_node(op, node.name, inputs + editor.control_inputs(node), node.device)
        out.attr["T"].type = _FLOAT
        editor.put(out)  # replaces the batch norm in place

    drop_scale = _is_filled_with(editor, scale, 1.0)
    drop_offset = _is_filled_with(editor, offset, 0.0)
    if attr_b(node, "is_training", True):
        axes = const("axes", np.array([a for a in range(rank) if a != channel_axis], np.int32))
        batch_mean = emit("Mean", [x, axes], "mean", Tidx=_INT32, keep_dims=True)
        squared = emit("SquaredDifference", [x, batch_mean], "squared_difference")
        batch_var = emit("Mean", [squared, axes], "variance", Tidx=_INT32, keep_dims=True)
        centered = emit("Sub", [x, batch_mean], "centered")
    else:
        params = [editor.const_value(r) for r in (scale, offset, mean, variance)]
        if all(p is not None for p in params):
            gamma, beta, mu, var = (p.astype(np.float64) for p in params)
            s = gamma / np.sqrt(var + np.float64(np.float32(epsilon)))
            o = beta - mu * s
            scaled = emit("Mul", [x, const("scale", s.astype(np.float32).reshape(param_shape))],
                          "scaled")
            final("AddV2", [scaled, const("offset", o.astype(np.float32).reshape(param_shape))])
            return True
        batch_var = per_channel_param(variance, "variance")
        centered = emit("Sub", [x, per_channel_param(mean, "mean")], "centered")
    shifted = emit("AddV2", [batch_var, const("epsilon", np.float32(epsilon))], "variance_epsilon")
    factor = emit("Rsqrt", [shifted], "inverse_std")
    if not drop_scale:
        factor = emit("Mul", [factor, per_channel_param(scale, "scale")], "factor")
    if drop_offset:
        final("Mul", [centered, factor])
    else:
        normalized = emit("Mul", [centered, factor], "normalized")
        final("AddV2", [normalized, per_channel_param(offset, "offset")])
    return True


def _is_filled_with(editor: GraphEditor, ref: str, number: float) -> bool:
    """Whether ``ref`` is a Const, or a ``Fill`` of a Const, whose every value is ``number``."""
    value = editor.const_value(ref)
    if value is not None:
        return bool(value.size) and bool(np.all(value == number))
    name, index, _ = parse_input(ref)
    if name not in editor or index != 0 or editor.node(name).op != "Fill":
        return False
    data = editor.data_inputs(editor.node(name))
    fill = editor.const_value(data[1]) if len(data) == 2 else None
    return fill is not None and fill.size == 1 and bool(fill.reshape(-1)[0] == number)
