"""Byte-exact tests of the TF.js weights format: encodings, sharding, quantization, reader errors."""

import json
import os

import numpy as np
import pytest

from converter.errors import InvalidWeightsError, UsageError
from converter.model import Quantization, Tensor
from converter.weights import format as wf
from converter.weights import quantize, reader, writer


def _t(name, values, dtype=None):
    arr = np.array(values, dtype=dtype)
    logical, data = wf.to_logical(name, arr)
    return Tensor(name, data, logical)


def _write(tmp_path, tensors, shard_size=wf.DEFAULT_SHARD_SIZE_BYTES):
    manifest = writer.write_weight_groups([tensors], str(tmp_path), shard_size)
    files = {p: (tmp_path / p).read_bytes() for p in manifest[0]["paths"]}
    return manifest, files


@pytest.mark.parametrize("values,dtype,expected", [
    ([1.0, -2.0], np.float32, "0000803f000000c0"),
    ([1, -1], np.int32, "01000000ffffffff"),
    ([True, False, True], np.bool_, "010001"),
    ([1 + 2j], np.complex64, "0000803f00000040"),
    ([0.5], np.float64, "0000003f"),          # narrowed to float32
    ([1.0], np.float16, "0000803f"),          # widened to float32
    ([2 ** 31 - 1, -2 ** 31], np.int64, "ffffff7f00000080"),  # fits int32
    ([255], np.uint8, "ff000000"),            # widened to int32
])
def test_numeric_bytes(tmp_path, values, dtype, expected):
    manifest, files = _write(tmp_path, [_t("w", values, dtype)])
    assert files == {"group1-shard1of1.bin": bytes.fromhex(expected)}


def test_string_bytes(tmp_path):
    tensor = Tensor("s", np.array([b"a", b"", "\u00e9x".encode()], dtype=object), "string")
    manifest, files = _write(tmp_path, [tensor])
    assert files["group1-shard1of1.bin"] == bytes.fromhex("0100000061" "00000000" "03000000c3a978")
    assert manifest[0]["weights"] == [{"name": "s", "shape": [3], "dtype": "string"}]


def test_str_values_become_utf8_strings():
    logical, data = wf.to_logical("s", np.array(["\u00e9", "b"]))
    assert logical == "string" and list(data) == [b"\xc3\xa9", b"b"]


def test_sharding_cuts_across_tensor_boundaries(tmp_path):
    a = _t("a", [1.0, 2.0, 3.0], np.float32)   # 12 bytes
    b = _t("b", [7, 8], np.int32)               # 8 bytes
    manifest, files = _write(tmp_path, [a, b], shard_size=8)
    assert manifest == [{
        "paths": ["group1-shard1of3.bin", "group1-shard2of3.bin", "group1-shard3of3.bin"],
        "weights": [{"name": "a", "shape": [3], "dtype": "float32"},
                    {"name": "b", "shape": [2], "dtype": "int32"}]}]
    assert files == {
        "group1-shard1of3.bin": bytes.fromhex("0000803f00000040"),
        "group1-shard2of3.bin": bytes.fromhex("0000404007000000"),
        "group1-shard3of3.bin": bytes.fromhex("08000000"),
    }


def test_exact_multiple_makes_no_empty_shard(tmp_path):
    manifest, files = _write(tmp_path, [_t("a", [1.0, 2.0], np.float32)], shard_size=4)
    assert manifest[0]["paths"] == ["group1-shard1of2.bin", "group1-shard2of2.bin"]


def test_empty_group_has_no_files(tmp_path):
    manifest, files = _write(tmp_path, [_t("e", np.zeros((0, 3)), np.float32)])
    assert manifest[0]["paths"] == [] and files == {} and os.listdir(tmp_path) == []


def test_two_groups_numbered(tmp_path):
    groups = [[_t("a", [1.0], np.float32)], [_t("b", [2], np.int32)]]
    manifest = writer.write_weight_groups(groups, str(tmp_path))
    assert [g["paths"] for g in manifest] == [["group1-shard1of1.bin"], ["group2-shard1of1.bin"]]


