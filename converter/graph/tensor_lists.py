"""Static element shapes for TensorLists once the batch is fixed (the ``tflite`` output).

Keras writes an RNN's loop (LSTM, GRU, SimpleRNN) with TensorList ops whose
element shape is a constant such as ``[-1, units]``: ``-1`` is the batch, unknown
when the model was traced. TFLite lowers TensorList ops to builtins only when
every element shape is fully known; otherwise they need TensorFlow kernels (Flex),
which LiteRT.js cannot run. With ``--tflite_batch_size N`` the batch is known, so
``static_element_shapes`` writes ``N`` into those constants.

That rewrite assumes the unknown leading dimension is the batch, which holds for
the loops Keras writes but is not proven here; the caller (converter/api.py)
therefore keeps the result only when LiteRT reproduces TensorFlow on the
original, unrewritten model, and otherwise refuses as it would have without it.
"""

import copy
from typing import Dict, List, Optional, Tuple

from converter.graph.model import GraphModel

# Each TensorList op that takes an element shape, and the index of that input.
ELEMENT_SHAPE_INPUT = {
    "EmptyTensorList": 0,
    "TensorListReserve": 0,
    "TensorListFromTensor": 1,
    "TensorListStack": 1,
    "TensorListConcatV2": 1,
    "TensorListPopBack": 1,
    "TensorListGetItem": 2,
    "TensorListGather": 2,
    "TensorListScatterV2": 2,
}


def _node_of(ref: str) -> str:
    """The node a data input names: ``^ctl`` is none, ``n``, ``n:1``, ``n:output:0`` are n."""
    return ref.split(":")[0]


def _patch_scope(nodes, batch: int) -> List[str]:
    """Rewrites, among ``nodes`` (one graph or function body), each Const that is only
    ever an element shape and reads ``[-1, d1, ...]`` (every ``d`` known) to
    ``[batch, d1, ...]``; returns the names of the constants rewritten."""
    from tensorflow.python.framework import tensor_util
    consts = {n.name: n for n in nodes if n.op == "Const"}
    uses: Dict[str, List[bool]] = {}
    for node in nodes:
        for index, ref in enumerate(node.input):
            if ref.startswith("^"):
                continue
            name = _node_of(ref)
            if name in consts:
                uses.setdefault(name, []).append(ELEMENT_SHAPE_INPUT.get(node.op) == index)
    patched = []
    for name, as_shape in sorted(uses.items()):
        if not all(as_shape):
            continue
        proto = consts[name].attr["value"].tensor
        value = tensor_util.MakeNdarray(proto)
        if (value.dtype.kind != "i" or value.ndim != 1 or value.size < 1 or value[0] != -1
                or (value[1:] < 0).any()):
            continue
        fixed = value.copy()
        fixed[0] = batch
        proto.CopyFrom(tensor_util.make_tensor_proto(fixed, proto.dtype))
        patched.append(name)
    return patched


def static_element_shapes(model: GraphModel, batch: int) -> Tuple[Optional[GraphModel], List[str]]:
    """``(model with the batch in its TensorList element shapes, the constants rewritten)``;
    ``(None, [])`` when no element shape has an unknown leading dimension."""
    graph_def = copy.deepcopy(model.graph_def)
    patched = _patch_scope(graph_def.node, batch)
    for function in graph_def.library.function:
        patched += ["%s/%s" % (function.signature.name, n)
                    for n in _patch_scope(function.node_def, batch)]
    if not patched:
        return None, []
    return model.replace(graph_def=graph_def), patched
