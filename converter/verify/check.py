"""Checks a converted model against its source: real TF.js (or Keras) against TensorFlow.

``verify`` runs the source model in TensorFlow/Keras and the converted model in
its own runtime on the same seeded inputs, and raises ``VerificationError``
(one report naming each offending output, backend, the max abs/rel error and the
first offending index) when an output is non-finite where TensorFlow's is
finite, or differs beyond the tolerance:

* float32 weights: ``|y - r| <= ATOL * max(1, max|r|) + RTOL * |r|`` per element
  (``ATOL = RTOL = 1e-5``): float32 rounding only, measured at most 3.3e-7 of
  max|r| on the project's model zoo (tests/tolerances.py has the derivation);
* quantized weights: the same form with the per-dtype ``QUANTIZED_ATOL`` (twice
  the largest bound the zoo's gradient analysis gives for that dtype, scaled by
  the output's magnitude), unless the caller gives its own ``atol``.

Which side is which, by (input, output) format:

* TF.js output: the reference is the source run in TensorFlow (Keras files in
  the Keras that wrote them, SavedModels through their signature, frozen graphs
  by their output nodes, a TF.js layers source in TF.js's cpu backend); the
  candidate is the output in TF.js on each requested backend.
* Keras output (from a TF.js layers model): the reference is the source in
  TF.js (cpu); the candidate is the output loaded in Keras 3.

Inputs come from the TF.js side's signature (graph models) or input layers
(layers models): unknown batch dimensions are 2, other unknown dimensions 8;
floats are standard normal, integers uniform in ``[0, 8)`` (``[0, input_dim)``
when the input feeds an Embedding), booleans fair coins, strings short words;
all from ``numpy.random.default_rng(seed)``.
"""

import contextlib
import dataclasses
import json
import os
import tempfile
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from converter import request as rq
from converter.errors import ConversionError, InvalidModelError, UsageError
from converter.weights import format as wf

ATOL = 1e-5
RTOL = 1e-5
# Largest declared uint8/uint16/float16 bound of the zoo (tests/tolerances.py,
# cnn_bn: 5.1e-2, 2.0e-4, 6.9e-3) times two.
QUANTIZED_ATOL = {"uint8": 1.0e-1, "uint16": 4.0e-4, "float16": 1.4e-2}
UNKNOWN_BATCH = 2
UNKNOWN_DIM = 8
_INT_HIGH = 8
_WORDS = np.array([b"a", b"the", b"cat", b"dog", b"fish", b""], dtype=object)
_GRAPH_DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float32, "DT_HALF": np.float32,
                 "DT_INT32": np.int32, "DT_INT64": np.int32, "DT_INT16": np.int32,
                 "DT_INT8": np.int32, "DT_UINT8": np.int32, "DT_UINT16": np.int32,
                 "DT_BOOL": np.bool_, "DT_STRING": object}
_LAYERS_DTYPES = {"float32": np.float32, "float64": np.float32, "float16": np.float32,
                  "int32": np.int32, "int64": np.int32, "uint8": np.int32, "bool": np.bool_,
                  "string": object}


class VerificationError(ConversionError):
    """The converted model computes something other than its source."""


@dataclasses.dataclass(frozen=True)
class InputSpec:
    """One model input: name (signature key or input layer), numpy dtype, shape (None unknown)."""

    name: str
    dtype: object
    shape: Tuple[Optional[int], ...]
    int_high: int = _INT_HIGH


@dataclasses.dataclass
class Report:
    """What a verification compared.

    Attributes:
      lines: one line per (output, backend) with its max errors.
      problems: the lines that failed.
      max_abs: the largest absolute error over everything compared.
    """

    lines: List[str] = dataclasses.field(default_factory=list)
    problems: List[str] = dataclasses.field(default_factory=list)
    max_abs: float = 0.0

    def summary(self) -> str:
        return "; ".join(self.lines)


# -- the TF.js side's inputs -----------------------------------------------------------


def _load_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        raise InvalidModelError("%s: cannot read model.json: %s" % (path, e)) from None


def model_json_path(path: str) -> str:
    return path if path.endswith(".json") else os.path.join(path, wf.MODEL_JSON)


