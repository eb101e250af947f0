"""Hostile quantization specs and values: one-line errors, never tracebacks or garbage.

A ``weightsManifest`` quantization block (``{"dtype", "min", "scale",
"original_dtype"}``) comes from an untrusted model.json: types, finiteness, a
positive scale and the dequantized range (no float32 infinity, no int32
wrap-around) are checked before anything is allocated; the quantizer refuses
what it could not write faithfully. The reader and (de)quantizer are tested in
process; a few CLI runs check the one line on stderr and the untouched output.
"""

import json
import os
import warnings

import numpy as np
import pytest

from converter import cli
from converter.errors import InvalidWeightsError
from converter.model import Quantization, Tensor
from converter.weights import quantize, reader, writer
from test_cli import _assert_failed, make_layers_model, run, tree_digest

F32_MAX = float(np.finfo(np.float32).max)
# The float64 midpoint between float32's max and 2**128: it and above round to inf.
F32_OVERFLOW = 2.0 ** 128 - 2.0 ** 103
SENTINEL = "@@raw@@"
KERNEL = "dense/kernel"


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # A RuntimeWarning ("overflow encountered") is how garbage used to slip through.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _hostile(directory, raw, weight=0, dtype=None):
    """A uint8-quantized layers model whose first weight's quantization fields get the
    raw JSON texts in ``raw`` (``None`` deletes a field); returns model.json's path."""
    make_layers_model(directory, quantized=True)
    path = os.path.join(str(directory), "model.json")
    with open(path) as f:
        doc = json.load(f)
    spec = doc["weightsManifest"][0]["weights"][weight]
    if dtype is not None:
        spec["dtype"] = dtype
    texts = []
    for key, text in raw.items():
        if text is None:
            spec["quantization"].pop(key, None)
        else:
            spec["quantization"][key] = "%s%d" % (SENTINEL, len(texts))
            texts.append(text)
    out = json.dumps(doc)
    for i, text in enumerate(texts):
        out = out.replace('"%s%d"' % (SENTINEL, i), text)
    with open(path, "w") as f:
        f.write(out)
    return path


def _read_error(path):
    doc = reader.read_model_json(path)
    with pytest.raises(InvalidWeightsError) as e:
        reader.read_weight_groups(doc["weightsManifest"], os.path.dirname(path), path)
    return str(e.value)


_NOT_FINITE = "is uint8-quantized but its %r is %s; want a finite number"
_NOT_POSITIVE = ("is uint8-quantized but its 'scale' is %s; want a positive number (TF.js "
                 "quantizers write one; 1 for a constant tensor)")
_OVERFLOWS = ("is uint8-quantized with min %s and scale %s, which dequantizes to %s at q = %d "
              "(q * scale + min), beyond the float32 range +-3.4028234663852886e+38")
_BAD_DTYPE = "has quantization %s; want a dtype of uint8, uint16, float16"
_BAD_ORIGINAL = ("has dtype float32 but its quantization's 'original_dtype' is %s; "
                 "want 'float32' (or none)")
_MIN = repr(-1.2695965205921846)  # what make_layers_model's quantizer writes for dense/kernel


