"""``tflite`` outputs: TF.js graph models, Keras files and SavedModels to ``.tflite``.

Parity against TF.js (tests/file_formats.py): the ``.tflite`` runs in
``ai_edge_litert``'s Interpreter and must match the original graph model's
TF.js 4.22 (cpu) outputs within 1e-4 abs + 1e-4 rel. Published models come
from tests/published_models (npm ci, see tests/test_graph_input_published.py).
Also: refusals (TF-kernel ops, dtypes, size) as one line with exit 1 and the
previous output intact, the dynamic-batch warning and ``--tflite_batch_size``,
``--quantize_float16``, and byte-reproducibility across runs and paths.
"""

import json
import pathlib
import shutil
import subprocess
import sys
from typing import Dict

import numpy as np
import pytest

import file_formats as ff
import test_graph_input_published as tp
import tfjs_node
import zoo
from converter import api, cli
from converter.errors import UnsupportedOpError
from converter.writers import tflite as wt
from test_graph_input_published import published_models  # noqa: F401  (fixture)

# Small cases the tests below use besides the parity ones.
ALWAYS = ("multi_io", "dict_outputs", "embedding_lstm-cfv2", "embedding_lstm-lowered",
          "hash_table", "while_cond-cfv2")


@pytest.fixture(scope="module")
def refs(request, tmp_path_factory) -> Dict[str, ff.Reference]:
    return ff.case_references(request, tmp_path_factory.mktemp("tflite_refs"), ALWAYS)


@pytest.fixture
def small(refs) -> ff.Reference:
    """multi_io: three inputs, two outputs, dynamic batch."""
    return refs["multi_io"]


_sha, _cli = ff.sha256, ff.run_cli


# -- parity with TF.js --------------------------------------------------------------------


@pytest.mark.parametrize("case", ff.case_params())
def test_graph_model_tflite_matches_tfjs(case, refs, tmp_path):
    ref = refs[case.id]
    out = tmp_path / "model.tflite"
    if case.tflite_refused is not None:
        with pytest.raises(UnsupportedOpError) as e:
            api.convert(str(ref.graph), str(out), output_format="tflite")
        assert str(e.value).startswith("%s: %s" % (ref.graph, case.tflite_refused)), str(e.value)
        assert not out.exists()
        print("%s: refused (known): %s" % (case.id, e.value))
        return
    api.convert(str(ref.graph), str(out), output_format="tflite")
    got = ff.run_tflite(out, ff.saved_model_inputs(ref.inputs))
    error = ff.compare("%s: .tflite (LiteRT) vs TF.js original" % case.id, got, ref.expected)
    print("%s: tflite max abs error %.3g (%d bytes)" % (case.id, error, out.stat().st_size))


@pytest.fixture(scope="module")
def published_refs(request, published_models, tmp_path_factory):  # noqa: F811
    return ff.published_references(request, published_models,
                                   tmp_path_factory.mktemp("tflite_published"))


@pytest.mark.parametrize("published", ff.published_params())
def test_published_graph_model_tflite_matches_tfjs(published, published_refs, tmp_path):
    ref = published_refs[published]
    out = tmp_path / "model.tflite"
    api.convert(str(ref.model_dir), str(out), output_format="tflite")
    error = ref.compare(".tflite (LiteRT) vs published model (TF.js)",
                        ff.run_tflite(out, ff.saved_model_inputs(ref.inputs)))
    print("%s: tflite max abs error %.3g (%d bytes)" % (published, error, out.stat().st_size))


@pytest.mark.parametrize("published", ["antispoof"])
def test_quantize_float16_keeps_float16_weights(published, published_refs, tmp_path):
    """A float16 graph model -> --quantize_float16 .tflite: float16 buffers, TF.js's outputs."""
    from tensorflow.lite.python import schema_py_generated as schema
    ref = published_refs[published]
    full, half = tmp_path / "f32.tflite", tmp_path / "f16.tflite"
    api.convert(str(ref.model_dir), str(full), output_format="tflite")
    api.convert(str(ref.model_dir), str(half), output_format="tflite", quantize_float16=())
    model = schema.Model.GetRootAsModel(half.read_bytes(), 0)
    graph = model.Subgraphs(0)
    types = [graph.Tensors(i).Type() for i in range(graph.TensorsLength())]
    f16 = types.count(schema.TensorType.FLOAT16)
    ops = {model.OperatorCodes(i).BuiltinCode() for i in range(model.OperatorCodesLength())}
    assert f16 >= 10 and schema.BuiltinOperator.DEQUANTIZE in ops, (f16, ops)
    # The weights are float16 in the published files too: same values, half the bytes.
    assert half.stat().st_size < 0.55 * full.stat().st_size, (half.stat().st_size,
                                                               full.stat().st_size)
    error = ref.compare("float16 .tflite vs TF.js",
                        ff.run_tflite(half, ff.saved_model_inputs(ref.inputs)))
    print("%s: float16 tflite %d float16 tensors, %d vs %d bytes, max abs error %.3g"
          % (published, f16, half.stat().st_size, full.stat().st_size, error))


