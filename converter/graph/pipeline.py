"""The graph transforms, in order, from a frozen GraphModel to one ready to write.

Each step is a function GraphModel -> GraphModel; ``STEPS`` lists them with
the reason for their position. The steps that only remove or rewrite nodes
around the weights (pruning, Grappler, canonical names) edit the GraphDef in
place: a copy would hold a second copy of every weight, and the model they are
given (the reader's) is not used again.
"""

from typing import Callable, Dict, List, Optional, Tuple

from converter.graph import canonical, control, grappler, ops, prune, semantics, weights
from converter.graph.model import GraphModel


class GraphOptions:
    """The request options the graph transforms read (a view of ConversionRequest)."""

    def __init__(self, strip_debug_ops: bool = True, skip_op_check: bool = False,
                 quantization: Optional[Dict[str, Optional[Tuple[str, ...]]]] = None,
                 metadata: Optional[Dict[str, object]] = None):
        self.strip_debug_ops = strip_debug_ops
        self.skip_op_check = skip_op_check
        self.quantization = quantization or {}
        self.metadata = metadata or {}


def prune_by_signature(model: GraphModel, options: GraphOptions) -> GraphModel:
    prune.prune_in_place(model.graph_def, model.inputs, model.outputs, model.source)
    return model


def check_ops_before(model: GraphModel, options: GraphOptions) -> GraphModel:
    if not options.skip_op_check:
        ops.check_ops(model.graphs(), "before optimization", model.source,
                      allow_debug_ops=options.strip_debug_ops)
    return model


def run_grappler(model: GraphModel, options: GraphOptions) -> GraphModel:
    optimizers = list(grappler.BASE_OPTIMIZERS)
    if options.strip_debug_ops:
        optimizers.insert(0, grappler.DEBUG_STRIPPER)
    grappler.run_grappler(model.graph_def, model.inputs, model.outputs, optimizers)
    return model


def rewrite_semantics(model: GraphModel, options: GraphOptions) -> GraphModel:
    graph_def = semantics.rewrite_semantics(model.graph_def, [o.name for o in model.outputs])
    return model if graph_def is model.graph_def else model.replace(graph_def=graph_def)


def run_tfjs_passes(model: GraphModel, options: GraphOptions) -> GraphModel:
    from converter.graph.optimize import optimize_graph
    graph_def = optimize_graph(model.graph_def, [o.name for o in model.outputs])
    return model.replace(graph_def=graph_def)


def drop_control_inputs(model: GraphModel, options: GraphOptions) -> GraphModel:
    control.drop_control_inputs(model.graph_def)
    return model


def check_ops_after(model: GraphModel, options: GraphOptions) -> GraphModel:
    if not options.skip_op_check:
        ops.check_ops(model.graphs(), "after optimization", model.source)
    return model


def check_semantics(model: GraphModel, options: GraphOptions) -> GraphModel:
    # Not skippable with --skip_op_check: a model that runs but answers differently
    # from TensorFlow is worse than a refused one.
    semantics.check_semantics(model.graphs(), model.source)
    return model


def restore_deferred(model: GraphModel, options: GraphOptions) -> GraphModel:
    return weights.restore_deferred(model)


def canonicalize(model: GraphModel, options: GraphOptions) -> GraphModel:
    # In place: a copy would duplicate the weights still inline in Const nodes.
    for _, graph_def in model.graphs():
        canonical.canonicalize(graph_def)
    return model


def name_weights(model: GraphModel, options: GraphOptions) -> GraphModel:
    return weights.name_weights(model)


def plan_quantization(model: GraphModel, options: GraphOptions) -> GraphModel:
    return weights.plan_quantization(model, options.quantization)


def add_metadata(model: GraphModel, options: GraphOptions) -> GraphModel:
    if not options.metadata:
        return model
    merged = dict(model.user_metadata)
    merged.update(options.metadata)
    return model.replace(user_metadata=merged)


# (step, why it sits here).
STEPS: List[Tuple[Callable[[GraphModel, GraphOptions], GraphModel], str]] = [
    (prune_by_signature, "first: the op check must see only nodes between inputs and outputs"),
    (check_ops_before, "before the slow passes, naming the source's own nodes"),
    (run_grappler, "folds constants and drops identities, which our passes rely on"),
    (rewrite_semantics, "what TF.js would compute differently from TF becomes exact ops "
                        "(semantics.RULES) before the fusions, on a graph TF still imports"),
    (run_tfjs_passes, "TF.js fusions (BN folding, fused conv/matmul, PReLU) on a clean graph"),
    (drop_control_inputs, "TF.js waits on control inputs as data; NoOps would block it"),
    (prune_by_signature, "dead nodes, NoOps and unused functions left by the steps above"),
    (check_ops_after, "passes may emit ops; what TF.js loads must be supported"),
    (check_semantics, "on the final graph, functions and initializer: nothing TF.js would "
                      "compute differently from TF is left (not skipped by skip_op_check)"),
    (restore_deferred, "weights too large to freeze went through the passes as Placeholders "
                       "no pass folds; on the final graph they are Consts again"),
    (canonicalize, "names of traced functions depend on the process; weights take them"),
    (name_weights, "after the graph is final: weight names are Const node names"),
    (plan_quantization, "needs the final weight names the patterns match"),
    (add_metadata, "last: never depends on the graph"),
]


def transform(model: GraphModel, options: GraphOptions) -> GraphModel:
    """Runs every step of STEPS in order."""
    for step, _ in STEPS:
        model = step(model, options)
    return model