def input_specs(doc: dict, where: str) -> List[InputSpec]:
    """The inputs of a TF.js model.json document (graph signature or layers input layers)."""
    if doc.get(wf.FORMAT) == wf.GRAPH_MODEL_FORMAT:
        return _graph_input_specs(doc, where)
    return _layers_input_specs(doc, where)


def _graph_input_specs(doc: dict, where: str) -> List[InputSpec]:
    inputs = (doc.get(wf.SIGNATURE) or {}).get("inputs")
    if inputs is None:
        # No signature (a frozen graph): its Placeholders are the inputs.
        nodes = (doc.get(wf.MODEL_TOPOLOGY) or {}).get("node", [])
        inputs = {n["name"]: {"dtype": n.get("attr", {}).get("dtype", {}).get("type", "DT_FLOAT"),
                              "tensorShape": n.get("attr", {}).get("shape", {}).get("shape", {})}
                  for n in nodes if n.get("op") == "Placeholder"}
    specs = []
    for key in sorted(inputs):
        entry = inputs[key]
        dtype = _GRAPH_DTYPES.get(entry.get("dtype"))
        if dtype is None:
            raise UsageError("%s: input %s has dtype %s, for which no input can be generated; "
                             "give the inputs" % (where, key, entry.get("dtype")))
        shape = entry.get("tensorShape", {})
        if shape.get("unknownRank"):
            raise UsageError("%s: input %s has an unknown rank; give the inputs" % (where, key))
        dims = tuple(None if int(d.get("size", -1)) < 0 else int(d.get("size"))
                     for d in shape.get("dim", []))
        specs.append(InputSpec(key, dtype, dims))
    return specs


def _layers_input_specs(doc: dict, where: str) -> List[InputSpec]:
    topology = doc.get(wf.MODEL_TOPOLOGY) or {}
    config = topology.get("model_config", topology)
    layers = (config.get("config") or {}).get("layers", [])
    if isinstance(config.get("config"), list):  # Keras 2.2-era Sequential: a bare list
        layers = config["config"]
    by_name = {layer.get("config", {}).get("name"): layer for layer in layers}
    input_layers = (config.get("config") or {}).get("input_layers") if isinstance(
        config.get("config"), dict) else None
    if input_layers:
        names = [entry[0] for entry in input_layers]
    else:  # Sequential: the InputLayer, or the first layer's batch_input_shape
        first = layers[0] if layers else None
        if first is None:
            raise InvalidModelError("%s: the model has no layers" % where)
        names = [first.get("config", {}).get("name")]
    specs = []
    for name in names:
        layer = by_name.get(name)
        cfg = layer.get("config", {}) if layer else {}
        shape = cfg.get("batch_input_shape") or cfg.get("batch_shape")
        if shape is None:
            raise UsageError("%s: input %s has no batch_input_shape; give the inputs"
                             % (where, name))
        dtype = _LAYERS_DTYPES.get(cfg.get("dtype") or "float32", np.float32)
        specs.append(InputSpec(name, dtype, tuple(shape),
                               _embedding_size(layers, name) or _INT_HIGH))
    return specs


def _embedding_size(layers: Sequence[dict], input_name: str) -> Optional[int]:
    """input_dim of an Embedding reading ``input_name`` (or the first layer of a Sequential)."""
    for i, layer in enumerate(layers):
        if layer.get("class_name") != "Embedding":
            continue
        inbound = json.dumps(layer.get("inbound_nodes", []))
        if '"%s"' % input_name in inbound or (i <= 1 and not layer.get("inbound_nodes")):
            return int(layer.get("config", {}).get("input_dim", _INT_HIGH))
    return None


