"""The command line and the atomic-output contract, on the TF.js layers -> layers path.

Runs ``python -m converter`` as a subprocess, so exit codes, the one-line error
on stderr and the files left behind are the real ones.
"""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from converter import api, cli
from converter.model import LayersModel, Tensor
from converter.weights import quantize
from converter.writers.tfjs_layers import write_tfjs_layers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOPOLOGY = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
    {"class_name": "Dense", "config": {"name": "dense", "units": 4, "batch_input_shape": [None, 3]}},
    {"class_name": "Dense", "config": {"name": "dense_1", "units": 2}}]}}


def dense_tensors(first_kernel_shape=(3, 4), random_bias=False):
    """The four seeded weights of ``TOPOLOGY`` (``first_kernel_shape`` lets a test swap it)."""
    rng = np.random.default_rng(0)
    kernel = rng.standard_normal(first_kernel_shape).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32) if random_bias else np.zeros(4, np.float32)
    return [Tensor("dense/kernel", kernel, "float32"),
            Tensor("dense/bias", bias, "float32"),
            Tensor("dense_1/kernel", rng.standard_normal((4, 2)).astype(np.float32), "float32"),
            Tensor("dense_1/bias", np.zeros(2, np.float32), "float32")]


def write_topology_model(directory, topology, tensors=None):
    """A TF.js layers model of ``topology`` (no Keras metadata) with ``dense_tensors()``."""
    os.makedirs(directory, exist_ok=True)
    write_tfjs_layers(LayersModel({"model_config": topology}, (tensors or dense_tensors(),)),
                      str(directory), 4 << 20)
    return directory


def save_dense_h5(path):
    """A Keras 2 ``.h5`` of one Dense(3) layer on 4 inputs, saved by tf_keras."""
    import tf_keras
    model = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,), name="dense")])
    model.save(path)
    return path


def make_layers_model(directory, shard_size=4 * 1024 * 1024, quantized=False):
    tensors = dense_tensors(random_bias=True)
    if quantized:
        tensors = [quantize.quantize_tensor(t, "uint8") for t in tensors]
    os.makedirs(directory, exist_ok=True)
    model = LayersModel({"model_config": TOPOLOGY, "keras_version": "3.15.1", "backend": "tensorflow"},
                        (tensors,), generated_by="keras v3.15.1")
    write_tfjs_layers(model, str(directory), shard_size)
    return str(directory)


def run(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "converter", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=dict(os.environ, PYTHONPATH=ROOT))
    return proc.returncode, proc.stdout, proc.stderr


def tree_digest(path):
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def load(path):
    with open(os.path.join(path, "model.json")) as f:
        return json.load(f)


@pytest.fixture
def src(tmp_path):
    return make_layers_model(tmp_path / "src")


def test_reshard(tmp_path, src):
    out = tmp_path / "out"
    code, stdout, stderr = run(src, out, "--output_format", "tfjs_layers_model",
                               "--weight_shard_size_bytes", "40")
    assert (code, stderr) == (0, "")
    assert stdout == "tfjs_converter: wrote %s (tfjs_layers_model, 4 weights in 1 group)\n" % out
    doc = load(out)
    assert doc["weightsManifest"][0]["paths"] == ["group1-shard%dof3.bin" % i for i in (1, 2, 3)]
    assert [os.path.getsize(out / p) for p in doc["weightsManifest"][0]["paths"]] == [40, 40, 24]
    assert doc["format"] == "layers-model" and doc["generatedBy"] == "keras v3.15.1"
    assert doc["modelTopology"]["model_config"] == TOPOLOGY


def test_output_is_deterministic(tmp_path, src):
    digests = []
    for name in ("a", "b"):
        assert run(src, tmp_path / name, "--output_format=tfjs_layers_model")[0] == 0
        digests.append(tree_digest(tmp_path / name))
    assert digests[0] == digests[1]
    raw = (tmp_path / "a" / "model.json").read_text()
    assert str(tmp_path) not in raw and json.dumps(load(tmp_path / "a"), sort_keys=True,
                                                   separators=(",", ":")) == raw


def test_stale_shards_do_not_survive(tmp_path, src):
    out = tmp_path / "out"
    run(src, out, "--output_format=tfjs_layers_model", "--weight_shard_size_bytes=16")
    assert len(os.listdir(out)) == 8
    run(src, out, "--output_format=tfjs_layers_model")
    assert sorted(os.listdir(out)) == ["group1-shard1of1.bin", "model.json"]
    assert sorted(os.listdir(tmp_path)) == ["out", "src"]  # no temp dirs left


