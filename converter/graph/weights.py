"""Graph constants as TF.js weights: unique names, quantization plan, streaming.

Every ``Const`` node becomes one weight named after the node. Consts inside
library functions are renamed ``function/const`` and initializer consts that
clash with a main-graph name get a suffix, because TF.js keeps one weight map
for the graph, its functions and its initializer.
"""

from typing import Dict, Iterator, Optional, Set, Tuple

from converter.graph import tensors
from converter.graph.model import GraphModel
from converter.model import Tensor
from converter.weights import format as wf
from converter.weights import quantize

_FLOAT_DTYPES = (tensors.DT_FLOAT, tensors.DT_DOUBLE, tensors.DT_HALF, tensors.DT_BFLOAT16)


def _rename_input(ref: str, renames: Dict[str, str]) -> str:
    control = ref.startswith("^")
    body = ref[1:] if control else ref
    node, sep, rest = body.partition(":")
    if node not in renames:
        return ref
    return ("^" if control else "") + renames[node] + sep + rest


def _rename_in_graph(graph_def, renames: Dict[str, str]) -> None:
    for node in graph_def.node:
        if node.name in renames:
            node.name = renames[node.name]
        for i, ref in enumerate(node.input):
            node.input[i] = _rename_input(ref, renames)


def _rename_in_function(func, renames: Dict[str, str]) -> None:
    _rename_in_graph(type("F", (), {"node": func.node_def})(), renames)
    for key in list(func.ret):
        func.ret[key] = _rename_input(func.ret[key], renames)
    for key in list(func.control_ret):
        func.control_ret[key] = _rename_input(func.control_ret[key], renames)


def name_weights(model: GraphModel) -> GraphModel:
    """Gives every Const a name unique across graph, functions and initializer.

    Renames in place: a copy would duplicate every weight.
    """
    graph_def = model.graph_def
    taken: Set[str] = {n.name for n in graph_def.node}
    for func in graph_def.library.function:
        renames = {}
        for node in func.node_def:
            if node.op == "Const":
                new = _unique("%s/%s" % (func.signature.name, node.name), taken)
                renames[node.name] = new
        _rename_in_function(func, renames)
    initializer = model.initializer
    init_outputs = model.initializer_outputs
    if initializer is not None:
        renames = {}
        for node in initializer.node:
            if node.name in taken:
                renames[node.name] = _unique(node.name + "_init", taken | {n.name for n in
                                                                      initializer.node})
            taken.add(renames.get(node.name, node.name))
        _rename_in_graph(initializer, renames)
        # TF.js runs the initializer by its output keys as node names: keep them equal.
        init_outputs = tuple(
            o.__class__(_rename_input(o.node, renames), _rename_input(o.name, renames), o.dtype,
                        o.shape, o.resource_id)
            for o in init_outputs)
    return model.replace(graph_def=graph_def, initializer=initializer,
                         initializer_outputs=init_outputs)


def _unique(name: str, taken: Set[str]) -> str:
    candidate, i = name, 1
    while candidate in taken:
        candidate = "%s_%d" % (name, i)
        i += 1
    taken.add(candidate)
    return candidate


def const_nodes(model: GraphModel) -> Iterator[object]:
    """Const NodeDefs in weight order: main graph, functions, initializer."""
    for node in model.graph_def.node:
        if node.op == "Const":
            yield node
    for func in model.graph_def.library.function:
        for node in func.node_def:
            if node.op == "Const":
                yield node
    if model.initializer is not None:
        for node in model.initializer.node:
            if node.op == "Const":
                yield node


def plan_quantization(model: GraphModel,
                      patterns_by_dtype: Dict[str, Optional[Tuple[str, ...]]]) -> GraphModel:
    """Chooses the storage dtype of each float constant (names matched by wildcard)."""
    if not patterns_by_dtype:
        return model
    names = [n.name for n in const_nodes(model)
             if n.attr["value"].tensor.dtype in _FLOAT_DTYPES]
    return model.replace(quantization=quantize.resolve_dtype_map(names, patterns_by_dtype))


def stream_weights(model: GraphModel) -> Iterator[Tensor]:
    """Yields each constant as a TF.js weight, clearing it from the GraphDef.

    One constant is decoded at a time and its payload is dropped from the node
    once yielded, so the values exist once (in the GraphDef or in the shard
    being written), never twice.
    """
    where = model.source
    for node in const_nodes(model):
        proto = node.attr["value"].tensor
        data = tensors.to_numpy(proto, "%s: Const %s" % (where, node.name))
        dtype, data = wf.to_logical(node.name, data, where)
        tensor = Tensor(node.name, data, dtype)
        target = model.quantization.get(node.name)
        if target is not None and dtype == "float32":
            tensor = quantize.quantize_tensor(tensor, target, where)
        tensors.clear_payload(proto)
        yield tensor
