"""Makes a frozen graph's bytes independent of the process that traced it.

TensorFlow names traced functions with a process-wide counter
(``__inference_while_body_1234``) and records the original function names as
debug info, so the same SavedModel converted first or fifth in a persistent
worker would otherwise give different model.json bytes. Debug info is dropped and
functions are renamed in the order the graph first references them.
"""

import re
from typing import Dict, List

# Every all-digit segment: TF's counters appear mid-name too
# (``__inference_lstm_while_cond_579_frozen_1234``).
_UID = re.compile(r"_\d+(?=_|$)")


def _func_refs(attr_value) -> List[str]:
    kind = attr_value.WhichOneof("value")
    if kind == "func":
        return [attr_value.func.name]
    if kind == "list":
        return [f.name for f in attr_value.list.func]
    return []


def _node_refs(node, functions) -> List[str]:
    refs = [node.op] if node.op in functions else []
    for key in sorted(node.attr):
        refs.extend(_func_refs(node.attr[key]))
    return refs


def _rename_attr(attr_value, names: Dict[str, str]) -> None:
    kind = attr_value.WhichOneof("value")
    if kind == "func" and attr_value.func.name in names:
        attr_value.func.name = names[attr_value.func.name]
    elif kind == "list":
        for f in attr_value.list.func:
            if f.name in names:
                f.name = names[f.name]


def _rename_node(node, names: Dict[str, str]) -> None:
    if node.op in names:
        node.op = names[node.op]
    for key in node.attr:
        _rename_attr(node.attr[key], names)


def canonicalize(graph_def) -> None:
    """Drops debug info and renames library functions deterministically, in place."""
    for node in graph_def.node:
        node.ClearField("experimental_debug_info")
    library = graph_def.library
    functions = {f.signature.name: f for f in library.function}
    for f in functions.values():
        for node in f.node_def:
            node.ClearField("experimental_debug_info")
    if not functions:
        return
    # Functions in order of first reference: main graph nodes, then breadth-first.
    order: List[str] = []
    queue = [r for n in graph_def.node for r in _node_refs(n, functions)]
    while queue:
        name = queue.pop(0)
        if name in functions and name not in order:
            order.append(name)
            queue.extend(r for n in functions[name].node_def for r in _node_refs(n, functions))
    order.extend(sorted(n for n in functions if n not in order))  # unreferenced: by name
    names: Dict[str, str] = {}
    counts: Dict[str, int] = {}
    for name in order:
        base = _UID.sub("", name)
        counts[base] = counts.get(base, 0) + 1
        names[name] = "%s_%d" % (base, counts[base])
    for node in graph_def.node:
        _rename_node(node, names)
    for f in library.function:
        f.signature.name = names[f.signature.name]
        for node in f.node_def:
            _rename_node(node, names)
    for gradient in library.gradient:
        gradient.function_name = names.get(gradient.function_name, gradient.function_name)
        gradient.gradient_func = names.get(gradient.gradient_func, gradient.gradient_func)
    # The library's own order follows the old names; store it by the new ones.
    ordered = sorted(library.function, key=lambda f: f.signature.name)
    copies = [type(f)() for f in ordered]
    for copy, f in zip(copies, ordered):
        copy.CopyFrom(f)
    del library.function[:]
    library.function.extend(copies)
