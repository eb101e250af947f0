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


def _used_functions(library, roots: Iterable[str]) -> Set[str]:
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


def prune(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo], where: str):
    """Returns a copy of ``graph_def`` holding only the nodes the outputs need.

    Raises:
      InvalidModelError: an input or output names a node that does not exist.
    """
    by_name: Dict[str, object] = {n.name: n for n in graph_def.node}
    for info in list(inputs) + list(outputs):
        if info.node not in by_name:
            raise InvalidModelError("%s: signature tensor %s (key %r) names no node of the graph"
                                    % (where, info.name, info.key))
    input_nodes = {i.node for i in inputs}
    keep: Set[str] = set(input_nodes)
    stack = [o.node for o in outputs]
    while stack:
        name = stack.pop()
        if name in keep:
            continue
        keep.add(name)
        stack.extend(input_node(i) for i in by_name[name].input if input_node(i) not in keep)
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    for node in graph_def.node:
        if node.name not in keep:
            continue
        new = out.node.add()
        new.CopyFrom(node)
        if node.name in input_nodes and node.op != "Placeholder":
            _make_placeholder(new, next(i for i in inputs if i.node == node.name), where)
    used = _used_functions(graph_def.library,
                           (r for n in out.node for r in function_references(n)))
    for func in graph_def.library.function:
        if func.signature.name in used:
            out.library.function.add().CopyFrom(func)
    for grad in graph_def.library.gradient:
        if grad.function_name in used:
            out.library.gradient.add().CopyFrom(grad)
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