def seeded_inputs(specs: Sequence[InputSpec], seed: int = 0) -> Dict[str, np.ndarray]:
    """Arrays for ``specs`` (see the module doc for the distributions)."""
    rng = np.random.default_rng(seed)
    out = {}
    for spec in specs:
        shape = tuple((UNKNOWN_BATCH if i == 0 else UNKNOWN_DIM) if d is None else d
                      for i, d in enumerate(spec.shape))
        if spec.dtype is object:
            out[spec.name] = rng.choice(_WORDS, size=shape)
        elif spec.dtype is np.bool_:
            out[spec.name] = rng.integers(0, 2, size=shape).astype(np.bool_)
        elif spec.dtype is np.int32:
            out[spec.name] = rng.integers(0, spec.int_high, size=shape).astype(np.int32)
        else:
            out[spec.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def load_inputs(path: str, specs: Sequence[InputSpec]) -> Dict[str, np.ndarray]:
    """Inputs from a .npy (one-input models) or a .npz keyed by input name."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UsageError("%s: cannot read inputs: %s" % (path, e)) from None
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            raise UsageError("%s: one array for a model with %d inputs (%s); give a .npz keyed "
                             "by input name" % (path, len(specs), ", ".join(s.name for s in specs)))
        return {specs[0].name: loaded}
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    want = {s.name for s in specs}
    if set(arrays) != want:
        raise UsageError("%s: arrays %s, want one per input: %s"
                         % (path, ", ".join(sorted(arrays)), ", ".join(sorted(want))))
    return arrays


# -- runners ----------------------------------------------------------------------------


def _tf_keras_call(model, specs: Sequence[InputSpec], inputs: Mapping[str, np.ndarray]):
    """Runs a Keras model on ``inputs``, matched to its inputs by input-layer name."""
    import tensorflow as tf
    from converter.graph.keras import _unique_keys, input_layer_name  # pylint: disable=protected-access
    keys = _unique_keys([input_layer_name(t) for t in model.inputs], "input")
    if set(keys) != set(inputs):
        if len(keys) != len(specs):
            raise VerificationError("the Keras model has inputs %s, the TF.js model %s"
                                    % (", ".join(keys), ", ".join(s.name for s in specs)))
        keys = [s.name for s in specs]  # same count, other names: by position
    args = [inputs[k] for k in keys]
    try:
        outputs = model(args if len(args) > 1 else args[0], training=False)
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise VerificationError("the source model cannot run on the converted model's inputs "
                                "(%s): %s" % (_shapes(inputs), _first_line(e))) from None
    return [np.asarray(o) for o in tf.nest.flatten(outputs)]


def _shapes(inputs: Mapping[str, np.ndarray]) -> str:
    return ", ".join("%s %s %s" % (k, v.dtype, list(v.shape)) for k, v in inputs.items())


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _keras_reference(path: str, specs, inputs) -> List[np.ndarray]:
    from converter.graph.keras import load_keras_model
    return _tf_keras_call(load_keras_model(path), specs, inputs)


def _signature_reference(path: str, signature: str, tags: str,
                         inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    import tensorflow as tf
    loaded = tf.saved_model.load(path, tags=[t for t in tags.split(",") if t] or None)
    if signature not in loaded.signatures:
        raise UsageError("%s: no signature %r (has %s)"
                         % (path, signature, ", ".join(sorted(loaded.signatures))))
    try:
        outputs = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise VerificationError("%s: signature %s cannot run on the converted model's inputs "
                                "(%s): %s" % (path, signature, _shapes(inputs), _first_line(e))
                                ) from None
    return {k: np.asarray(v) for k, v in outputs.items()}


def _frozen_reference(path: str, output_nodes: Sequence[str],
                      inputs: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    import tensorflow as tf
    graph_def = tf.compat.v1.GraphDef()
    with open(path, "rb") as f:
        graph_def.ParseFromString(f.read())
    feeds = sorted(inputs)

    def run():
        tf.compat.v1.import_graph_def(graph_def, name="")

    func = tf.compat.v1.wrap_function(run, [])
    pruned = func.prune([func.graph.get_tensor_by_name(k + ":0") for k in feeds],
                        [func.graph.get_tensor_by_name(n + ":0") for n in output_nodes])
    values = pruned(*[tf.constant(inputs[k]) for k in feeds])
    return {n: np.asarray(v) for n, v in zip(output_nodes, values)}


def _tfjs_outputs(model_json: str, kind: str, inputs: Mapping[str, np.ndarray],
                  backends: Sequence[str], output_names: Optional[Sequence[str]]):
    """``({backend: [arrays]}, {backend: error text})`` of one model in TF.js."""
    from converter.verify import runtime
    method = "predict" if kind == "layers" else "executeAsync"
    node_backends = [b for b in backends if b in runtime.BACKENDS]
    browser_backends = [b for b in backends if b not in runtime.BACKENDS]
    # Layers models take their inputs by position (a Sequential's input names are
    # TF.js's own); graph models by signature key.
    feed = list(inputs.values()) if kind == "layers" else dict(inputs)
    jobs = [runtime.Job(model_json, feed, backend=b, kind=kind, method=method,
                        output_names=output_names) for b in node_backends]
    results = runtime.run_jobs(jobs) if jobs else []
    if browser_backends:
        from converter.verify import browser
        results += browser.run_jobs([runtime.Job(model_json, feed, backend=b, kind=kind,
                                                 method=method, output_names=output_names)
                                     for b in browser_backends])
    outputs, errors = {}, {}
    for result in results:
        if result.ok:
            outputs[result.job.backend] = result.outputs
        else:
            errors[result.job.backend] = "%s: %s" % (result.error_stage, result.error_message)
    return outputs, errors


# -- comparison -------------------------------------------------------------------------


def compare(name: str, backend: str, actual, expected, atol: float, rtol: float,
            report: Report) -> None:
    """Adds one output's comparison to ``report`` (a problem line when it fails)."""
    where = "output %s [%s]" % (name, backend)
    a = np.asarray(actual)
    e = np.asarray(expected)
    if a.shape != e.shape:
        report.problems.append("%s: shape %s, TensorFlow's is %s" % (where, a.shape, e.shape))
        return
    if e.dtype == object or a.dtype == object:
        bad = np.flatnonzero(a.reshape(-1) != e.reshape(-1))
        if bad.size:
            index = np.unravel_index(bad[0], e.shape)
            report.problems.append("%s: %d of %d strings differ, first at %s"
                                   % (where, bad.size, e.size, _index(index)))
        report.lines.append("%s exact" % where)
        return
    a = a.astype(np.float64)
    e = e.astype(np.float64)
    finite = np.isfinite(e)
    lost = finite & ~np.isfinite(a)
    if np.any(lost):
        first = np.unravel_index(np.flatnonzero(lost)[0], e.shape)
        report.problems.append(
            "%s: %d of %d values non-finite where TensorFlow's are finite, first at %s "
            "(TF.js %s, TensorFlow %.8g)"
            % (where, int(lost.sum()), e.size, _index(first), a[first], e[first]))
        return
    mismatched = ~finite & (a != e) & ~(np.isnan(a) & np.isnan(e))
    magnitude = float(np.max(np.abs(e[finite]))) if np.any(finite) else 0.0
    error = np.where(finite, np.abs(a - e), 0.0)
    bound = atol * max(1.0, magnitude) + rtol * np.abs(np.where(finite, e, 0.0))
    bad = (error > bound) | mismatched
    max_abs = float(error.max()) if error.size else 0.0
    rel = error / np.maximum(np.abs(np.where(finite, e, 0.0)), 1e-30)
    max_rel = float(rel.max()) if rel.size else 0.0
    report.max_abs = max(report.max_abs, max_abs)
    line = "%s max abs err %.3g, max rel err %.3g" % (where, max_abs, max_rel)
    report.lines.append(line)
    if np.any(bad):
        first = np.unravel_index(np.flatnonzero(bad)[0], e.shape)
        report.problems.append(
            "%s: %d of %d values off (allowed %.3g * max(1, max|y| = %.3g) + %.3g * |y|); "
            "first at %s: got %.8g, TensorFlow %.8g; max abs err %.3g, max rel err %.3g"
            % (where, int(bad.sum()), e.size, atol, magnitude, rtol, _index(first), a[first],
               e[first], max_abs, max_rel))


def _index(index) -> str:
    return "[%s]" % ", ".join(str(int(i)) for i in index)


def quantized_dtypes(doc: dict) -> List[str]:
    """The quantization dtypes of a model.json's weights (sorted, unique)."""
    found = set()
    for group in doc.get(wf.WEIGHTS_MANIFEST) or []:
        for weight in group.get(wf.WEIGHTS, []):
            dtype = (weight.get(wf.QUANTIZATION) or {}).get(wf.DTYPE)
            if dtype:
                found.add(dtype)
    return sorted(found)


def default_atol(doc: dict) -> float:
    """ATOL for float32 weights, else the loosest QUANTIZED_ATOL of the dtypes present."""
    return max([ATOL] + [QUANTIZED_ATOL.get(d, QUANTIZED_ATOL["uint8"])
                         for d in quantized_dtypes(doc)])


# -- the entry point --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Source:
    """The source model and how to run it (the request's fields that matter)."""

    path: str
    input_format: str
    signature_name: Optional[str] = None
    saved_model_tags: str = "serve"
    output_node_names: Optional[str] = None


def verify(source: Source, output_path: str, output_format: str,
           backends: Sequence[str] = ("cpu", "wasm"), inputs_path: Optional[str] = None,
           seed: int = 0, atol: Optional[float] = None, rtol: float = RTOL,
           output_name: Optional[str] = None) -> Report:
    """Runs ``source`` and the converted ``output_path`` and compares them.

    Args:
      source: the source model.
      output_path: the converted model (a TF.js model directory or model.json, or
        a Keras file).
      output_format: its format.
      backends: TF.js backends the TF.js side runs on (``cpu``, ``wasm``, and
        ``webgl`` in headless Chromium).
      inputs_path: a .npy/.npz of inputs; None generates seeded ones.
      seed: the generator's seed.
      atol: absolute tolerance (scaled by max(1, max|y|)); None picks the default
        for the model's weight dtypes.
      rtol: relative tolerance.
      output_name: what messages call the output (the final path while
        ``output_path`` is a temporary one); default ``output_path``.

    Returns:
      The Report (every comparison passed).

    Raises:
      VerificationError: an output differs; the message is the whole report.
      UsageError / InvalidModelError: the models cannot be run as given.
    """
    from converter.verify.runtime import TfjsHarnessError
    in_fmt = source.input_format
    tfjs_side = output_path if output_format in rq.TFJS_OUTPUTS else source.path
    if output_format not in rq.TFJS_OUTPUTS and in_fmt != rq.TFJS_LAYERS_MODEL:
        raise UsageError("verifying %s -> %s is not supported: one side must be a TF.js model"
                         % (in_fmt, output_format))
    doc_path = model_json_path(tfjs_side)
    doc = _load_json(doc_path)
    kind = "graph" if doc.get(wf.FORMAT) == wf.GRAPH_MODEL_FORMAT else "layers"
    specs = input_specs(doc, doc_path)
    inputs = load_inputs(inputs_path, specs) if inputs_path else seeded_inputs(specs, seed)
    if atol is None:
        atol = default_atol(doc)
    report = Report()
    try:
        if output_format in rq.TFJS_OUTPUTS:
            names, expected = _reference(source, specs, inputs, doc, kind)
            actual, errors = _tfjs_outputs(doc_path, kind, inputs, backends,
                                           names if kind == "graph" else None)
        else:  # a Keras file from a TF.js layers model
            ref, errors = _tfjs_outputs(doc_path, kind, inputs, ["cpu"], None)
            if errors:
                raise VerificationError("%s: the source does not run in TF.js: %s"
                                        % (source.path, errors["cpu"]))
            expected = ref["cpu"]
            names = ["%d" % i for i in range(len(expected))]
            with _keras_named(output_path, output_format) as keras_path:
                actual = {"keras": _keras_reference(keras_path, specs, inputs)}
    except TfjsHarnessError as e:
        raise VerificationError("%s: cannot run TF.js to verify the output: %s"
                                % (output_path, e)) from None
    for backend, message in sorted(errors.items()):
        report.problems.append("[%s] the model fails in TF.js: %s" % (backend, message))
    for backend, outputs in sorted(actual.items()):
        if len(outputs) != len(expected):
            report.problems.append("[%s] %d outputs, TensorFlow gives %d"
                                   % (backend, len(outputs), len(expected)))
            continue
        for name, a, e in zip(names, outputs, expected):
            compare(name, backend, a, e, atol, rtol, report)
    if report.problems:
        raise VerificationError("%s: verification against %s failed: %s"
                                % (output_name or output_path, source.path,
                                   " | ".join(report.problems)))
    return report


@contextlib.contextmanager
def _keras_named(path: str, output_format: str) -> Iterator[str]:
    """``path``, or a link to it with the extension Keras wants (outputs are written
    under temporary names before they replace the previous output)."""
    ext = ".keras" if output_format == rq.KERAS_KERAS else ".h5"
    if path.endswith(ext):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="tfjs_verify_") as tmp:
        link = os.path.join(tmp, "model" + ext)
        os.symlink(os.path.abspath(path), link)
        yield link


