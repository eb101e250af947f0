"""Bad Keras input through the CLI: one line naming the file, exit 1, previous output untouched."""

import json
import os

import h5py
import numpy as np
import pytest

from test_cli import _assert_failed, make_layers_model, run, tree_digest


def _copy(src, dst):
    dst.write_bytes(src.read_bytes())
    return dst


def _fails(tmp_path, previous, src, message, *flags):
    out, digest = previous
    code, _, stderr = run(src, out, "--output_format=tfjs_layers_model", *flags)
    _assert_failed(tmp_path, out, digest, code, stderr, 1, message)


def test_truncated_h5(tmp_path, previous, good_h5):
    bad = tmp_path / "trunc.h5"
    bad.write_bytes(good_h5.read_bytes()[:3000])
    out, digest = previous
    code, _, stderr = run(bad, out, "--output_format=tfjs_layers_model")
    assert code == 1 and stderr.startswith("tfjs_converter: error: %s: " % bad)
    _assert_failed(tmp_path, out, digest, code, stderr, 1, stderr[len("tfjs_converter: error: "):-1])
    assert "truncated" in stderr or "corrupt" in stderr


def test_corrupt_h5_is_not_detected_as_a_model(tmp_path, previous):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"\0garbage" * 100)
    _fails(tmp_path, previous, bad, "%s: not an HDF5 file, .keras archive, model.json or .pb; pass "
           "--input_format" % bad)


def test_h5_that_is_not_keras(tmp_path, previous):
    bad = tmp_path / "data.h5"
    with h5py.File(bad, "w") as f:
        f["x"] = np.arange(3)
    out, digest = previous
    code, _, stderr = run(bad, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1, stderr[len("tfjs_converter: error: "):-1])
    assert stderr.startswith("tfjs_converter: error: %s: " % bad) and "not a Keras" in stderr


def test_unknown_layer_class(tmp_path, previous, good_h5):
    bad = _copy(good_h5, tmp_path / "unknown.h5")
    with h5py.File(bad, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][-1]["class_name"] = "NoSuchLayer"
        f.attrs["model_config"] = json.dumps(config)
    out, digest = previous
    code, _, stderr = run(bad, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1, stderr[len("tfjs_converter: error: "):-1])
    assert "%s" % bad in stderr and "'dense'" in stderr and "NoSuchLayer" in stderr


def test_int64_overflow(tmp_path, previous, good_h5):
    bad = _copy(good_h5, tmp_path / "int64.h5")
    with h5py.File(bad, "r+") as f:
        group = f["model_weights/dense/dense"]
        del group["bias:0"]
        group["bias:0"] = np.array([1, 2, 2 ** 40], dtype=np.int64)
    _fails(tmp_path, previous, bad, "weight 'dense/bias' in %s: int64 value 1099511627776 does not "
           "fit in int32 (TF.js has no 64-bit integers; range is [-2147483648, 2147483647])" % bad)


def test_unsupported_dtype_in_h5(tmp_path, previous, good_h5):
    bad = _copy(good_h5, tmp_path / "dtype.h5")
    with h5py.File(bad, "r+") as f:
        group = f["model_weights/dense/dense"]
        del group["bias:0"]
        group["bias:0"] = np.array([b"a", b"b", b"c"], dtype="S1").view("V1")
    out, digest = previous
    code, _, stderr = run(bad, out, "--output_format=tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1, stderr[len("tfjs_converter: error: "):-1])
    assert "%s: weight 'dense/bias' (shape [3], |V1): a layer weight must hold numbers" % bad \
        in stderr


def test_unsupported_dtype_in_manifest(tmp_path, previous):
    src = make_layers_model(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["weightsManifest"][0]["weights"][1]["dtype"] = "int64"
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    _fails(tmp_path, previous, src, "%s/model.json: weight 'dense/bias' has unsupported dtype 'int64'; "
           "want one of float32, int32, bool, complex64, string" % src)


def test_shape_times_dtype_not_matching_bytes(tmp_path, previous):
    src = make_layers_model(tmp_path / "m")
    doc = json.loads((tmp_path / "m" / "model.json").read_text())
    doc["weightsManifest"][0]["weights"][0]["shape"] = [3, 5]
    (tmp_path / "m" / "model.json").write_text(json.dumps(doc))
    _fails(tmp_path, previous, src, "%s/model.json: the weights dense/kernel, dense/bias, dense_1/kernel "
           "and 1 more need 116 bytes but the shards group1-shard1of1.bin hold 104 bytes" % src)


def test_failed_conversion_leaves_no_output_when_none_existed(tmp_path, good_h5):
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"\0" * 64)
    code, _, _ = run(bad, tmp_path / "new_out")
    assert code == 1 and not os.path.exists(tmp_path / "new_out")
    assert sorted(os.listdir(tmp_path)) == ["garbage.h5"]
