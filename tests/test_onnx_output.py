"""``onnx`` outputs: TF.js graph models (and Keras files / SavedModels) to ``.onnx`` via tf2onnx.

Parity against TF.js (tests/file_formats.py): the ``.onnx`` runs in ONNX
Runtime (CPU) and must match the original graph model's TF.js 4.22 (cpu)
outputs within 1e-4 abs + 1e-4 rel. Also: the opset (default, chosen, out of
range), external data over the size threshold (lowered so a small model
crosses it), refusals as one line with exit 1 and the previous output intact,
and byte-reproducibility across runs, processes and paths.
"""

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
from converter.writers import onnx as wo
from converter.writers import tflite as wt
from test_graph_input_published import published_models  # noqa: F401  (fixture)

# Small cases the tests below use besides the parity ones.
ALWAYS = ("multi_io", "cnn_bn", "dict_outputs", "embedding_lstm-lowered", "while_cond-cfv2",
          "hash_table")


@pytest.fixture(scope="module")
def refs(request, tmp_path_factory) -> Dict[str, ff.Reference]:
    return ff.case_references(request, tmp_path_factory.mktemp("onnx_refs"), ALWAYS)


@pytest.fixture
def small(refs) -> ff.Reference:
    return refs["multi_io"]


_sha, _cli = ff.sha256, ff.run_cli


def _opsets(path: pathlib.Path) -> Dict[str, int]:
    import onnx
    return {o.domain: o.version for o in onnx.load(str(path), load_external_data=False)
            .opset_import}


# -- parity with TF.js --------------------------------------------------------------------


@pytest.mark.parametrize("case", ff.case_params())
def test_graph_model_onnx_matches_tfjs(case, refs, tmp_path):
    ref = refs[case.id]
    out = tmp_path / "model.onnx"
    if case.onnx_refused is not None:
        with pytest.raises(UnsupportedOpError) as e:
            api.convert(str(ref.graph), str(out), output_format="onnx")
        assert str(e.value) == "%s: %s" % (ref.graph, case.onnx_refused)
        assert not out.exists()
        print("%s: refused (known): %s" % (case.id, e.value))
        return
    api.convert(str(ref.graph), str(out), output_format="onnx")
    assert _opsets(out)[""] == wo.DEFAULT_OPSET
    got = ff.run_onnx(out, ff.saved_model_inputs(ref.inputs))
    error = ff.compare("%s: .onnx (ONNX Runtime) vs TF.js original" % case.id, got, ref.expected)
    print("%s: onnx max abs error %.3g (%d bytes)" % (case.id, error, out.stat().st_size))


@pytest.fixture(scope="module")
def published_refs(request, published_models, tmp_path_factory):  # noqa: F811
    return ff.published_references(request, published_models,
                                   tmp_path_factory.mktemp("onnx_published"))


@pytest.mark.parametrize("published", ff.published_params())
def test_published_graph_model_onnx_matches_tfjs(published, published_refs, tmp_path):
    ref = published_refs[published]
    out = tmp_path / "model.onnx"
    refused = ref.refused("onnx")
    if refused is not None:
        out.write_bytes(b"previous")
        with pytest.raises(UnsupportedOpError) as e:
            api.convert(str(ref.model_dir), str(out), output_format="onnx")
        assert str(e.value) == "%s: %s" % (ref.model_dir, refused)
        assert out.read_bytes() == b"previous"
        print("%s: refused (known): %s" % (published, e.value))
        return
    api.convert(str(ref.model_dir), str(out), output_format="onnx")
    error = ref.compare(".onnx (ONNX Runtime) vs published model (TF.js)",
                        ff.run_onnx(out, ff.saved_model_inputs(ref.inputs)))
    print("%s: onnx max abs error %.3g (%d bytes)" % (published, error, out.stat().st_size))


def test_keras_file_to_onnx_matches_keras(tmp_path):
    model = zoo.build_model("cnn_bn", 3)
    exported = zoo.export_models(model, "cnn_bn", 3, tmp_path / "src")["keras3_keras"]
    out = tmp_path / "model.onnx"
    result = api.convert(str(exported.path), str(out), output_format="onnx")
    assert (result.input_format, result.output_format) == ("keras_keras", "onnx")
    in_keys, out_keys = wt.keras_signature_keys(model)
    got = ff.run_onnx(out, dict(zip(in_keys, exported.inputs)))
    error = ff.compare("cnn_bn .keras -> .onnx vs Keras", got,
                       dict(zip(out_keys, exported.expected)))
    print("cnn_bn .keras -> onnx: max abs error vs Keras %.3g" % error)


