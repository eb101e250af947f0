"""TF.js graph models as an input: back to a SavedModel, round trips, re-sharding, refusals.

Parity is measured against TF.js itself: the original graph model's outputs in
TF.js 4.22 (cpu) on seeded inputs are the reference. Each case:

1. builds a source (a zoo Keras model or a hand-written tf.Module of
   tests/test_graph_parity.py) and converts it with our converter to a
   ``tfjs_graph_model`` (the "original");
2. converts that graph model to ``tf_saved_model`` and runs ``serving_default``
   in TensorFlow (tests/saved_model_runner.py: a child process, oneDNN off);
3. converts the SavedModel back to ``tfjs_graph_model`` and runs it in TF.js.

Both (2) and (3) must match (1) within ``GRAPH_INPUT`` (1e-4 abs + 1e-4 rel).
All conversions run first, then one Node process per stage runs every TF.js job.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import sys
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest

import saved_model_runner
import test_graph_parity as gp
import tfjs_node
import tolerances
from converter import api, cli
from converter.errors import ConversionError, InvalidWeightsError, UnsupportedOpError
from converter.graph.to_saved_model import signature_key
from converter.readers.detect import detect_input_format

# The issue-10 acceptance bound: 1e-4 abs plus 1e-4 of the reference's magnitude.
# TF.js and TensorFlow differ by float32 rounding only (tests/tolerances.py
# measures that floor at <= 3.3e-7 * max|y| for these models); the round trip
# adds no arithmetic (the same ops, fused again), so the bound has margin of
# more than 100x on every case measured (see the report printed per case).
GRAPH_INPUT = tolerances.Tolerance(
    atol=1e-4, rtol=1e-4, why="issue 10: SavedModel / round-tripped graph vs the TF.js original")


@dataclasses.dataclass(frozen=True)
class Case:
    """One graph-input case.

    Attributes:
      id: test id.
      build: ``build(tmp) -> gp.Source`` (source model, inputs, TF reference).
      options: converter options of the forward conversion (source -> graph).
      method: the TF.js method (``executeAsync`` for lowered loops / tables).
      slow: the minutes-long tier.
      round_trip_refused: the exact start of the error the SavedModel -> graph
        conversion gives (a known limitation, asserted so a fix is noticed).
    """

    id: str
    build: Callable[[pathlib.Path], "gp.Source"]
    options: Dict[str, object] = dataclasses.field(default_factory=dict)
    method: str = "execute"
    slow: bool = False
    round_trip_refused: Optional[str] = None


# The forward SavedModel reader freezes a signature by inlining its function;
# TensorFlow does not inline a function holding lowered (v1) loops, so the
# call survives and the op check refuses it.
_LOWERED_LOOP_CALL = ("1 op type(s) unsupported by TensorFlow.js 4.22.0 before optimization: "
                      "StatefulPartitionedCall x1")

CASES = [
    Case("mlp", gp._keras_source("mlp", "export")),
    Case("cnn_bn", gp._keras_source("cnn_bn", "export")),
    Case("multi_io", gp._keras_source("multi_io", "export")),
    Case("embedding_lstm-lowered", gp._keras_source("embedding_lstm", "export"),
         method="executeAsync", round_trip_refused=_LOWERED_LOOP_CALL),
    Case("embedding_lstm-cfv2", gp._keras_source("embedding_lstm", "export"),
         {"control_flow_v2": True}, method="executeAsync"),
    Case("while_cond-cfv2", gp._control_flow, {"control_flow_v2": True}, method="executeAsync"),
    Case("hash_table", gp._hash_table, method="executeAsync"),
    Case("dict_outputs", gp._dict_outputs),
    Case("dict_outputs-structured", gp._dict_outputs, {"use_structured_outputs_names": True}),
    Case("mobilenet_v2", gp._keras_source("mobilenet_v2", "export"), slow=True),
    Case("resnet50", gp._keras_source("resnet50", "export"), slow=True),
]


@dataclasses.dataclass
class Run:
    case: Case
    source: Optional["gp.Source"] = None
    graph: Optional[pathlib.Path] = None
    saved_model: Optional[pathlib.Path] = None
    back: Optional[pathlib.Path] = None
    error: Optional[str] = None
    back_error: Optional[str] = None
    original: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    from_saved_model: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    round_trip: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)


def _selected(session) -> List[Case]:
    out = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and item.module.__name__ == __name__:
            case = callspec.params.get("case")
            if isinstance(case, Case):
                out[case.id] = case
    return list(out.values())


def _tfjs(runs: List[Run], attr: str) -> Dict[str, tfjs_node.JobResult]:
    jobs = [tfjs_node.Job(getattr(r, attr), r.source.inputs, backend="cpu", kind="graph",
                          method=r.case.method, output_names=sorted(r.source.expected),
                          job_id="%s %s" % (r.case.id, attr))
            for r in runs]
    return dict(zip([r.case.id for r in runs], tfjs_node.run_jobs(jobs)))


def _outputs(result: tfjs_node.JobResult) -> Dict[str, np.ndarray]:
    result.check()
    return dict(zip(result.output_names, result.outputs))


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory) -> Dict[str, Run]:
    src = tmp_path_factory.mktemp("graph_input_sources")
    out = tmp_path_factory.mktemp("graph_input_out")
    runs = {}
    for case in _selected(request.session):
        run = runs[case.id] = Run(case)
        run.source = case.build(src)
        run.graph = out / case.id / "graph"
        api.convert(str(run.source.path), str(run.graph), output_format="tfjs_graph_model",
                    **case.options)
    live = list(runs.values())
    for run, result in zip(live, _tfjs(live, "graph").values()):
        run.original = _outputs(result)
    for run in live:
        run.saved_model = run.graph.parent / "saved_model"
        run.back = run.graph.parent / "back"
        try:
            api.convert(str(run.graph), str(run.saved_model))  # tf_saved_model is inferred
        except ConversionError as e:
            run.error = "%s: %s" % (type(e).__name__, e)
            continue
        try:
            api.convert(str(run.saved_model), str(run.back), output_format="tfjs_graph_model",
                        **{k: v for k, v in run.case.options.items()
                           if k in ("control_flow_v2", "use_structured_outputs_names")})
        except ConversionError as e:
            run.back_error = str(e)
    ok = [r for r in live if r.error is None]
    outputs = saved_model_runner.run_signatures(
        [(r.saved_model, {signature_key(k): v for k, v in r.source.inputs.items()}) for r in ok])
    for run, result in zip(ok, outputs):
        run.from_saved_model = result
    back = [r for r in ok if r.back_error is None]
    for run, result in zip(back, _tfjs(back, "back").values()):
        run.round_trip = _outputs(result)
    return runs


def _compare(what: str, got: Dict[str, np.ndarray], want: Dict[str, np.ndarray]) -> float:
    assert sorted(got) == sorted(want), "%s: outputs %s, want %s" % (
        what, sorted(got), sorted(want))
    floats_got, floats_want = [], []
    for key in sorted(want):
        g, w = np.asarray(got[key]), np.asarray(want[key])
        if w.dtype.kind in "iub" or w.dtype == object:
            assert g.shape == w.shape and np.array_equal(g.astype(w.dtype), w), (
                "%s: %s = %s, want %s" % (what, key, g, w))
        else:
            floats_got.append(g)
            floats_want.append(w)
    tolerances.check_close(floats_got, floats_want, GRAPH_INPUT, what)
    return tolerances.max_error(floats_got, floats_want) if floats_want else 0.0


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow
                                               else []) for c in CASES])
def test_saved_model_and_round_trip_match_tfjs(case, runs):
    run = runs[case.id]
    assert run.error is None, run.error
    # The original TF.js model matches TensorFlow on the source (the forward path),
    # so the reference itself is sound.
    _compare("%s: TF.js original vs TF source" % case.id, run.original, run.source.expected)
    e1 = _compare("%s: SavedModel (TF) vs TF.js original" % case.id, run.from_saved_model,
                  run.original)
    if case.round_trip_refused is not None:
        assert run.back_error is not None and case.round_trip_refused in run.back_error, (
            "%s: want the known refusal %r, got %r" % (case.id, case.round_trip_refused,
                                                       run.back_error))
        print("%s: max abs error SavedModel %.3g, round trip refused (known)" % (case.id, e1))
        return
    assert run.back_error is None, run.back_error
    e2 = _compare("%s: graph -> SavedModel -> graph (TF.js) vs TF.js original" % case.id,
                  run.round_trip, run.original)
    print("%s: max abs error SavedModel %.3g, round trip %.3g" % (case.id, e1, e2))


def test_saved_model_signature_and_tables(runs):
    """serving_default is keyed by the model's names; the hash table is restored on load."""
    import tensorflow as tf
    run = runs.get("hash_table")
    if run is None:
        pytest.skip("hash_table case not selected")
    loaded = tf.saved_model.load(str(run.saved_model))
    sig = loaded.signatures["serving_default"]
    assert sorted(sig.structured_input_signature[1]) == ["words"]
    assert sorted(sig.structured_outputs) == ["ids", "vectors"]
    ids = sig(words=tf.constant([b"fish", b"nope", b"bird"]))["ids"].numpy()
    assert ids.tolist() == [1, -1, 4]
    doc = json.loads((run.back / "model.json").read_text())
    assert "modelInitializer" in doc and doc["signature"]["inputs"]["words"]["dtype"] == "DT_STRING"


