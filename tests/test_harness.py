"""Tests of the TF.js harness itself: it runs real models and it can fail.

The models here are written by TF.js (``model.save`` through
``tf.io.withSaveHandler``), not by our converter, so these tests stand on their
own. Expected outputs are computed in numpy from the weights the script sets.
"""

import json
import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

import tfjs_node
import tolerances

# Weights the JS script sets, and the numpy model they define.
W1 = np.array([[1.0, -1.0, 0.5, 0.0], [0.5, 2.0, -0.25, 1.0], [-3.0, 0.25, 0.75, -1.5]],
              np.float32)
B1 = np.array([0.1, -0.2, 0.3, 0.0], np.float32)
W2 = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0], [1.0, 1.0]], np.float32)
B2 = np.array([-0.5, 0.125], np.float32)
WL = np.array([[1.0], [-2.0]], np.float32)
WR = np.array([[0.5], [0.25], [-1.0]], np.float32)

_SAVE_SCRIPT = r"""
const tf = require('@tensorflow/tfjs');
const fs = require('fs');
const path = require('path');

async function save(model, dir) {
  fs.mkdirSync(dir, {recursive: true});
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    fs.writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.from(artifacts.weightData));
    fs.writeFileSync(path.join(dir, 'model.json'), JSON.stringify({
      format: artifacts.format, generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy, modelTopology: artifacts.modelTopology,
      weightsManifest: [{paths: ['group1-shard1of1.bin'], weights: artifacts.weightSpecs}],
    }));
    return {modelArtifactsInfo: {dateSaved: new Date(), modelTopologyType: 'JSON'}};
  }));
}

(async () => {
  const spec = JSON.parse(process.argv[1]);
  const mlp = tf.sequential({layers: [
    tf.layers.dense({inputShape: [3], units: 4, activation: 'relu', name: 'hidden'}),
    tf.layers.dense({units: 2, name: 'out'}),
  ]});
  mlp.setWeights([tf.tensor(spec.w1), tf.tensor(spec.b1), tf.tensor(spec.w2), tf.tensor(spec.b2)]);
  await save(mlp, path.join(spec.dir, 'mlp'));

  const left = tf.input({shape: [2], name: 'left'});
  const right = tf.input({shape: [3], name: 'right'});
  const l = tf.layers.dense({units: 1, useBias: false, name: 'l'}).apply(left);
  const r = tf.layers.dense({units: 1, useBias: false, name: 'r'}).apply(right);
  const two = tf.model({inputs: [left, right], outputs: [l, tf.layers.add().apply([l, r])]});
  two.setWeights([tf.tensor(spec.wl), tf.tensor(spec.wr)]);
  await save(two, path.join(spec.dir, 'two_inputs'));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _mlp_numpy(x):
    return np.maximum(x @ W1 + B1, 0) @ W2 + B2


@pytest.fixture(scope="module")
def tfjs_models(tmp_path_factory) -> pathlib.Path:
    """Directory with ``mlp/`` and ``two_inputs/`` layers models saved by TF.js."""
    js = tfjs_node.ensure_node_modules()
    root = tmp_path_factory.mktemp("tfjs_written")
    spec = {"dir": str(root), "w1": W1.tolist(), "b1": B1.tolist(), "w2": W2.tolist(),
            "b2": B2.tolist(), "wl": WL.tolist(), "wr": WR.tolist()}
    proc = subprocess.run([tfjs_node.node_binary(), "-e", _SAVE_SCRIPT, json.dumps(spec)], cwd=js,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture
def mlp_copy(tfjs_models, tmp_path) -> pathlib.Path:
    """A private copy of the TF.js-written MLP, free to break."""
    return pathlib.Path(shutil.copytree(tfjs_models / "mlp", tmp_path / "mlp"))


_X = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [0.5, -0.5, 2.0]], np.float32)
_EXACT = tolerances.Tolerance(atol=1e-6, rtol=1e-6, why="3-term float32 dot products")


def test_tfjs_written_model_matches_numpy_on_cpu_and_wasm(tfjs_models):
    outputs = tfjs_node.run_in_tfjs(tfjs_models / "mlp", [_X])
    assert sorted(outputs) == ["cpu", "wasm"]
    for backend, got in outputs.items():
        assert got[0].dtype == np.float32
        tolerances.check_close(got, [_mlp_numpy(_X)], _EXACT, "mlp on " + backend)


def test_wasm_backend_is_really_used(tfjs_models):
    cpu, wasm, plain = tfjs_node.run_jobs([
        tfjs_node.Job(tfjs_models / "mlp", [_X], backend="cpu"),
        tfjs_node.Job(tfjs_models / "mlp", [_X], backend="wasm"),
    ]) + tfjs_node.run_jobs([tfjs_node.Job(tfjs_models / "mlp", [_X], backend="wasm")],
                            wasm_simd=False)
    assert (cpu.backend_used, cpu.wasm) == ("cpu", None)
    assert wasm.backend_used == "wasm"
    assert wasm.wasm == {"simd": True, "threads": False, "binary": "tfjs-backend-wasm-simd.wasm"}
    assert plain.wasm == {"simd": False, "threads": False, "binary": "tfjs-backend-wasm.wasm"}
    for result in (cpu, wasm, plain):
        assert result.tensors_leaked == 0
        assert result.timing["loadMs"] > 0 and len(result.timing["runMs"]) == 1
        tolerances.check_close(result.outputs, [_mlp_numpy(_X)], _EXACT, result.job.label)


def test_named_inputs_are_matched_by_name(tfjs_models):
    left = np.array([[1.0, 2.0], [3.0, -1.0]], np.float32)
    right = np.array([[1.0, 2.0, 3.0], [0.0, 4.0, -2.0]], np.float32)
    # Given in the reverse of the model's input order on purpose.
    outputs = tfjs_node.run_in_tfjs(tfjs_models / "two_inputs", {"right": right, "left": left})
    for backend, got in outputs.items():
        tolerances.check_close(got, [left @ WL, left @ WL + right @ WR], _EXACT, backend)


def test_repeats_and_warmup_are_timed(tfjs_models):
    result = tfjs_node.run_jobs([tfjs_node.Job(tfjs_models / "mlp", [_X], backend="wasm",
                                               warmup=2, repeats=3)])[0].check()
    assert len(result.timing["warmupMs"]) == 2 and len(result.timing["runMs"]) == 3
    tolerances.check_close(result.outputs, [_mlp_numpy(_X)], _EXACT, "repeated run")


def test_wrong_expected_output_is_detected(tfjs_models):
    got = tfjs_node.run_in_tfjs(tfjs_models / "mlp", [_X], backends=("cpu",))["cpu"]
    wrong = _mlp_numpy(_X)
    wrong[1, 0] += 1e-4
    with pytest.raises(AssertionError, match=r"1 of 6 elements off; worst at \(1, 0\)"):
        tolerances.check_close(got, [wrong], _EXACT, "deliberately wrong")
    with pytest.raises(AssertionError, match=r"shape \(3, 2\), want \(2, 3\)"):
        tolerances.check_close(got, [wrong.T], _EXACT, "deliberately transposed")
    with pytest.raises(AssertionError, match="1 outputs, want 2"):
        tolerances.check_close(got, [wrong, wrong], _EXACT, "deliberately doubled")


def test_a_changed_weight_byte_on_disk_is_detected(mlp_copy):
    shard = mlp_copy / "group1-shard1of1.bin"
    weights = np.frombuffer(shard.read_bytes(), "<f4").copy()
    # hidden/kernel[0, 1]; hidden unit 1 is active on row 0, so 1e-3 reaches the output
    # (unit 0 would not do: relu zeroes it on every row of _X).
    weights[1] += 1e-3
    shard.write_bytes(weights.tobytes())
    for backend, got in tfjs_node.run_in_tfjs(mlp_copy, [_X]).items():
        with pytest.raises(AssertionError, match="elements off"):
            tolerances.check_close(got, [_mlp_numpy(_X)], _EXACT, "perturbed on " + backend)


def test_unknown_layer_error_text_is_surfaced(mlp_copy):
    model_json = mlp_copy / "model.json"
    spec = json.loads(model_json.read_text())
    spec["modelTopology"]["config"]["layers"][1]["class_name"] = "NoSuchLayer"
    model_json.write_text(json.dumps(spec))
    with pytest.raises(tfjs_node.TfjsJobError) as info:
        tfjs_node.run_in_tfjs(mlp_copy, [_X])
    message = str(info.value)
    assert message.count("failed at load: Unknown layer: NoSuchLayer. This may be due to") == 2
    assert [r.job.backend for r in info.value.results] == ["cpu", "wasm"]


def test_missing_shard_error_text_is_surfaced(mlp_copy):
    (mlp_copy / "group1-shard1of1.bin").unlink()
    with pytest.raises(tfjs_node.TfjsJobError,
                       match="failed at load: ENOENT: no such file or directory, open '.*"
                             "group1-shard1of1.bin'"):
        tfjs_node.run_in_tfjs(mlp_copy, [_X], backends=("cpu",))


def test_truncated_shard_error_text_is_surfaced(mlp_copy):
    shard = mlp_copy / "group1-shard1of1.bin"
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(tfjs_node.TfjsJobError,
                       match=r"Based on the provided shape, \[2\], the tensor should have 2 "
                             r"values but has 0"):
        tfjs_node.run_in_tfjs(mlp_copy, [_X], backends=("wasm",))


def test_wrong_input_shape_fails_the_job_and_the_batch_goes_on(tfjs_models, mlp_copy):
    (mlp_copy / "model.json").write_text("{not json")
    bad_shape, bad_json, good = tfjs_node.run_jobs([
        tfjs_node.Job(tfjs_models / "mlp", [np.zeros((2, 4), np.float32)], backend="wasm"),
        tfjs_node.Job(mlp_copy, [_X], backend="cpu"),
        tfjs_node.Job(tfjs_models / "mlp", [_X], backend="cpu"),
    ])
    assert (bad_shape.ok, bad_shape.error_stage) == (False, "run")
    assert "expected hidden_input to have shape [null,3] but got array with shape [2,4]" in (
        bad_shape.error_message)
    assert (bad_json.ok, bad_json.error_stage) == (False, "load")
    assert "JSON" in bad_json.error_message
    assert good.ok
    with pytest.raises(tfjs_node.TfjsJobError, match="failed at run: Error when checking"):
        bad_shape.check()


def test_malformed_job_is_a_harness_error(tfjs_models):
    with pytest.raises(tfjs_node.TfjsHarnessError,
                       match=r'jobs\[0\]: backend "webgl", want one of cpu, wasm'):
        tfjs_node.run_jobs([tfjs_node.Job(tfjs_models / "mlp", [_X], backend="webgl")])
    with pytest.raises(tfjs_node.TfjsHarnessError, match="dtype complex128 has no TF.js"):
        tfjs_node.run_jobs([tfjs_node.Job(tfjs_models / "mlp", [_X.astype(np.complex128)])])


def test_runner_exit_codes(tmp_path):
    env = dict(os.environ, NODE_PATH=str(tfjs_node.node_modules()))
    job_file = tmp_path / "jobs.json"
    job_file.write_text(json.dumps({"jobs": [{"model": "m.json"}]}))
    proc = subprocess.run([tfjs_node.node_binary(), str(tfjs_node.RUNNER), str(job_file)],
                          capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 2
    assert 'jobs[0]: "kind" must be a string, got undefined' in proc.stderr
    job_file.write_text(json.dumps({"jobs": []}))
    proc = subprocess.run([tfjs_node.node_binary(), str(tfjs_node.RUNNER), str(job_file)],
                          capture_output=True, text=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr


def test_input_wire_format_round_trips():
    for array in (np.arange(6, dtype=np.float32).reshape(2, 3) / 7,
                  np.array([[-3, 2**31 - 1]], np.int32), np.array([True, False, True]),
                  np.array([b"ab", b"", "\u00e9".encode("utf-8")], dtype=object)):
        dtype, data = tfjs_node._to_wire(array, "test")
        back = tfjs_node._from_wire(data, dtype, array.shape)
        assert back.dtype == array.dtype and back.shape == array.shape
        assert back.tolist() == array.tolist()
    assert tfjs_node._to_wire(np.zeros(2, np.int64), "t")[0] == "int32"
    with pytest.raises(tfjs_node.TfjsHarnessError, match="int64 values overflow int32"):
        tfjs_node._to_wire(np.array([2**40]), "t")


def test_unlisted_tolerance_fails_instead_of_passing():
    assert tolerances.lookup("mlp", "float32").atol == 1e-5
    with pytest.raises(tolerances.UnlistedToleranceError, match="'no_such_model' with float32"):
        tolerances.lookup("no_such_model", "float32")
    with pytest.raises(tolerances.UnlistedToleranceError, match="'gru' with uint8"):
        tolerances.lookup("gru", "uint8")


def test_every_declared_tolerance_names_a_zoo_model_and_dtype():
    import zoo
    for (model, dtype), tol in tolerances.TOLERANCES.items():
        assert model in zoo.ZOO or model in tolerances.NON_ZOO_CASES, model
        assert dtype in tolerances.STORAGE_DTYPES, dtype
        assert tol.atol > 0 and tol.rtol >= 0 and tol.why


def _write_graph_model(model_dir: pathlib.Path) -> None:
    """A hand-written graph model ``z = relu(x @ W2[:3] + B2)``, weights split mid-tensor."""
    def shape(*dims):
        return {"dim": [{"size": str(d)} for d in dims]}

    def const(name, dims):
        return {"name": name, "op": "Const", "attr": {
            "dtype": {"type": "DT_FLOAT"},
            "value": {"tensor": {"dtype": "DT_FLOAT", "tensorShape": shape(*dims)}}}}

    float_attr = {"T": {"type": "DT_FLOAT"}}
    nodes = [
        {"name": "x", "op": "Placeholder",
         "attr": {"dtype": {"type": "DT_FLOAT"}, "shape": {"shape": shape(-1, 3)}}},
        const("w", (3, 2)), const("b", (2,)),
        {"name": "mm", "op": "MatMul", "input": ["x", "w"],
         "attr": dict(float_attr, transpose_a={"b": False}, transpose_b={"b": False})},
        {"name": "y", "op": "AddV2", "input": ["mm", "b"], "attr": float_attr},
        {"name": "z", "op": "Relu", "input": ["y"], "attr": float_attr},
    ]
    data = np.concatenate([W2[:3].reshape(-1), B2]).astype("<f4").tobytes()
    model_dir.mkdir()
    # 10 bytes: the first shard ends inside the second float of w.
    (model_dir / "group1-shard1of2.bin").write_bytes(data[:10])
    (model_dir / "group1-shard2of2.bin").write_bytes(data[10:])
    (model_dir / "model.json").write_text(json.dumps({
        "format": "graph-model", "generatedBy": "hand", "convertedBy": "test_harness",
        "modelTopology": {"node": nodes, "library": {}, "versions": {"producer": 1000}},
        "signature": {
            "inputs": {"x:0": {"name": "x:0", "dtype": "DT_FLOAT", "tensorShape": shape(-1, 3)}},
            "outputs": {"z:0": {"name": "z:0", "dtype": "DT_FLOAT", "tensorShape": shape(-1, 2)}}},
        "weightsManifest": [{"paths": ["group1-shard1of2.bin", "group1-shard2of2.bin"],
                             "weights": [{"name": "w", "shape": [3, 2], "dtype": "float32"},
                                         {"name": "b", "shape": [2], "dtype": "float32"}]}],
    }))


def test_graph_models_run_with_every_method(tmp_path):
    model_dir = tmp_path / "graph"
    _write_graph_model(model_dir)
    y = _X @ W2[:3] + B2
    z = np.maximum(y, 0)
    jobs = []
    for backend in tfjs_node.BACKENDS:
        jobs += [
            tfjs_node.Job(model_dir, [_X], backend=backend, kind="graph", method="predict"),
            tfjs_node.Job(model_dir, {"x": _X}, backend=backend, kind="graph", method="execute",
                          output_names=["y", "z"]),
            tfjs_node.Job(model_dir, {"x": _X}, backend=backend, kind="graph",
                          method="executeAsync", output_names=["z"]),
        ]
    results = [r.check() for r in tfjs_node.run_jobs(jobs)]
    for predict, execute, execute_async in zip(results[::3], results[1::3], results[2::3]):
        tolerances.check_close(predict.outputs, [z], _EXACT, predict.job.label)
        assert execute.output_names == ["y", "z"]
        tolerances.check_close(execute.outputs, [y, z], _EXACT, execute.job.label)
        tolerances.check_close(execute_async.outputs, [z], _EXACT, execute_async.job.label)
    assert y.min() < 0 < y.max()  # relu clips some outputs and passes others
