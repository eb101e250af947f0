"""Graph-model artifacts: model.json fields, weights (dtypes, int64, sharding, quantization),
signature pruning and the streaming shard writer."""

import json
import pathlib

import numpy as np
import pytest

from converter import api
from converter.errors import InvalidWeightsError, UsageError
from converter.graph import prune, tensors
from converter.graph.model import TensorInfo
from converter.model import Tensor
from converter.weights import writer


def _save(module, path, **signatures):
    import tensorflow as tf
    tf.saved_model.save(module, str(path), signatures=signatures or {
        "serving_default": module.__call__})
    return path


def _spec(out):
    return json.loads((pathlib.Path(out) / "model.json").read_text())


def _dense_module():
    import tensorflow as tf

    class Dense(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-1, 1, 64 * 32).astype(np.float32).reshape(64, 32))
            self.b = tf.Variable(np.linspace(0, 1, 32).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 64], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": tf.nn.relu(tf.matmul(x, self.w) + self.b)}
    return Dense()


def test_model_json_fields_sharding_and_metadata(tmp_path):
    src = _save(_dense_module(), tmp_path / "dense")
    meta = tmp_path / "meta.json"
    meta.write_text('{"labels": ["a", "b"]}')
    out = tmp_path / "out"
    api.convert(str(src), str(out), weight_shard_size_bytes=1000, metadata=(("info", str(meta)),))
    spec = _spec(out)
    assert spec["format"] == "graph-model"
    assert spec["convertedBy"].startswith("tfjs_rules converter v")
    assert spec["generatedBy"]
    assert spec["signature"]["inputs"] == {"x": {
        "name": "x:0", "dtype": "DT_FLOAT",
        "tensorShape": {"dim": [{"size": "-1"}, {"size": "64"}]}}}
    assert list(spec["signature"]["outputs"]) == ["y"]
    assert spec["userDefinedMetadata"] == {"info": {"labels": ["a", "b"]}}
    assert "versions" in spec["modelTopology"]
    [group] = spec["weightsManifest"]
    total = sum(int(np.prod(w["shape"])) * 4 for w in group["weights"])
    sizes = [(out / p).stat().st_size for p in group["paths"]]
    assert sum(sizes) == total and all(s == 1000 for s in sizes[:-1]) and sizes[-1] <= 1000
    assert group["paths"][0] == "group1-shard1of%d.bin" % len(sizes)
    assert sorted(p.name for p in out.iterdir()) == sorted(group["paths"] + ["model.json"])
    # Const payloads live only in the shards.
    for node in spec["modelTopology"]["node"]:
        if node["op"] == "Const":
            assert set(node["attr"]["value"]["tensor"]) <= {"dtype", "tensorShape"}


def test_quantization_applies_to_float_constants_only(tmp_path):
    src = _save(_dense_module(), tmp_path / "dense")
    out = tmp_path / "out"
    api.convert(str(src), str(out), quantize_uint8=())
    weights = _spec(out)["weightsManifest"][0]["weights"]
    floats = [w for w in weights if w["dtype"] == "float32"]
    assert floats and all(w["quantization"]["dtype"] == "uint8" for w in floats)
    assert all("quantization" not in w for w in weights if w["dtype"] != "float32")
    with pytest.raises(UsageError, match="only one quantization flag"):
        api.convert(str(src), str(tmp_path / "o2"), quantize_uint8=(), quantize_float16=())


def test_string_bool_int64_complex_constants(tmp_path):
    import tensorflow as tf

    class Consts(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.int64, name="i")])
        def __call__(self, i):
            return {"s": tf.strings.join([tf.constant(["ab", "ü"]), tf.constant(["x", ""])]),
                    "b": tf.logical_and(tf.constant([True, False]), i > 0),
                    "n": i + tf.constant([7, -3], tf.int64),
                    "c": tf.math.real(tf.constant([1 + 2j, 3 - 1j], tf.complex64)
                                      * tf.cast(tf.cast(i, tf.float32), tf.complex64))}

    src = _save(Consts(), tmp_path / "consts")
    out = tmp_path / "out"
    # The op check is off: StringJoin is not a TF.js op; this test is about constants.
    api.convert(str(src), str(out), skip_op_check=True)
    spec = _spec(out)
    dtypes = {w["dtype"] for w in spec["weightsManifest"][0]["weights"]}
    assert {"string", "bool", "int32", "complex64"} <= dtypes, dtypes
    from converter.weights.reader import read_weight_groups
    values = {t.name: t for g in read_weight_groups(spec["weightsManifest"], str(out), "test") for t in g}
    strings = [t for t in values.values() if t.dtype == "string"]
    assert sorted(v for t in strings for v in t.data.flat) == sorted([b"ab", "ü".encode(), b"x", b""])
    ints = [t.data.tolist() for t in values.values() if t.dtype == "int32"]
    assert [7, -3] in ints


def test_int64_constant_that_overflows_int32_fails_clearly(tmp_path):
    import tensorflow as tf

    class Big(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2], tf.int64, name="i")])
        def __call__(self, i):
            return {"n": i + tf.constant([2 ** 40, 1], tf.int64, name="big")}

    src = _save(Big(), tmp_path / "big")
    out = tmp_path / "out"
    with pytest.raises(InvalidWeightsError, match=r"weight '.*big.*'.*int64 value 1099511627776 "
                                                  r"does not fit in int32"):
        api.convert(str(src), str(out))
    assert not out.exists()