@pytest.mark.parametrize("raw,message", [
    # Numbers beyond float's range: JSON 1e400 parses to inf, a long integer overflows float().
    ({"scale": "1e400"}, _NOT_FINITE % ("scale", "inf")),
    ({"min": "-1e400"}, _NOT_FINITE % ("min", "-inf")),
    ({"scale": "1" + "0" * 400}, _NOT_FINITE % ("scale", "1" + "0" * 56 + "...")),
    ({"min": "-" + "9" * 400}, _NOT_FINITE % ("min", "-" + "9" * 56 + "...")),
    # Python's json accepts these literals.
    ({"scale": "NaN"}, _NOT_FINITE % ("scale", "nan")),
    ({"scale": "Infinity"}, _NOT_FINITE % ("scale", "inf")),
    ({"min": "-Infinity"}, _NOT_FINITE % ("min", "-inf")),
    # Not numbers.
    ({"scale": '"0.01"'}, _NOT_FINITE % ("scale", "'0.01'")),
    ({"scale": "true"}, _NOT_FINITE % ("scale", "True")),
    ({"min": "false"}, _NOT_FINITE % ("min", "False")),
    ({"scale": "null"}, _NOT_FINITE % ("scale", "None")),
    ({"scale": None}, _NOT_FINITE % ("scale", "None")),
    ({"min": "[0.5]"}, _NOT_FINITE % ("min", "[0.5]")),
    ({"scale": '{"v": 1}'}, _NOT_FINITE % ("scale", "{'v': 1}")),
    # A scale no quantizer writes.
    ({"scale": "-0.01"}, _NOT_POSITIVE % "-0.01"),
    ({"scale": "0"}, _NOT_POSITIVE % "0.0"),
    ({"scale": "-0.0"}, _NOT_POSITIVE % "-0.0"),
    # Finite numbers whose dequantized values overflow float32 (used to write inf into .h5).
    ({"scale": "1e308"}, _OVERFLOWS % (_MIN, "1e+308", "inf", 255)),
    ({"scale": "1e37"}, _OVERFLOWS % (_MIN, "1e+37", "2.55e+39", 255)),
    ({"min": "-3.5e38"}, _OVERFLOWS % ("-3.5e+38", repr(0.010076162861842736), "-3.5e+38", 0)),
    ({"min": "1e300", "scale": "1"}, _OVERFLOWS % ("1e+300", "1.0", "1e+300", 0)),
    # dtype: unhashable values used to raise TypeError.
    ({"dtype": '["uint8"]'}, _BAD_DTYPE % "{'dtype': ['uint8'], ...}"),
    ({"dtype": '{"uint8": 1}'}, _BAD_DTYPE % "{'dtype': {'uint8': 1}, ...}"),
    ({"dtype": "8"}, _BAD_DTYPE % "{'dtype': 8, ...}"),
    ({"dtype": "null"}, _BAD_DTYPE % "{'dtype': None, ...}"),
    ({"dtype": '"int8"'}, _BAD_DTYPE % "{'dtype': 'int8', ...}"),
    ({"dtype": '"' + "u" * 200 + '"'}, _BAD_DTYPE % ("{'dtype': '" + "u" * 56 + "..., ...}")),
    # original_dtype: must name the weight's dtype when given.
    ({"original_dtype": '["float32"]'}, _BAD_ORIGINAL % "['float32']"),
    ({"original_dtype": '{"float32": 1}'}, _BAD_ORIGINAL % "{'float32': 1}"),
    ({"original_dtype": '"int32"'}, _BAD_ORIGINAL % "'int32'"),
    ({"original_dtype": "32"}, _BAD_ORIGINAL % "32"),
])
def test_hostile_spec_is_one_error_naming_file_and_weight(tmp_path, raw, message):
    path = _hostile(tmp_path / "m", raw)
    assert _read_error(path) == "%s: weight %r %s" % (path, KERNEL, message)


@pytest.mark.parametrize("quantization,message", [
    ('[1, 2]', _BAD_DTYPE % "[1, 2]"),
    ('"uint8"', _BAD_DTYPE % "'uint8'"),
    ('{}', _BAD_DTYPE % "{}"),
])
def test_quantization_that_is_not_an_object(tmp_path, quantization, message):
    path = _hostile(tmp_path / "m", {})
    with open(path) as f:
        doc = json.load(f)
    doc["weightsManifest"][0]["weights"][0]["quantization"] = SENTINEL
    with open(path, "w") as f:
        f.write(json.dumps(doc).replace('"%s"' % SENTINEL, quantization))
    assert _read_error(path) == "%s: weight %r %s" % (path, KERNEL, message)


