"""converter/graph/tensor_lists.py: which element-shape constants get the fixed batch."""

import numpy as np

from converter.graph.model import GraphModel
from converter.graph.tensor_lists import static_element_shapes


def _const(graph, name, value):
    from tensorflow.python.framework import tensor_util
    node = graph.add()
    node.name, node.op = name, "Const"
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(np.array(value, np.int32)))
    return node


def _op(graph, name, op, inputs):
    node = graph.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    return node


def _value(node):
    from tensorflow.python.framework import tensor_util
    return tensor_util.MakeNdarray(node.attr["value"].tensor).tolist()


def test_only_constants_used_solely_as_element_shapes_with_an_unknown_batch():
    from tensorflow.core.framework import graph_pb2
    g = graph_pb2.GraphDef()
    _const(g.node, "reserve_shape", [-1, 16])
    _const(g.node, "n", 12)
    _op(g.node, "reserve", "TensorListReserve", ["reserve_shape", "n"])
    _const(g.node, "shared", [-1, 8])  # also a Reshape's shape: left alone
    _op(g.node, "from", "TensorListFromTensor", ["x", "shared"])
    _op(g.node, "reshape", "Reshape", ["x", "shared"])
    _const(g.node, "two_unknown", [-1, -1])  # not fully known after the batch: left alone
    _op(g.node, "stack", "TensorListStack", ["reserve:0", "two_unknown", "^n"])
    _const(g.node, "index_not_shape", [-1])  # a GetItem's index input, not its shape
    _const(g.node, "get_shape", [-1, 16])
    _op(g.node, "get", "TensorListGetItem", ["reserve", "index_not_shape", "get_shape"])
    body = g.library.function.add()
    body.signature.name = "while_body"
    _const(body.node_def, "body_shape", [-1, 16])
    _op(body.node_def, "get", "TensorListGetItem", ["list", "i", "body_shape:output:0"])
    model = GraphModel(graph_def=g, inputs=[], outputs=[])

    fixed, names = static_element_shapes(model, 3)
    assert names == ["get_shape", "reserve_shape", "while_body/body_shape"]
    by_name = {n.name: n for n in fixed.graph_def.node}
    assert _value(by_name["reserve_shape"]) == [3, 16]
    assert _value(by_name["get_shape"]) == [3, 16]
    assert _value(by_name["shared"]) == [-1, 8]
    assert _value(by_name["two_unknown"]) == [-1, -1]
    assert _value(by_name["index_not_shape"]) == [-1]
    assert _value(fixed.graph_def.library.function[0].node_def[0]) == [3, 16]
    # The model read is not changed.
    assert _value({n.name: n for n in g.node}["reserve_shape"]) == [-1, 16]
    assert static_element_shapes(GraphModel(graph_def=graph_pb2.GraphDef(), inputs=[],
                                            outputs=[]), 3) == (None, [])