def _reference(source: Source, specs, inputs, doc, kind) -> Tuple[List[str], List[np.ndarray]]:
    """(output names in the TF.js model's order, TensorFlow's outputs in that order)."""
    in_fmt = source.input_format
    if kind == "graph":
        outputs = (doc.get(wf.SIGNATURE) or {}).get("outputs") or {}
        names = sorted(outputs)
        if in_fmt in (rq.TF_SAVED_MODEL, rq.TF_HUB, rq.KERAS_SAVED_MODEL):
            from converter.graph.saved_model import HUB_DEFAULT_SIGNATURE
            default = HUB_DEFAULT_SIGNATURE if in_fmt == rq.TF_HUB else "serving_default"
            by_key = _signature_reference(source.path, source.signature_name or default,
                                          source.saved_model_tags, inputs)
            return names, _by_names(by_key, names, source.path)
        if in_fmt == rq.TF_FROZEN_MODEL:
            nodes = [n for n in (source.output_node_names or "").split(",") if n]
            by_node = _frozen_reference(source.path, nodes, inputs)
            names = names or nodes
            return names, [by_node[n.split(":")[0]] for n in names]
        # A Keras or TF.js layers source traced into a graph: signature output keys are
        # the model's output names in order, so sorting pairs them up by name.
        flat, keys = _layers_source_outputs(source, specs, inputs)
        return names, _by_names(dict(zip(keys, flat)), names, source.path)
    flat, _ = _layers_source_outputs(source, specs, inputs)
    return ["%d" % i for i in range(len(flat))], flat