def test_original_dtype_matching_or_absent_is_accepted(tmp_path):
    for i, raw in enumerate(({"original_dtype": '"float32"'}, {"original_dtype": None},
                             {"original_dtype": "null"})):
        path = _hostile(tmp_path / str(i), raw)
        doc = reader.read_model_json(path)
        groups = reader.read_weight_groups(doc["weightsManifest"], os.path.dirname(path), path)
        assert groups[0][0].quantization.dtype == "uint8"


def test_null_quantization_of_a_string_weight_is_unquantized(tmp_path):
    # "quantization": null used to send the string weight down the fixed-width path (KeyError).
    manifest = writer.write_weight_groups(
        [[Tensor("s", np.array([b"ab"], dtype=object), "string")]], str(tmp_path))
    manifest[0]["weights"][0]["quantization"] = None
    groups = reader.read_weight_groups(manifest, str(tmp_path), "model.json")
    assert groups[0][0].data.tolist() == [b"ab"]


# --- int32 weights: Math.round(q * scale + min) must fit int32 (TF.js's Int32Array wraps) ---

def _int32_manifest(tmp_path, quantization):
    t = Tensor("i", np.array([0, 1, 255], np.uint8), "int32", Quantization("uint8", 0.0, 1.0))
    manifest = writer.write_weight_groups([[t]], str(tmp_path))
    manifest[0]["weights"][0]["quantization"].update(quantization)
    return manifest


_INT32_OUT = ("model.json: weight 'i' is uint8-quantized with min %s and scale %s, which "
              "dequantizes to %s at q = %d (Math.round of q * scale + min), outside the int32 "
              "range [-2147483648, 2147483647]")


@pytest.mark.parametrize("quantization,message", [
    ({"scale": 1e12}, _INT32_OUT % ("0.0", "1000000000000.0", "255000000000000", 255)),
    ({"scale": 1e308}, _INT32_OUT % ("0.0", "1e+308", "inf", 255)),
    ({"min": -2147483648.6}, _INT32_OUT % ("-2147483648.6", "1.0", "-2147483649", 0)),
    ({"min": 2147483392.5}, _INT32_OUT % ("2147483392.5", "1.0", "2147483648", 255)),
    ({"original_dtype": "float32"},
     "model.json: weight 'i' has dtype int32 but its quantization's 'original_dtype' is "
     "'float32'; want 'int32' (or none)"),
    ({"dtype": "float16"}, "model.json: weight 'i' is float16-quantized but its dtype is int32; "
                           "want float32"),
])
def test_int32_out_of_range_is_refused_before_reading(tmp_path, quantization, message):
    manifest = _int32_manifest(tmp_path, quantization)
    with pytest.raises(InvalidWeightsError) as e:
        reader.read_weight_groups(manifest, str(tmp_path), "model.json")
    assert str(e.value) == message


def test_int32_at_the_edges_of_its_range_is_read_exactly(tmp_path):
    manifest = _int32_manifest(tmp_path, {"min": -2147483648.5, "scale": (2 ** 32 - 1) / 255})
    tensor = reader.read_weight_groups(manifest, str(tmp_path), "model.json")[0][0]
    # Math.round rounds half up: -2147483648.5 -> -2147483648, -2130640639.5 -> -2130640639,
    # and the top, 2147483646.5 -> 2147483647.
    back = quantize.dequantize_tensor(tensor).data
    assert back.tolist() == [-2147483648, -2130640639, 2147483647]


# --- range_problem: the analytic check both sides share ---------------------------------------