# -- detection, layouts, re-sharding ----------------------------------------------------


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory) -> pathlib.Path:
    """Our graph model of the zoo's cnn_bn (float32, one shard)."""
    tmp = tmp_path_factory.mktemp("small_graph")
    source = gp._keras_source("cnn_bn", "export")(tmp)
    out = tmp / "graph"
    api.convert(str(source.path), str(out), output_format="tfjs_graph_model")
    return out


def _digest(path: pathlib.Path) -> Dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.iterdir()) if p.is_file()}


def _as_v1_layout(graph: pathlib.Path, dest: pathlib.Path) -> pathlib.Path:
    """The model as converter 1.x wrote it: no signature, no format key, many groups of
    extension-less shard files with names of its own."""
    doc = json.loads((graph / "model.json").read_text())
    from converter.weights.reader import read_weight_groups
    from converter.weights import format as wf
    tensors = [t for g in read_weight_groups(doc["weightsManifest"], str(graph), "x") for t in g]
    dest.mkdir()
    manifest = []
    for gi in range(0, len(tensors), 3):
        group = tensors[gi:gi + 3]
        blob = b"".join(wf.encode(t) for t in group)
        half = len(blob) // 2
        names = ["weights_%d_a" % gi, "weights_%d_b" % gi]
        (dest / names[0]).write_bytes(blob[:half])
        (dest / names[1]).write_bytes(blob[half:])
        manifest.append({"paths": names, "weights": [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in group]})
    old = {"modelTopology": doc["modelTopology"], "weightsManifest": manifest,
           "generatedBy": "1.15.0", "convertedBy": "TensorFlow.js Converter v1.7.0"}
    (dest / "model.json").write_text(json.dumps(old))
    return dest


