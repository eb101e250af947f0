"""Parity of converted graph models: real TensorFlow.js (cpu and wasm) against TensorFlow.

Every source is generated here: Keras 3 ``model.export()`` and
``tf.saved_model.save`` of zoo models, hand-written ``tf.Module``s (control flow,
hash table, several signatures, dict outputs) and a frozen GraphDef. Each is
converted with ``converter.api.convert`` to a ``tfjs_graph_model``; TensorFlow
runs the same signature on the same inputs for the reference. All conversions
run first (module fixture), then one Node process runs every TF.js job.
"""

import dataclasses
import json
import pathlib
from typing import Callable, Dict, List, Optional

import numpy as np
import pytest

import tfjs_node
import tolerances
import zoo
from converter import api
from converter.errors import ConversionError

BACKENDS = tfjs_node.BACKENDS


@dataclasses.dataclass
class Source:
    """A generated source model and its TensorFlow reference."""

    path: pathlib.Path
    inputs: Dict[str, np.ndarray]
    expected: Dict[str, np.ndarray]


@dataclasses.dataclass(frozen=True)
class Case:
    """One graph parity case.

    Attributes:
      id: test id.
      tolerance: key of tests/tolerances.py.
      build: ``build(tmp_dir) -> Source``.
      options: converter options.
      method: TF.js method (``executeAsync`` where lowered control flow or
        hash tables need it).
      slow: run only in the slow tier.
      names_outputs: outputs come back as a name map (structuredOutputKeys).
      known_failures: ``{backend: message}`` for a TF.js bug the case hits; the
        job must fail with exactly that message (so a fixed TF.js is noticed).
    """

    id: str
    tolerance: str
    build: Callable[[pathlib.Path], Source]
    options: Dict[str, object] = dataclasses.field(default_factory=dict)
    method: str = "execute"
    slow: bool = False
    names_outputs: bool = False
    known_failures: Dict[str, str] = dataclasses.field(default_factory=dict)


# TF.js 4.22 wasm: TensorListGetItem inside a v2 While body reshapes a list element
# the loop already disposed (BackendWasm.incRef on a freed dataId). The same graph
# runs on cpu, and the lowered (default) conversion of the same LSTM runs on wasm.
_WASM_TENSOR_LIST_IN_WHILE = "Cannot read properties of undefined (reading 'backend')"

# -- sources -------------------------------------------------------------------------


def _call_signature(path, signature, inputs):
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: np.asarray(v) for k, v in outputs.items()}


def _keras_source(name: str, how: str):
    def build(tmp: pathlib.Path) -> Source:
        import tensorflow as tf
        model = zoo.build_model(name, 3)
        arrays = zoo.make_inputs(name)
        path = tmp / ("%s_%s" % (name, how))
        if how == "export":
            model.export(str(path), format="tf_saved_model", verbose=False)
        else:
            specs = [tf.TensorSpec(t.shape, t.dtype, name="x%d" % i)
                     for i, t in enumerate(model.inputs)]

            @tf.function(input_signature=specs)
            def serve(*args):
                return {"y": model(list(args) if len(args) > 1 else args[0], training=False)}

            tf.saved_model.save(model, str(path), signatures={"serving_default": serve})
        keys = _signature_input_keys(path, "serving_default")
        inputs = dict(zip(keys, arrays))
        return Source(path, inputs, _call_signature(path, "serving_default", inputs))
    return build


def _keras_file_source(name: str, suffix: str, via_layers: bool = False):
    """A Keras 3 file (or the TF.js layers model converted from it) -> graph."""
    def build(tmp: pathlib.Path) -> Source:
        model = zoo.build_model(name, 3)
        arrays = zoo.make_inputs(name)
        path = tmp / ("%s%s" % (name, suffix))
        model.save(str(path))
        if via_layers:
            layers_dir = tmp / ("%s_layers" % name)
            api.convert(str(path), str(layers_dir), output_format="tfjs_layers_model")
            path = layers_dir
        from converter.graph.keras import input_layer_name
        keys = [input_layer_name(t) for t in model.inputs]
        expected = zoo.predict(model, arrays)
        out_names = list(getattr(model, "output_names", None) or ["output_0"])
        return Source(path, dict(zip(keys, arrays)), dict(zip(out_names, expected)))
    return build