@pytest.mark.parametrize("dtype,qmin,scale,fits", [
    ("float32", F32_MAX, 1e-300, True),           # q * scale vanishes next to min
    ("float32", -F32_MAX, 1e-300, True),
    ("float32", np.nextafter(F32_OVERFLOW, 0), 1e-300, True),  # rounds down to float32 max
    ("float32", F32_OVERFLOW, 1e-300, False),     # rounds (ties to even) up to inf
    ("float32", -F32_OVERFLOW, 1e-300, False),
    ("float32", 0.0, F32_MAX / 255, True),
    ("float32", 0.0, F32_MAX / 254, False),
    ("float32", F32_MAX, -F32_MAX / 127.5, True),  # a negative scale is checked at both ends too
    ("float32", 0.0, float("inf"), False),
    ("float32", float("nan"), 1.0, False),
    ("int32", -2147483648.5, 1.0, True),
    ("int32", -2147483648.50001, 1.0, False),
    ("int32", 2147483647.0 - 255, 1.0, True),
    ("int32", 2147483647.5 - 255, 1.0, False),
    ("int32", 0.0, -1e10, False),
])
def test_range_problem(dtype, qmin, scale, fits):
    problem = quantize.range_problem(dtype, Quantization("uint8", float(qmin), scale))
    assert (problem is None) == fits, problem


def test_range_problem_of_values_that_are_not_numbers():
    assert quantize.range_problem("float32", Quantization("uint16", 10 ** 400, 1.0)) == \
        "min %r and scale 1.0 are not numbers" % 10 ** 400
    assert quantize.range_problem("float32", Quantization("uint16", None, 1.0)) == \
        "min None and scale 1.0 are not numbers"


# --- dequantize_tensor: refuses, never computes garbage ---------------------------------------

def test_dequantize_refuses_overflow_before_computing():
    t = Tensor("w", np.array([0, 255], np.uint8), "float32", Quantization("uint8", -1.0, 1e308))
    with pytest.raises(InvalidWeightsError) as e:
        quantize.dequantize_tensor(t, "m/model.json")
    assert str(e.value) == (
        "weight 'w' in m/model.json is uint8-quantized with min -1.0 and scale 1e+308, which "
        "dequantizes to inf at q = 255 (q * scale + min), beyond the float32 range "
        "+-3.4028234663852886e+38")


def test_dequantize_refuses_int32_wrap_around():
    t = Tensor("i", np.array([3], np.uint16), "int32", Quantization("uint16", 0.0, 1e9))
    with pytest.raises(InvalidWeightsError, match=r"^weight 'i' is uint16-quantized with min 0.0 "
                       r"and scale 1000000000.0, which dequantizes to 65535000000000 at q = 65535"):
        quantize.dequantize_tensor(t)


def test_dequantize_guards_the_computed_values():
    # Stored values beyond qmax exist only in memory (a shard holds uint8/uint16); the
    # analytic check passes, the values would still overflow: the guard catches them.
    t = Tensor("w", np.array([[1, 2], [3, 2 ** 40]], np.int64), "float32",
               Quantization("uint8", 0.0, 1e28))
    with pytest.raises(InvalidWeightsError) as e:
        quantize.dequantize_tensor(t, "x.json")
    assert str(e.value) == ("weight 'w' in x.json: stored value 1099511627776 at index [1, 1] "
                            "dequantizes to inf, which does not fit float32")
    t = Tensor("i", np.array([2 ** 31], np.int64), "int32", Quantization("uint8", 0.0, 1.0))
    with pytest.raises(InvalidWeightsError, match=r"stored value 2147483648 at index \[0\] "
                       r"dequantizes to 2147483648.0, which does not fit int32"):
        quantize.dequantize_tensor(t)


def test_dequantize_refuses_a_mismatched_dtype():
    with pytest.raises(InvalidWeightsError, match="weight 'b' is uint8-quantized but its dtype is "
                                                  "bool; want float32 or int32"):
        quantize.dequantize_tensor(Tensor("b", np.zeros(1, np.uint8), "bool",
                                          Quantization("uint8", 0.0, 1.0)))