def test_duplicate_names_rejected(tmp_path):
    with pytest.raises(InvalidWeightsError, match="two weights are named 'a'"):
        writer.write_weight_groups([[_t("a", [1.0])], [_t("a", [2.0])]], str(tmp_path))


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_bad_shard_size(tmp_path, size):
    with pytest.raises(UsageError, match="positive integer"):
        writer.write_weight_groups([[_t("a", [1.0])]], str(tmp_path), size)


# --- narrowing ------------------------------------------------------------------------------

def test_int64_overflow_is_an_error():
    with pytest.raises(InvalidWeightsError) as e:
        wf.to_logical("emb/ids", np.array([1, 2 ** 31], dtype=np.int64), where="m.h5")
    assert str(e.value) == ("weight 'emb/ids' in m.h5: int64 value 2147483648 does not fit in "
                            "int32 (TF.js has no 64-bit integers; range is [-2147483648, 2147483647])")


def test_float64_overflow_is_an_error():
    with pytest.raises(InvalidWeightsError, match=r"float64 value 1e\+39 overflows float32"):
        wf.to_logical("w", np.array([1e39]))


def test_complex128_narrows():
    logical, data = wf.to_logical("c", np.array([1 + 1j]))
    assert logical == "complex64" and data.dtype == np.complex64


def test_unsupported_dtype():
    with pytest.raises(InvalidWeightsError, match="dtype datetime64.* is not supported by TF.js"):
        wf.to_logical("d", np.array(["2020-01-01"], dtype="datetime64[D]"))


# --- quantization ----------------------------------------------------------------------------

def test_uint8_nudges_zero_and_rounds_half_to_even(tmp_path):
    # Range [-1, 0.9921875] has scale 1/128 exactly; zero point 128.
    data = np.array([-1.0, 0.0, 0.00390625, 0.01171875, 0.9921875], np.float32)
    q = quantize.quantize_tensor(Tensor("w", data, "float32"), "uint8")
    assert q.quantization == Quantization("uint8", -1.0, 0.0078125)
    manifest, files = _write(tmp_path, [q])
    # 0.5 steps -> 128 (even), 1.5 steps -> 130 (even).
    assert files["group1-shard1of1.bin"] == bytes([0, 128, 128, 130, 255])
    assert manifest[0]["weights"][0]["quantization"] == {
        "dtype": "uint8", "min": -1.0, "scale": 0.0078125, "original_dtype": "float32"}


def test_uint16_bytes(tmp_path):
    data = np.array([0.0, 1 / 2048, 3 / 2048, 65535 / 1024], np.float32)
    q = quantize.quantize_tensor(Tensor("w", data, "float32"), "uint16")
    assert q.quantization == Quantization("uint16", 0.0, 1 / 1024)
    _, files = _write(tmp_path, [q])
    assert files["group1-shard1of1.bin"] == bytes.fromhex("0000" "0000" "0200" "ffff")


def test_positive_range_is_not_nudged():
    q = quantize.quantize_tensor(Tensor("w", np.array([1.0, 3.0], np.float32), "float32"), "uint8")
    assert q.quantization == Quantization("uint8", 1.0, 2.0 / 255)
    assert q.data.tolist() == [0, 255]


def test_constant_tensor():
    q = quantize.quantize_tensor(Tensor("w", np.array([0.5, 0.5], np.float32), "float32"), "uint8")
    assert q.quantization == Quantization("uint8", 0.5, 1.0) and q.data.tolist() == [0, 0]


def test_float16_bytes(tmp_path):
    q = quantize.quantize_tensor(Tensor("w", np.array([1.0, -2.0, 65504.0], np.float32), "float32"),
                                 "float16")
    manifest, files = _write(tmp_path, [q])
    assert files["group1-shard1of1.bin"] == bytes.fromhex("003c00c0ff7b")
    assert manifest[0]["weights"][0]["quantization"] == {"dtype": "float16", "original_dtype": "float32"}


def test_float16_overflow_is_an_error():
    with pytest.raises(InvalidWeightsError, match="value 70000.0 overflows float16"):
        quantize.quantize_tensor(Tensor("w", np.array([70000.0], np.float32), "float32"), "float16")


def test_nan_cannot_be_affine_quantized():
    with pytest.raises(InvalidWeightsError, match="holds NaN or infinity"):
        quantize.quantize_tensor(Tensor("w", np.array([np.nan, 1.0], np.float32), "float32"), "uint8")


