"""The weights exist once through the graph pipeline: Grappler sees hidden weights and
merges back in place, pruning is in place, and the lean SavedModel loader reads the
variables from the checkpoint (same frozen graph as TensorFlow's full load)."""

import numpy as np
import pytest

from converter.graph import grappler, prune, saved_model, tensors
from converter.graph.model import TensorInfo


def _node(graph, name, op, inputs=(), dtype=1):
    node = graph.node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    node.attr["T" if op not in ("Const", "Placeholder") else "dtype"].type = dtype
    return node


def _const(graph, name, value):
    from tensorflow.python.framework import tensor_util
    node = _node(graph, name, "Const", dtype=1 if value.dtype == np.float32 else 3)
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    return node


def _weights_graph():
    """x @ Identity(W) + x @ Transpose(T): W cannot be folded, Transpose(T) can."""
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    graph.versions.producer = 1000
    x = _node(graph, "x", "Placeholder")
    x.attr["shape"].shape.dim.add().size = -1
    x.attr["shape"].shape.dim.add().size = 64
    w = np.arange(64 * 64, dtype=np.float32).reshape(64, 64) / 4096
    t = np.flip(w, 0).copy()
    _const(graph, "W", w)
    _node(graph, "W/read", "Identity", ["W"])
    _const(graph, "T", t)
    _const(graph, "perm", np.array([1, 0], np.int32))
    transpose = _node(graph, "T/transposed", "Transpose", ["T", "perm"])
    transpose.attr["Tperm"].type = 3
    _node(graph, "a", "MatMul", ["x", "W/read"])
    _node(graph, "b", "MatMul", ["x", "T/transposed"])
    _node(graph, "y", "AddV2", ["a", "b"])
    inputs = [TensorInfo("x", "x:0", "DT_FLOAT", (-1, 64))]
    outputs = [TensorInfo("y", "y:0", "DT_FLOAT", (-1, 64))]
    return graph, inputs, outputs, w, t


def _run(graph, x):
    import tensorflow as tf
    with tf.Graph().as_default() as g:
        tf.compat.v1.import_graph_def(graph, name="")
        with tf.compat.v1.Session(graph=g) as sess:
            return sess.run("y:0", {"x:0": x})


def test_hide_weights_hides_only_what_grappler_cannot_fold():
    graph, _, _, w, _ = _weights_graph()
    masked, hidden = grappler.hide_weights(graph, ["x", "y"])
    # W and its Identity became one Placeholder named like the Identity (what
    # constant folding would have named the folded weight); T stays a Const.
    assert hidden == {"W/read": 1}
    ops = {n.name: n.op for n in masked.node}
    assert ops["W/read"] == "Placeholder" and "W" not in ops
    assert ops["T"] == "Const"
    placeholder = next(n for n in masked.node if n.name == "W/read")
    assert [d.size for d in placeholder.attr["shape"].shape.dim] == [64, 64]
    assert masked.ByteSize() < graph.ByteSize() - w.nbytes


def test_grappler_merges_in_place_and_keeps_the_weight_bytes():
    graph, inputs, outputs, w, t = _weights_graph()
    x = np.linspace(-1, 1, 3 * 64, dtype=np.float32).reshape(3, 64)
    expected = _run(graph, x)
    const_before = graph.node[1]
    grappler.run_grappler(graph, inputs, outputs, grappler.BASE_OPTIMIZERS)
    consts = {n.name: n for n in graph.node if n.op == "Const"}
    # The hidden weight is the very node of the input graph, renamed.
    assert const_before.name == "W/read"
    np.testing.assert_array_equal(tensors.to_numpy(consts["W/read"].attr["value"].tensor, "t"), w)
    # Grappler still folded the constant-only Transpose.
    assert "Transpose" not in {n.op for n in graph.node}
    folded = [tensors.to_numpy(n.attr["value"].tensor, "t") for n in consts.values()
              if n.name != "W/read" and n.attr["value"].tensor.tensor_shape.dim]
    assert any(v.shape == (64, 64) and np.array_equal(v, t.T) for v in folded)
    np.testing.assert_allclose(_run(graph, x), expected, rtol=1e-6)