def test_wrote_line_gives_bytes(small, tmp_path, capsys):
    """The CLI's summary of a .tflite (from a graph model and from a Keras file): its size,
    not TF.js weight counts (a Keras source has none to count)."""
    out = tmp_path / "m.tflite"
    model = zoo.build_model("mlp", 3)
    exported = zoo.export_models(model, "mlp", 3, tmp_path / "src")["keras3_h5"]
    for source in (small.graph, exported.path):
        capsys.readouterr()
        assert cli.main(["--output_format=tflite", str(source), str(out)]) == 0
        assert capsys.readouterr().out == "tfjs_converter: wrote %s (tflite, %d bytes)\n" % (
            out, out.stat().st_size)


def test_quantize_float16_takes_no_patterns(small, tmp_path):
    from converter.errors import UsageError
    with pytest.raises(UsageError) as e:
        api.convert(str(small.graph), str(tmp_path / "m.tflite"), output_format="tflite",
                    quantize_float16=("dense*",))
    assert str(e.value) == ("--quantize_float16 takes no weight patterns for a tflite output "
                            "(TFLite stores every float weight as float16 or none); got dense*, "
                            "give --quantize_float16 without a value")


# -- Keras and SavedModel sources -----------------------------------------------------------


@pytest.mark.parametrize("name,source_format", [("cnn_bn", "keras3_keras"),
                                                ("multi_io", "keras3_h5"),
                                                ("mlp", "keras2_h5")])
def test_keras_file_to_tflite_matches_keras(name, source_format, tmp_path):
    version = zoo.SOURCE_FORMATS[source_format][0]
    model = zoo.build_model(name, version)
    exported = zoo.export_models(model, name, version, tmp_path / "src")[source_format]
    out = tmp_path / "model.tflite"
    result = api.convert(str(exported.path), str(out), output_format="tflite")
    assert (result.input_format, result.output_format) == (exported.input_format, "tflite")
    in_keys, out_keys = wt.keras_signature_keys(model)
    got = ff.run_tflite(out, dict(zip(in_keys, exported.inputs)))
    error = ff.compare("%s %s: .tflite vs Keras" % (name, source_format), got,
                       dict(zip(out_keys, exported.expected)))
    print("%s %s -> tflite: max abs error vs Keras %.3g" % (name, source_format, error))


@pytest.mark.parametrize("source_format", ["keras3_keras", "keras2_h5"])
def test_keras_lstm_to_tflite_takes_the_batch(source_format, tmp_path, capsys):
    """A Keras LSTM file: refused without a batch (saying the batch would help); with
    --tflite_batch_size Keras traces the loop with static TensorList shapes: builtins."""
    version = zoo.SOURCE_FORMATS[source_format][0]
    model = zoo.build_model("embedding_lstm", version)
    exported = zoo.export_models(model, "embedding_lstm", version,
                                 tmp_path / "src")[source_format]
    out = tmp_path / "model.tflite"
    code, err = _cli(capsys, "--output_format=tflite", exported.path, out)
    assert code == 1 and err.count("\n") == 1, err
    assert ": cannot convert to TFLite: 1 op(s) need TensorFlow kernels, not TFLite builtins: " \
        "TensorListReserve (node " in err, err
    assert err.endswith("; or fix the batch (--tflite_batch_size, batch_size on tflite_model), "
                        "so that Keras traces RNN loops with static TensorList shapes (TFLite "
                        "builtins)\n"), err
    batch = exported.inputs[0].shape[0]
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=%d" % batch,
                     exported.path, out)
    assert (code, err) == (0, ""), err
    assert _flex_ops(out.read_bytes()) == []
    in_keys, out_keys = wt.keras_signature_keys(model)
    got = ff.run_tflite(out, dict(zip(in_keys, exported.inputs)))
    error = ff.compare("embedding_lstm %s batch %d: .tflite vs Keras" % (source_format, batch),
                       got, dict(zip(out_keys, exported.expected)))
    print("embedding_lstm %s -> tflite at batch %d: builtins, max abs error vs Keras %.3g"
          % (source_format, batch, error))


