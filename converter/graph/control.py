"""Drops control edges TF.js cannot honour.

TF.js treats a control input ``^x`` as an ordinary input and waits for a tensor
from ``x``. A ``NoOp`` never produces one, so a node behind a NoOp control edge
(lowered loops are full of them: every ``Enter`` waits on ``LoopControlInputs``)
never runs and ``executeAsync`` fails with "Cannot compute the outputs". TF.js
has no side effects to order except hash-table updates, so every other control
edge only constrains execution order and can go.
"""

from converter.graph.prune import input_node

# Ops whose effects later nodes may be ordered after (hash-table writes).
_STATEFUL = frozenset({"LookupTableImport", "LookupTableImportV2", "InitializeTable",
                       "InitializeTableV2", "LookupTableInsert", "LookupTableInsertV2"})


def _strip(nodes) -> int:
    ops = {n.name: n.op for n in nodes}
    removed = 0
    for node in nodes:
        keep = [i for i in node.input
                if not i.startswith("^") or ops.get(input_node(i)) in _STATEFUL]
        if len(keep) != len(node.input):
            removed += len(node.input) - len(keep)
            del node.input[:]
            node.input.extend(keep)
    return removed


def drop_control_inputs(graph_def) -> None:
    """Removes control inputs from ``graph_def`` in place (except after hash-table writes)."""
    _strip(graph_def.node)
    for func in graph_def.library.function:
        _strip(func.node_def)
