"""Fuses conv/matmul + BiasAdd + activation into the fused ops TF.js runs.

``Conv2D`` -> ``_FusedConv2D``, ``MatMul`` -> ``_FusedMatMul``,
``DepthwiseConv2dNative`` -> ``FusedDepthwiseConv2dNative``, always with
``fused_ops = [BiasAdd]`` or ``[BiasAdd, <activation>]`` (a zero bias is added
when the graph has none, which both backends and TF accept).

Guarantees (see ``unfuse.py`` for where each limit comes from):

- the bias is a Const of shape ``[output channels]``: never a residual
  ``Add`` or a rank > 1 tensor (TF.js wasm throws on those);
- the activation runs on cpu and wasm for that op (no Tanh, no GELU, no
  LeakyRelu on depthwise); a ``Prelu`` alpha is fused only when it is one
  value per output channel;
- float32, NHWC, SAME/VALID padding only; every absorbed node has one reader
  and is not a graph output; the fused node takes the last absorbed node's
  name.
"""

import numpy as np

from converter.graph.optimize.batch_norm import weights_layout
from converter.graph.optimize.editor import (GraphEditor, attr_s, attr_type, copy_attrs,
                                             set_string_list)
from converter.graph.optimize.unfuse import (FUSABLE_ACTIVATIONS, FUSED_CONV2D, FUSED_OP_OF, PRELU,
                                             base_attrs, per_channel)

_FLOAT = 1  # DT_FLOAT


def fuse_conv_bias_activation(graph_def, output_node_names):
    """Returns the graph with each eligible conv/matmul chain fused into one node."""
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if node.name not in editor or editor.node(node.name) is not node:
            continue
        layout = weights_layout(editor, node)
        if layout is None or attr_s(node, "padding") == b"EXPLICIT":
            continue
        _, channels, _ = layout
        absorbed = []
        bias = None
        current = node
        reader = editor.sole_data_consumer(current.name)
        if reader is not None and reader.op == "BiasAdd" and _is_bias(editor, reader, channels):
            bias = editor.data_inputs(reader)[1]
            absorbed.append(reader)
            current = reader
            reader = editor.sole_data_consumer(current.name)
        activation = None
        extra = None
        if reader is not None and reader.op in FUSABLE_ACTIVATIONS[node.op] and (
                attr_type(reader) == _FLOAT):
            if reader.op == PRELU:
                extra = _prelu_alpha(editor, reader, channels)
                if extra is not None:
                    activation = reader
            else:
                activation = reader
        if activation is not None:
            absorbed.append(activation)
        if not absorbed:
            continue
        if bias is None:
            bias = editor.add_const(node.name + "/zero_bias", np.zeros((channels,), np.float32),
                                    like=editor.data_inputs(node)[1])
        _emit(editor, node, bias, activation, extra, absorbed)
    return editor.to_graph_def()


def _is_bias(editor: GraphEditor, bias_add, channels: int) -> bool:
    if attr_s(bias_add, "data_format") not in (b"", b"NHWC") or attr_type(bias_add) != _FLOAT:
        return False
    value = editor.const_value(editor.data_inputs(bias_add)[1])
    return value is not None and value.dtype == np.float32 and value.shape == (channels,)


def _prelu_alpha(editor: GraphEditor, prelu, channels: int):
    """The name of a rank-1 per-channel alpha Const for ``prelu``, or None."""
    ref = editor.data_inputs(prelu)[1]
    value = editor.const_value(ref)
    if value is None:
        return None
    if value.shape == (channels,):
        return ref
    vector = per_channel(value, channels, 4)
    if vector is not None:
        return editor.add_const(prelu.name + "/alpha_vector", vector, like=ref)
    return None


def _emit(editor: GraphEditor, node, bias: str, activation, extra, absorbed) -> None:
    fused_op = FUSED_OP_OF[node.op]
    last = absorbed[-1]
    data = editor.data_inputs(node)
    args = [bias] + ([extra] if extra is not None else [])
    controls = []
    for step in [node] + absorbed:
        controls.extend(c for c in editor.control_inputs(step) if c not in controls)
    fused = editor.new_node(fused_op, last.name, data[:2] + args + controls, node.device)
    copy_attrs(node, fused, base_attrs(node.op))
    if node.op == "Conv2D":
        copy_attrs(node, fused, ("use_cudnn_on_gpu",))
    ops = ["BiasAdd"] + ([activation.op] if activation is not None else [])
    set_string_list(fused, "fused_ops", ops)
    fused.attr["num_args"].i = len(args)
    fused.attr["epsilon"].f = 0.0
    if fused_op == FUSED_CONV2D:
        fused.attr["TArgs"].list.type.extend([_FLOAT] * len(args))
    if activation is not None and activation.op == "LeakyRelu":
        fused.attr["leakyrelu_alpha"].f = activation.attr["alpha"].f if (
            "alpha" in activation.attr) else 0.2
    editor.put(fused)  # replaces the last absorbed node in place
    for step in absorbed[:-1]:
        editor.remove(step.name)
    editor.remove(node.name)
