"""Shared harness of the tflite / onnx output tests: cases, TF.js references, runtimes.

Parity is measured against TF.js itself (issue 10): each graph case builds a
source (a zoo Keras model or a hand-written tf.Module of
tests/test_graph_parity.py), converts it with our converter to a
``tfjs_graph_model`` (the "original") and runs that in TF.js 4.22 (cpu) on
seeded inputs: those outputs are the reference. The ``.tflite`` runs in
``ai_edge_litert``'s Interpreter (its ``serving_default`` signature runner),
the ``.onnx`` in ONNX Runtime (CPU); both must match within
``test_graph_input.GRAPH_INPUT`` (1e-4 abs + 1e-4 of the reference's
magnitude). Integer and string outputs must match exactly.

Use::

    refs = references([CASES["cnn_bn"]], tmp)       # one Node process for all
    got = run_tflite(path, refs["cnn_bn"].inputs)
    error = compare("cnn_bn tflite", got, refs["cnn_bn"].expected)
"""

import dataclasses
import hashlib
import pathlib
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

import test_graph_input_published as tp
import test_graph_parity as gp
import tfjs_node
from converter import api, cli
from converter.graph.to_saved_model import signature_key
from test_graph_input import GRAPH_INPUT, _compare


@dataclasses.dataclass(frozen=True)
class Case:
    """One graph-model case of the file-format tests.

    Attributes:
      id: test id.
      build: ``build(tmp) -> gp.Source``.
      options: options of the forward conversion (source -> tfjs_graph_model).
      method: the TF.js method that runs the original.
      slow: the minutes-long tier.
      tflite_refused / onnx_refused: the exact start of the error the
        conversion to that format gives (a known limitation, asserted so a fix
        is noticed).
    """

    id: str
    build: Callable[[pathlib.Path], "gp.Source"]
    options: Dict[str, object] = dataclasses.field(default_factory=dict)
    method: str = "execute"
    slow: bool = False
    tflite_refused: Optional[str] = None
    onnx_refused: Optional[str] = None


# TFLite lowers TensorList ops (the RNN loop Keras writes) to builtins only
# when each list's element shape is a constant; Keras's LSTM over a dynamic
# batch builds it as [-1, units] and the TF.js graph carries that constant.
# Refused without --tflite_batch_size; with it the converter fixes the shapes
# (tests/test_tflite_output.py test_rnn_loops_with_a_fixed_batch_take_builtins).
_LSTM_TFLITE = ("cannot convert to TFLite: 1 op(s) need TensorFlow kernels, not TFLite "
                "builtins: TensorListReserve (node graph/StatefulPartitionedCall/")
# The SavedModel of a graph model with lowered (v1) loops keeps them in a
# function TensorFlow does not inline; tf2onnx leaves the call in place.
_LOWERED_LOOP_ONNX = ("cannot convert to ONNX opset 17: 1 op(s) have no ONNX equivalent in "
                      "tf2onnx 1.17: StatefulPartitionedCall (node StatefulPartitionedCall)")

CASES: Dict[str, Case] = {c.id: c for c in [
    Case("cnn_bn", gp._keras_source("cnn_bn", "export")),
    Case("multi_io", gp._keras_source("multi_io", "export")),
    Case("dict_outputs", gp._dict_outputs),
    Case("while_cond-cfv2", gp._control_flow, {"control_flow_v2": True}, method="executeAsync"),
    Case("hash_table", gp._hash_table, method="executeAsync"),
    Case("embedding_lstm-cfv2", gp._keras_source("embedding_lstm", "export"),
         {"control_flow_v2": True}, method="executeAsync", tflite_refused=_LSTM_TFLITE),
    Case("embedding_lstm-lowered", gp._keras_source("embedding_lstm", "export"),
         method="executeAsync", tflite_refused=_LSTM_TFLITE, onnx_refused=_LOWERED_LOOP_ONNX),
    Case("mobilenet_v2", gp._keras_source("mobilenet_v2", "export"), slow=True),
]}


@dataclasses.dataclass
class Reference:
    """A case's original graph model and its TF.js outputs."""

    case: Case
    graph: pathlib.Path
    inputs: Dict[str, np.ndarray]
    expected: Dict[str, np.ndarray]


def references(cases: List[Case], tmp: pathlib.Path) -> Dict[str, Reference]:
    """Builds each case's graph model under ``tmp`` and runs them all in one TF.js process."""
    built = []
    for case in cases:
        source = case.build(tmp / case.id)
        graph = tmp / case.id / "graph"
        api.convert(str(source.path), str(graph), output_format="tfjs_graph_model",
                    **case.options)
        built.append((case, graph, source))
    jobs = [tfjs_node.Job(graph, source.inputs, backend="cpu", kind="graph", method=case.method,
                          output_names=sorted(source.expected), job_id=case.id)
            for case, graph, source in built]
    out = {}
    for (case, graph, source), result in zip(built, tfjs_node.run_jobs(jobs)):
        result.check()
        out[case.id] = Reference(case, graph, dict(source.inputs),
                                 dict(zip(result.output_names, result.outputs)))
    return out


