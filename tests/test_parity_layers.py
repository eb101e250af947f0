"""Parity of converted layers models: real TensorFlow.js against Keras.

For each zoo model and source format (Keras 3 ``.keras``, Keras 3 ``.h5``, Keras 2
``.h5``): Keras predicts on fixed inputs, ``converter.api.convert`` writes a
``tfjs_layers_model``, and TF.js runs it on the cpu and wasm backends; the
outputs must agree within ``tests/tolerances.py``.

Quantized variants (float16, uint16, uint8) are checked three ways: every stored
weight is within its quantization step of the Keras weight; TF.js matches Keras
running the dequantized weights read back from the artifact (float32 bound);
and TF.js matches the unquantized Keras outputs within the declared quantized
bound.

All conversions of the selected cases run first (module fixture), then one Node
process runs every TF.js job. A ``ConversionError`` fails only its case; any
other exception from the converter is a converter bug and errors the fixture
(the captured output names the case being converted).
"""

import dataclasses
import json
import pathlib
from typing import Dict, List, Optional

import numpy as np
import pytest

import tfjs_node
import tolerances
import zoo
from converter import api
from converter.errors import ConversionError

BACKENDS = tfjs_node.BACKENDS
SMALL_MODELS = ("mlp", "cnn_bn", "embedding_lstm", "gru", "bidirectional_lstm", "multi_io",
                "nested")
QUANTIZED = ("float16", "uint16", "uint8")


@dataclasses.dataclass(frozen=True)
class Case:
    """One parity case: a zoo model, a source format and a weight storage dtype."""

    model: str
    source_format: str
    storage: str = tolerances.FLOAT32

    @property
    def id(self) -> str:
        suffix = "" if self.storage == tolerances.FLOAT32 else "-" + self.storage
        return "%s-%s%s" % (self.model, self.source_format, suffix)

    def convert_options(self) -> Dict[str, object]:
        if self.storage == tolerances.FLOAT32:
            return {}
        return {"quantize_" + self.storage: ()}  # () = every weight


FLOAT_CASES = ([Case(m, f) for m in SMALL_MODELS + ("mobilenet_v2",) for f in zoo.SOURCE_FORMATS]
               + [Case("resnet50", "keras3_keras")])
QUANTIZED_CASES = [Case(m, "keras3_keras", d)
                   for m in ("mlp", "cnn_bn", "embedding_lstm", "mobilenet_v2")
                   for d in QUANTIZED]


def _params(cases):
    return [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if zoo.ZOO[c.model].slow else [])
            for c in cases]


@dataclasses.dataclass
class CaseRun:
    """A converted case and its TF.js results.

    Attributes:
      case: the case.
      exported: the source model with its inputs and Keras outputs.
      out_dir: the converted tfjs_layers_model directory.
      conversion_error: the ConversionError, if conversion failed.
      results: ``{backend: JobResult}`` (empty when conversion failed).
    """

    case: Case
    exported: zoo.ExportedModel
    out_dir: pathlib.Path
    conversion_error: Optional[ConversionError] = None
    results: Dict[str, tfjs_node.JobResult] = dataclasses.field(default_factory=dict)

    def __repr__(self) -> str:
        return "CaseRun(%s)" % self.case.id

    def check_converted(self) -> None:
        if self.conversion_error is not None:
            pytest.fail("%s: converting %s (%s) failed: %s: %s" % (
                self.case.id, self.exported.path.name, self.exported.input_format,
                type(self.conversion_error).__name__, self.conversion_error))


def _selected_cases(session, module_name: str) -> List[Case]:
    """The parity cases of this module that the session will run (honours -k, -m)."""
    cases = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or getattr(item, "module", None) is None:
            continue
        if item.module.__name__ == module_name and isinstance(callspec.params.get("case"), Case):
            case = callspec.params["case"]
            cases[case.id] = case
    return list(cases.values())