def test_saved_model_to_tflite_matches_tfjs(refs, tmp_path):
    """The SavedModel our graph model came from, converted directly."""
    ref = refs["dict_outputs"]
    source = ref.graph.parent / "dict_outputs"
    out = tmp_path / "model.tflite"
    result = api.convert(str(source), str(out), output_format="tflite")
    assert result.input_format == "tf_saved_model"
    got = ff.run_tflite(out, ff.saved_model_inputs(ref.inputs))
    error = ff.compare("SavedModel -> .tflite vs TF.js", got, ref.expected)
    print("dict_outputs SavedModel -> tflite: max abs error %.3g" % error)


# -- batch, warnings, refusals ---------------------------------------------------------------


def test_dynamic_batch_warns_and_batch_size_fixes_it(small, tmp_path, capsys):
    from ai_edge_litert.interpreter import Interpreter
    dynamic, fixed = tmp_path / "dynamic.tflite", tmp_path / "fixed.tflite"
    code, err = _cli(capsys, "--output_format=tflite", small.graph, dynamic)
    assert code == 0
    assert err == ("tfjs_converter: warning: %s keeps a dynamic batch on input(s) a [-1, 8], "
                   "b [-1, 8], c [-1, 4]; LiteRT.js refuses to feed a -1 dimension (from a "
                   "[1, ...] buffer too): convert with --tflite_batch_size=1 (or the batch you "
                   "run) for LiteRT.js\n" % dynamic)
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=3", small.graph, fixed)
    assert (code, err) == (0, "")
    runner = Interpreter(model_path=str(fixed)).get_signature_runner("serving_default")
    shapes = {k: (list(v["shape"]), list(v["shape_signature"]))
              for k, v in runner.get_input_details().items()}
    assert shapes == {"a": ([3, 8], [3, 8]), "b": ([3, 8], [3, 8]), "c": ([3, 4], [3, 4])}
    got = ff.run_tflite(fixed, ff.saved_model_inputs(small.inputs))
    error = ff.compare("multi_io batch 3: .tflite vs TF.js", got, small.expected)
    print("multi_io --tflite_batch_size=3: max abs error %.3g" % error)


def test_outputs_of_run_time_shape_warn(refs, tmp_path, capsys):
    """while_cond-cfv2: every input fixed, yet the loop's outputs keep a -1 dimension;
    LiteRT.js cannot allocate them (tests/test_tflite_litertjs.py's strict xfail), so the
    conversion says so. LiteRT's interpreter runs the model."""
    ref = refs["while_cond-cfv2"]
    batch = {v.shape[0] for v in ref.inputs.values() if v.ndim}.pop()
    out = tmp_path / "loop.tflite"
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=%d" % batch,
                     ref.graph, out)
    assert code == 0
    dynamic = wt.dynamic_outputs(out.read_bytes())
    assert dynamic and all(-1 in shape for _, shape in dynamic), dynamic
    assert not wt.dynamic_batch_inputs(out.read_bytes())
    assert err == ("tfjs_converter: warning: %s has output(s) %s whose shape is only known at "
                   "run time (every input is fixed); LiteRT.js cannot allocate them and fails "
                   "when run; LiteRT (ai-edge-litert) runs it\n"
                   % (out, ", ".join("%s %s" % (k, s) for k, s in dynamic)))
    got = ff.run_tflite(out, ff.saved_model_inputs(ref.inputs))
    ff.compare("while_cond-cfv2 batch %d: .tflite vs TF.js" % batch, got, ref.expected)
    print("while_cond-cfv2: dynamic outputs %s" % dynamic)


def test_batch_size_that_contradicts_a_fixed_batch(tmp_path, capsys):
    import tensorflow as tf

    class Fixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def __call__(self, x):
            return {"y": x * 2.0}

    module = Fixed()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default":
                                                                  module.__call__})
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=4", tmp_path / "sm",
                     tmp_path / "m.tflite")
    assert code == 2
    assert err == ("tfjs_converter: error: %s: input 'x' has a fixed batch of 2, "
                   "--tflite_batch_size 4 cannot change it; omit the flag or give 2\n"
                   % (tmp_path / "sm"))


