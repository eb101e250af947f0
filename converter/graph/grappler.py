"""Runs TensorFlow's Grappler on a frozen GraphDef with the signature as feeds and fetches.

Grappler works on copies: the GraphDef is serialized into a MetaGraphDef, parsed
in C++, copied by each optimizer of each iteration, serialized back and parsed
again in Python. With the weights inline that is about ten copies of them at
once (1 GB on top of ResNet50's 100 MB). So weights Grappler could not fold
anyway are hidden from it: a large Const none of whose readers (seen through
Identity) has only constant inputs goes in as a Placeholder of the same dtype
and shape. Grappler's (small) result is then merged into the GraphDef in place,
around the hidden Consts, so their payloads are never copied. What Grappler
loses are the rewrites that change a weight read by a non-constant op (pushing
a ``Mul`` after a conv into its filter); our own batch-norm folding pass does
those after Grappler.
"""

from typing import Dict, Iterable, List, Sequence, Set

from converter.graph.model import TensorInfo
from converter.graph.prune import input_node

# Order as TensorFlow's meta optimizer expects them; each runs once per iteration.
BASE_OPTIMIZERS = ("pruning", "constfold", "arithmetic", "dependency")
DEBUG_STRIPPER = "debug_stripper"

# Consts of at least this many payload bytes are hidden from Grappler when it
# could not fold them; smaller ones (shapes, batch-norm vectors) always go in.
HIDE_MIN_BYTES = 16 * 1024
# Readers that pass a weight through unchanged (Grappler drops them).
_PASS_THROUGH = frozenset({"Identity", "Snapshot"})
# Ops Grappler folds from static shapes even when their input is not constant.
_SHAPE_OPS = frozenset({"Shape", "ShapeN", "Size", "Rank"})


def _tensor_info_proto(info: TensorInfo):
    from tensorflow.core.framework import types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2
    proto = meta_graph_pb2.TensorInfo()
    proto.name = info.name
    proto.dtype = types_pb2.DataType.Value(info.dtype)
    if info.shape is None:
        proto.tensor_shape.unknown_rank = True
    else:
        for d in info.shape:
            proto.tensor_shape.dim.add().size = d
    return proto


def _data_consumers(nodes) -> Dict[str, List[object]]:
    consumers: Dict[str, List[object]] = {}
    for node in nodes:
        for ref in node.input:
            if not ref.startswith("^"):
                consumers.setdefault(input_node(ref), []).append(node)
    return consumers


def _non_constant(nodes, consumers: Dict[str, List[object]]) -> Set[str]:
    """Nodes whose value depends on something other than Consts (a feed, a variable).

    Errs towards "constant" (shape ops, nodes on constant-only loops), which only
    keeps a weight visible to Grappler.
    """
    seeds = [n.name for n in nodes
             if n.op != "Const" and not any(not i.startswith("^") for i in n.input)]
    found: Set[str] = set(seeds)
    stack = list(seeds)
    while stack:
        for reader in consumers.get(stack.pop(), ()):
            if reader.name not in found and reader.op not in _SHAPE_OPS:
                found.add(reader.name)
                stack.append(reader.name)
    return found


def _payload_bytes(node) -> int:
    tensor = node.attr["value"].tensor
    return len(tensor.tensor_content) or tensor.ByteSize()


def _hideable(node, consumers: Dict[str, List[object]], non_constant: Set[str],
              keep: Set[str]) -> bool:
    if node.op != "Const" or node.name in keep or _payload_bytes(node) < HIDE_MIN_BYTES:
        return False
    if node.attr["value"].tensor.dtype == 7:  # DT_STRING: no fixed-size payload to restore
        return False
    stack, seen = [node.name], set()
    while stack:
        for reader in consumers.get(stack.pop(), ()):
            if reader.name in seen:
                continue
            seen.add(reader.name)
            if reader.op in _PASS_THROUGH:
                stack.append(reader.name)
            elif reader.name not in non_constant:
                return False  # Grappler could fold this reader: let it see the value
    return True


def _folded_name(node, consumers: Dict[str, List[object]], control_read: Set[str],
                 keep: Set[str]) -> List[object]:
    """The Identity chain Grappler would fold ``node`` into: ``[node, identity, ...]``.

    Constant folding replaces ``Identity(Const)`` by a Const named after the
    Identity (a frozen variable read is such a pair). A hidden weight cannot be
    folded, so the chain is collapsed here instead and the weight keeps the
    name it would have had. Every node but the last is dropped, so those must
    have no other reader (the last keeps its name, so control readers of it
    stay valid).
    """
    chain = [node]
    while True:
        last = chain[-1]
        readers = consumers.get(last.name, ())
        if len(readers) != 1 or last.name in control_read:
            return chain
        reader = readers[0]
        data = [i for i in reader.input if not i.startswith("^")]
        if reader.op != "Identity" or reader.name in keep or data != [last.name]:
            return chain
        chain.append(reader)


