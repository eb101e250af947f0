"""The op check: every op of a graph model must be one TF.js's executor knows.

The supported ops are those of the ``@tensorflow/tfjs-converter`` op mappers, as
extracted by ``tools/gen_tfjs_ops.py`` into ``tfjs_ops.json`` (kept in git with
the package version; a test re-derives it from the installed package).
"""

import collections
import functools
import json
import os
from typing import Dict, FrozenSet, List, Sequence, Tuple

from converter.errors import UnsupportedOpError

OPS_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tfjs_ops.json")
# Removed by Grappler's debug_stripper, so allowed before optimization when stripping.
DEBUG_OPS = frozenset({"Assert", "CheckNumerics", "Print", "PrintV2"})
_MAX_NODES_LISTED = 5


@functools.lru_cache(maxsize=None)
def _load() -> Tuple[str, FrozenSet[str]]:
    with open(OPS_FILE, "rb") as f:
        doc = json.loads(f.read())
    ops = frozenset(op for names in doc["categories"].values() for op in names)
    return doc["version"], ops


def supported_ops() -> FrozenSet[str]:
    """Op names the TF.js graph executor runs."""
    return _load()[1]


def tfjs_version() -> str:
    """The @tensorflow/tfjs-converter version the op list comes from."""
    return _load()[0]


def graph_ops(graphs: Sequence[Tuple[str, object]]) -> Dict[str, List[str]]:
    """``{op: [node names]}`` over GraphDefs, including their library functions.

    Nodes inside a function are named ``function/node``.
    """
    found: Dict[str, List[str]] = collections.defaultdict(list)
    for _, graph_def in graphs:
        for node in graph_def.node:
            found[node.op].append(node.name)
        for func in graph_def.library.function:
            for node in func.node_def:
                found[node.op].append("%s/%s" % (func.signature.name, node.name))
    return found


def check_ops(graphs: Sequence[Tuple[str, object]], stage: str, where: str,
              allow_debug_ops: bool = False) -> None:
    """Raises if any node's op is not a TF.js op.

    Args:
      graphs: ``(label, GraphDef)`` pairs (main graph, initializer).
      stage: ``before optimization`` or ``after optimization``, for the message.
      where: the source, for the message.
      allow_debug_ops: accept Assert/CheckNumerics/Print (they are about to be stripped).

    Raises:
      UnsupportedOpError: one entry per unsupported op with its count and nodes.
    """
    supported = supported_ops() | (DEBUG_OPS if allow_debug_ops else frozenset())
    bad = {op: nodes for op, nodes in graph_ops(graphs).items() if op not in supported}
    if not bad:
        return
    parts = []
    for op in sorted(bad):
        nodes = bad[op]
        shown = ", ".join(nodes[:_MAX_NODES_LISTED])
        more = "" if len(nodes) <= _MAX_NODES_LISTED else ", ... %d more" % (
            len(nodes) - _MAX_NODES_LISTED)
        parts.append("%s x%d (nodes: %s%s)" % (op, len(nodes), shown, more))
    raise UnsupportedOpError(
        "%s: %d op type(s) unsupported by TensorFlow.js %s %s: %s. Rewrite the model without "
        "them, or pass --skip_op_check and register them in JS with tf.registerOp"
        % (where, len(bad), tfjs_version(), stage, "; ".join(parts)))