def test_signature_and_tag_errors(tmp_path):
    src = _save(_dense_module(), tmp_path / "dense")
    with pytest.raises(UsageError, match=r"signature 'nope' does not exist; available "
                                         r"signatures: serving_default"):
        api.convert(str(src), str(tmp_path / "o"), signature_name="nope")
    with pytest.raises(UsageError, match=r"no MetaGraph with tags gpu; available tag sets: "
                                         r"\[\['serve'\]\]"):
        api.convert(str(src), str(tmp_path / "o"), saved_model_tags="gpu")
    (tmp_path / "x.pb").write_bytes(b"")  # the input must exist before its flags are checked
    with pytest.raises(UsageError, match="needs --output_node_names"):
        api.convert(str(tmp_path / "x.pb"), str(tmp_path / "o"), input_format="tf_frozen_model")


def test_hash_table_initializer_resource_ids_match(tmp_path):
    import tensorflow as tf

    class Lookup(tf.Module):
        def __init__(self):
            self.table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant(["a", "b"]), tf.constant([1, 2], tf.int64)), -1)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="k")])
        def __call__(self, k):
            return {"v": self.table.lookup(k)}

    src = _save(Lookup(), tmp_path / "t")
    api.convert(str(src), str(tmp_path / "out"))
    spec = _spec(tmp_path / "out")
    resources = {k: v["resourceId"] for k, v in spec["signature"]["inputs"].items()
                 if v["dtype"] == "DT_RESOURCE"}
    init = spec["initializerSignature"]["outputs"]
    assert len(resources) == 1 and sorted(v["resourceId"] for v in init.values()) == sorted(
        resources.values())
    init_ops = {n["op"] for n in spec["modelInitializer"]["node"]}
    assert {"HashTableV2", "LookupTableImportV2"} <= init_ops
    # TF.js runs the initializer by output key as node name.
    init_nodes = {n["name"] for n in spec["modelInitializer"]["node"]}
    assert set(init) <= init_nodes
    names = [w["name"] for w in spec["weightsManifest"][0]["weights"]]
    assert len(names) == len(set(names))


def _node(graph, name, op, inputs=()):
    node = graph.node.add()
    node.name, node.op = name, op
    node.input.extend(inputs)
    return node


def test_prune_cuts_at_inputs_and_outputs():
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    _node(graph, "raw", "Placeholder")
    _node(graph, "decoded", "DecodePng", ["raw"])
    _node(graph, "x", "Identity", ["decoded"])
    _node(graph, "y", "Relu", ["x"])
    _node(graph, "unused", "Tanh", ["x"])
    _node(graph, "other", "Placeholder")
    inputs = [TensorInfo("image", "x:0", "DT_FLOAT", (-1, 3))]
    outputs = [TensorInfo("out", "y:0", "DT_FLOAT", (-1, 3))]
    pruned = prune.prune(graph, inputs, outputs, "g")
    assert [(n.name, n.op) for n in pruned.node] == [("x", "Placeholder"), ("y", "Relu")]
    assert list(pruned.node[0].input) == []
    assert [d.size for d in pruned.node[0].attr["shape"].shape.dim] == [-1, 3]


def test_stream_writer_matches_the_batch_writer(tmp_path):
    rng = np.random.default_rng(0)
    group = [Tensor("a", rng.standard_normal((7, 5)).astype(np.float32), "float32"),
             Tensor("s", np.array([b"xy", b""], dtype=object), "string"),
             Tensor("b", np.array([True, False, True]), "bool"),
             Tensor("i", np.arange(300, dtype=np.int32), "int32")]
    (tmp_path / "batch").mkdir()
    (tmp_path / "stream").mkdir()
    manifest = writer.write_weight_groups([group], str(tmp_path / "batch"), 256)
    streamed = writer.write_weight_stream(iter(group), str(tmp_path / "stream"), 256)
    assert streamed == manifest[0]
    for path in streamed["paths"]:
        assert (tmp_path / "stream" / path).read_bytes() == (tmp_path / "batch" / path).read_bytes()
    assert sorted(p.name for p in (tmp_path / "stream").iterdir()) == sorted(streamed["paths"])


def test_tensor_proto_decoding_repeats_the_last_value():
    from tensorflow.core.framework import tensor_pb2
    proto = tensor_pb2.TensorProto(dtype=tensors.DT_FLOAT)
    proto.tensor_shape.dim.add().size = 4
    proto.float_val.extend([1.5, 2.5])
    np.testing.assert_array_equal(tensors.to_numpy(proto, "w"), [1.5, 2.5, 2.5, 2.5])
    proto = tensor_pb2.TensorProto(dtype=tensors.DT_HALF)
    proto.half_val.append(int(np.float16(0.5).view(np.uint16)))
    assert tensors.to_numpy(proto, "h").dtype == np.float16
    tensors.clear_payload(proto)
    assert not proto.half_val and proto.dtype == tensors.DT_HALF