def hide_weights(graph_def, keep: Iterable[str]):
    """A copy of ``graph_def`` with the large unfoldable Consts as Placeholders.

    Returns:
      ``(GraphDef for Grappler, {placeholder name: index of its Const in graph_def.node})``.
    """
    nodes = list(graph_def.node)
    consumers = _data_consumers(nodes)
    non_constant = _non_constant(nodes, consumers)
    control_read = {i[1:].split(":")[0] for n in nodes for i in n.input if i.startswith("^")}
    keep = set(keep)
    index_of = {n.name: i for i, n in enumerate(nodes)}
    hidden: Dict[str, int] = {}
    chains: Dict[str, List[object]] = {}  # by the name of the chain's last node
    dropped: Set[str] = set()
    for node in nodes:
        if _hideable(node, consumers, non_constant, keep):
            chain = _folded_name(node, consumers, control_read, keep)
            chains[chain[-1].name] = chain
            dropped.update(n.name for n in chain[:-1])
            hidden[chain[-1].name] = index_of[node.name]
    out = type(graph_def)()
    out.versions.CopyFrom(graph_def.versions)
    out.library.CopyFrom(graph_def.library)
    for node in nodes:
        if node.name in dropped:
            continue
        new = out.node.add()
        chain = chains.get(node.name)
        if chain is None:
            new.CopyFrom(node)
            continue
        const = chain[0]
        new.name = node.name
        new.op = "Placeholder"
        new.input.extend(i for n in chain for i in n.input if i.startswith("^"))
        if const.device:
            new.device = const.device
        tensor = const.attr["value"].tensor
        new.attr["dtype"].type = tensor.dtype
        new.attr["shape"].shape.CopyFrom(tensor.tensor_shape)
    return out, hidden


def merge_in_place(graph_def, optimized, hidden: Dict[str, int]) -> None:
    """Makes ``graph_def`` the ``optimized`` graph, keeping its hidden Consts.

    Each Placeholder that stood for a hidden Const becomes that Const again,
    the very node of ``graph_def`` (renamed, with Grappler's control inputs):
    its payload is never copied. Every other node of ``graph_def`` is replaced
    by the optimized nodes.
    """
    placeholders = {n.name: n for n in optimized.node
                    if n.name in hidden and n.op == "Placeholder"}
    kept = sorted(hidden[name] for name in placeholders)
    for name in placeholders:
        node = graph_def.node[hidden[name]]
        node.name = name
        del node.input[:]
        node.input.extend(placeholders[name].input)  # Grappler's version of the control inputs
    # Delete the runs of nodes between the kept ones, from the end so indices hold.
    bounds = [-1] + kept + [len(graph_def.node)]
    for before, after in reversed(list(zip(bounds[:-1], bounds[1:]))):
        if after - before > 1:
            del graph_def.node[before + 1:after]
    for node in optimized.node:
        if node.name not in placeholders:
            graph_def.node.add().CopyFrom(node)
    for field in ("library", "versions"):
        if optimized.HasField(field):
            getattr(graph_def, field).CopyFrom(getattr(optimized, field))
        else:
            graph_def.ClearField(field)


def run_grappler(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                 optimizers: Sequence[str], iterations: int = 2) -> None:
    """Optimizes ``graph_def`` in place with the named Grappler optimizers.

    The signature inputs are feeds (kept, never folded) and the outputs are
    fetches (everything else that they do not need is pruned). Large weights
    Grappler could not fold are hidden from it and stay where they are, so the
    weights exist once throughout (see the module docstring).
    """
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer
    masked, hidden = hide_weights(graph_def, [i.node for i in inputs] + [o.node for o in outputs])
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(masked)
    del masked
    signature = meta.signature_def["converter_signature"]
    for info in inputs:
        signature.inputs[info.key].CopyFrom(_tensor_info_proto(info))
    for info in outputs:
        signature.outputs[info.key].CopyFrom(_tensor_info_proto(info))
    fetches = meta.collection_def["train_op"].node_list.value
    for node in sorted({o.node for o in outputs}):
        fetches.append(node)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers[:] = list(optimizers)
    rewrite.min_graph_nodes = -1  # optimize small graphs too
    rewrite.meta_optimizer_iterations = (rewriter_config_pb2.RewriterConfig.TWO if iterations >= 2
                                         else rewriter_config_pb2.RewriterConfig.ONE)
    optimized = tf_optimizer.OptimizeGraph(config, meta, verbose=False)
    merge_in_place(graph_def, optimized, hidden)