def _previous(path: pathlib.Path) -> str:
    path.write_bytes(b"previous output")
    return _sha(path)


def test_ops_that_need_tf_kernels_are_refused_then_allowed(refs, tmp_path, capsys):
    """An LSTM loop over a dynamic batch: TensorList ops, refused (saying the batch would
    help); Select TF ops allow them."""
    ref = refs["embedding_lstm-cfv2"]
    out = tmp_path / "model.tflite"
    before = _previous(out)
    code, err = _cli(capsys, "--output_format=tflite", ref.graph, out)
    assert code == 1 and err.count("\n") == 1, err
    doc = json.loads((ref.graph / "model.json").read_text())
    # The TF.js node, in the "graph/" scope of the SavedModel made from it.
    node = "graph/" + next(n["name"] for n in doc["modelTopology"]["node"]
                           if n["op"] == "TensorListReserve")
    assert err == (
        "tfjs_converter: error: %s: cannot convert to TFLite: 1 op(s) need TensorFlow kernels, "
        "not TFLite builtins: TensorListReserve (node %s); "
        "--tflite_select_tf_ops allows them (LiteRT.js and LiteRT builds without the Flex "
        "delegate cannot run it); or fix the batch (--tflite_batch_size, batch_size on "
        "tflite_model), which gives RNN loops static TensorList shapes (TFLite builtins)\n"
        % (ref.graph, node)), err
    assert _sha(out) == before
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_select_tf_ops",
                     "--tflite_batch_size=3", ref.graph, out)
    assert code == 0
    assert err == ("tfjs_converter: warning: %s uses Select TF ops (Flex); LiteRT.js and LiteRT "
                   "builds without the Flex delegate cannot run it\n" % out)
    assert _flex_ops(out.read_bytes()) == ["FlexTensorListReserve", "FlexTensorListSetItem",
                                           "FlexTensorListStack"]


@pytest.mark.parametrize("case_id", ["embedding_lstm-cfv2", "embedding_lstm-lowered"])
def test_rnn_loops_with_a_fixed_batch_take_builtins(refs, tmp_path, capsys, case_id):
    """--tflite_batch_size gives the TensorLists of an LSTM (while_v2 or lowered loop) static
    element shapes: TFLite builtins only, checked against TensorFlow by the converter and
    here against TF.js; without the check passing it would be refused (next test)."""
    ref = refs[case_id]
    batch = ref.inputs[next(iter(ref.inputs))].shape[0]
    out = tmp_path / "model.tflite"
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=%d" % batch,
                     ref.graph, out)
    assert (code, err) == (0, ""), err
    assert _flex_ops(out.read_bytes()) == []
    got = ff.run_tflite(out, ff.saved_model_inputs(ref.inputs))
    error = ff.compare("%s batch %d: .tflite (builtins) vs TF.js" % (case_id, batch), got,
                       ref.expected)
    result = api.convert(str(ref.graph), str(out), output_format="tflite",
                         tflite_batch_size=batch)
    assert result.verification.startswith(
        "TensorList element shapes given the batch %d (TFLite builtins then); LiteRT vs "
        "TensorFlow at batch %d: max abs error " % (batch, batch)), result.verification
    print("%s: builtins at batch %d, max abs error vs TF.js %.3g; %s"
          % (case_id, batch, error, result.verification))


def test_static_lists_that_do_not_reproduce_tensorflow_are_refused(refs, tmp_path, capsys,
                                                                    monkeypatch):
    """The static element shapes are kept only when LiteRT reproduces TensorFlow: with the
    check's tolerance made impossible, the conversion is refused, the previous output kept."""
    ref = refs["embedding_lstm-cfv2"]
    monkeypatch.setattr(wt, "_MATCH_TOLERANCE", {False: (-1.0, 0.0), True: (-1.0, 0.0)})
    out = tmp_path / "model.tflite"
    before = _previous(out)
    code, err = _cli(capsys, "--output_format=tflite", "--tflite_batch_size=3", ref.graph, out)
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("tfjs_converter: error: %s: cannot convert to TFLite: 1 op(s) need "
                          "TensorFlow kernels" % ref.graph), err
    assert ("; with the batch fixed to 3, static TensorList element shapes convert but do not "
            "reproduce TensorFlow on output ") in err, err
    assert err.endswith(", over -1 + 0|y|), so they are not used\n"), err
    assert _sha(out) == before