def test_float16_infinities_are_exact_and_kept():
    # Unlike affine garbage, a stored half infinity or NaN is the value the source held.
    data = np.array([np.inf, -np.inf, np.nan, 65504.0], np.float32)
    q = quantize.quantize_tensor(Tensor("h", data, "float32"), "float16")
    back = quantize.dequantize_tensor(q).data
    assert back.dtype == np.float32 and back[:2].tolist() == [np.inf, -np.inf]
    assert np.isnan(back[2]) and back[3] == 65504.0


# --- quantize_tensor: refuses what it cannot write faithfully ---------------------------------

@pytest.mark.parametrize("dtype,lo,qmin,qscale", [
    ("uint8", -F32_MAX, -3.416167872135819e+38, 2.6688811501061087e+36),
    ("uint16", -F32_MAX, -3.402875390143073e+38, 1.0384751556833108e+34),
])
def test_zero_nudge_beyond_float32_is_an_error(dtype, lo, qmin, qscale):
    # [-max, max]: making 0 exact moves min below -max; TF.js would decode -inf.
    data = np.array([lo, F32_MAX], np.float32)
    with pytest.raises(InvalidWeightsError) as e:
        quantize.quantize_tensor(Tensor("w", data, "float32"), dtype, "in.h5")
    assert str(e.value) == (
        "weight 'w' in in.h5: its range [%r, %r] cannot be quantized to %s: the zero-exact affine "
        "range (min %r, scale %r) dequantizes to %r at q = 0 (q * scale + min), beyond the float32 "
        "range +-3.4028234663852886e+38; exclude it from --quantize_%s"
        % (lo, F32_MAX, dtype, qmin, qscale, qmin, dtype))


@pytest.mark.parametrize("values", [
    [0.0, F32_MAX], [-F32_MAX, 0.0], [-F32_MAX, -F32_MAX], [F32_MAX / 2, F32_MAX],
    [-3e38, 3e38], [0.0, 1e-45], [1e30, 1e30 * (1 + 2 ** -22)],
])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_extreme_ranges_round_trip_through_the_reader(tmp_path, values, dtype):
    data = np.array(values, np.float32)
    q = quantize.quantize_tensor(Tensor("w", data, "float32"), dtype)
    manifest = writer.write_weight_groups([[q]], str(tmp_path))
    read = reader.read_weight_groups(manifest, str(tmp_path), "model.json")[0][0]
    back = quantize.dequantize_tensor(read).data
    assert np.isfinite(back).all()
    assert np.all(np.abs(back.astype(np.float64) - data) <= q.quantization.scale * 1.000001)
    assert int(q.data.max()) <= {"uint8": 255, "uint16": 65535}[dtype]


@pytest.mark.parametrize("values,message", [
    ([1.0, 70000.0], "weight 'w' in in.h5: value 70000.0 overflows float16 (max 65504); exclude it "
                     "from --quantize_float16"),
    ([-65520.0], "weight 'w' in in.h5: value -65520.0 overflows float16 (max 65504); exclude it "
                 "from --quantize_float16"),
    ([F32_MAX], "weight 'w' in in.h5: value %r overflows float16 (max 65504); exclude it from "
                "--quantize_float16" % F32_MAX),
])
def test_float16_overflow_is_an_error_naming_the_weight(values, message):
    with pytest.raises(InvalidWeightsError) as e:
        quantize.quantize_tensor(Tensor("w", np.array(values, np.float32), "float32"), "float16",
                                 "in.h5")
    assert str(e.value) == message


def test_float16_just_below_the_rounding_edge_is_max():
    # 65519.99 rounds to 65504 (the largest half); 65520 rounds to inf (tested above).
    tensor = Tensor("w", np.array([65519.99], np.float32), "float32")
    q = quantize.quantize_tensor(tensor, "float16")
    assert q.data.tolist() == [65504.0]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
