"""TF.js models of the 1.x era that an npm package ships, through every output we write.

The npm package ``nsfwjs`` 4.4.0 (MIT; pinned with its integrity hash in
tests/published_models/package-lock.json, installed by ``npm ci``, never committed)
bundles three image classifiers (5 classes) its authors trained and converted:

=================  ===========================================================
model              what it exercises
=================  ===========================================================
mobilenet_v2       a layers model saved by Keras 2.2.4 (``Model`` class name,
                   ``batch_input_shape``), in the pre-2.x model.json layout
                   (no ``format``, ``generatedBy`` or ``convertedBy``), every
                   weight uint8-quantized
inception_v3       the same layout, 6 shards (slow tier)
mobilenet_v2_mid   a graph model by "TensorFlow.js Converter v1.7.4r1" from a
                   TF-Hub KerasLayer, uint8 weights, inlined-function control
                   edges from the input Placeholder onto constants (which made
                   the SavedModel import fail before)
=================  ===========================================================

nsfwjs stores each file as a UMD module (tests/published_models/extract_nsfwjs.js
writes them out as plain files). The reference is the published model run in
TF.js 4.22 (cpu) on seeded images in [0, 1]; each conversion must match it within
1e-4 abs + 1e-4 rel (tests/tolerances.py GRAPH_INPUT): the layers models to
``keras_saved_model`` (served signature, TensorFlow) and to ``tfjs_graph_model``
(TF.js), the graph model to ``tf_saved_model`` (TensorFlow), ``tflite`` (LiteRT,
batch fixed) and ``onnx`` (ONNX Runtime).
"""

import json
import pathlib
import subprocess
from typing import Dict, List

import numpy as np
import pytest

import file_formats as ff
import saved_model_runner
import tfjs_node
from converter import api
from converter.readers.tfjs_graph import read_tfjs_graph
from converter.verify import runtime
from test_graph_input_published import PACKAGE_DIR, published_models  # noqa: F401  (fixture)

LAYERS = [pytest.param("mobilenet_v2", id="mobilenet_v2"),
          pytest.param("inception_v3", id="inception_v3", marks=pytest.mark.slow)]
GRAPH = "mobilenet_v2_mid"
BATCH = 2


@pytest.fixture(scope="module")
def nsfw(published_models, tmp_path_factory) -> pathlib.Path:  # noqa: F811
    """The three models as TF.js model directories."""
    root = published_models.parents[3]  # <root>/node_modules/@vladmandic/human/models
    out = tmp_path_factory.mktemp("nsfwjs")
    subprocess.run([runtime.node_binary(), str(PACKAGE_DIR / "extract_nsfwjs.js"),
                    str(root / "node_modules" / "nsfwjs" / "dist" / "models"), str(out),
                    "mobilenet_v2", "inception_v3", GRAPH], check=True, capture_output=True)
    return out


def _image_inputs(model_dir: pathlib.Path) -> Dict[str, np.ndarray]:
    """Seeded images for each input, keyed as the model names it (layers: the input layer)."""
    doc = json.loads((model_dir / "model.json").read_text())
    rng = np.random.default_rng(20261207)
    if doc.get("format") == "graph-model":
        return {i.key: rng.uniform(0, 1, [BATCH if d < 0 else d for d in i.shape])
                .astype(np.float32) for i in read_tfjs_graph(str(model_dir)).inputs}
    first = doc["modelTopology"]["model_config"]["config"]["layers"][0]["config"]
    shape = [BATCH] + first["batch_input_shape"][1:]
    return {first["name"]: rng.uniform(0, 1, shape).astype(np.float32)}


@pytest.fixture(scope="module")
def refs(nsfw, request):
    """``{name: (model dir, inputs, TF.js outputs)}`` of the models the module's tests use."""
    names = [GRAPH] + ff.module_params(request, "name")  # the selected tests' models
    jobs, specs = [], []
    for name in names:
        model_dir = nsfw / name
        inputs = _image_inputs(model_dir)
        if name == GRAPH:
            keys = [o.key for o in read_tfjs_graph(str(model_dir)).outputs]
            jobs.append(tfjs_node.Job(model_dir, inputs, backend="cpu", kind="graph",
                                      method="executeAsync", output_names=keys, job_id=name))
        else:
            jobs.append(tfjs_node.Job(model_dir, list(inputs.values()), backend="cpu",
                                      kind="layers", job_id=name))
        specs.append((name, model_dir, inputs))
    out = {}
    for (name, model_dir, inputs), result in zip(specs, tfjs_node.run_jobs(jobs)):
        result.check()
        out[name] = (model_dir, inputs, result)
    return out


def _only(outputs: Dict[str, np.ndarray]) -> List[np.ndarray]:
    assert len(outputs) == 1, sorted(outputs)
    return list(outputs.values())


@pytest.mark.parametrize("name", LAYERS)
def test_layers_model_to_keras_saved_model(name, refs, tmp_path):
    model_dir, inputs, want = refs[name]
    out = tmp_path / "saved_model"
    api.convert(str(model_dir), str(out), output_format="keras_saved_model")
    (served,) = saved_model_runner.run_signatures([(out, {k: v for k, v in inputs.items()})])
    error = ff.compare("%s keras_saved_model (TF) vs published layers model (TF.js)" % name,
                       {"y": _only(served)[0]}, {"y": want.outputs[0]})
    print("%s -> keras_saved_model: max abs error %.3g" % (name, error))


@pytest.mark.parametrize("name", LAYERS)
def test_layers_model_to_graph_model(name, refs, tmp_path):
    model_dir, inputs, want = refs[name]
    out = tmp_path / "graph"
    api.convert(str(model_dir), str(out), output_format="tfjs_graph_model")
    keys = [o.key for o in read_tfjs_graph(str(out)).outputs]
    (got,) = tfjs_node.run_jobs([tfjs_node.Job(out, inputs, backend="cpu", kind="graph",
                                               output_names=keys, job_id=name + " graph")])
    error = ff.compare("%s tfjs_graph_model vs published layers model (TF.js)" % name,
                       {"y": got.check().outputs[0]}, {"y": want.outputs[0]})
    print("%s -> tfjs_graph_model: max abs error %.3g" % (name, error))


def test_graph_model_to_saved_model_tflite_onnx(refs, tmp_path):
    model_dir, inputs, want = refs[GRAPH]
    expected = dict(zip(want.output_names, want.outputs))
    saved_model, tflite, onnx = tmp_path / "sm", tmp_path / "m.tflite", tmp_path / "m.onnx"
    api.convert(str(model_dir), str(saved_model))
    api.convert(str(model_dir), str(tflite), output_format="tflite", tflite_batch_size=BATCH)
    api.convert(str(model_dir), str(onnx), output_format="onnx")
    keyed = ff.saved_model_inputs(inputs)
    (served,) = saved_model_runner.run_signatures([(saved_model, keyed)])
    errors = []
    for what, got in (("tf_saved_model (TF)", served),
                      ("tflite (LiteRT)", ff.run_tflite(tflite, keyed)),
                      ("onnx (ONNX Runtime)", ff.run_onnx(onnx, keyed))):
        errors.append(ff.compare("%s %s vs published graph model (TF.js)" % (GRAPH, what),
                                 ff.by_signature_key(got, expected), expected))
    print("%s (converter 1.7.4): max abs error SavedModel %.3g, tflite %.3g, onnx %.3g"
          % ((GRAPH,) + tuple(errors)))
