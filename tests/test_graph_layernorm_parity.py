"""LayerNormalization models as graph models: TF.js (cpu and wasm) against Keras.

tf_keras (Keras 2) lowers ``LayerNormalization`` to a training-mode
``FusedBatchNormV3`` over a ``[1, rows, features, 1]`` NCHW reshape with empty
mean/variance; TF.js ignores ``is_training`` and returned NaN for every output
until the semantics guard rewrote it (``converter/graph/semantics.py``). Keras 3
lowers it to Mean/SquaredDifference/Rsqrt, which must keep working. Every
model here is saved the way users save it (Keras 2 ``.h5``, Keras 3 ``.keras``),
converted with ``output_format="tfjs_graph_model"`` and run with ``execute``;
all TF.js jobs share one Node process.
"""

import dataclasses
import json
import pathlib
from typing import Callable, Dict, List

import numpy as np
import pytest

import tfjs_node
import tolerances
import zoo
from converter import api

BACKENDS = tfjs_node.BACKENDS
# Float32 rounding only: a few Dense layers and normalizations of 6-16 features.
TOLERANCE = tolerances.lookup("graph_small", tolerances.FLOAT32)


def _block(k, inputs, units: int):
    """Dense + residual Add + LayerNormalization (a transformer sub-block)."""
    x = k.layers.Dense(units)(inputs)
    x = k.layers.Add()([inputs, x])
    return k.layers.LayerNormalization(epsilon=1e-3)(x)


def _sequential_ln(k):
    return k.Sequential([k.Input(shape=(6, 8)), k.layers.Dense(8), k.layers.LayerNormalization(),
                         k.layers.Dense(4)])


def _functional_residual(k):
    inputs = k.Input(shape=(6, 8))
    return k.Model(inputs, k.layers.Dense(4)(_block(k, inputs, 8)))


def _sequential_wrapping_functional(k):
    """The issue's model: a Sequential around a functional residual + LayerNormalization block."""
    inputs = k.Input(shape=(6, 8))
    block = k.Model(inputs, _block(k, inputs, 8), name="block")
    return k.Sequential([k.Input(shape=(6, 8)), block, k.layers.Dense(4)])


def _multi_axis_no_center(k):
    inputs = k.Input(shape=(6, 8))
    x = k.layers.LayerNormalization(axis=[1, 2], center=False)(inputs)
    x = k.layers.LayerNormalization(scale=False)(k.layers.Dense(8)(x))
    return k.Model(inputs, x)


def _image_channels(k):
    inputs = k.Input(shape=(5, 5, 3))
    x = k.layers.Conv2D(4, 3, padding="same")(inputs)
    return k.Model(inputs, k.layers.LayerNormalization()(x))


@dataclasses.dataclass(frozen=True)
class Model:
    """A LayerNormalization model of one Keras version.

    Attributes:
      id: test id.
      keras: 2 (tf_keras, saved as .h5) or 3 (keras, saved as .keras).
      build: ``build(keras module) -> model``.
      shape: input shape without the batch axis.
    """

    id: str
    keras: int
    build: Callable
    shape: tuple


MODELS = [
    Model("keras2_sequential", 2, _sequential_ln, (6, 8)),
    Model("keras2_functional_residual", 2, _functional_residual, (6, 8)),
    Model("keras2_sequential_wrapping_functional", 2, _sequential_wrapping_functional, (6, 8)),
    Model("keras2_multi_axis_no_center_no_scale", 2, _multi_axis_no_center, (6, 8)),
    Model("keras2_conv_channels", 2, _image_channels, (5, 5, 3)),
    Model("keras3_functional_residual", 3, _functional_residual, (6, 8)),
    Model("keras3_sequential_wrapping_functional", 3, _sequential_wrapping_functional, (6, 8)),
]


def _randomize_norm_weights(model, rng: np.random.Generator) -> None:
    """Gamma/beta away from 1/0 so a dropped or misplaced parameter shows."""
    for weight in model.weights:
        name = weight.name.lower()
        if "gamma" in name or "beta" in name:
            low, high = (0.5, 1.5) if "gamma" in name else (-0.5, 0.5)
            weight.assign(rng.uniform(low, high, weight.shape).astype(np.float32))


@dataclasses.dataclass
class Run:
    model: Model
    out_dir: pathlib.Path
    x: np.ndarray
    expected: np.ndarray
    input_key: str
    results: Dict[str, tfjs_node.JobResult] = dataclasses.field(default_factory=dict)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, Run]:
    from converter.graph.keras import input_layer_name
    root = tmp_path_factory.mktemp("layernorm")
    out, jobs = {}, []
    for spec in MODELS:
        k = zoo.keras_module(spec.keras)
        k.utils.set_random_seed(7)
        model = spec.build(k)
        rng = np.random.default_rng(11)
        _randomize_norm_weights(model, rng)
        # Rows with a large common offset: the statistics must be the batch's own.
        x = (rng.standard_normal((3,) + spec.shape) * 2.0 + 3.0).astype(np.float32)
        expected = np.asarray(model.predict(x, verbose=0))
        path = root / (spec.id + (".h5" if spec.keras == 2 else ".keras"))
        model.save(str(path))
        run = Run(spec, root / spec.id, x, expected, input_layer_name(model.inputs[0]))
        api.convert(str(path), str(run.out_dir), output_format="tfjs_graph_model")
        out[spec.id] = run
        for backend in BACKENDS:
            jobs.append((run, tfjs_node.Job(run.out_dir, {run.input_key: x}, backend=backend,
                                            kind="graph", method="execute",
                                            job_id="%s [%s]" % (spec.id, backend))))
    for (run, job), result in zip(jobs, tfjs_node.run_jobs([job for _, job in jobs])):
        run.results[job.backend] = result
    return out


@pytest.mark.parametrize("spec", MODELS, ids=[m.id for m in MODELS])
def test_layer_normalization_matches_keras(spec: Model, runs):
    run = runs[spec.id]
    errors: List[str] = []
    for backend in BACKENDS:
        result = run.results[backend].check()
        got = result.outputs[0]
        assert np.all(np.isfinite(got)), "%s on %s: non-finite outputs" % (spec.id, backend)
        tolerances.check_close([got], [run.expected], TOLERANCE, "%s on %s" % (spec.id, backend))
        errors.append("%s %.3g" % (backend, float(np.max(np.abs(got - run.expected)))))
    print("%s: max error %s (max |y| %.3g)" % (spec.id, ", ".join(errors),
                                               float(np.max(np.abs(run.expected)))))


@pytest.mark.parametrize("spec", MODELS, ids=[m.id for m in MODELS])
def test_no_batch_norm_reaches_tfjs(spec: Model, runs):
    """TF.js would run any FusedBatchNorm left as an inference batch norm."""
    topology = json.loads((runs[spec.id].out_dir / "model.json").read_text())["modelTopology"]
    ops = [n["op"] for n in topology["node"]]
    for func in topology.get("library", {}).get("function", []):
        ops.extend(n["op"] for n in func.get("nodeDef", []))
    assert not [op for op in ops if op.startswith("FusedBatchNorm")], sorted(set(ops))