def test_quantize_flag_does_not_swallow_positional(tmp_path, src):
    out = tmp_path / "out"
    code, _, stderr = run("--quantize_uint8", src, out, "--output_format", "tfjs_layers_model")
    assert (code, stderr) == (0, "")
    specs = load(out)["weightsManifest"][0]["weights"]
    assert [w["quantization"]["dtype"] for w in specs] == ["uint8"] * 4


def test_quantize_patterns_and_fallthrough(tmp_path, src):
    out = tmp_path / "out"
    code, _, stderr = run("--quantize_float16", "--quantize_uint8", "*kernel", src, out,
                          "--output_format=tfjs_layers_model")
    assert (code, stderr) == (0, "")
    got = {w["name"]: w["quantization"]["dtype"] for w in load(out)["weightsManifest"][0]["weights"]}
    assert got == {"dense/kernel": "uint8", "dense/bias": "float16", "dense_1/kernel": "uint8",
                   "dense_1/bias": "float16"}


def test_paths_with_spaces(tmp_path):
    src = make_layers_model(tmp_path / "my model")
    out = tmp_path / "out dir" / "tfjs model"
    assert run(src, out, "--output_format=tfjs_layers_model")[0] == 0
    assert os.path.exists(out / "model.json")


def test_boolean_flags_take_false(tmp_path, src):
    out = tmp_path / "out"
    assert run(src, out, "--output_format=tfjs_layers_model", "--split_weights_by_layer=False")[0] == 0
    assert len(load(out)["weightsManifest"]) == 1
    assert run(src, out, "--output_format=tfjs_layers_model", "--split_weights_by_layer", "true")[0] == 0
    assert [len(g["weights"]) for g in load(out)["weightsManifest"]] == [2, 2]
    assert run(src, out, "--split_weights_by_layer", "--output_format=tfjs_layers_model")[0] == 0
    assert [g["paths"] for g in load(out)["weightsManifest"]] == [["group1-shard1of1.bin"],
                                                                   ["group2-shard1of1.bin"]]


def test_reshard_of_quantized_model_is_lossless(tmp_path):
    src = make_layers_model(tmp_path / "q", quantized=True)
    out = tmp_path / "out"
    assert run(src, out, "--output_format=tfjs_layers_model", "--weight_shard_size_bytes=7")[0] == 0
    a, b = load(src)["weightsManifest"][0], load(out)["weightsManifest"][0]
    assert a["weights"] == b["weights"]
    cat = lambda d, g: b"".join((d / p).read_bytes() for p in g["paths"])  # noqa: E731
    assert cat(tmp_path / "q", a) == cat(out, b)


def test_metadata_is_added_and_kept(tmp_path, src):
    (tmp_path / "labels.json").write_text('["cat", "dog"]')
    out, out2 = tmp_path / "out", tmp_path / "out2"
    assert run(src, out, "--output_format=tfjs_layers_model",
               "--metadata", "labels:%s" % (tmp_path / "labels.json"))[0] == 0
    assert load(out)["userDefinedMetadata"] == {"labels": ["cat", "dog"]}
    assert run(out, out2, "--output_format=tfjs_layers_model")[0] == 0
    assert load(out2)["userDefinedMetadata"] == {"labels": ["cat", "dog"]}


def test_metadata_windows_path_parses():
    assert cli.parse_metadata(r"labels:C:\models\labels.json,v:d.json") == (
        ("labels", r"C:\models\labels.json"), ("v", "d.json"))


def test_input_format_is_detected_and_output_inferred(tmp_path, src):
    out = tmp_path / "model.h5"
    code, stdout, stderr = run(src, out)  # tfjs_layers_model -> keras (HDF5) by default
    assert (code, stderr) == (0, "") and "(keras, 4 weights in 1 group)" in stdout
    assert out.read_bytes()[:8] == b"\x89HDF\r\n\x1a\n"


def test_version():
    code, stdout, _ = run("--version")
    assert code == 0 and stdout.startswith("tfjs_converter 0.1.0 (numpy ")


# --- bad input: one line, exit code, previous output untouched -----------------------------

def _prepare_output(tmp_path, src):
    out = tmp_path / "out"
    assert run(src, out, "--output_format=tfjs_layers_model")[0] == 0
    return out, tree_digest(out)


def _assert_failed(tmp_path, out, digest, code, stderr, want_code, want_message):
    assert code == want_code
    assert stderr.count("\n") == 1 and "Traceback" not in stderr
    assert stderr == "tfjs_converter: error: %s\n" % want_message.replace("TMP", str(tmp_path))
    assert tree_digest(out) == digest
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".")]  # no temp dirs left