def test_detects_graph_models(small_graph, tmp_path):
    assert detect_input_format(str(small_graph)) == "tfjs_graph_model"
    assert detect_input_format(str(small_graph / "model.json")) == "tfjs_graph_model"
    v1 = _as_v1_layout(small_graph, tmp_path / "v1")
    assert "format" not in json.loads((v1 / "model.json").read_text())
    assert detect_input_format(str(v1)) == "tfjs_graph_model"


def test_v1_layout_converts_with_inferred_signature(small_graph, tmp_path):
    """A 1.x layout (many groups, extension-less shards, no signature) gives the same outputs."""
    v1 = _as_v1_layout(small_graph, tmp_path / "v1")
    doc = json.loads((small_graph / "model.json").read_text())
    in_key, = doc["signature"]["inputs"]
    placeholder = doc["signature"]["inputs"][in_key]["name"].split(":")[0]
    x = np.random.default_rng(0).standard_normal((2, 16, 16, 3)).astype(np.float32)
    api.convert(str(v1), str(tmp_path / "sm_v1"))
    api.convert(str(small_graph), str(tmp_path / "sm"))
    import tensorflow as tf
    sig_v1 = tf.saved_model.load(str(tmp_path / "sm_v1")).signatures["serving_default"]
    sig = tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_default"]
    # Without a signature, inputs are the Placeholders and outputs the sinks, by node name.
    assert sorted(sig_v1.structured_input_signature[1]) == [signature_key(placeholder)]
    got = list(sig_v1(**{signature_key(placeholder): tf.constant(x)}).values())
    want = list(sig(**{signature_key(in_key): tf.constant(x)}).values())
    assert len(got) == len(want) == 1
    np.testing.assert_array_equal(got[0].numpy(), want[0].numpy())


