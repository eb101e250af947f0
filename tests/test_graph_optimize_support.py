"""Helpers of the graph-optimization tests and bench: freeze, Grappler, run, write.

These stand in for the graph pipeline (``converter.graph``) so the optimization
passes can be tested on their own: freeze a Keras 3 ``model.export()`` the way
the official converter does, run Grappler's first pass, run a GraphDef in
TensorFlow, and write a minimal TF.js graph model (protobuf-JSON topology,
Const payloads in one weights file). No tests live here.
"""

import collections
import copy
import json
import os
import pathlib
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

# Grappler pass 1 of the official converter (facts §3.2 step 3).
GRAPPLER_PASS_1 = ("pruning", "constfold", "arithmetic", "dependency",
                   "pruning", "constfold", "arithmetic", "dependency")
TFJS_ONLY_OPS = ("FusedDepthwiseConv2dNative", "Prelu")


def freeze_export(export_dir) -> Tuple[object, List[str], List[str]]:
    """Loads a SavedModel's serving signature and freezes it.

    Returns ``(graph_def, input node names, output node names)``.
    """
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    loaded = tf.saved_model.load(os.fspath(export_dir))
    func = loaded.signatures["serving_default"]
    frozen = convert_variables_to_constants_v2(func, lower_control_flow=True,
                                               aggressive_inlining=True)
    inputs = [t.name.split(":")[0] for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name.split(":")[0] for t in frozen.outputs]
    return frozen.graph.as_graph_def(), inputs, outputs


def grappler(graph_def, output_names: Sequence[str], optimizers=GRAPPLER_PASS_1):
    """Runs Grappler with the given optimizers, fetching ``output_names``."""
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer
    from tensorflow.python.training import saver
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
        for name in output_names:
            graph.add_to_collection("train_op", graph.get_operation_by_name(name))
    meta_graph = saver.export_meta_graph(graph_def=graph.as_graph_def(), graph=graph)
    config = config_pb2.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(optimizers)
    rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
    return tf_optimizer.OptimizeGraph(config, meta_graph)


def frozen_keras_export(model, export_dir) -> Tuple[object, List[str], List[str]]:
    """``model.export`` + freeze + Grappler pass 1: what ``optimize_graph`` receives."""
    model.export(os.fspath(export_dir), verbose=False)
    graph_def, inputs, outputs = freeze_export(export_dir)
    return grappler(graph_def, outputs), inputs, outputs


def run_graph(graph_def, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]):
    """Runs a GraphDef in TensorFlow.

    Ops TF cannot run (TF.js-only ops, fusions with activations TF's CPU kernels
    lack) are first expanded to TF ops by ``expand_fused_ops``.
    """
    import tensorflow as tf
    from converter.graph.optimize.fused import expand_fused_ops
    if any(n.op in TFJS_ONLY_OPS or ("fused_ops" in n.attr and {b"Prelu", b"Sigmoid"} & set(
            n.attr["fused_ops"].list.s)) for n in graph_def.node):
        graph_def = expand_fused_ops(graph_def, [f.split(":")[0] for f in fetches])
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return session.run([f if ":" in f else f + ":0" for f in fetches],
                           {k if ":" in k else k + ":0": v for k, v in feeds.items()})


def op_counts(graph_def) -> Dict[str, int]:
    """``{op: count}`` of the top-level nodes."""
    return dict(collections.Counter(n.op for n in graph_def.node))


_TFJS_DTYPES = {np.dtype(np.float32): ("float32", 1), np.dtype(np.int32): ("int32", 3),
                np.dtype(np.bool_): ("bool", 10)}
_PAYLOAD_FIELDS = ("tensor_content", "half_val", "float_val", "double_val", "int_val",
                   "string_val", "scomplex_val", "int64_val", "bool_val", "uint32_val",
                   "uint64_val")


def write_graph_model(graph_def, out_dir) -> pathlib.Path:
    """Writes ``model.json`` + ``weights.bin`` (one group, one shard) for TF.js."""
    from google.protobuf import json_format
    from tensorflow.python.framework import tensor_util
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graph_def = copy.deepcopy(graph_def)
    # Freezing with lowered control flow leaves unread placeholders (facts §3.2 step 8).
    unused = [n for n in graph_def.node
              if n.op == "Placeholder" and n.name.startswith("unused_control_flow_input")]
    for node in unused:
        graph_def.node.remove(node)
    specs, chunks = [], []
    for node in graph_def.node:
        if node.op != "Const":
            continue
        value = tensor_util.MakeNdarray(node.attr["value"].tensor)
        if value.dtype == np.int64:
            value = value.astype(np.int32)
        if value.dtype not in _TFJS_DTYPES:
            raise ValueError("const %s: dtype %s not written by this test writer"
                             % (node.name, value.dtype))
        name, enum = _TFJS_DTYPES[value.dtype]
        tensor = node.attr["value"].tensor
        for field in _PAYLOAD_FIELDS:
            tensor.ClearField(field)
        tensor.dtype = enum
        node.attr["dtype"].type = enum
        specs.append({"name": node.name, "shape": list(value.shape), "dtype": name})
        chunks.append(np.ascontiguousarray(value).astype(value.dtype.newbyteorder("<")).tobytes())
    (out_dir / "weights.bin").write_bytes(b"".join(chunks))
    model = {"format": "graph-model", "generatedBy": "test", "convertedBy": "test",
             "modelTopology": json_format.MessageToDict(graph_def),
             "weightsManifest": [{"paths": ["weights.bin"], "weights": specs}]}
    (out_dir / "model.json").write_text(json.dumps(model))
    return out_dir


def randomize_batch_norms(model, seed: int = 0) -> None:
    """Gives every BatchNormalization non-trivial statistics (else Grappler drops the adds)."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if "variance" in weight.path:
                values.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            elif "gamma" in weight.path:
                values.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            else:
                values.append(rng.uniform(-0.5, 0.5, shape).astype(np.float32))
        layer.set_weights(values)