def test_dequantize_is_what_tfjs_computes():
    q = quantize.quantize_tensor(Tensor("w", np.array([-1.0, 0.0, 0.3], np.float32), "float32"), "uint8")
    back = quantize.dequantize_tensor(q)
    expected = (q.data.astype(np.float64) * q.quantization.scale + q.quantization.min).astype(np.float32)
    np.testing.assert_array_equal(back.data, expected)
    assert back.dtype == "float32" and back.quantization is None
    assert np.abs(back.data - [-1.0, 0.0, 0.3]).max() <= q.quantization.scale / 2 + 1e-7


def test_int32_dequantize_rounds_half_up_like_math_round():
    t = Tensor("i", np.array([1, 2], np.uint8), "int32", Quantization("uint8", 0.5, 1.0))
    assert quantize.dequantize_tensor(t).data.tolist() == [2, 3]


def test_only_float32_is_quantized():
    groups = [[_t("f", [1.0, 2.0], np.float32), _t("i", [1, 2], np.int32)]]
    out = quantize.quantize_groups(groups, {"uint8": None})
    assert out[0][0].quantization.dtype == "uint8" and out[0][1].quantization is None


def test_dtype_map_patterns_and_fallthrough():
    names = ["conv1/kernel", "conv1/bias", "dense/kernel"]
    assert quantize.resolve_dtype_map(names, {"float16": None, "uint8": ("conv*/kernel",)}) == {
        "conv1/kernel": "uint8", "conv1/bias": "float16", "dense/kernel": "float16"}
    assert quantize.resolve_dtype_map(names, {"uint16": ("*bias",)}) == {"conv1/bias": "uint16"}


def test_dtype_map_conflict():
    with pytest.raises(UsageError, match="weight 'conv1/kernel' matches the patterns of "
                                         "--quantize_float16 and --quantize_uint8"):
        quantize.resolve_dtype_map(["conv1/kernel"], {"uint8": ("conv*",), "float16": ("*kernel",)})


def test_two_fallthroughs():
    with pytest.raises(UsageError, match="only one quantization flag may be given without patterns"):
        quantize.resolve_dtype_map(["a"], {"uint8": None, "float16": None})


# --- reader -----------------------------------------------------------------------------------

def _model(tmp_path, tensors, shard_size=8):
    manifest = writer.write_weight_groups([tensors], str(tmp_path), shard_size)
    return manifest


def _read(tmp_path, manifest):
    return reader.read_weight_groups(manifest, str(tmp_path), str(tmp_path / "model.json"))


def test_round_trip_all_dtypes(tmp_path):
    tensors = [_t("f", [[1.5, -2.0]], np.float32), _t("i", [3, -4], np.int32),
               _t("b", [True, False], np.bool_), _t("c", [1 - 1j], np.complex64),
               Tensor("s", np.array([b"xy", b""], dtype=object), "string"),
               quantize.quantize_tensor(_t("q", [0.0, 1.0], np.float32), "uint16"),
               quantize.quantize_tensor(_t("h", [0.5], np.float32), "float16")]
    groups = _read(tmp_path, _model(tmp_path, tensors, shard_size=5))
    for want, got in zip(tensors, groups[0]):
        assert (got.name, got.dtype, got.shape, got.quantization) == \
            (want.name, want.dtype, want.shape, want.quantization)
        assert got.data.tolist() == want.data.tolist()


def _error(tmp_path, manifest):
    with pytest.raises(InvalidWeightsError) as e:
        _read(tmp_path, manifest)
    return str(e.value).replace(str(tmp_path), "DIR")


def test_missing_shard(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0, 2.0, 3.0])])
    os.unlink(tmp_path / "group1-shard2of2.bin")
    assert _error(tmp_path, manifest) == \
        "DIR/model.json: shard file DIR/group1-shard2of2.bin is missing"


def test_shard_of_wrong_size(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0, 2.0, 3.0])])
    with open(tmp_path / "group1-shard2of2.bin", "ab") as f:
        f.write(b"\0")
    assert _error(tmp_path, manifest) == (
        "DIR/model.json: the weights a need 12 bytes but the shards group1-shard1of2.bin, "
        "group1-shard2of2.bin hold 13 bytes")


