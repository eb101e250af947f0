"""PReLU fusion: the Keras form ``Relu(x) + (-alpha) * Relu(-x)`` becomes ``Prelu(x, alpha)``.

``Prelu`` is a TF.js op (not a TensorFlow one). The wasm kernel reads alpha by
flat index modulo alpha's size, without broadcasting, so the pass only emits
``Prelu`` when that indexing is right: alpha, with its leading 1s dropped,
must equal the trailing dims of x exactly. An alpha with inner 1s (Keras
``shared_axes`` other than the leading ones) is materialized to x's trailing
shape when x's static shape is known; otherwise the pattern is left unfused.
"""

from typing import Optional, Sequence

import numpy as np

from converter.graph.optimize.editor import GraphEditor, attr_type, parse_input, static_shapes
from converter.graph.optimize.unfuse import PRELU

_FLOAT = 1  # DT_FLOAT


def wasm_alpha(alpha: np.ndarray, x_shape: Optional[Sequence[Optional[int]]]):
    """``alpha`` reshaped so wasm's modulo indexing equals broadcasting, or None."""
    if x_shape is None or alpha.ndim > len(x_shape):
        return None
    trailing = tuple(x_shape[len(x_shape) - alpha.ndim:]) if alpha.ndim else ()
    if any(d is None for d in trailing):
        return None
    for a_dim, x_dim in zip(alpha.shape, trailing):
        if a_dim not in (1, x_dim):
            return None
    full = np.broadcast_to(alpha, trailing)
    # Drop the leading axes along which alpha is constant (Keras shared_axes).
    while full.ndim > 1 and np.all(full == full[:1]):
        full = full[0]
    if full.ndim == 1 and full.shape[0] > 1 and np.all(full == full[0]):
        full = full[:1]
    return np.ascontiguousarray(full).astype(alpha.dtype)


def fuse_prelu(graph_def, output_node_names):
    """Replaces each Keras PReLU subgraph by one ``Prelu`` node (named like its Add)."""
    editor = GraphEditor(graph_def, output_node_names)
    shapes = None
    for add in editor.nodes():
        if add.op not in ("Add", "AddV2") or add.name not in editor:
            continue
        match = _match(editor, add)
        if match is None:
            continue
        x, neg_alpha, inner, neg_alpha_ref = match
        if shapes is None:
            shapes = static_shapes(graph_def)
        alpha = wasm_alpha(-neg_alpha, shapes.get(parse_input(x)[0])
                           if parse_input(x)[1] == 0 else None)
        if alpha is None:
            continue
        for node in inner:
            editor.remove(node.name)
        alpha_name = editor.add_const(add.name + "/alpha", alpha, like=neg_alpha_ref)
        prelu = editor.new_node(PRELU, add.name, [x, alpha_name] + editor.control_inputs(add),
                                add.device)
        prelu.attr["T"].type = _FLOAT
        editor.put(prelu)
    return editor.to_graph_def()


def _match(editor: GraphEditor, add):
    """``(x, -alpha value, [inner nodes], -alpha ref)`` if ``add`` ends a Keras PReLU."""
    if attr_type(add) != _FLOAT:
        return None
    data = editor.data_inputs(add)
    if len(data) != 2:
        return None
    for pos_ref, mul_ref in (data, data[::-1]):
        pos = _sole_producer(editor, pos_ref, add, "Relu")
        mul = _sole_producer(editor, mul_ref, add, "Mul")
        if pos is None or mul is None:
            continue
        mul_in = editor.data_inputs(mul)
        for const_ref, relu_ref in (mul_in, mul_in[::-1]):
            neg_alpha = editor.const_value(const_ref)
            relu = _sole_producer(editor, relu_ref, mul, "Relu")
            if neg_alpha is None or relu is None or neg_alpha.dtype != np.float32:
                continue
            neg = _sole_producer(editor, editor.data_inputs(relu)[0], relu, "Neg")
            if neg is None:
                continue
            x = editor.data_inputs(pos)[0]
            if parse_input(editor.data_inputs(neg)[0]) != parse_input(x):
                continue
            return x, neg_alpha, [pos, mul, relu, neg], const_ref
    return None


def _sole_producer(editor: GraphEditor, ref: str, reader, op: str):
    """The node behind ``ref`` if it is an ``op`` whose only reader is ``reader``."""
    name, index, control = parse_input(ref)
    if control or index != 0 or name not in editor:
        return None
    node = editor.node(name)
    if node.op != op or editor.control_inputs(node):
        return None
    sole = editor.sole_data_consumer(name)
    if sole is None or sole.name != reader.name:
        return None
    return node
