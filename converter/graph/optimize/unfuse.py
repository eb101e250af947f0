"""What TF.js can run as a fused op, and the expansion of fused ops into primitives.

The tables here come from reading ``@tensorflow/tfjs-converter`` 4.22
(``operations/executors/*``, ``operations/op_list/*``) and the cpu and wasm
backends' kernels:

- the converter reads ``fused_ops`` as ``[extra op, activation]``; the extra op
  must be ``BiasAdd`` (one arg, then the prelu alpha when the activation is
  ``Prelu``) or ``NoOp``; ``FusedBatchNorm`` throws;
- the wasm kernels take only a **rank-1** bias whose length is the number of
  output channels, and the activations linear, relu, relu6, prelu, leakyrelu,
  sigmoid, elu (``FusableActivation``); the cpu kernels take the same list
  (``applyActivation``). ``Tanh`` and the GELUs the TF remapper can fuse run on
  neither;
- ``FusedDepthwiseConv2dNative`` has no ``leakyrelu_alpha`` attr in the op
  mapper, so a fused LeakyRelu would run with the wrong slope there.
"""

from typing import Dict, FrozenSet, List

import numpy as np

from converter.errors import UnsupportedOpError
from converter.graph.optimize.editor import GraphEditor, copy_attrs, string_list

FUSED_CONV2D = "_FusedConv2D"
FUSED_MATMUL = "_FusedMatMul"
FUSED_DEPTHWISE = "FusedDepthwiseConv2dNative"
PRELU = "Prelu"

# Primitive op -> the fused op TF.js runs for it.
FUSED_OP_OF: Dict[str, str] = {
    "Conv2D": FUSED_CONV2D,
    "MatMul": FUSED_MATMUL,
    "DepthwiseConv2dNative": FUSED_DEPTHWISE,
}
BASE_OP_OF: Dict[str, str] = {fused: base for base, fused in FUSED_OP_OF.items()}

_COMMON = frozenset({"Relu", "Relu6", "Elu", "Sigmoid", PRELU})
# Activations each fused op may carry: executed by both the cpu and the wasm backend.
FUSABLE_ACTIVATIONS: Dict[str, FrozenSet[str]] = {
    "Conv2D": _COMMON | {"LeakyRelu"},
    "MatMul": _COMMON | {"LeakyRelu"},
    "DepthwiseConv2dNative": _COMMON,
}

CONV_ATTRS = ("T", "strides", "padding", "explicit_paddings", "data_format", "dilations")
MATMUL_ATTRS = ("T", "transpose_a", "transpose_b")
_UNARY = ("Relu", "Relu6", "Elu", "Sigmoid", "Tanh")


def base_attrs(op: str):
    """The attrs a primitive (or fused) conv/matmul shares with its fused form."""
    return MATMUL_ATTRS if op in ("MatMul", FUSED_MATMUL) else CONV_ATTRS


def expand_fused_ops(graph_def, output_node_names) -> object:
    """Splits every fused conv/matmul and every ``Prelu`` into primitive TF ops.

    ``_FusedConv2D``, ``_FusedMatMul`` and ``FusedDepthwiseConv2dNative``
    become the base op followed by one node per entry of ``fused_ops``
    (``BiasAdd``, ``Add``, ``FusedBatchNorm``, activations); ``Prelu(x, a)``
    becomes the Keras form ``Relu(x) + (-a) * Relu(-x)``. The last node of each
    expansion keeps the fused node's name, so readers and outputs are unchanged.

    The result is a plain TensorFlow graph (TF can execute it), and every
    fusion decision of the later passes is made again, with TF.js's limits.

    Raises:
      UnsupportedOpError: a fused op lists an entry TF.js cannot express.
    """
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if node.op in BASE_OP_OF:
            _expand_fused(editor, node)
        elif node.op == PRELU:
            _expand_prelu(editor, node)
    return editor.to_graph_def()