def saved_model_inputs(inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The inputs keyed as the SavedModel (and so the .tflite / .onnx) names them."""
    return {signature_key(k): v for k, v in inputs.items()}


def run_tflite(path: pathlib.Path, inputs: Dict[str, np.ndarray],
               signature: str = "serving_default") -> Dict[str, np.ndarray]:
    """Runs a ``.tflite`` signature in LiteRT's Python interpreter (resizing dynamic inputs)."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner(signature)
    got = runner(**inputs)
    return {k: np.array(v) for k, v in got.items()}


def run_onnx(path: pathlib.Path, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Runs an ``.onnx`` in ONNX Runtime (CPU); string inputs are fed as ``str`` objects."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {}
    for info in session.get_inputs():
        value = inputs[info.name]
        if value.dtype == object:
            value = np.array([v.decode("utf-8") if isinstance(v, bytes) else v
                              for v in value.ravel()], dtype=object).reshape(value.shape)
        feed[info.name] = value
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def compare(what: str, got: Dict[str, np.ndarray], want: Dict[str, np.ndarray]) -> float:
    """Asserts ``got`` matches the TF.js reference ``want``; returns the max abs error."""
    return _compare(what, got, want)


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def run_cli(capsys, *args) -> Tuple[int, str]:
    """``(exit code, stderr)`` of the CLI on ``args`` (stringified), output captured."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    return code, capsys.readouterr().err


def module_params(request, name: str) -> List[object]:
    """The values of parameter ``name`` over the calling module's selected tests."""
    out = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if (callspec is not None and item.module is request.module and name in callspec.params
                and callspec.params[name] not in out):
            out.append(callspec.params[name])
    return out


def case_references(request, tmp: pathlib.Path, always=()) -> Dict[str, Reference]:
    """References of the cases the calling module's selected tests take as ``case``, plus
    ``always`` (case ids other tests of the module use), all in one TF.js process."""
    wanted = [c for c in module_params(request, "case") if isinstance(c, Case)]
    wanted += [CASES[i] for i in always if CASES[i] not in wanted]
    return references(wanted, tmp)


def case_params() -> List[object]:
    """Every case as a pytest param (``slow`` ones marked)."""
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
            for c in CASES.values()]


# -- published models (tests/test_graph_input_published.py) ----------------------------

# Known refusals of published models, by output format: the exact error after
# "<model dir>: ". handtrack's NMS sits in lowered (v1) while loops, which the
# SavedModel keeps in a function tf2onnx does not inline (as embedding_lstm-lowered).
PUBLISHED_REFUSED = {
    ("onnx", "handtrack"): _LOWERED_LOOP_ONNX,
}


def published_params() -> List[object]:
    """Every published model's name as a pytest param (slow ones marked)."""
    return [pytest.param(p.name, id=p.name, marks=[pytest.mark.slow] if p.slow else [])
            for p in tp.PUBLISHED]


@dataclasses.dataclass
class PublishedReference:
    """A published graph model in a directory of its own, seeded inputs, TF.js outputs."""

    spec: "tp.Published"
    model_dir: pathlib.Path
    inputs: Dict[str, np.ndarray]
    expected: Dict[str, np.ndarray]

    def refused(self, output_format: str) -> Optional[str]:
        return PUBLISHED_REFUSED.get((output_format, self.spec.name))

    def compare(self, what: str, got: Dict[str, np.ndarray]) -> float:
        """Asserts ``got`` (keyed either way, see by_signature_key) matches TF.js; returns
        the max abs error. The spec's ``magnitude_scaled`` reason applies here too."""
        got = by_signature_key(got, self.expected)
        if self.spec.magnitude_scaled is None:
            return compare("%s: %s" % (self.spec.name, what), got, self.expected)
        return tp._compare_scaled_by_max(self.spec, got, self.expected)


def published_references(request, published_models: pathlib.Path,
                         tmp: pathlib.Path) -> Dict[str, PublishedReference]:
    """References of the published models the calling module's selected tests take as
    ``published``, all in one TF.js process."""
    specs = {p.name: p for p in tp.PUBLISHED}
    runs: List[Tuple[str, pathlib.Path, Dict[str, np.ndarray], List[str]]] = []
    for name in sorted(module_params(request, "published")):
        model_dir = tp._model_dir(published_models, name, tmp)
        runs.append((name, model_dir, tp._inputs(model_dir), tp._output_keys(model_dir)))
    results = tfjs_node.run_jobs([
        tfjs_node.Job(d, tp._tfjs_inputs(i), backend="cpu", kind="graph", method="executeAsync",
                      output_names=k, job_id=n) for n, d, i, k in runs])
    return {n: PublishedReference(specs[n], d, i, dict(zip(r.check().output_names, r.outputs)))
            for (n, d, i, _), r in zip(runs, results)}


def by_signature_key(got: Dict[str, np.ndarray], keys) -> Dict[str, np.ndarray]:
    """``got`` keyed as ``keys`` are: output keys stay as the model names them
    (``Identity:0``) and no signature key is renamed twice, so either spelling
    identifies the output."""
    return {k: got[k] if k in got else got[signature_key(k)] for k in keys}


TOLERANCE = GRAPH_INPUT