def test_affine_refuses_nan_and_infinity(bad, dtype):
    with pytest.raises(InvalidWeightsError) as e:
        quantize.quantize_tensor(Tensor("w", np.array([0.0, bad], np.float32), "float32"), dtype,
                                 "a")
    assert str(e.value) == ("weight 'w' in a holds NaN or infinity and cannot be quantized to %s; "
                            "exclude it from --quantize_%s" % (dtype, dtype))


# --- end to end -------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,fragment", [
    ({"scale": "1" + "0" * 400}, "its 'scale' is 1000"),
    ({"original_dtype": "{}"}, "its quantization's 'original_dtype' is {}"),
    ({"scale": "NaN"}, "its 'scale' is nan"),
    ({"scale": "-1"}, "its 'scale' is -1.0; want a positive number"),
    ({"scale": "1e37"}, "which dequantizes to 2.55e+39 at q = 255"),
])
@pytest.mark.parametrize("out_fmt", ["keras", "tfjs_layers_model"])
def test_cli_in_process(tmp_path, capsys, raw, fragment, out_fmt):
    path = _hostile(tmp_path / "m", raw)
    out = tmp_path / ("out.h5" if out_fmt == "keras" else "out")
    assert cli.main([path, str(out), "--output_format", out_fmt]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("tfjs_converter: error: %s: weight %r " % (path, KERNEL))
    assert fragment in captured.err and captured.err.count("\n") == 1
    assert not out.exists()


def test_cli_scale_beyond_float_writes_no_keras_file(tmp_path):
    path = _hostile(tmp_path / "m", {"scale": "1e400"})
    out = tmp_path / "out.h5"
    code, stdout, stderr = run(path, out, "--output_format", "keras")
    assert (code, stdout) == (1, "")
    assert stderr == "tfjs_converter: error: %s: weight 'dense/kernel' %s\n" % (
        path, _NOT_FINITE % ("scale", "inf"))
    assert not out.exists() and not [n for n in os.listdir(tmp_path) if n.startswith(".")]


def test_cli_overflowing_scale_keeps_the_previous_keras_file(tmp_path):
    # Before: exit 0, a RuntimeWarning, and inf written into the .h5.
    path = _hostile(tmp_path / "m", {"scale": "1e308"})
    out = tmp_path / "out.h5"
    out.write_bytes(b"previous output")
    code, stdout, stderr = run(path, out, "--output_format", "keras")
    assert (code, stdout) == (1, "")
    assert stderr == "tfjs_converter: error: %s: weight 'dense/kernel' %s\n" % (
        path, _OVERFLOWS % (_MIN, "1e+308", "inf", 255))
    assert out.read_bytes() == b"previous output"


def test_cli_unhashable_dtype_keeps_the_previous_tfjs_output(tmp_path):
    out = make_layers_model(tmp_path / "out")
    digest = tree_digest(out)
    path = _hostile(tmp_path / "m", {"dtype": '["uint8"]'})
    code, _, stderr = run(path, out, "--output_format", "tfjs_layers_model")
    _assert_failed(tmp_path, out, digest, code, stderr, 1,
                   "TMP/m/model.json: weight 'dense/kernel' "
                   + _BAD_DTYPE % "{'dtype': ['uint8'], ...}")


def test_cli_float16_overflow_keeps_the_previous_tfjs_output(tmp_path):
    src = make_layers_model(tmp_path / "big")
    with open(os.path.join(src, "group1-shard1of1.bin"), "r+b") as f:
        f.write(np.array([70000.0], "<f4").tobytes())  # dense/kernel[0, 0]
    out = make_layers_model(tmp_path / "out")
    digest = tree_digest(out)
    code, _, stderr = run(src, out, "--output_format", "tfjs_layers_model", "--quantize_float16")
    _assert_failed(tmp_path, out, digest, code, stderr, 1,
                   "weight 'dense/kernel' in TMP/big: value 70000.0 overflows float16 (max 65504); "
                   "exclude it from --quantize_float16")