def _hub_module(tmp: pathlib.Path) -> Source:
    import tensorflow as tf

    class Embed(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-1, 1, 20).astype(np.float32).reshape(4, 5))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="inputs")])
        def __call__(self, inputs):
            return {"default": tf.math.l2_normalize(tf.matmul(inputs, self.w), axis=1)}

    module = Embed()
    path = tmp / "hub_module"
    tf.saved_model.save(module, str(path), signatures={"default": module.__call__})
    inputs = {"inputs": np.random.default_rng(11).standard_normal((3, 4)).astype(np.float32)}
    return Source(path, inputs, _call_signature(path, "default", inputs))


def _signature_input_keys(path, signature) -> List[str]:
    import tensorflow as tf
    loaded = tf.saved_model.load(str(path))
    _, kwargs = loaded.signatures[signature].structured_input_signature
    return sorted(kwargs)


def _control_flow(tmp: pathlib.Path) -> Source:
    import tensorflow as tf

    class Loop(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(0.5, 1.5, 4).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x"),
                                      tf.TensorSpec([], tf.int32, name="n")])
        def __call__(self, x, n):
            def body(i, acc):
                acc = tf.cond(tf.reduce_sum(acc) > 0.0, lambda: acc * 0.9 + self.w,
                              lambda: acc - self.w)
                return i + 1, acc
            _, out = tf.while_loop(lambda i, acc: i < n, body, (tf.constant(0), x))
            return {"y": out, "big": tf.cond(n > 2, lambda: tf.reduce_max(out, axis=1),
                                             lambda: tf.reduce_min(out, axis=1))}

    module = Loop()
    path = tmp / "control_flow"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    rng = np.random.default_rng(7)
    inputs = {"x": rng.standard_normal((3, 4)).astype(np.float32), "n": np.array(5, np.int32)}
    return Source(path, inputs, _call_signature(path, "serving_default", inputs))


def _hash_table(tmp: pathlib.Path) -> Source:
    import tensorflow as tf

    class Lookup(tf.Module):
        def __init__(self):
            keys = tf.constant(["cat", "dog", "bird", "fish"])
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(keys, tf.constant([3, 1, 4, 1], tf.int64)), -1)
            self.emb = tf.Variable(np.arange(10, dtype=np.float32).reshape(5, 2) / 7.0)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="words")])
        def __call__(self, words):
            ids = self.table.lookup(words)
            return {"ids": ids, "vectors": tf.gather(self.emb, tf.maximum(ids, 0) + 0)}

    module = Lookup()
    path = tmp / "hash_table"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    inputs = {"words": np.array([b"dog", b"cow", b"fish", b"cat"], dtype=object)}
    return Source(path, inputs, _call_signature(path, "serving_default", inputs))


def _multi_signature_module(tmp: pathlib.Path):
    import tensorflow as tf

    class Two(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-1, 1, 12).astype(np.float32).reshape(3, 4))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="a")])
        def project(self, a):
            return {"p": tf.matmul(a, self.w)}

        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="b")])
        def score(self, b):
            return {"s": tf.nn.softmax(tf.matmul(b, self.w, transpose_b=True))}

    path = tmp / "multi_signature"
    if not path.exists():
        module = Two()
        tf.saved_model.save(module, str(path), signatures={"project": module.project,
                                                           "score": module.score})
    return path


def _multi_signature(signature: str, input_key: str, width: int):
    def build(tmp: pathlib.Path) -> Source:
        path = _multi_signature_module(tmp)
        inputs = {input_key: np.random.default_rng(width).standard_normal((2, width))
                  .astype(np.float32)}
        return Source(path, inputs, _call_signature(path, signature, inputs))
    return build


def _dict_outputs(tmp: pathlib.Path) -> Source:
    import tensorflow as tf

    class Heads(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.linspace(-2, 2, 15).astype(np.float32).reshape(5, 3))

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="features")])
        def __call__(self, features):
            h = tf.matmul(features, self.w)
            return {"zeta": tf.nn.relu(h), "alpha": tf.reduce_sum(h, axis=1), "mid": tf.tanh(h)}

    module = Heads()
    path = tmp / "dict_outputs"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    inputs = {"features": np.random.default_rng(3).standard_normal((4, 5)).astype(np.float32)}
    return Source(path, inputs, _call_signature(path, "serving_default", inputs))


