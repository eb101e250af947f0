"""Keras 2 SavedModels (``keras_saved_model``) to TF.js layers models, checked in real TF.js.

tf_keras (Keras 2, what ``tf.keras`` was up to TF 2.15) saves a model as a
SavedModel directory with ``model.save(dir, save_format="tf")``; the directory
holds ``keras_metadata.pb`` next to ``saved_model.pb``. For zoo models built
with tf_keras and saved that way:

- ``--input_format keras_saved_model`` gives a ``tfjs_layers_model``, and so does
  no flag at all (the format is detected from ``keras_metadata.pb`` and a
  layers model is its default output), the CLI agreeing with the API byte for
  byte;
- its shards are byte-identical to those of the same model saved as Keras 2
  HDF5 and converted (same weights, same order, same encoding);
- TF.js (cpu and wasm) matches tf_keras's own predictions within the model's
  float32 bound in ``tests/tolerances.py``.

The models are saved and converted once per module; one Node process runs all
TF.js jobs.
"""

import dataclasses
import hashlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Dict, List

import numpy as np
import pytest

import tfjs_node
import tolerances
import zoo
from converter import api
from converter import request as rq

ROOT = pathlib.Path(__file__).resolve().parent.parent
BACKENDS = tfjs_node.BACKENDS
# Dense, Conv2D + BatchNormalization, Embedding + LSTM (int32 input), and a
# functional model with three inputs and two outputs.
MODELS = ("mlp", "cnn_bn", "embedding_lstm", "multi_io")


@dataclasses.dataclass
class Converted:
    """One zoo model saved by tf_keras and converted.

    Attributes:
      name: zoo model name.
      saved_model: the Keras SavedModel directory.
      out_dir: its tfjs_layers_model, converted with --input_format keras_saved_model.
      default_dir: the same, converted without input/output formats.
      h5_dir: the same model saved as Keras 2 HDF5, converted.
      inputs: the zoo inputs.
      expected: tf_keras's predictions on them.
      results: ``{backend: JobResult}``.
    """

    name: str
    saved_model: pathlib.Path
    out_dir: pathlib.Path
    default_dir: pathlib.Path
    h5_dir: pathlib.Path
    inputs: List[np.ndarray]
    expected: List[np.ndarray]
    results: Dict[str, tfjs_node.JobResult] = dataclasses.field(default_factory=dict)


def _files(directory: pathlib.Path) -> Dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.iterdir())}


def _shards(directory: pathlib.Path) -> Dict[str, str]:
    return {name: digest for name, digest in _files(directory).items() if name.endswith(".bin")}


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Dict[str, Converted]:
    root = tmp_path_factory.mktemp("keras_saved_model")
    runs = {}
    for name in MODELS:
        model = zoo.build_model(name, 2)
        inputs = zoo.make_inputs(name)
        saved_model = root / (name + "_saved_model")
        model.save(str(saved_model), save_format="tf")
        h5 = root / (name + ".h5")
        model.save(str(h5))
        run = Converted(name=name, saved_model=saved_model, out_dir=root / (name + "_tfjs"),
                        default_dir=root / (name + "_default_tfjs"),
                        h5_dir=root / (name + "_h5_tfjs"), inputs=inputs,
                        expected=zoo.predict(model, inputs))
        result = api.convert(saved_model, run.out_dir, input_format=rq.KERAS_SAVED_MODEL)
        assert (result.input_format, result.output_format) == (
            rq.KERAS_SAVED_MODEL, rq.TFJS_LAYERS_MODEL), name
        default = api.convert(saved_model, run.default_dir)
        assert (default.input_format, default.output_format) == (
            rq.KERAS_SAVED_MODEL, rq.TFJS_LAYERS_MODEL), name
        api.convert(h5, run.h5_dir)
        runs[name] = run
    jobs = [tfjs_node.Job(model_dir=run.out_dir, inputs=run.inputs, backend=backend,
                          job_id="%s keras_saved_model [%s]" % (name, backend))
            for name, run in runs.items() for backend in BACKENDS]
    for job, result in zip(jobs, tfjs_node.run_jobs(jobs)):
        runs[job.job_id.split(" ")[0]].results[job.backend] = result
    return runs


def test_saved_model_is_a_keras_saved_model(converted):
    for run in converted.values():
        names = set(os.listdir(run.saved_model))
        assert {"saved_model.pb", "keras_metadata.pb"} <= names, (run.name, sorted(names))


@pytest.mark.parametrize("name", MODELS)
def test_converts_to_a_layers_model(converted, name):
    run = converted[name]
    with open(run.out_dir / "model.json", "rb") as f:
        doc = json.loads(f.read())
    assert doc["format"] == "layers-model"
    assert doc["generatedBy"].startswith("keras v2."), doc["generatedBy"]
    assert len(doc["weightsManifest"]) == 1
    # Detected without flags: the very same bytes.
    assert _files(run.default_dir) == _files(run.out_dir)


@pytest.mark.parametrize("name", MODELS)
def test_weights_match_the_hdf5_conversion(converted, name):
    run = converted[name]
    assert _shards(run.out_dir), "no shard written"
    assert _shards(run.out_dir) == _shards(run.h5_dir)
    with open(run.out_dir / "model.json", "rb") as f:
        ours = json.loads(f.read())
    with open(run.h5_dir / "model.json", "rb") as f:
        h5 = json.loads(f.read())
    assert ours["weightsManifest"] == h5["weightsManifest"]
    assert ours["modelTopology"]["model_config"] == h5["modelTopology"]["model_config"]


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_tfjs_matches_tf_keras(converted, name, backend):
    run = converted[name]
    result = run.results[backend].check()
    assert result.backend_used == backend
    tolerances.check_close(result.outputs, run.expected,
                           tolerances.lookup(name, tolerances.FLOAT32),
                           "%s (tf_keras SavedModel) on TF.js %s" % (name, backend))


def test_cli_detects_keras_saved_model(converted, tmp_path):
    """The command line, given only the directory, writes what the API wrote."""
    run = converted["mlp"]
    out = tmp_path / "mlp_cli_tfjs"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run([sys.executable, "-m", "converter", str(run.saved_model), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "tfjs_layers_model" in proc.stdout, proc.stdout
    assert _files(out) == _files(run.out_dir)
