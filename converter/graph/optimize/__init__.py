"""Graph optimizations for TF.js: batch-norm folding, bias normalization, op fusion.

``optimize_graph`` runs the passes of ``PASSES`` in order on a frozen GraphDef
that Grappler's first pass (constant folding, arithmetic, dependency, pruning)
has already simplified. Each pass is a pure function
``(GraphDef, output node names) -> GraphDef``.

What comes out is what TF.js 4.22 executes on both the cpu and the wasm
backend: fused ops only ever carry a rank-1 constant bias and an activation
both backends implement (see ``unfuse.py``). Graph outputs keep their names
and values; numerics change only by float32 rounding of the folded weights.
"""

from typing import Callable, List, Sequence, Tuple

from converter.graph.optimize.batch_norm import (decompose_batch_norms, fold_affine_into_weights,
                                                 push_constant_adds_into_convs)
from converter.graph.optimize.editor import GraphEditor, parse_input
from converter.graph.optimize.fuse import fuse_conv_bias_activation
from converter.graph.optimize.unfuse import expand_fused_ops
from converter.graph.optimize.prelu import fuse_prelu

Pass = Callable[[object, Sequence[str]], object]


def remove_unused_constants(graph_def, output_node_names):
    """Drops Const nodes nothing reads any more (weights replaced by folded copies)."""
    editor = GraphEditor(graph_def, output_node_names)
    for node in editor.nodes():
        if (node.op == "Const" and not editor.consumers(node.name)
                and node.name not in editor.protected):
            editor.remove(node.name)
    return editor.to_graph_def()


# The order matters; each line says why the pass sits where it does.
PASSES: Tuple[Tuple[str, Pass, str], ...] = (
    ("expand_fused_ops", expand_fused_ops,
     "first: undo any fusion made upstream (the TF remapper fuses residual Adds and Tanh, "
     "which TF.js rejects), so every fusion below is ours and checked"),
    ("decompose_batch_norms", decompose_batch_norms,
     "before folding: turns inference FusedBatchNorm after a conv into the x*s+o form "
     "the folding pass understands"),
    ("fold_affine_into_weights", fold_affine_into_weights,
     "before fusion: folds BN scale into the weights and leaves one rank-1 BiasAdd, "
     "the only bias form fusion accepts"),
    ("remove_unused_constants", remove_unused_constants,
     "right after folding: the replaced weights would otherwise ride through every later "
     "pass (ResNet50: 196 MB instead of 103 MB of graph, the conversion's memory peak)"),
    ("push_constant_adds_into_convs", push_constant_adds_into_convs,
     "after folding: Grappler's AddN rewrite moves a BN offset past the residual sum; "
     "put it back into the (now folded) conv's bias"),
    ("fuse_prelu", fuse_prelu,
     "before conv fusion, so a Prelu right after a conv/matmul can become its activation; "
     "needs the graph still importable by TF for shape inference"),
    ("fuse_conv_bias_activation", fuse_conv_bias_activation,
     "after folding and PReLU: absorbs the BiasAdd and activation into one TF.js fused op"),
    ("remove_unused_constants", remove_unused_constants,
     "last: the folds leave the original (now unread) weights behind"),
)


def optimize_graph(graph_def, output_node_names: Sequence[str]):
    """Runs every pass of ``PASSES`` in order.

    Args:
      graph_def: a frozen ``GraphDef`` (not modified).
      output_node_names: nodes whose names and values must be preserved; a
        ``name:index`` form is accepted.

    Returns:
      A new ``GraphDef``.

    Raises:
      UnsupportedOpError: an upstream fused op lists an entry TF.js cannot run.
    """
    outputs: List[str] = [parse_input(n)[0] for n in output_node_names]
    for _, transform, _ in PASSES:
        graph_def = transform(graph_def, outputs)
    return graph_def
