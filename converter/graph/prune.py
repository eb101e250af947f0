"""Strips a GraphDef down to what lies between the signature inputs and outputs.

Walking back from the outputs and stopping at the inputs keeps exactly the nodes
that run: upstream preprocessing that feeds an input (which TF.js never runs and
whose ops it may lack) goes too. An input that is an intermediate tensor becomes
a Placeholder of its signature dtype and shape.
"""

from typing import Dict, Iterable, Sequence, Set

from converter.errors import InvalidModelError
from converter.graph.model import TensorInfo


def input_node(name: str) -> str:
    """Node name of a NodeDef input (``^ctrl``, ``node:1``, ``node:out:0``)."""
    return name.lstrip("^").split(":")[0]


def function_references(node) -> Iterable[str]:
    """Names of the library functions a node calls through its attrs (If/While/...)."""
    for attr in node.attr.values():
        if attr.HasField("func"):
            yield attr.func.name
        elif attr.HasField("list"):
            for f in attr.list.func:
                yield f.name
    yield node.op  # a direct function call uses the function name as op


def used_functions(library, roots: Iterable[str]) -> Set[str]:
    """Names of the library functions ``roots`` call, directly or not (roots included)."""
    by_name = {f.signature.name: f for f in library.function}
    seen: Set[str] = set()
    stack = [r for r in roots if r in by_name]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        for node in by_name[name].node_def:
            stack.extend(r for r in function_references(node) if r in by_name and r not in seen)
    return seen


def _needed(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
            where: str) -> Set[str]:
    by_name: Dict[str, object] = {n.name: n for n in graph_def.node}
    for info in list(inputs) + list(outputs):
        if info.node not in by_name:
            raise InvalidModelError("%s: signature tensor %s (key %r) names no node of the graph"
                                    % (where, info.name, info.key))
    keep: Set[str] = {i.node for i in inputs}
    stack = [o.node for o in outputs]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(input_node(i) for i in by_name[name].input if input_node(i) not in keep)
    return keep


def delete_where(repeated, drop) -> None:
    """Deletes the items ``drop(item)`` selects, a run of them at a time."""
    doomed = [i for i, item in enumerate(repeated) if drop(item)]
    while doomed:
        end = doomed.pop()
        start = end
        while doomed and doomed[-1] == start - 1:
            start = doomed.pop()
        del repeated[start:end + 1]


def prune_in_place(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                   where: str) -> None:
    """Removes from ``graph_def`` every node (and function) the outputs do not need.

    In place, so the weights in the kept Const nodes are never copied.

    Raises:
      InvalidModelError: an input or output names a node that does not exist.
    """
    keep = _needed(graph_def, inputs, outputs, where)
    delete_where(graph_def.node, lambda n: n.name not in keep)
    input_nodes = {i.node: i for i in inputs}
    for node in graph_def.node:
        if node.name in input_nodes and node.op != "Placeholder":
            _make_placeholder(node, input_nodes[node.name], where)
    used = used_functions(graph_def.library,
                           (r for n in graph_def.node for r in function_references(n)))
    delete_where(graph_def.library.function, lambda f: f.signature.name not in used)
    delete_where(graph_def.library.gradient, lambda g: g.function_name not in used)
    if not graph_def.library.function and not graph_def.library.gradient:
        graph_def.ClearField("library")  # no empty "library" in model.json


def prune(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], where: str):
    """Returns a copy of ``graph_def`` holding only the nodes the outputs need.

    Raises:
      InvalidModelError: an input or output names a node that does not exist.
    """
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    prune_in_place(out, inputs, outputs, where)
    return out


def _make_placeholder(node, info: TensorInfo, where: str) -> None:
    from tensorflow.core.framework import types_pb2
    if not info.name.endswith(":0") and ":" in info.name:
        raise InvalidModelError("%s: signature input %s is output %s of node %s; only the first "
                                "output of a non-Placeholder node can become an input"
                                % (where, info.name, info.name.split(":")[1], node.name))
    node.op = "Placeholder"
    del node.input[:]
    node.ClearField("attr")
    node.attr["dtype"].type = types_pb2.DataType.Value(info.dtype)
    if info.shape is None:
        node.attr["shape"].shape.unknown_rank = True
    else:
        for d in info.shape:
            node.attr["shape"].shape.dim.add().size = d
