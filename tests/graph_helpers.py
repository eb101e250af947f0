"""Graph helpers of the optimization tests and bench: freeze an export, run a GraphDef in TF.

Freezing, Grappler and writing are the converter's own
(``converter.graph.saved_model``, the ``converter.graph.pipeline`` steps,
``converter.writers.tfjs_graph``); this module only chains them for a Keras
``model.export()``, so the passes of ``converter.graph.optimize`` can be tested
on what the pipeline hands them. What stays test-only: running a GraphDef in a
TensorFlow session, counting ops, randomizing BatchNorm statistics. Not a test
module (pytest does not collect it).
"""

import collections
import os
import pathlib
from typing import Dict, Mapping, Sequence

import numpy as np

from converter.graph.model import GraphModel

TFJS_ONLY_OPS = ("FusedDepthwiseConv2dNative", "Prelu")


def freeze_and_grapple(export_dir) -> GraphModel:
    """Reads a SavedModel as the converter does, up to and including Grappler.

    That is what the pipeline's TF.js passes (``optimize_graph``) see, minus the
    semantics rewrites that sit between the two.
    """
    from converter.graph import pipeline
    from converter.graph.saved_model import read_saved_model
    model = read_saved_model(os.fspath(export_dir))
    options = pipeline.GraphOptions()
    for step in (pipeline.prune_by_signature, pipeline.run_grappler):
        model = step(model, options)
    return model


def frozen_keras_export(model, export_dir) -> GraphModel:
    """``model.export`` + the converter's freeze and Grappler (``freeze_and_grapple``)."""
    model.export(os.fspath(export_dir), verbose=False)
    return freeze_and_grapple(export_dir)


def write_graph_model(model: GraphModel, graph_def, out_dir) -> pathlib.Path:
    """Writes ``model`` with ``graph_def`` as its graph, by the converter's graph writer.

    ``graph_def`` is copied first (the writer clears the Const payloads of what
    it writes), so the caller can still run it.
    """
    from converter.graph.weights import name_weights
    from converter.writers.tfjs_graph import write_tfjs_graph
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = type(graph_def)()
    copy.CopyFrom(graph_def)
    write_tfjs_graph(name_weights(model.replace(graph_def=copy)), os.fspath(out_dir))
    return out_dir


def run_graph(graph_def, feeds: Mapping[str, np.ndarray], fetches: Sequence[str]):
    """Runs a GraphDef in TensorFlow.

    Ops TF cannot run (TF.js-only ops, fusions with activations TF's CPU kernels
    lack) are first expanded to TF ops by ``expand_fused_ops``.
    """
    import tensorflow as tf
    from converter.graph.optimize.unfuse import expand_fused_ops
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


def randomize_batch_norms(model, seed: int = 0) -> None:
    """Gives every BatchNormalization non-trivial statistics (else Grappler drops the adds)."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        values = []
        for weight in layer.weights:
            shape = tuple(weight.shape)
            if "variance" in weight.path or "gamma" in weight.path:
                values.append(rng.uniform(0.5, 1.5, shape).astype(np.float32))
            else:
                values.append(rng.uniform(-0.5, 0.5, shape).astype(np.float32))
        layer.set_weights(values)