@pytest.fixture(scope="module")
def parity_runs(request, zoo_cache, tmp_path_factory) -> Dict[str, CaseRun]:
    """Converts every selected case, then runs all of them in one TF.js batch."""
    root = tmp_path_factory.mktemp("converted")
    runs = {}
    jobs = []
    for case in _selected_cases(request.session, __name__):
        exported = zoo_cache.export(case.model, case.source_format)
        run = CaseRun(case, exported, root / case.id)
        runs[case.id] = run
        print("converting %s: %s" % (case.id, exported.path))
        try:
            api.convert(str(exported.path), str(run.out_dir), input_format=exported.input_format,
                        output_format="tfjs_layers_model", **case.convert_options())
        except ConversionError as error:
            run.conversion_error = error
            continue
        for backend in BACKENDS:
            jobs.append((run, tfjs_node.Job(run.out_dir, exported.inputs, backend=backend,
                                            job_id="%s [%s]" % (case.id, backend))))
    results = tfjs_node.run_jobs([job for _, job in jobs])
    for (run, job), result in zip(jobs, results):
        run.results[job.backend] = result
    return runs


def _check_backends(run: CaseRun, expected: List[np.ndarray],
                    tolerance: tolerances.Tolerance, what: str) -> None:
    """Checks every backend's outputs, reporting all failing backends at once."""
    failures = []
    for backend in BACKENDS:
        result = run.results[backend]
        if not result.ok:
            failures.append(result.describe_error())
            continue
        if [o.dtype for o in result.outputs] != [np.dtype(np.float32)] * len(expected):
            failures.append("%s on %s: output dtypes %s, want float32" % (
                run.case.id, backend, [str(o.dtype) for o in result.outputs]))
            continue
        # Shown with -rP: the margin each case passes by.
        print("%s on %s, %s: max error %.3g (atol %g, rtol %g), run %.1f ms" % (
            run.case.id, backend, what, tolerances.max_error(result.outputs, expected),
            tolerance.atol, tolerance.rtol, result.timing["runMs"][-1]))
        try:
            tolerances.check_close(result.outputs, expected, tolerance,
                                   "%s on %s, %s" % (run.case.id, backend, what))
        except AssertionError as error:
            failures.append(str(error))
    if failures:
        raise AssertionError("\n".join(failures))


@pytest.mark.parametrize("case", _params(FLOAT_CASES))
def test_layers_model_matches_keras(case, parity_runs):
    tolerance = tolerances.lookup(case.model, tolerances.FLOAT32)
    run = parity_runs[case.id]
    run.check_converted()
    _check_backends(run, run.exported.expected, tolerance, "TF.js vs Keras")


# -- quantized cases ----------------------------------------------------------------

_STORED_BYTES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "uint16": 2, "float16": 2}
_STORED_NUMPY = {"float32": "<f4", "int32": "<i4", "bool": "u1", "uint8": "u1", "uint16": "<u2",
                 "float16": "<f2"}


@dataclasses.dataclass(frozen=True)
class StoredWeight:
    """One manifest entry decoded as TF.js decodes it (independently of the converter)."""

    name: str
    storage: str
    quantization: Optional[dict]
    values: np.ndarray  # the float32 values TF.js reconstructs