def test_prune_in_place_drops_unneeded_nodes_and_the_empty_library():
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    _node(graph, "x", "Placeholder")
    _const(graph, "big", np.ones((128, 128), np.float32))
    _node(graph, "unused1", "Tanh", ["x"])
    _node(graph, "y", "MatMul", ["x", "big"])
    _node(graph, "unused2", "Relu", ["y"])
    graph.library.function.add().signature.name = "orphan"
    keep = graph.node[1]
    prune.prune_in_place(graph, [TensorInfo("x", "x:0", "DT_FLOAT", (1, 128))],
                         [TensorInfo("y", "y:0", "DT_FLOAT", (1, 128))], "g")
    assert [n.name for n in graph.node] == ["x", "big", "y"]
    assert keep.name == "big" and not graph.HasField("library")


def _consts(model):
    return {n.name: (n.attr["value"].tensor.dtype, tensors.to_numpy(n.attr["value"].tensor, "t"))
            for n in model.graph_def.node if n.op == "Const"}


def test_lean_load_freezes_like_the_full_load(tmp_path, monkeypatch):
    import tensorflow as tf

    class Net(tf.Module):
        def __init__(self):
            rng = np.random.default_rng(0)
            self.w = tf.Variable(rng.standard_normal((16, 8)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal((8,)).astype(np.float32))
            self.inner = tf.Module()
            self.inner.scale = tf.Variable(np.float32(3.0))
            self.all = [self.w, self.b, self.inner.scale]

        @tf.function(input_signature=[tf.TensorSpec([None, 16], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w) + self.b) * self.inner.scale}

    net = Net()
    path = tmp_path / "net"
    tf.saved_model.save(net, str(path), signatures={"serving_default": net.__call__})

    proto = saved_model._read_saved_model_proto(str(path))
    meta = saved_model._meta_graph(proto, str(path), ["serve"])
    plan = saved_model._lean_plan(proto, meta, "serving_default")
    assert plan is not None and len(plan.captured_ids) == 3
    # The loader gets only the functions the signature calls: no checkpoint save/restore.
    from tensorflow.core.protobuf import saved_model_pb2
    trimmed = saved_model_pb2.SavedModel.FromString(plan.saved_model)
    names = {f.signature.name for f in meta.graph_def.library.function}
    kept = {f.signature.name for f in trimmed.meta_graphs[0].graph_def.library.function}
    assert any("_traced_save" in n for n in names) and kept < names
    assert not any("_traced_" in n for n in kept)
    assert set(trimmed.meta_graphs[0].object_graph_def.concrete_functions) <= kept
    lean = saved_model.read_saved_model(str(path))
    monkeypatch.setattr(saved_model, "_lean_plan", lambda proto, meta, name: None)
    full = saved_model.read_saved_model(str(path))
    assert lean.inputs == full.inputs and lean.outputs == full.outputs
    lean_consts, full_consts = _consts(lean), _consts(full)
    assert lean_consts.keys() == full_consts.keys()
    for name, (dtype, value) in full_consts.items():
        assert lean_consts[name][0] == dtype
        np.testing.assert_array_equal(lean_consts[name][1], value)
    assert sorted(n.op for n in lean.graph_def.node) == sorted(n.op for n in full.graph_def.node)


def test_hash_table_signatures_take_the_full_load(tmp_path):
    import tensorflow as tf

    class Lookup(tf.Module):
        def __init__(self):
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(["a", "b"], [1, 2]), default_value=0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def __call__(self, words):
            return {"ids": self.table.lookup(words)}

    module = Lookup()
    path = tmp_path / "lookup"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    proto = saved_model._read_saved_model_proto(str(path))
    meta = saved_model._meta_graph(proto, str(path), ["serve"])
    assert saved_model._lean_plan(proto, meta, "serving_default") is None
    model = saved_model.read_saved_model(str(path))
    assert model.initializer is not None


def test_lean_load_names_a_variable_missing_from_the_checkpoint(tmp_path):
    import tensorflow as tf
    from converter.errors import InvalidModelError

    class One(tf.Module):
        def __init__(self):
            self.v = tf.Variable(np.ones((4,), np.float32))

        @tf.function(input_signature=[tf.TensorSpec([4], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": x * self.v}

    module = One()
    path = tmp_path / "one"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    # Replace the checkpoint by one whose variable has another shape.
    other = tf.train.Checkpoint(v=tf.Variable(np.ones((5,), np.float32)))
    other.write(str(path / "variables" / "variables"))
    with pytest.raises(InvalidModelError, match=r"variable .* has no value of shape \[4\]"):
        saved_model.read_saved_model(str(path))