def test_shape_dtype_not_matching_bytes(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0, 2.0, 3.0])])
    manifest[0]["weights"][0]["shape"] = [4]
    assert "the weights a need 16 bytes but the shards" in _error(tmp_path, manifest)


@pytest.mark.parametrize("path,msg", [
    ("../evil.bin", "shard path '../evil.bin' escapes the model directory DIR"),
    ("/etc/passwd", "shard path '/etc/passwd' escapes the model directory DIR"),
    ("a/../../x.bin", "shard path 'a/../../x.bin' escapes the model directory DIR"),
])
def test_path_escaping_model_dir(tmp_path, path, msg):
    manifest = _model(tmp_path, [_t("a", [1.0])])
    manifest[0]["paths"] = [path]
    assert _error(tmp_path, manifest) == "DIR/model.json: " + msg


def test_symlink_escaping_model_dir(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    manifest = _model(model, [_t("a", [1.0])])
    (tmp_path / "outside.bin").write_bytes(b"\0\0\0\0")
    os.unlink(model / "group1-shard1of1.bin")
    os.symlink(tmp_path / "outside.bin", model / "group1-shard1of1.bin")
    with pytest.raises(InvalidWeightsError, match="resolves to .*outside.bin, outside the model"):
        reader.read_weight_groups(manifest, str(model), "model.json")


def test_unsupported_dtype_in_manifest(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0])])
    manifest[0]["weights"][0]["dtype"] = "float64"
    assert _error(tmp_path, manifest) == ("DIR/model.json: weight 'a' has unsupported dtype "
                                          "'float64'; want one of float32, int32, bool, complex64, string")


@pytest.mark.parametrize("spec,msg", [
    ({"dtype": "int4"}, "has quantization {'dtype': 'int4'}; want a dtype of uint8, uint16, float16"),
    ({"dtype": "uint8", "min": 0.0}, "is uint8-quantized but its 'scale' is None; want a finite number"),
    ({"dtype": "uint8", "min": 0.0, "scale": float("inf")}, "its 'scale' is inf"),
])
def test_bad_quantization_spec(tmp_path, spec, msg):
    manifest = _model(tmp_path, [_t("a", [1.0])])
    manifest[0]["weights"][0]["quantization"] = spec
    assert msg in _error(tmp_path, manifest)


def test_bad_shape_and_duplicates(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0])])
    manifest[0]["weights"][0]["shape"] = [-1]
    assert "weight 'a' has shape [-1]; want a list of non-negative integers" in _error(tmp_path, manifest)
    manifest[0]["weights"] = [{"name": "a", "shape": [], "dtype": "float32"}] * 2
    assert "weight 'a' is listed twice" in _error(tmp_path, manifest)


def test_huge_shape_fails_before_allocating(tmp_path):
    manifest = _model(tmp_path, [_t("a", [1.0])])
    manifest[0]["weights"][0]["shape"] = [2 ** 40, 2 ** 40]
    assert "need 4835703278458516698824704 bytes but the shards group1-shard1of1.bin hold 4 bytes" \
        in _error(tmp_path, manifest)


def test_string_running_past_the_end(tmp_path):
    manifest = _model(tmp_path, [Tensor("s", np.array([b"abc"], dtype=object), "string")])
    (tmp_path / "group1-shard1of1.bin").write_bytes(bytes.fromhex("0900000061"))
    assert "string weight 's' has an element of 9 bytes running past the end" in _error(tmp_path, manifest)


def test_manifest_structure(tmp_path):
    assert "weightsManifest is a dict; want a list of groups" in _error(tmp_path, {})
    assert "weightsManifest[0] must be an object with lists 'paths' and 'weights'" in \
        _error(tmp_path, [{"paths": []}])


def test_model_json_errors(tmp_path):
    from converter.errors import InvalidModelError
    with pytest.raises(InvalidModelError, match="model.json: no such file"):
        reader.read_model_json(str(tmp_path))
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(InvalidModelError, match="model.json: not valid JSON"):
        reader.read_model_json(str(tmp_path))
    (tmp_path / "model.json").write_text(json.dumps([1]))
    with pytest.raises(InvalidModelError, match="top level is a list; want a JSON object"):
        reader.read_model_json(str(tmp_path))