def _by_names(by_key: Mapping[str, np.ndarray], names: Sequence[str],
              where: str) -> List[np.ndarray]:
    missing = [n for n in names if n not in by_key]
    if missing:
        raise VerificationError("%s has outputs %s, the TF.js model %s: not the model it was "
                                "converted from?" % (where, ", ".join(sorted(by_key)),
                                                     ", ".join(names)))
    return [by_key[n] for n in names]


def _layers_source_outputs(source: Source, specs, inputs):
    """Outputs of a Keras / TF.js layers source, and the graph signature keys they get."""
    from converter.graph.keras import _unique_keys  # pylint: disable=protected-access
    in_fmt = source.input_format
    if in_fmt == rq.TFJS_LAYERS_MODEL:
        ref, errors = _tfjs_outputs(model_json_path(source.path), "layers", inputs, ["cpu"], None)
        if errors:
            raise VerificationError("%s: the source does not run in TF.js: %s"
                                    % (source.path, errors["cpu"]))
        doc = _load_json(model_json_path(source.path))
        config = (doc.get(wf.MODEL_TOPOLOGY) or {}).get("model_config", {}).get("config", {})
        names = [o[0] for o in config.get("output_layers", [])] if isinstance(config, dict) else []
        flat = ref["cpu"]
    else:
        from converter.graph.keras import load_keras_model
        if in_fmt == rq.KERAS_SAVED_MODEL:
            import tf_keras
            from converter.readers.code_check import refuse_code_in_file
            refuse_code_in_file(source.path)
            try:
                model = tf_keras.models.load_model(source.path, compile=False)
            except (ValueError, OSError) as e:
                raise InvalidModelError("%s: tf_keras cannot load this Keras SavedModel: %s"
                                        % (source.path, e)) from None
        else:
            model = load_keras_model(source.path)
        flat = _tf_keras_call(model, specs, inputs)
        names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(flat):
        names = [None] * len(flat)
    return flat, _unique_keys(names, "output")


def source_of(request: rq.ConversionRequest, in_fmt: str) -> Source:
    return Source(request.input_path, in_fmt, request.signature_name, request.saved_model_tags,
                  request.output_node_names)