# -- opset -------------------------------------------------------------------------------------


def test_chosen_opset(small, tmp_path):
    out = tmp_path / "model.onnx"
    api.convert(str(small.graph), str(out), output_format="onnx", onnx_opset=13)
    assert _opsets(out)[""] == 13
    got = ff.run_onnx(out, ff.saved_model_inputs(small.inputs))
    error = ff.compare("multi_io opset 13: .onnx vs TF.js", got, small.expected)
    print("multi_io opset 13: max abs error %.3g" % error)


@pytest.mark.parametrize("opset", [8, 19])
def test_opset_out_of_range_is_a_usage_error(small, tmp_path, capsys, opset):
    code, err = _cli(capsys, "--output_format=onnx", "--onnx_opset=%d" % opset, small.graph,
                     tmp_path / "m.onnx")
    assert code == 2
    assert err == ("tfjs_converter: error: --onnx_opset %d is outside what tf2onnx 1.17 writes "
                   "(9..18; default 17)\n" % opset)
    assert not (tmp_path / "m.onnx").exists()


# -- external data -------------------------------------------------------------------------------


def test_external_data_over_the_threshold(refs, tmp_path, monkeypatch):
    """Over the threshold (lowered to 0 here) the weights go to <output>.data, one file.

    tf2onnx keeps tensors of up to 1024 elements inline; cnn_bn's second conv kernel
    (3x3x8x16 float32) and dense kernel are over it.
    """
    small = refs["cnn_bn"]
    monkeypatch.setattr(wo, "EXTERNAL_DATA_THRESHOLD", 0)
    import onnx
    first, second = tmp_path / "a" / "model.onnx", tmp_path / "b" / "model.onnx"
    api.convert(str(small.graph), str(first), output_format="onnx")
    api.convert(str(small.graph), str(second), output_format="onnx")
    assert sorted(p.name for p in first.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
    model = onnx.load(str(first), load_external_data=False)
    external = [t for t in model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    locations = {e.value for t in external for e in t.external_data if e.key == "location"}
    assert len(external) >= 1 and locations == {"model.onnx.data"}, (len(external), locations)
    size = first.with_name("model.onnx.data").stat().st_size
    assert size >= 3 * 3 * 8 * 16 * 4, size
    assert _sha(first) == _sha(second)
    assert _sha(first.with_name("model.onnx.data")) == _sha(second.with_name("model.onnx.data"))
    got = ff.run_onnx(first, ff.saved_model_inputs(small.inputs))
    error = ff.compare("cnn_bn external data: .onnx vs TF.js", got, small.expected)
    print("cnn_bn external data: %d external tensors, max abs error %.3g"
          % (len(external), error))
    # A later conversion under the threshold leaves no stale data file behind.
    monkeypatch.setattr(wo, "EXTERNAL_DATA_THRESHOLD", 2 ** 40)
    api.convert(str(small.graph), str(first), output_format="onnx")
    assert sorted(p.name for p in first.parent.iterdir()) == ["model.onnx"]


def test_external_data_asked_for_and_forbidden(refs, tmp_path, monkeypatch, capsys):
    """--onnx_external_data true: <output>.data under the threshold too (a build declares
    it; empty when no tensor is over tf2onnx's 1024-element inline limit); false: over the
    threshold is refused in one line, the previous output and no data file left."""
    import onnx
    cnn, small = refs["cnn_bn"], refs["multi_io"]
    out = tmp_path / "a" / "model.onnx"
    api.convert(str(cnn.graph), str(out), output_format="onnx", onnx_external_data=True)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert out.with_name("model.onnx.data").stat().st_size >= 3 * 3 * 8 * 16 * 4
    error = ff.compare("cnn_bn --onnx_external_data: .onnx vs TF.js",
                       ff.run_onnx(out, ff.saved_model_inputs(cnn.inputs)), cnn.expected)
    tiny = tmp_path / "b" / "model.onnx"
    api.convert(str(small.graph), str(tiny), output_format="onnx", onnx_external_data=True)
    external = [t for t in onnx.load(str(tiny), load_external_data=False).graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    data_size = tiny.with_name("model.onnx.data").stat().st_size
    assert (len(external) == 0) == (data_size == 0), (len(external), data_size)
    ff.compare("multi_io --onnx_external_data: .onnx vs TF.js",
               ff.run_onnx(tiny, ff.saved_model_inputs(small.inputs)), small.expected)
    # Forbidden over the threshold (lowered to 0): refused, the previous files stay.
    monkeypatch.setattr(wo, "EXTERNAL_DATA_THRESHOLD", 0)
    before = {p.name: p.read_bytes() for p in out.parent.iterdir()}
    code, err = _cli(capsys, "--output_format=onnx", "--onnx_external_data=false", cnn.graph, out)
    assert code == 1
    assert err.startswith("tfjs_converter: error: %s: cannot convert to ONNX without external "
                          "data: the model's graph and weights take " % cnn.graph), err
    assert err.endswith("one ONNX protobuf holds under 2 GiB; allow external data "
                        "(--onnx_external_data, or external_data = True on onnx_model)\n"), err
    assert {p.name: p.read_bytes() for p in out.parent.iterdir()} == before
    # Not forbidden (false, under the threshold): the stale data file goes.
    monkeypatch.setattr(wo, "EXTERNAL_DATA_THRESHOLD", 2 ** 40)
    api.convert(str(cnn.graph), str(out), output_format="onnx", onnx_external_data=False)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]
    print("cnn_bn external data asked for: max abs error %.3g; multi_io: %d external tensors, "
          "%d bytes of data" % (error, len(external), data_size))


def test_wrote_line_gives_bytes(refs, tmp_path, capsys):
    """The CLI's summary of an .onnx: its bytes, and its data file's (no TF.js weight groups).
    A bare --onnx_external_data means true, as every boolean flag."""
    cnn = refs["cnn_bn"]
    out = tmp_path / "m.onnx"
    data = tmp_path / "m.onnx.data"
    for flags, tail in ((["--onnx_external_data"], lambda: " + %d bytes of external data in "
                         "m.onnx.data" % data.stat().st_size), ([], lambda: "")):
        capsys.readouterr()
        assert cli.main(["--output_format=onnx"] + flags + [str(cnn.graph), str(out)]) == 0
        assert capsys.readouterr().out == "tfjs_converter: wrote %s (onnx, %d bytes%s)\n" % (
            out, out.stat().st_size, tail())
    assert not data.exists()


# -- refusals -------------------------------------------------------------------------------------


def test_unconvertible_op_is_refused_with_previous_output_intact(refs, tmp_path, capsys):
    ref = refs["embedding_lstm-lowered"]
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous output")
    code, err = _cli(capsys, "--output_format=onnx", ref.graph, out)
    assert code == 1
    assert err == "tfjs_converter: error: %s: %s\n" % (ref.graph, ff._LOWERED_LOOP_ONNX)
    assert out.read_bytes() == b"previous output"


# -- byte reproducibility -----------------------------------------------------------------------

_CONVERT_CHILD = ("import sys; from converter import api; "
                  "api.convert(sys.argv[1], sys.argv[2], output_format='onnx')")


@pytest.mark.parametrize("case_id", ["multi_io", "while_cond-cfv2", "hash_table"])
def test_onnx_is_byte_reproducible(refs, tmp_path, case_id):
    """Two runs in one process (tf2onnx's name counter moves on), a fresh process, another path."""
    ref = refs[case_id]
    other = tmp_path / "elsewhere" / "checkout" / "graph"
    shutil.copytree(ref.graph, other)
    paths = [tmp_path / "a.onnx", tmp_path / "b.onnx", tmp_path / "c.onnx",
             tmp_path / "elsewhere" / "d.onnx"]
    api.convert(str(ref.graph), str(paths[0]), output_format="onnx")
    api.convert(str(ref.graph), str(paths[1]), output_format="onnx")
    root = pathlib.Path(__file__).resolve().parent.parent
    for source, out in ((ref.graph, paths[2]), (other, paths[3])):
        subprocess.run([sys.executable, "-c", _CONVERT_CHILD, str(source), str(out)],
                       check=True, cwd=str(root), capture_output=True)
    digests = [_sha(p) for p in paths]
    assert len(set(digests)) == 1, digests
    print("onnx %s: 4 conversions, one sha256 %s" % (case_id, digests[0][:16]))


def test_names_keep_signature_keys_and_carry_no_counters(refs, tmp_path):
    """Inputs/outputs are the signature's keys; no tf2onnx counter beyond the model's own."""
    import onnx
    ref = refs["dict_outputs"]
    out = tmp_path / "model.onnx"
    api.convert(str(ref.graph), str(out), output_format="onnx")
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["features"]
    assert sorted(o.name for o in model.graph.output) == ["alpha", "mid", "zeta"]
    assert (model.graph.name, model.doc_string, model.graph.doc_string) == ("tfjs_rules", "", "")
    dims = [d.dim_param for v in model.graph.input for d in v.type.tensor_type.shape.dim
            if d.dim_param]
    assert dims == ["unk__0"], dims
    assert np.all([not n.doc_string for n in model.graph.node])