def _expand_fused(editor: GraphEditor, node) -> None:
    base_op = BASE_OP_OF[node.op]
    data = editor.data_inputs(node)
    num_args = node.attr["num_args"].i if "num_args" in node.attr else len(data) - 2
    args = data[2:2 + num_args]
    ops = [op for op in string_list(node, "fused_ops") if op != "NoOp"]
    device = node.device
    base = editor.new_node(base_op, editor.unique_name(node.name + "/" + base_op),
                           data[:2] + editor.control_inputs(node), device)
    copy_attrs(node, base, base_attrs(base_op))
    if base_op == "Conv2D":
        copy_attrs(node, base, ("use_cudnn_on_gpu",))
    chain = [base]
    arg = 0

    def take(count: int) -> List[str]:
        nonlocal arg
        if arg + count > len(args):
            raise UnsupportedOpError(
                "node %s (%s): fused_ops %s need more than its %d args" % (
                    node.name, node.op, ops, len(args)))
        taken = args[arg:arg + count]
        arg += count
        return taken

    for op in ops:
        prev = chain[-1].name
        name = editor.unique_name("%s/%s" % (node.name, op))
        if op == "BiasAdd":
            step = editor.new_node("BiasAdd", name, [prev] + take(1), device)
            copy_attrs(node, step, ("T", "data_format"))
        elif op == "Add":
            step = editor.new_node("AddV2", name, [prev] + take(1), device)
            copy_attrs(node, step, ("T",))
        elif op == "FusedBatchNorm":
            step = editor.new_node("FusedBatchNormV3", name, [prev] + take(4), device)
            copy_attrs(node, step, ("T", "epsilon", "data_format"))
            step.attr["U"].CopyFrom(node.attr["T"])
            step.attr["is_training"].b = False
        elif op in _UNARY:
            step = editor.new_node(op, name, [prev], device)
            copy_attrs(node, step, ("T",))
        elif op == "LeakyRelu":
            step = editor.new_node(op, name, [prev], device)
            copy_attrs(node, step, ("T",))
            step.attr["alpha"].f = node.attr["leakyrelu_alpha"].f if (
                "leakyrelu_alpha" in node.attr) else 0.2
        elif op == PRELU:
            step = _prelu_nodes(editor, name, prev, take(1)[0], node)
        else:
            raise UnsupportedOpError(
                "node %s (%s): fused op %r has no TF.js equivalent; want BiasAdd, Add, "
                "FusedBatchNorm or one of %s" % (node.name, node.op, op,
                                                  sorted(_UNARY + ("LeakyRelu", PRELU))))
        chain.append(step)
    # The last node takes the fused node's name, so readers need no rewiring.
    chain[-1].name = node.name
    editor.remove(node.name)
    for step in chain:
        editor.put(step)


def _prelu_nodes(editor: GraphEditor, name: str, x: str, alpha: str, like):
    """Adds ``Relu(x) + Mul(-alpha, Relu(Neg(x)))``; returns the (unput) AddV2 node."""
    device = like.device
    value = editor.const_value(alpha)
    if value is not None:
        neg_alpha = editor.add_const(name + "/neg_alpha", (-value).astype(value.dtype), like=alpha)
    else:
        neg = editor.new_node("Neg", editor.unique_name(name + "/neg_alpha"), [alpha], device)
        _ensure_t(neg, like)
        editor.put(neg)
        neg_alpha = neg.name
    pos = editor.new_node("Relu", editor.unique_name(name + "/pos"), [x], device)
    neg_x = editor.new_node("Neg", editor.unique_name(name + "/neg_x"), [x], device)
    relu_neg = editor.new_node("Relu", editor.unique_name(name + "/neg"), [neg_x.name], device)
    scaled = editor.new_node("Mul", editor.unique_name(name + "/mul"),
                             [neg_alpha, relu_neg.name], device)
    for step in (pos, neg_x, relu_neg, scaled):
        _ensure_t(step, like)
        editor.put(step)
    add = editor.new_node("AddV2", name, [pos.name, scaled.name], device)
    _ensure_t(add, like)
    return add


def _ensure_t(node, like) -> None:
    if "T" in like.attr:
        node.attr["T"].CopyFrom(like.attr["T"])
    else:
        node.attr["T"].type = 1  # DT_FLOAT


def _expand_prelu(editor: GraphEditor, node) -> None:
    data = editor.data_inputs(node)
    controls = editor.control_inputs(node)
    editor.remove(node.name)
    add = _prelu_nodes(editor, editor.unique_name(node.name + "/expanded"), data[0], data[1],
                       node)
    add.name = node.name
    if controls:
        add.input.extend(controls)
    editor.put(add)


def per_channel(value: np.ndarray, channels: int, rank: int):
    """``value`` as a length-``channels`` vector if it only varies along the last axis.

    Returns None when ``value`` broadcast against a rank-``rank`` tensor with
    ``channels`` channels last would change that tensor's shape or vary along
    another axis.
    """
    if value.ndim > rank or any(d != 1 for d in value.shape[:-1]):
        return None
    if value.ndim == 0 or value.shape[-1] == 1:
        return np.full((channels,), value.reshape(-1)[0], dtype=value.dtype)
    if value.shape[-1] != channels:
        return None
    return value.reshape(channels)

