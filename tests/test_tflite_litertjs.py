"""Our ``.tflite`` outputs in LiteRT.js (``@litertjs/core``, Node, wasm) match TF.js.

The web runtime the ``tflite`` output is for: each zoo graph model (and a
published one) converted with ``--tflite_batch_size`` fixed to the reference
inputs' batch (LiteRT.js feeds no ``[-1, ...]`` input), run in LiteRT.js on the
same seeded inputs as the original graph model in TF.js 4.22 (cpu), within
the graph-input tolerance (1e-4 abs + 1e-4 rel, tests/tolerances.py).
tests/test_tflite_output.py checks the same files in ai_edge_litert.
"""

import pytest

import file_formats as ff
import litertjs_runner as lr
from converter import api
from test_graph_input_published import published_models  # noqa: F401  (fixture)

# Cases LiteRT.js can feed (float32 / int32 / uint8 inputs) and TFLite builtins hold.
# while_cond-cfv2: its outputs keep a dynamic dimension after the loop (shape
# signatures [-1] and [-1, 4] with every input fixed); ai_edge_litert resizes
# them, LiteRT.js 2.5.3 fails at run allocating the output buffer
# (litert_tensor_buffer.h:128). Known limitation, kept visible as a strict xfail.
DYNAMIC_OUTPUTS = pytest.mark.xfail(
    strict=True, raises=lr.LiteRtJobError,
    reason="LiteRT.js cannot allocate outputs of a dynamic shape (while loop)")
# embedding_lstm-*: Keras LSTMs (while_v2 and lowered loops, int32 token inputs) whose
# TensorLists get static element shapes from the fixed batch: TFLite builtins.
CASES = ["cnn_bn", "multi_io", "dict_outputs", "embedding_lstm-cfv2", "embedding_lstm-lowered",
         pytest.param("while_cond-cfv2", marks=DYNAMIC_OUTPUTS)]
CASE_IDS = ["cnn_bn", "multi_io", "dict_outputs", "embedding_lstm-cfv2",
            "embedding_lstm-lowered", "while_cond-cfv2"]


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    return ff.references([ff.CASES[c] for c in CASE_IDS],
                         tmp_path_factory.mktemp("litertjs_refs"))


def _batch(inputs) -> int:
    sizes = {v.shape[0] for v in inputs.values() if v.ndim > 0}
    assert len(sizes) == 1, sizes
    return sizes.pop()


def _run(model, inputs):
    (result,) = lr.run_jobs([lr.LiteRtJob(model, inputs)], where="node")
    result.check()
    return dict(zip(result.output_names, result.outputs))


@pytest.mark.parametrize("case_id", CASES)
def test_tflite_in_litertjs_matches_tfjs(case_id, refs, tmp_path):
    ref = refs[case_id]
    out = tmp_path / "model.tflite"
    api.convert(str(ref.graph), str(out), output_format="tflite",
                tflite_batch_size=_batch(ref.inputs))
    got = _run(out, ff.saved_model_inputs(ref.inputs))
    error = ff.compare("%s: .tflite in LiteRT.js vs TF.js original" % case_id, got, ref.expected)
    print("%s: LiteRT.js max abs error %.3g" % (case_id, error))


@pytest.fixture(scope="module")
def published_refs(request, published_models, tmp_path_factory):  # noqa: F811
    return ff.published_references(request, published_models,
                                   tmp_path_factory.mktemp("litertjs_published"))


@pytest.mark.parametrize("published", ["blazeface"])
def test_published_graph_model_tflite_in_litertjs(published, published_refs, tmp_path):
    """blazeface (published TF.js graph model, no signature, four outputs)."""
    ref = published_refs[published]
    out = tmp_path / "model.tflite"
    api.convert(str(ref.model_dir), str(out), output_format="tflite", tflite_batch_size=1)
    error = ref.compare(".tflite in LiteRT.js vs published model (TF.js)",
                        _run(out, ff.saved_model_inputs(ref.inputs)))
    print("%s: LiteRT.js max abs error %.3g" % (published, error))
