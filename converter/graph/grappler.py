"""Runs TensorFlow's Grappler on a frozen GraphDef with the signature as feeds and fetches."""

from typing import Sequence

from converter.graph.model import TensorInfo

# Order as TensorFlow's meta optimizer expects them; each runs once per iteration.
BASE_OPTIMIZERS = ("pruning", "constfold", "arithmetic", "dependency")
DEBUG_STRIPPER = "debug_stripper"


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


def run_grappler(graph_def, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                 optimizers: Sequence[str], iterations: int = 2):
    """Optimizes ``graph_def`` with the named Grappler optimizers.

    The signature inputs are feeds (kept, never folded) and the outputs are
    fetches (everything else that they do not need is pruned).

    Returns:
      The optimized GraphDef (a new message).
    """
    from tensorflow.core.protobuf import config_pb2, meta_graph_pb2, rewriter_config_pb2
    from tensorflow.python.grappler import tf_optimizer
    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
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
    return tf_optimizer.OptimizeGraph(config, meta, verbose=False)