def _decode_artifact(model_dir: pathlib.Path) -> List[StoredWeight]:
    """Reads a layers model's weights: shards concatenated per group, then decoded."""
    spec = json.loads((model_dir / "model.json").read_text())
    weights = []
    for group in spec["weightsManifest"]:
        data = b"".join((model_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for entry in group["weights"]:
            quantization = entry.get("quantization")
            storage = quantization["dtype"] if quantization else entry["dtype"]
            count = int(np.prod(entry["shape"], dtype=np.int64))
            size = count * _STORED_BYTES[storage]
            assert offset + size <= len(data), "%s: shard data ends inside weight %s" % (
                model_dir, entry["name"])
            raw = np.frombuffer(data, _STORED_NUMPY[storage], count, offset)
            offset += size
            if storage in ("uint8", "uint16"):
                values = (raw.astype(np.float64) * quantization["scale"]
                          + quantization["min"]).astype(np.float32)
            else:
                values = raw.astype(np.float32)
            weights.append(StoredWeight(entry["name"], storage, quantization,
                                        values.reshape(entry["shape"])))
        assert offset == len(data), "%s: %d bytes of group data after the last weight" % (
            model_dir, len(data) - offset)
    return weights


def _match_stored_weights(stored: List[StoredWeight], keras_weights: List[np.ndarray],
                          storage: str) -> List[np.ndarray]:
    """Pairs stored weights with Keras weights and checks each step bound.

    Weights are paired by shape and closeness, not by name, so the check does
    not depend on the converter's naming.

    Returns:
      The stored (dequantized) values in Keras ``get_weights()`` order.
    """
    assert len(stored) == len(keras_weights), "%d stored weights, Keras has %d" % (
        len(stored), len(keras_weights))
    matched: List[Optional[np.ndarray]] = [None] * len(keras_weights)
    problems = []
    for weight in stored:
        candidates = [i for i, w in enumerate(keras_weights)
                      if matched[i] is None and w.shape == weight.values.shape]
        if not candidates:
            problems.append("%s: no Keras weight of shape %s" % (weight.name, weight.values.shape))
            continue
        errors = [np.max(np.abs(weight.values.astype(np.float64) - keras_weights[i]),
                         initial=0.0) for i in candidates]
        index = candidates[int(np.argmin(errors))]
        matched[index] = weight.values
        if weight.storage != storage:
            problems.append("%s: stored as %s, want %s" % (weight.name, weight.storage, storage))
            continue
        scale = weight.quantization.get("scale") if weight.quantization else None
        bound = tolerances.weight_step_bound(keras_weights[index], storage, scale)
        error = np.abs(weight.values.astype(np.float64) - keras_weights[index])
        if np.any(error > bound):
            worst = int(np.argmax(error - bound))
            problems.append("%s: stored value off by %.3g > step bound %.3g (element %d; "
                            "quantization %s)" % (weight.name, error.flat[worst],
                                                  bound.flat[worst], worst, weight.quantization))
    if problems:
        raise AssertionError("stored weights:\n  " + "\n  ".join(problems))
    return matched


@pytest.mark.parametrize("case", _params(QUANTIZED_CASES))
def test_quantized_layers_model(case, parity_runs, zoo_cache):
    quantized_bound = tolerances.lookup(case.model, case.storage)
    float_bound = tolerances.lookup(case.model, tolerances.FLOAT32)
    run = parity_runs[case.id]
    run.check_converted()
    stored = _decode_artifact(run.out_dir)
    dequantized = _match_stored_weights(stored, run.exported.weights, case.storage)
    version = zoo.SOURCE_FORMATS[case.source_format][0]
    reference = zoo.predict_with_weights(zoo_cache.model(case.model, version), dequantized,
                                         run.exported.inputs)
    _check_backends(run, reference, float_bound, "TF.js vs Keras with the stored weights")
    _check_backends(run, run.exported.expected, quantized_bound, "TF.js vs unquantized Keras")


def test_stored_weight_check_catches_an_off_by_one_step():
    """The per-weight check fails for a stored value one quantization step off."""
    original = np.linspace(-1.0, 0.5, 12, dtype=np.float32).reshape(3, 4)
    scale = 1.5 / 255
    minimum = -round(1.0 / scale) * scale  # nudged so that 0 is exact
    q = np.round((original.astype(np.float64) - minimum) / scale)
    quantization = {"dtype": "uint8", "min": minimum, "scale": scale}

    def stored(levels):
        values = (levels * scale + minimum).astype(np.float32)
        return [StoredWeight("dense/kernel", "uint8", quantization, values)]

    matched = _match_stored_weights(stored(q), [original], "uint8")
    np.testing.assert_array_equal(matched[0], stored(q)[0].values)
    q[1, 2] += 1
    with pytest.raises(AssertionError, match=r"dense/kernel: stored value off by .* > step bound "
                                             r".*\(element 6; "):
        _match_stored_weights(stored(q), [original], "uint8")
    with pytest.raises(AssertionError, match="dense/kernel: stored as uint8, want uint16"):
        _match_stored_weights(stored(q - 1), [original], "uint16")
    with pytest.raises(AssertionError, match="1 stored weights, Keras has 2"):
        _match_stored_weights(stored(q), [original, np.zeros(4, np.float32)], "uint8")
