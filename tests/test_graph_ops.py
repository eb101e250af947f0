"""The graph op check: the op list follows the installed TF.js, and unsupported ops are named."""

import importlib.util
import json
import pathlib


import pytest

from converter import api
from converter.errors import UnsupportedOpError
from converter.graph import ops

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("gen_tfjs_ops", ROOT / "tools" / "gen_tfjs_ops.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_op_list_is_derived_from_the_installed_tfjs_converter():
    import tfjs_node
    PACKAGE = tfjs_node.node_modules() / "@tensorflow" / "tfjs-converter"
    gen = _generator()
    derived = gen.dumps(gen.derive(PACKAGE))
    assert pathlib.Path(ops.OPS_FILE).read_text() == derived, (
        "converter/graph/tfjs_ops.json is out of date; run tools/gen_tfjs_ops.py")
    doc = json.loads(derived)
    assert doc["version"] == json.loads((PACKAGE / "package.json").read_text())["version"]
    # Spot checks that the list is the executor's, fused TF.js-only ops included.
    for op in ("Conv2D", "_FusedConv2D", "FusedDepthwiseConv2dNative", "Prelu", "HashTableV2",
               "While", "Enter", "Placeholder", "Const"):
        assert op in ops.supported_ops(), op
    assert "VarHandleOp" not in ops.supported_ops()


def _igamma_model(path: pathlib.Path):
    import tensorflow as tf

    class Gamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def __call__(self, x):
            a = tf.math.igamma(x + 2.0, tf.abs(x) + 0.5)
            b = tf.math.igamma(tf.abs(x) + 1.0, x * x + 0.1)
            return {"y": tf.nn.relu(a + b)}

    module = Gamma()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})


def test_unsupported_op_names_op_nodes_and_count(tmp_path):
    src = tmp_path / "igamma"
    _igamma_model(src)
    out = tmp_path / "out"
    with pytest.raises(UnsupportedOpError) as info:
        api.convert(str(src), str(out))
    message = str(info.value)
    assert "1 op type(s) unsupported" in message, message
    assert "Igamma x2 (nodes: PartitionedCall/Igamma, PartitionedCall/Igamma_1)" in message, message
    assert "before optimization" in message and "--skip_op_check" in message, message
    assert ops.tfjs_version() in message
    assert "Relu" not in message and "AddV2" not in message
    assert not out.exists()

    api.convert(str(src), str(out), skip_op_check=True)
    spec = json.loads((out / "model.json").read_text())
    assert sorted(n["op"] for n in spec["modelTopology"]["node"] if n["op"] == "Igamma") == [
        "Igamma", "Igamma"]


def test_check_ops_after_optimization_message():
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    for name, op in (("a", "Placeholder"), ("w", "VarHandleOp"), ("r", "ReadVariableOp"),
                     ("r2", "ReadVariableOp")):
        node = graph.node.add()
        node.name, node.op = name, op
    with pytest.raises(UnsupportedOpError, match=r"src: 2 op type\(s\) unsupported by TensorFlow"
                       r"\.js .* after optimization: ReadVariableOp x2 \(nodes: r, r2\); "
                       r"VarHandleOp x1 \(nodes: w\)"):
        ops.check_ops([("graph", graph)], "after optimization", "src")


def test_debug_ops_allowed_only_when_stripped():
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    node = graph.node.add()
    node.name, node.op = "check", "CheckNumerics"
    ops.check_ops([("graph", graph)], "before optimization", "src", allow_debug_ops=True)
    with pytest.raises(UnsupportedOpError, match="CheckNumerics x1"):
        ops.check_ops([("graph", graph)], "before optimization", "src")


def test_strip_debug_ops_removes_check_numerics(tmp_path):
    import tensorflow as tf

    class Checked(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.debugging.check_numerics(x * 2.0, "bad")}

    module = Checked()
    tf.saved_model.save(module, str(tmp_path / "m"), signatures={"serving_default": module.__call__})
    api.convert(str(tmp_path / "m"), str(tmp_path / "out"))
    spec = json.loads((tmp_path / "out" / "model.json").read_text())
    assert "CheckNumerics" not in {n["op"] for n in spec["modelTopology"]["node"]}
    with pytest.raises(UnsupportedOpError, match="CheckNumerics x1"):
        api.convert(str(tmp_path / "m"), str(tmp_path / "out2"), strip_debug_ops=False)