def _frozen_graph(tmp: pathlib.Path) -> Source:
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    w = tf.Variable(np.linspace(-1, 1, 24).astype(np.float32).reshape(6, 4))
    b = tf.Variable(np.linspace(0, 0.3, 4).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
    def f(x):
        return tf.nn.sigmoid(tf.matmul(x, w) + b, name="probs")

    frozen = convert_variables_to_constants_v2(f.get_concrete_function())
    path = tmp / "frozen.pb"
    path.write_bytes(frozen.graph.as_graph_def().SerializeToString())
    x = np.random.default_rng(5).standard_normal((3, 6)).astype(np.float32)
    return Source(path, {"x": x}, {"probs": np.asarray(f(x))})


CASES = [
    Case("mlp-export", "mlp", _keras_source("mlp", "export")),
    Case("mlp-saved_model", "mlp", _keras_source("mlp", "saved_model")),
    Case("cnn_bn-export", "cnn_bn", _keras_source("cnn_bn", "export")),
    Case("embedding_lstm-export", "embedding_lstm", _keras_source("embedding_lstm", "export"),
         method="executeAsync"),
    Case("embedding_lstm-export-cfv2", "embedding_lstm",
         _keras_source("embedding_lstm", "export"), {"control_flow_v2": True},
         method="executeAsync", known_failures={"wasm": _WASM_TENSOR_LIST_IN_WHILE}),
    Case("mobilenet_v2-export", "mobilenet_v2", _keras_source("mobilenet_v2", "export"),
         slow=True),
    Case("mobilenet_v2-saved_model", "mobilenet_v2",
         _keras_source("mobilenet_v2", "saved_model"), slow=True),
    Case("resnet50-export", "resnet50", _keras_source("resnet50", "export"), slow=True),
    Case("while_cond", "graph_control_flow", _control_flow, method="executeAsync"),
    Case("while_cond-cfv2", "graph_control_flow", _control_flow, {"control_flow_v2": True},
         method="executeAsync"),
    Case("hash_table", "graph_hash_table", _hash_table, method="executeAsync"),
    Case("multi_signature-project", "graph_small", _multi_signature("project", "a", 3),
         {"signature_name": "project"}),
    Case("multi_signature-score", "graph_small", _multi_signature("score", "b", 4),
         {"signature_name": "score"}),
    Case("dict_outputs", "graph_small", _dict_outputs),
    Case("dict_outputs-structured", "graph_small", _dict_outputs,
         {"use_structured_outputs_names": True}, method="predict", names_outputs=True),
    Case("cnn_bn-keras_file", "cnn_bn", _keras_file_source("cnn_bn", ".keras")),
    Case("mlp-h5_file", "mlp", _keras_file_source("mlp", ".h5")),
    Case("mlp-tfjs_layers", "mlp", _keras_file_source("mlp", ".keras", via_layers=True)),
    Case("tf_hub", "graph_small", _hub_module, {"input_format": "tf_hub"}),
    Case("frozen_graph", "graph_small", _frozen_graph,
         {"input_format": "tf_frozen_model", "output_node_names": "probs"}),
]


@dataclasses.dataclass
class CaseRun:
    case: Case
    source: Optional[Source] = None
    out_dir: Optional[pathlib.Path] = None
    error: Optional[ConversionError] = None
    results: Dict[str, tfjs_node.JobResult] = dataclasses.field(default_factory=dict)


def _selected(session) -> List[Case]:
    out = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and item.module.__name__ == __name__:
            case = callspec.params.get("case")
            if isinstance(case, Case):
                out[case.id] = case
    return list(out.values())


@pytest.fixture(scope="module")
def graph_runs(request, tmp_path_factory) -> Dict[str, CaseRun]:
    src_dir = tmp_path_factory.mktemp("graph_sources")
    out_root = tmp_path_factory.mktemp("graph_converted")
    runs, jobs = {}, []
    for case in _selected(request.session):
        run = CaseRun(case)
        runs[case.id] = run
        run.source = case.build(src_dir)
        run.out_dir = out_root / case.id
        print("converting %s: %s" % (case.id, run.source.path))
        try:
            api.convert(str(run.source.path), str(run.out_dir),
                        output_format="tfjs_graph_model", **case.options)
        except ConversionError as error:
            run.error = error
            continue
        names = None if case.method == "predict" else sorted(run.source.expected)
        for backend in BACKENDS:
            jobs.append((run, tfjs_node.Job(run.out_dir, run.source.inputs, backend=backend,
                                            kind="graph", method=case.method,
                                            output_names=names,
                                            job_id="%s [%s]" % (case.id, backend))))
    results = tfjs_node.run_jobs([job for _, job in jobs])
    for (run, job), result in zip(jobs, results):
        run.results[job.backend] = result
    return runs


def _params():
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else []) for c in CASES]