def test_bad_model_json_cases(tmp_path, src):
    out, digest = _prepare_output(tmp_path, src)
    bad = tmp_path / "bad"
    bad.mkdir()
    cases = [
        (None, "TMP/bad/model.json: no such file"),
        ("{oops", "TMP/bad/model.json: not valid JSON (Expecting property name enclosed in double "
                  "quotes: line 1 column 2 (char 1))"),
        (json.dumps({"format": "layers-model", "weightsManifest": []}),
         "TMP/bad/model.json: missing key 'modelTopology'"),
        (json.dumps({"format": "layers-model", "modelTopology": None}),
         "TMP/bad/model.json: missing key 'weightsManifest'"),
    ]
    for content, message in cases:
        if content is not None:
            (bad / "model.json").write_text(content)
        code, _, stderr = run("--input_format=tfjs_layers_model", "--output_format=tfjs_layers_model",
                              bad, out)
        _assert_failed(tmp_path, out, digest, code, stderr, 1, message)


def test_bad_shards(tmp_path, src):
    out, digest = _prepare_output(tmp_path, src)
    broken = make_layers_model(tmp_path / "broken", shard_size=40)
    os.unlink(os.path.join(broken, "group1-shard3of3.bin"))
    code, _, stderr = run(broken, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1,
                   "TMP/broken/model.json: shard file TMP/broken/group1-shard3of3.bin is missing")
    with open(os.path.join(broken, "group1-shard3of3.bin"), "wb") as f:
        f.write(b"\0" * 23)
    code, _, stderr = run(broken, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1,
                   "TMP/broken/model.json: the weights dense/kernel, dense/bias, dense_1/kernel and 1 "
                   "more need 104 bytes but the shards group1-shard1of3.bin, group1-shard2of3.bin, "
                   "group1-shard3of3.bin hold 103 bytes")
    doc = load(broken)
    doc["weightsManifest"][0]["paths"][2] = "../src/group1-shard1of1.bin"
    with open(os.path.join(broken, "model.json"), "w") as f:
        json.dump(doc, f)
    code, _, stderr = run(broken, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1,
                   "TMP/broken/model.json: shard path '../src/group1-shard1of1.bin' escapes the model "
                   "directory TMP/broken")


def test_usage_errors_exit_2(tmp_path, src):
    out, digest = _prepare_output(tmp_path, src)
    cases = [
        (["--output_format=savedmodel"], "argument --output_format: invalid choice: "
         "'savedmodel' (choose from 'tfjs_layers_model', 'tfjs_graph_model', 'keras', "
         "'keras_keras', 'keras_saved_model', 'tf_saved_model', 'tflite', 'onnx')"),
        (["--output_format=tfjs_layers_model", "--weight_shard_size_bytes=0"],
         "argument --weight_shard_size_bytes: want a positive integer, got '0'"),
        (["--output_format=tfjs_layers_model", "--signature_name=x"],
         "--signature_name applies only with --input_format tf_saved_model or tf_hub (converting "
         "tfjs_layers_model to tfjs_layers_model)"),
        (["--input_format=tf_frozen_model", "--output_format=keras"], "converting "
         "tf_frozen_model to keras is not supported yet; supported pairs: "
         + ", ".join("%s->%s" % p for p in api.supported_pairs())),
        (["--output_format=tfjs_layers_model", "--quantize_float16", "--quantize_uint8"],
         "only one quantization flag may be given without patterns, got --quantize_float16 and "
         "--quantize_uint8; give the others explicit patterns"),
        (["--output_format=tfjs_layers_model", "--control_flow_v2=maybe"],
         "argument --control_flow_v2: want true or false, got 'maybe'"),
    ]
    for extra, message in cases:
        code, _, stderr = run(src, out, *extra)
        _assert_failed(tmp_path, out, digest, code, stderr, 2, message)


def test_refuses_to_replace_a_foreign_directory(tmp_path, src):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    code, _, stderr = run(src, home, "--output_format=tfjs_layers_model")
    assert code == 2 and "holds files that are not part of a TF.js model (thesis.tex)" in stderr
    assert (home / "thesis.tex").read_text() == "precious"


def test_debug_flag_prints_traceback(tmp_path):
    code, _, stderr = run(tmp_path / "nope", tmp_path / "out", "--debug")
    assert code == 1 and "Traceback" in stderr and stderr.endswith(
        "tfjs_converter: error: %s: no such file or directory\n" % (tmp_path / "nope"))