def _flex_ops(data: bytes):
    from tensorflow.lite.python import schema_py_generated as schema
    model = schema.Model.GetRootAsModel(data, 0)
    return sorted(model.OperatorCodes(i).CustomCode().decode()
                  for i in range(model.OperatorCodesLength())
                  if model.OperatorCodes(i).CustomCode())


def _qint8_saved_model(directory: pathlib.Path) -> pathlib.Path:
    import tensorflow as tf

    class Quantized(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.qint8, name="x")])
        def __call__(self, x):
            return {"y": tf.identity(x)}

    module = Quantized()
    tf.saved_model.save(module, str(directory), signatures={"serving_default": module.__call__})
    return directory


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_dtype_without_an_equivalent_is_refused(fmt, tmp_path, capsys):
    source = _qint8_saved_model(tmp_path / "qint8")
    out = tmp_path / ("model." + fmt)
    before = _previous(out)
    code, err = _cli(capsys, "--output_format=" + fmt, source, out)
    assert code == 1
    assert err == ("tfjs_converter: error: %s: cannot convert to %s: 3 node(s) use a dtype with "
                   "no %s tensor type: node x (op Placeholder) has dtype qint8, node Identity "
                   "(op Identity) has dtype qint8, node Identity_1 (op Identity) has dtype qint8\n"
                   % (source, "TFLite" if fmt == "tflite" else "ONNX",
                      "TFLite" if fmt == "tflite" else "ONNX"))
    assert _sha(out) == before


def test_model_over_the_flatbuffer_limit_is_refused(small, tmp_path, capsys, monkeypatch):
    """The 2 GiB check, with the limit lowered so a small model crosses it."""
    monkeypatch.setattr(wt, "TFLITE_MAX_BYTES", 1000)
    out = tmp_path / "model.tflite"
    before = _previous(out)
    code, err = _cli(capsys, "--output_format=tflite", small.graph, out)
    assert code == 1 and err.count("\n") == 1
    assert err.startswith("tfjs_converter: error: %s: cannot convert to TFLite: the model's "
                          "graph and weights take " % small.graph), err
    assert err.endswith(" bytes; a .tflite flatbuffer holds at most 1000 (2 GiB); convert to "
                        "onnx (external data) or tf_saved_model instead\n"), err
    assert _sha(out) == before


# -- byte reproducibility ---------------------------------------------------------------------

_CONVERT_CHILD = ("import json, sys; from converter import api; "
                  "api.convert(sys.argv[1], sys.argv[2], output_format='tflite', "
                  "**json.loads(sys.argv[3]))")


@pytest.mark.parametrize("case_id,options", [
    ("multi_io", {}),
    ("multi_io", {"tflite_batch_size": 2}),
    ("hash_table", {}),
    ("embedding_lstm-cfv2", {"tflite_select_tf_ops": True, "tflite_batch_size": 3}),
    ("embedding_lstm-lowered", {"tflite_batch_size": 3}),
], ids=["multi_io", "multi_io-batch2", "hash_table", "lstm-flex", "lstm-static-lists"])
def test_tflite_is_byte_reproducible(refs, tmp_path, case_id, options):
    """Two runs in one process (the worker), a fresh process, and another checkout's path.

    hash_table: TensorFlow's table initializers carry process-wide counters;
    lstm-flex: Flex ops embed NodeDefs whose attr maps serialize in hash order;
    lstm-static-lists: refused, then converted again with static TensorList shapes.
    """
    ref = refs[case_id]
    other = tmp_path / "elsewhere" / "checkout" / "graph"
    shutil.copytree(ref.graph, other)
    paths = [tmp_path / "a.tflite", tmp_path / "b.tflite", tmp_path / "c.tflite",
             tmp_path / "elsewhere" / "d.tflite"]
    api.convert(str(ref.graph), str(paths[0]), output_format="tflite", **options)
    api.convert(str(ref.graph), str(paths[1]), output_format="tflite", **options)
    root = pathlib.Path(__file__).resolve().parent.parent
    for source, out in ((ref.graph, paths[2]), (other, paths[3])):
        subprocess.run([sys.executable, "-c", _CONVERT_CHILD, str(source), str(out),
                        json.dumps(options)], check=True, cwd=str(root), capture_output=True)
    digests = [_sha(p) for p in paths]
    assert len(set(digests)) == 1, digests
    print("tflite %s %s: 4 conversions, one sha256 %s" % (case_id, options, digests[0][:16]))