@pytest.mark.parametrize("case", _params())
def test_graph_model_matches_tensorflow(case, graph_runs):
    run = graph_runs[case.id]
    if run.error is not None:
        pytest.fail("%s: conversion failed: %s: %s" % (case.id, type(run.error).__name__,
                                                        run.error))
    tolerance = tolerances.lookup(case.tolerance, tolerances.FLOAT32)
    failures = []
    for backend in BACKENDS:
        result = run.results[backend]
        known = case.known_failures.get(backend)
        if known is not None:
            if result.ok or result.error_message != known:
                failures.append("%s on %s: expected the known TF.js failure %r, got %s" % (
                    case.id, backend, known, "success" if result.ok else result.error_message))
            continue
        if not result.ok:
            failures.append(result.describe_error())
            continue
        got = dict(zip(result.output_names, result.outputs))
        if sorted(got) != sorted(run.source.expected):
            failures.append("%s on %s: outputs %s, want %s" % (
                case.id, backend, sorted(got), sorted(run.source.expected)))
            continue
        keys = sorted(run.source.expected)
        expected = [run.source.expected[k] for k in keys]
        actual = [got[k] for k in keys]
        for k, a, e in zip(keys, actual, expected):
            if e.dtype.kind in "iu":
                if not np.array_equal(a.astype(np.int64), e.astype(np.int64)):
                    failures.append("%s on %s: %s = %s, want %s" % (case.id, backend, k, a, e))
        floats = [(a, e) for a, e in zip(actual, expected) if e.dtype.kind == "f"]
        print("%s on %s: max error %.3g (atol %g, rtol %g), run %.1f ms" % (
            case.id, backend, tolerances.max_error([a for a, _ in floats], [e for _, e in floats])
            if floats else 0.0, tolerance.atol, tolerance.rtol, result.timing["runMs"][-1]))
        try:
            tolerances.check_close([a for a, _ in floats], [e for _, e in floats], tolerance,
                                   "%s on %s" % (case.id, backend))
        except AssertionError as error:
            failures.append(str(error))
    if failures:
        raise AssertionError("\n".join(failures))
    if case.names_outputs:
        spec = json.loads((run.out_dir / "model.json").read_text())
        assert spec["userDefinedMetadata"]["structuredOutputKeys"] == sorted(run.source.expected)


_FUSED_WITH_BIAS = ("_FusedConv2D", "_FusedMatMul", "FusedDepthwiseConv2dNative")


def fused_bias_problems(model_dir: pathlib.Path) -> List[str]:
    """Fused ops whose BiasAdd operand is not a rank-1 constant (TF.js wasm rejects them)."""
    spec = json.loads((model_dir / "model.json").read_text())
    nodes = {n["name"]: n for n in spec["modelTopology"]["node"]}
    problems = []
    for node in nodes.values():
        if node["op"] not in _FUSED_WITH_BIAS:
            continue
        fused = [base64_text(s) for s in node["attr"].get("fused_ops", {}).get("list", {})
                 .get("s", [])]
        if not fused or fused[0] != "BiasAdd":
            continue
        bias = nodes[node["input"][2].split(":")[0]]
        dims = bias["attr"].get("value", {}).get("tensor", {}).get("tensorShape", {}).get("dim", [])
        if bias["op"] != "Const" or len(dims) != 1:
            problems.append("%s: bias %s (%s) has rank %d" % (node["name"], bias["name"],
                                                             bias["op"], len(dims)))
    return problems


def base64_text(value: str) -> str:
    import base64
    return base64.b64decode(value).decode("utf-8")


@pytest.mark.parametrize("case", _params())
def test_no_fused_op_has_a_bias_of_rank_above_1(case, graph_runs):
    run = graph_runs[case.id]
    if run.error is not None:
        pytest.skip("conversion failed (reported by the parity test)")
    assert fused_bias_problems(run.out_dir) == []