def test_reshard_keeps_everything_else(small_graph, tmp_path):
    out = tmp_path / "resharded"
    api.convert(str(small_graph), str(out), output_format="tfjs_graph_model",
                weight_shard_size_bytes=1000)
    src, new = (json.loads((p / "model.json").read_text()) for p in (small_graph, out))
    assert {k: v for k, v in src.items() if k != "weightsManifest"} == \
        {k: v for k, v in new.items() if k != "weightsManifest"}
    assert [w for g in src["weightsManifest"] for w in g["weights"]] == \
        [w for g in new["weightsManifest"] for w in g["weights"]]
    blob = lambda d, doc: b"".join((d / p).read_bytes() for g in doc["weightsManifest"]  # noqa
                                   for p in g["paths"])
    assert blob(out, new) == blob(small_graph, src)
    assert len(new["weightsManifest"][0]["paths"]) > 1
    assert all(os.path.getsize(out / p) <= 1000 for p in new["weightsManifest"][0]["paths"])
    # Byte-reproducible: a second run writes the same bytes.
    again = tmp_path / "again"
    api.convert(str(small_graph), str(again), output_format="tfjs_graph_model",
                weight_shard_size_bytes=1000)
    assert _digest(again) == _digest(out)


def test_requantize_and_dequantize(small_graph, tmp_path):
    from converter.readers.tfjs_graph import read_graph_document, read_graph_weights
    from converter.weights import quantize
    q = tmp_path / "q"
    api.convert(str(small_graph), str(q), output_format="tfjs_graph_model",
                quantize_uint8=("*",))
    doc = json.loads((q / "model.json").read_text())
    stored = {w["name"]: w.get("quantization", {}).get("dtype")
              for w in doc["weightsManifest"][0]["weights"]}
    assert "uint8" in stored.values()
    # Re-sharding a quantized model keeps the stored bytes.
    same = tmp_path / "same"
    api.convert(str(q), str(same), output_format="tfjs_graph_model")
    assert _digest(same)["group1-shard1of1.bin"] == _digest(q)["group1-shard1of1.bin"]
    # --dequantize writes float32: the values TF.js reconstructs, exactly.
    dq = tmp_path / "dq"
    assert cli.main([str(q), str(dq), "--output_format=tfjs_graph_model", "--dequantize"]) == 0
    ddoc = json.loads((dq / "model.json").read_text())
    assert not any("quantization" in w for w in ddoc["weightsManifest"][0]["weights"])
    qt = [t for g in read_graph_weights(*read_graph_document(str(q))) for t in g]
    dt = [t for g in read_graph_weights(*read_graph_document(str(dq))) for t in g]
    for a, b in zip(qt, dt):
        np.testing.assert_array_equal(quantize.dequantize_tensor(a).data, b.data)


