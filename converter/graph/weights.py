"""Graph constants as TF.js weights: unique names, quantization plan, streaming.

A weight too large for the frozen GraphDef to hold (its bytes would pass
protobuf's 2 GiB limit, see ``saved_model.plan_deferral``) is *deferred*: it
goes through the graph passes as a Placeholder of its dtype and shape, which no
pass folds or rewrites, carrying ``DEFERRED_KEY``/``DEFERRED_PREFIX`` (its
checkpoint key and prefix); ``restore_deferred`` makes it a payload-less Const
once the graph is final, and ``stream_weights`` reads its value from the
checkpoint when it is written.

Every ``Const`` node becomes one weight named after the node. Consts inside
library functions are renamed ``function/const`` and initializer consts that
clash with a main-graph name get a suffix, because TF.js keeps one weight map
for the graph, its functions and its initializer.
"""

from typing import Dict, Iterator, Optional, Set, Tuple

from converter.errors import InvalidModelError
from converter.graph import tensors
from converter.graph.model import GraphModel
from converter.model import Tensor
from converter.weights import format as wf
from converter.weights import quantize

_FLOAT_DTYPES = (tensors.DT_FLOAT, tensors.DT_DOUBLE, tensors.DT_HALF, tensors.DT_BFLOAT16)

DEFERRED_KEY = "_tfjs_checkpoint_key"
DEFERRED_PREFIX = "_tfjs_checkpoint_prefix"
DEFERRED_SHAPE = "_tfjs_shape"


def make_deferred_placeholder(node, dtype: int, shape, prefix: str, key: str) -> None:
    """Makes ``node`` the Placeholder standing for a deferred weight."""
    node.op = "Placeholder"
    del node.input[:]
    node.ClearField("attr")
    node.attr["dtype"].type = dtype
    # The shape is kept aside, the Placeholder's left unknown: given a full shape,
    # Grappler allocates a buffer of it for every such Placeholder (2.2 GB more on
    # a 2.2 GB model).
    node.attr["shape"].shape.unknown_rank = True
    node.attr[DEFERRED_SHAPE].list.i.extend(shape)
    node.attr[DEFERRED_KEY].s = key.encode("utf-8")
    node.attr[DEFERRED_PREFIX].s = prefix.encode("utf-8")


def deferred_nodes(graph_def) -> Iterator[object]:
    return (n for n in graph_def.node if DEFERRED_KEY in n.attr)


def restore_deferred(model: GraphModel) -> GraphModel:
    """Each deferred Placeholder becomes a Const of its dtype and shape, values to come.

    In place. Raises InvalidModelError if a pass dropped a deferred weight's
    record but kept the node (it would become a TF.js input).
    """
    for node in deferred_nodes(model.graph_def):
        if node.op != "Placeholder":
            raise InvalidModelError("%s: deferred weight %s became a %s node"
                                    % (model.source, node.name, node.op))
        dtype = node.attr["dtype"].type
        shape = list(node.attr[DEFERRED_SHAPE].list.i)
        node.op = "Const"
        del node.attr["shape"]
        del node.attr[DEFERRED_SHAPE]
        value = node.attr["value"].tensor
        value.dtype = dtype
        for d in shape:
            value.tensor_shape.dim.add().size = d
    return model


def _deferred_value(node, where: str, readers: Dict[str, object]):
    """A deferred Const's value, read from its checkpoint; its records are dropped."""
    import numpy as np
    prefix = node.attr[DEFERRED_PREFIX].s.decode("utf-8")
    key = node.attr[DEFERRED_KEY].s.decode("utf-8")
    del node.attr[DEFERRED_PREFIX]
    del node.attr[DEFERRED_KEY]
    if prefix not in readers:
        import tensorflow as tf
        readers[prefix] = tf.train.load_checkpoint(prefix)
    # No copy: the writer holds this one value until the next is read.
    data = np.asarray(readers[prefix].get_tensor(key))
    want = tuple(d.size for d in node.attr["value"].tensor.tensor_shape.dim)
    if data.shape != want:
        raise InvalidModelError("%s: checkpoint value %s of weight %s has shape %s, the graph "
                                "says %s" % (where, key, node.name, list(data.shape), list(want)))
    return data


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
    readers: Dict[str, object] = {}
    for node in const_nodes(model):
        proto = node.attr["value"].tensor
        if DEFERRED_KEY in node.attr:
            data = _deferred_value(node, where, readers)
        else:
            data = tensors.to_numpy(proto, "%s: Const %s" % (where, node.name))
        dtype, data = wf.to_logical(node.name, data, where)
        tensor = Tensor(node.name, data, dtype)
        target = model.quantization.get(node.name)
        if target is not None and dtype == "float32":
            tensor = quantize.quantize_tensor(tensor, target, where)
        tensors.clear_payload(proto)
        yield tensor
        del data, tensor  # before the next value is read