# -- refusals ---------------------------------------------------------------------------


def _previous(tmp_path: pathlib.Path, small_graph: pathlib.Path) -> pathlib.Path:
    out = tmp_path / "out_sm"
    api.convert(str(small_graph), str(out))
    return out


def _tree(path: pathlib.Path) -> Dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def _cli(capsys, *args):
    """Runs the CLI in process; returns (exit code, what it printed on stderr)."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_refuses_an_op_tensorflow_lacks(small_graph, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(small_graph, bad)
    doc = json.loads((bad / "model.json").read_text())
    node = next(n for n in doc["modelTopology"]["node"] if n["op"] not in ("Const", "Placeholder"))
    node["op"] = "SimpleMLInferenceOpWithHandle"
    (bad / "model.json").write_text(json.dumps(doc))
    out = _previous(tmp_path, small_graph)
    before = _tree(out)
    code, stderr = _cli(capsys, bad, out)
    assert code == 1
    assert stderr == (
        "tfjs_converter: error: %s: node %r has op SimpleMLInferenceOpWithHandle, which TF.js "
        "runs but TensorFlow has no op for; it cannot be converted to TensorFlow\n"
        % (bad / "model.json", node["name"]))
    assert _tree(out) == before


def test_refuses_a_const_without_weight(small_graph, tmp_path, capsys):
    bad = tmp_path / "bad"
    shutil.copytree(small_graph, bad)
    doc = json.loads((bad / "model.json").read_text())
    const = next(n for n in doc["modelTopology"]["node"] if n["op"] == "Const")
    const["name"] = "renamed_const"
    (bad / "model.json").write_text(json.dumps(doc))
    out = _previous(tmp_path, small_graph)
    before = _tree(out)
    code, stderr = _cli(capsys, bad, out)
    assert code == 1
    assert stderr == ("tfjs_converter: error: %s: Const node 'renamed_const' has no weight "
                           "of that name in weightsManifest\n" % (bad / "model.json"))
    assert _tree(out) == before


def test_refuses_fused_batch_norm(small_graph, tmp_path):
    from converter.graph.to_saved_model import to_tensorflow_ops
    from converter.readers.tfjs_graph import read_tfjs_graph
    model = read_tfjs_graph(str(small_graph))
    fused = [n for n in model.graph_def.node if n.op == "_FusedConv2D"]
    assert fused, "cnn_bn has fused convolutions"
    fused[0].attr["fused_ops"].list.s[:] = [b"FusedBatchNorm"]
    with pytest.raises(UnsupportedOpError, match="node %r \\(_FusedConv2D\\) fuses FusedBatchNorm"
                       % fused[0].name):
        to_tensorflow_ops(model)


def test_saved_model_output_replaces_only_a_saved_model(small_graph, tmp_path, capsys):
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("keep")
    code, stderr = _cli(capsys, small_graph, home)
    assert code == 2
    assert stderr == ("tfjs_converter: error: output directory %s holds files that are not part "
                      "of a SavedModel (notes.txt); choose an empty or model directory\n" % home)
    assert (home / "notes.txt").read_text() == "keep"


def test_tfjs_only_ops_become_tensorflow_ops(small_graph):
    """Prelu and the TF.js fused ops are rewritten; TensorFlow computes them like TF.js."""
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2
    from converter.graph.model import GraphModel, TensorInfo
    from converter.graph.to_saved_model import to_tensorflow_ops
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    alpha = np.array([0.1, 0.2, 0.3], np.float32)
    text = """
    node { name: "x" op: "Placeholder" attr { key: "dtype" value { type: DT_FLOAT } } }
    node { name: "w" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "value" value { tensor { dtype: DT_FLOAT } } } }
    node { name: "b" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "value" value { tensor { dtype: DT_FLOAT } } } }
    node { name: "alpha" op: "Const" attr { key: "dtype" value { type: DT_FLOAT } }
           attr { key: "value" value { tensor { dtype: DT_FLOAT } } } }
    node { name: "mm" op: "_FusedMatMul" input: "x" input: "w" input: "b" input: "alpha"
           attr { key: "T" value { type: DT_FLOAT } }
           attr { key: "num_args" value { i: 2 } }
           attr { key: "fused_ops" value { list { s: "BiasAdd" s: "Prelu" } } } }
    node { name: "p" op: "Prelu" input: "mm" input: "alpha" }
    """
    from google.protobuf import text_format
    graph_def = text_format.Parse(text, graph_pb2.GraphDef())
    for node in graph_def.node:
        value = {"w": w, "b": b, "alpha": alpha}.get(node.name)
        if value is not None:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    model = to_tensorflow_ops(GraphModel(graph_def, (TensorInfo("x", "x:0", "DT_FLOAT", (-1, 5)),),
                                         (TensorInfo("p", "p:0", "DT_FLOAT", None),)))
    assert {n.op for n in model.graph_def.node} == {"Placeholder", "Const", "MatMul", "BiasAdd",
                                                    "Relu", "Minimum", "Mul", "AddV2"}
    f = tf.compat.v1.wrap_function(
        lambda: tf.compat.v1.import_graph_def(model.graph_def, name="g"), [])
    run = f.prune(f.graph.as_graph_element("g/x:0"), f.graph.as_graph_element("g/p:0"))
    y = x @ w + b
    y = np.where(y < 0, alpha * y, y)
    y = np.where(y < 0, alpha * y, y)
    np.testing.assert_allclose(run(tf.constant(x)).numpy(), y, rtol=1e-6, atol=1e-6)


def test_refusal_of_a_bad_shard_names_the_file(small_graph, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(small_graph, bad)
    with open(bad / "group1-shard1of1.bin", "ab") as f:
        f.write(b"\0" * 4)
    with pytest.raises(InvalidWeightsError, match="model.json: the weights .* need \\d+ bytes"):
        api.convert(str(bad), str(tmp_path / "o"))


# -- tfjs_layers_model -> keras_saved_model ---------------------------------------------


def _keras22_topology():
    """A Sequential model as Keras 2.2.4 saved it and old TF.js apps ship it: the
    Sequential config is a bare list, the first layer carries batch_input_shape,
    initializers are full class/config dicts, names have Keras 2.2's ``_1`` suffixes."""
    init = {"class_name": "VarianceScaling", "config": {
        "scale": 1.0, "mode": "fan_avg", "distribution": "uniform", "seed": None}}
    zeros = {"class_name": "Zeros", "config": {}}
    return {
        "class_name": "Sequential",
        "config": [
            {"class_name": "Conv2D", "config": {
                "name": "conv2d_1", "trainable": True, "batch_input_shape": [None, 8, 8, 1],
                "dtype": "float32", "filters": 4, "kernel_size": [3, 3], "strides": [1, 1],
                "padding": "valid", "data_format": "channels_last", "dilation_rate": [1, 1],
                "activation": "relu", "use_bias": True, "kernel_initializer": init,
                "bias_initializer": zeros, "kernel_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None, "bias_constraint": None}},
            {"class_name": "MaxPooling2D", "config": {
                "name": "max_pooling2d_1", "trainable": True, "pool_size": [2, 2],
                "padding": "valid", "strides": [2, 2], "data_format": "channels_last"}},
            {"class_name": "Dropout", "config": {
                "name": "dropout_1", "trainable": True, "rate": 0.25, "noise_shape": None,
                "seed": None}},
            {"class_name": "Flatten", "config": {
                "name": "flatten_1", "trainable": True, "data_format": "channels_last"}},
            {"class_name": "Dense", "config": {
                "name": "dense_1", "trainable": True, "units": 3, "activation": "softmax",
                "use_bias": True, "kernel_initializer": init, "bias_initializer": zeros,
                "kernel_regularizer": None, "bias_regularizer": None,
                "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None}},
        ],
    }


def _keras22_layers_model(directory: pathlib.Path) -> pathlib.Path:
    from converter.model import LayersModel, Tensor
    from converter.writers.tfjs_layers import write_tfjs_layers
    rng = np.random.default_rng(22)
    tensors = [
        Tensor("conv2d_1/kernel", rng.standard_normal((3, 3, 1, 4)).astype(np.float32), "float32"),
        Tensor("conv2d_1/bias", rng.standard_normal(4).astype(np.float32) * 0.1, "float32"),
        Tensor("dense_1/kernel", rng.standard_normal((36, 3)).astype(np.float32), "float32"),
        Tensor("dense_1/bias", rng.standard_normal(3).astype(np.float32) * 0.1, "float32"),
    ]
    directory.mkdir(parents=True)
    write_tfjs_layers(LayersModel({"model_config": _keras22_topology(), "keras_version": "2.2.4",
                                   "backend": "tensorflow"}, (tensors,),
                                  generated_by="keras v2.2.4"), str(directory), 4 << 20)
    return directory


def test_keras22_layers_model_to_keras_saved_model(tmp_path):
    """A Keras 2.2-era layers model -> keras_saved_model; its served signature matches TF.js."""
    import tensorflow as tf
    src = _keras22_layers_model(tmp_path / "old_app_model")
    out = tmp_path / "saved_model"
    assert cli.main([str(src), str(out), "--output_format=keras_saved_model"]) == 0
    x = np.random.default_rng(3).standard_normal((2, 8, 8, 1)).astype(np.float32)
    result = tfjs_node.run_jobs([tfjs_node.Job(src, [x], backend="cpu", kind="layers",
                                               job_id="keras22 layers")])[0].check()
    sig = tf.saved_model.load(str(out)).signatures["serving_default"]
    in_keys = sorted(sig.structured_input_signature[1])
    assert len(in_keys) == 1
    outputs = sig(**{in_keys[0]: tf.constant(x)})
    assert sorted(outputs) == ["dense_1"]
    tolerances.check_close([outputs["dense_1"].numpy()], result.outputs, GRAPH_INPUT,
                           "keras22 keras_saved_model vs TF.js layers model")
    # Served from the same signature in a fresh TensorFlow process (oneDNN off).
    served, = saved_model_runner.run_signatures([(out, {in_keys[0]: x})])
    tolerances.check_close([served["dense_1"]], result.outputs, GRAPH_INPUT,
                           "keras22 served signature vs TF.js layers model")
    again = tmp_path / "again"
    assert cli.main([str(src), str(again), "--output_format=keras_saved_model"]) == 0
    assert _tree(again) == _tree(out), "keras_saved_model is not byte-reproducible"
    print("keras22: max abs error %.3g" % tolerances.max_error([served["dense_1"]],
                                                                 result.outputs))


# -- dispatch to the tflite / onnx writers (graph-out's), and option scopes ---------------


@pytest.mark.parametrize("fmt,module,function", [("tflite", "converter.writers.tflite",
                                                  "write_tflite"),
                                                 ("onnx", "converter.writers.onnx", "write_onnx")])
def test_graph_model_to_file_formats_goes_through_a_saved_model(small_graph, tmp_path,
                                                                monkeypatch, fmt, module,
                                                                function):
    """tfjs_graph_model -> tflite/onnx hands the writer a loadable SavedModel of the model."""
    import importlib
    import types
    import tensorflow as tf
    calls = []

    def fake_writer(saved_model_dir, output_path, request):
        sig = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
        calls.append((sorted(sig.structured_input_signature[1]), sorted(sig.structured_outputs),
                      output_path, request.output_format))
        with open(output_path, "wb") as f:
            f.write(b"model bytes")

    try:
        real = importlib.import_module(module)
    except ImportError:
        real = types.ModuleType(module)
        monkeypatch.setitem(sys.modules, module, real)
    monkeypatch.setattr(real, function, fake_writer, raising=False)
    out = tmp_path / ("model." + fmt)
    result = api.convert(str(small_graph), str(out), output_format=fmt)
    doc = json.loads((small_graph / "model.json").read_text())
    assert calls == [([signature_key(k) for k in sorted(doc["signature"]["inputs"])],
                      sorted(doc["signature"]["outputs"]), str(out), fmt)]
    assert out.read_bytes() == b"model bytes"
    assert (result.input_format, result.output_format, result.num_weights) == (
        "tfjs_graph_model", fmt, len(doc["weightsManifest"][0]["weights"]))


@pytest.mark.parametrize("options,message", [
    ({"verify": True}, "--verify applies only with a TF.js input or output (one side must run "
     "in TF.js; not yet a tfjs_graph_model input or a SavedModel output) (converting "
     "tfjs_graph_model to tf_saved_model)"),
    ({"dequantize": True}, "--dequantize applies only with a TF.js input and output format "
     "(converting tfjs_graph_model to tf_saved_model)"),
    ({"tflite_batch_size": 1}, "--tflite_batch_size applies only with --output_format tflite "
     "(converting tfjs_graph_model to tf_saved_model)"),
    ({"onnx_opset": 13}, "--onnx_opset applies only with --output_format onnx (converting "
     "tfjs_graph_model to tf_saved_model)"),
    ({"control_flow_v2": True, "output_format": "tfjs_graph_model"}, "--control_flow_v2 applies "
     "only with --output_format tfjs_graph_model from a TensorFlow, Keras or layers model "
     "(converting tfjs_graph_model to tfjs_graph_model)"),
    ({"strip_debug_ops": False, "output_format": "tfjs_graph_model"}, "--strip_debug_ops "
     "applies only with --output_format tfjs_graph_model from a TensorFlow, Keras or layers "
     "model (converting tfjs_graph_model to tfjs_graph_model)"),
])
def test_options_outside_their_formats_are_usage_errors(small_graph, tmp_path, options, message):
    from converter.errors import UsageError
    with pytest.raises(UsageError) as e:
        api.convert(str(small_graph), str(tmp_path / "o"), **options)
    assert str(e.value) == message
    assert not (tmp_path / "o").exists()


def test_saved_model_is_byte_reproducible(small_graph, tmp_path):
    """Two conversions give the same bytes (TensorFlow's random fingerprint uuid is fixed)."""
    api.convert(str(small_graph), str(tmp_path / "a"))
    api.convert(str(small_graph), str(tmp_path / "b"))
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")
    assert "fingerprint.pb" in _tree(tmp_path / "a")


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["modelTopology"]["node"].__setitem__(1, "oops"),
     "modelTopology.node[1] is not a node with a name and an op"),
    (lambda d: d["modelTopology"].__setitem__("node", {"a": 1}),
     "modelTopology.node is a dict; want a list"),
    (lambda d: d.__setitem__("modelTopology", [1]), "modelTopology is a list; want a GraphDef "
     "object"),
    (lambda d: d["signature"]["inputs"][next(iter(d["signature"]["inputs"]))].__setitem__(
        "dtype", "DT_NOPE"), "dtype 'DT_NOPE' is not a TensorFlow DataType"),
])
def test_malformed_graph_model_json(small_graph, tmp_path, capsys, mutate, message):
    bad = tmp_path / "bad"
    shutil.copytree(small_graph, bad)
    doc = json.loads((bad / "model.json").read_text())
    mutate(doc)
    (bad / "model.json").write_text(json.dumps(doc))
    out = _previous(tmp_path, small_graph)
    before = _tree(out)
    code, stderr = _cli(capsys, bad, out)
    assert code == 1
    assert stderr.startswith("tfjs_converter: error: %s: " % (bad / "model.json"))
    assert message in stderr and stderr.count("\n") == 1
    assert _tree(out) == before
