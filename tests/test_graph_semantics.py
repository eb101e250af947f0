"""The semantics guard: every entry of ``converter.graph.semantics.RULES``, rewritten or refused.

Each case builds a tiny frozen GraphDef whose node ``subject`` carries one (op,
attribute, value) of the table (``tf.raw_ops``, so the attribute is exactly the
one under test) and converts it to a ``tfjs_graph_model``. A refused case must
fail with an ``UnsupportedOpError`` naming the source, the node, op, attribute
and value. A rewritten case runs in real TF.js (cpu and wasm, every case in one
Node process) against TensorFlow; where TensorFlow's CPU has no kernel for the
attribute value (channels-first pooling, ...) the reference is the same
computation written with transposes. A few rules (attributes TensorFlow's own
importer fills in, fused ops inside function bodies) are checked on GraphDefs
built by hand, without a conversion.
"""

import dataclasses
import json
import os
import pathlib
import re
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import tfjs_node  # noqa: E402
import tolerances  # noqa: E402
from converter import api  # noqa: E402
from converter.errors import ConversionError, UnsupportedOpError  # noqa: E402
from converter.graph import semantics  # noqa: E402

R = tf.raw_ops
BACKENDS = tfjs_node.BACKENDS
# Float32 rounding only: each case is a handful of ops on values of magnitude <= 10.
TOLERANCE = tolerances.lookup("graph_small", tolerances.FLOAT32)
_NO_EINSUM_ON_WASM = "Kernel 'Einsum' not registered for backend 'wasm'"
_NO_COMPLEX_ON_WASM = "Kernel 'Complex' not registered for backend 'wasm'"


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _f32(seed: int, *shape, scale: float = 1.0, shift: float = 0.0) -> np.ndarray:
    return (_rng(seed).standard_normal(shape) * scale + shift).astype(np.float32)


def _nhwc(x):
    return tf.transpose(x, [0, 2, 3, 1])


def _nchw(x):
    return tf.transpose(x, [0, 3, 1, 2])


@dataclasses.dataclass(frozen=True)
class Case:
    """One table entry exercised by a frozen graph whose node ``subject`` carries it.

    Attributes:
      id: test id.
      rule: the ``Rule.key`` the case exercises.
      build: ``build(*placeholders) -> output`` (the op under test named ``subject``).
      inputs: input arrays (placeholders ``in0``, ``in1``, ...).
      reference: ``reference(*placeholders) -> output`` computing the same in a form
        TensorFlow's CPU runs, when it has no kernel for the case itself.
      refusal: ``(op, attribute, found value)`` the message must name for node
        ``subject``; None for rewritten cases.
      wasm_error: the TF.js wasm error of a backend limitation (no kernel) the case hits.
    """

    id: str
    rule: str
    build: Callable
    inputs: Tuple[np.ndarray, ...]
    reference: Optional[Callable] = None
    refusal: Optional[Tuple[str, str, str]] = None
    wasm_error: Optional[str] = None


_W = _f32(1, 3, 3, 3, 4)
_DW = _f32(2, 3, 3, 3, 2)
_X4 = _f32(3, 2, 3, 5, 6)  # NCHW: C=3, H=5, W=6
_SCALE = np.linspace(0.5, 1.5, 5).astype(np.float32)
_OFFSET = np.linspace(-0.2, 0.2, 5).astype(np.float32)
_INTS_A = np.array([-7, 7, -7, 7, -8, 5, 0, -1, 9, -9], np.int32)
_INTS_B = np.array([2, 2, -2, -2, 3, -3, 4, 3, -4, 4], np.int32)
_P = _f32(4, 2, 5, 4)
_FILTER2D = _f32(5, 3, 3, 2)


def _bn(x, training, fmt, scale=_SCALE, offset=_OFFSET, mean=None, variance=None, eps=1e-3,
        name="subject"):
    mean = tf.constant([], tf.float32) if mean is None else mean
    variance = tf.constant([], tf.float32) if variance is None else variance
    return R.FusedBatchNormV3(x=x, scale=scale, offset=offset, mean=mean, variance=variance,
                              epsilon=eps, data_format=fmt, is_training=training, name=name)


CASES: List[Case] = [
    # -- batch norm --
    Case("bn_training_nhwc", "bn_training",
         lambda x: _bn(x, True, "NHWC")[0], (_f32(6, 2, 3, 4, 5, scale=3.0, shift=1.0),)),
    Case("bn_training_nchw_layernorm_form", "bn_training",
         # tf_keras LayerNormalization's form: [1, rows, features, 1], ones/zeros Fill.
         lambda x: _bn(x, True, "NCHW", scale=tf.ones([6]), offset=tf.zeros([6]))[0],
         (_f32(7, 1, 6, 8, 1, scale=2.0, shift=-1.0),)),
    Case("bn_inference_nchw_constant", "bn_channels_first",
         lambda x: _bn(x, False, "NCHW", scale=[1., 2., 3.], offset=[.1, .2, .3],
                       mean=[.5, 0., -.5], variance=[1., 2., .5])[0], (_X4,)),
    Case("bn_inference_nchw_computed_scale", "bn_channels_first",
         lambda x, s: _bn(x, False, "NCHW", scale=s, offset=[.1, .2, .3], mean=[.5, 0., -.5],
                          variance=[1., 2., .5])[0],
         (_X4, np.array([0.5, -1.0, 2.0], np.float32))),
    Case("bn_statistics_read", "bn_statistics_read",
         lambda x: _bn(x, True, "NHWC")[1], (_f32(8, 2, 3, 4, 5),),
         refusal=("FusedBatchNormV3", "outputs 1-5", "read: 1")),
    # -- arithmetic --
    Case("bias_add_nchw", "bias_add_nchw",
         lambda x: R.BiasAdd(value=x, bias=[1., 2., 3.], data_format="NCHW", name="subject"),
         (_f32(9, 2, 3, 4, 3),)),
    Case("mod_int", "mod", lambda a, b: R.Mod(x=a, y=b, name="subject"), (_INTS_A, _INTS_B)),
    Case("mod_float", "mod", lambda a, b: R.Mod(x=a, y=b, name="subject"),
         (_INTS_A.astype(np.float32) + 0.5, _INTS_B.astype(np.float32))),
    Case("div_int", "int_div", lambda a, b: R.Div(x=a, y=b, name="subject"), (_INTS_A, _INTS_B)),
    Case("clip_tensor_bounds", "clip_tensor_bounds",
         lambda x: R.ClipByValue(t=x, clip_value_min=[[-1., -.5, 0.], [-.1, -.2, -.3]],
                                 clip_value_max=[[.1, .2, .3], [1., .5, 2.]], name="subject"),
         (_f32(10, 2, 3),)),
    # -- convolution and pooling --
    Case("conv2d_nchw_strided", "channels_first",
         lambda x: R.Conv2D(input=x, filter=_W, strides=[1, 1, 2, 2], padding="SAME",
                            data_format="NCHW", name="subject"),
         (_X4,), reference=lambda x: _nchw(tf.nn.conv2d(_nhwc(x), _W, [1, 2, 2, 1], "SAME"))),
    Case("depthwise_nchw", "channels_first",
         lambda x: R.DepthwiseConv2dNative(input=x, filter=_DW, strides=[1, 1, 1, 1],
                                           padding="VALID", data_format="NCHW", name="subject"),
         (_X4,), reference=lambda x: _nchw(tf.nn.depthwise_conv2d(_nhwc(x), _DW, [1, 1, 1, 1],
                                                                   "VALID"))),
    Case("maxpool_nchw", "channels_first",
         lambda x: R.MaxPool(input=x, ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2], padding="VALID",
                             data_format="NCHW", name="subject"),
         (_X4,), reference=lambda x: _nchw(tf.nn.max_pool2d(_nhwc(x), 2, 2, "VALID"))),
    Case("avgpool_nchw", "channels_first",
         lambda x: R.AvgPool(value=x, ksize=[1, 1, 3, 3], strides=[1, 1, 2, 2], padding="SAME",
                             data_format="NCHW", name="subject"),
         (_X4,), reference=lambda x: _nchw(tf.nn.avg_pool2d(_nhwc(x), 3, 2, "SAME"))),
    Case("conv2d_backprop_input_nchw", "channels_first",
         lambda x: R.Conv2DBackpropInput(input_sizes=[1, 3, 6, 7], filter=_W, out_backprop=x,
                                         strides=[1, 1, 2, 2], padding="SAME",
                                         data_format="NCHW", name="subject"),
         (_f32(11, 1, 4, 3, 4),),
         reference=lambda x: _nchw(tf.nn.conv2d_transpose(_nhwc(x), _W, [1, 6, 7, 3],
                                                          [1, 2, 2, 1], "SAME"))),
    Case("maxpool3d_ncdhw", "channels_first",
         lambda x: R.MaxPool3D(input=x, ksize=[1, 1, 2, 2, 2], strides=[1, 1, 2, 2, 2],
                               padding="VALID", data_format="NCDHW", name="subject"),
         (_f32(12, 1, 2, 4, 4, 4),),
         reference=lambda x: tf.transpose(tf.nn.max_pool3d(tf.transpose(x, [0, 2, 3, 4, 1]), 2,
                                                           2, "VALID"), [0, 4, 1, 2, 3])),
    Case("conv2d_strided_dilated", "strided_dilated",
         lambda x: R.Conv2D(input=x, filter=_W, strides=[1, 2, 2, 1], padding="VALID",
                            dilations=[1, 2, 2, 1], name="subject"), (_f32(13, 1, 9, 9, 3),),
         refusal=("Conv2D", "strides, dilations",
                  "strides [1, 2, 2, 1] with dilations [1, 2, 2, 1]")),
    Case("conv2d_backprop_input_dilated", "backprop_dilations",
         lambda x: R.Conv2DBackpropInput(input_sizes=[1, 7, 7, 3], filter=_W, out_backprop=x,
                                         strides=[1, 1, 1, 1], padding="VALID",
                                         dilations=[1, 2, 2, 1], name="subject"),
         (_f32(14, 1, 3, 3, 4),), refusal=("Conv2DBackpropInput", "dilations", "[1, 2, 2, 1]")),
    Case("maxpool_explicit", "maxpool_explicit",
         lambda x: R.MaxPool(input=x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                             padding="EXPLICIT", explicit_paddings=[0, 0, 1, 0, 1, 0, 0, 0],
                             name="subject"), (_f32(15, 1, 5, 5, 2),),
         refusal=("MaxPool", "padding", "EXPLICIT")),
    Case("maxpool_argmax_read", "argmax_read",
         lambda x: tf.cast(R.MaxPoolWithArgmax(input=x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1],
                                               padding="VALID", name="subject")[1], tf.int32),
         (_f32(16, 1, 4, 4, 2),), refusal=("MaxPoolWithArgmax", "output 1 (argmax)", "read")),
    Case("dilation2d_same_negative", "dilation2d",
         lambda x: R.Dilation2D(input=x, filter=_FILTER2D, strides=[1, 2, 2, 1],
                                rates=[1, 2, 2, 1], padding="SAME", name="subject"),
         (_f32(17, 1, 7, 8, 2, shift=-6.0),)),
    Case("dilation2d_valid_negative", "dilation2d",
         lambda x: R.Dilation2D(input=x, filter=_FILTER2D, strides=[1, 1, 1, 1],
                                rates=[1, 1, 1, 1], padding="VALID", name="subject"),
         (_f32(18, 1, 6, 6, 2, shift=-6.0),)),
    # -- image, transformation, creation --
    Case("transform_reflect", "transform_fill_mode",
         lambda x: R.ImageProjectiveTransformV3(
             images=x, transforms=[[1., .2, -1., .1, 1., .5, 0., 0.]], output_shape=[5, 6],
             fill_value=0., interpolation="BILINEAR", fill_mode="REFLECT", name="subject"),
         (_f32(19, 1, 5, 6, 1),), refusal=("ImageProjectiveTransformV3", "fill_mode", "REFLECT")),
    Case("depth_to_space_nchw", "depth_to_space_nchw",
         lambda x: R.DepthToSpace(input=x, block_size=2, data_format="NCHW", name="subject"),
         (_f32(20, 1, 8, 2, 3),),
         reference=lambda x: _nchw(tf.nn.depth_to_space(_nhwc(x), 2))),
    Case("ensure_shape", "ensure_shape",
         lambda x: R.EnsureShape(input=x, shape=[2, 3], name="subject") * 2.0, (_f32(21, 2, 3),)),
    Case("one_hot_axis_0", "one_hot_axis",
         lambda i: R.OneHot(indices=i, depth=4, on_value=5, off_value=-1, axis=0,
                            name="subject"), (np.array([[0, 3, 1], [2, 2, 9]], np.int32),)),
    Case("one_hot_float", "one_hot_dtype",
         lambda i: R.OneHot(indices=i, depth=4, on_value=5.5, off_value=-1.25, name="subject"),
         (np.array([0, 3, -1, 2], np.int32),)),
    Case("one_hot_depth_1", "one_hot_depth",
         lambda i: R.OneHot(indices=i, depth=1, on_value=1., off_value=0., name="subject"),
         (np.array([0, 0, 1], np.int32),), refusal=("OneHot", "depth", "1")),
    Case("random_uniform_int", "random_uniform_int",
         lambda x: x + R.RandomUniformInt(shape=[3], minval=5, maxval=9, name="subject"),
         (np.array([1, 2, 3], np.int32),),
         refusal=("RandomUniformInt", "minval, maxval (inputs)", "[5, 9)")),
    # -- logical, matrices --
    Case("select_vector_condition", "select_vector",
         lambda c, a, b: R.Select(condition=c, x=a, y=b, name="subject"),
         (np.array([True, False, True]), _f32(22, 3, 4), _f32(23, 3, 4))),
    Case("band_part_causal", "band_part",
         lambda x: R.MatrixBandPart(input=x, num_lower=-1, num_upper=0, name="subject"),
         (_f32(24, 2, 4, 4),)),
    Case("band_part_1_2", "band_part",
         lambda x: R.MatrixBandPart(input=x, num_lower=1, num_upper=2, name="subject"),
         (_f32(25, 3, 5),)),
    Case("einsum_private_sum", "einsum_private_sum",
         lambda a, b: R.Einsum(inputs=[a, b], equation="ijl,jk->k", name="subject"),
         (_f32(26, 2, 3, 4), _f32(27, 3, 5)), wasm_error=_NO_EINSUM_ON_WASM),
    Case("einsum_diagonal", "einsum_unsupported",
         lambda a: R.Einsum(inputs=[a], equation="ii->i", name="subject"), (_f32(28, 3, 3),),
         refusal=("Einsum", "equation", "'ii->i'")),
    Case("batch_matmul_adjoint_complex", "adjoint_complex",
         lambda a, b: R.BatchMatMulV2(x=a, y=b, adj_y=True, name="subject"),
         (np.ones((2, 2), np.complex64), np.ones((2, 2), np.complex64)),
         refusal=("BatchMatMulV2", "adj_x, adj_y", "adj_x=False adj_y=True")),
    # -- reductions --
    Case("mean_int", "int_mean",
         lambda x: R.Mean(input=x, axis=[1], name="subject"),
         (np.array([[1, 1, 1, 2], [-1, -2, -2, -2], [7, 0, 0, 0]], np.int32),)),
    Case("cumsum_axis_minus_1", "cumulative_axis",
         lambda x: R.Cumsum(x=x, axis=-1, name="subject"), (_f32(29, 3, 5),)),
    Case("cumprod_axis_minus_2_exclusive", "cumulative_axis",
         lambda x: R.Cumprod(x=x, axis=-2, exclusive=True, name="subject"), (_f32(30, 3, 4),)),
    Case("dense_bincount_binary", "binary_output",
         lambda x: R.DenseBincount(input=x, size=5, weights=tf.constant([], tf.float32),
                                   binary_output=True, name="subject"),
         (np.array([1, 1, 3, 0, 3, 3], np.int32),)),
    # -- slicing and gathering --
    Case("strided_slice_shrink_strided", "strided_shrink",  # x[1:, :2, ::2, -1]
         lambda x: tf.strided_slice(x, [1, 0, 0, -1], [0, 2, 0, 0], [1, 1, 2, 1], begin_mask=6,
                                    end_mask=5, shrink_axis_mask=8, name="subject"),
         (_f32(31, 2, 3, 4, 5),)),
    Case("strided_slice_ellipsis_reversed", "strided_shrink",  # x[..., ::-2, 3]
         lambda x: tf.strided_slice(x, [0, 0, 3], [0, 0, 4], [1, -2, 1], begin_mask=2,
                                    end_mask=2, ellipsis_mask=1, shrink_axis_mask=4,
                                    name="subject"), (_f32(32, 2, 3, 4, 5),)),
    Case("gather_batch_dims_axis_1", "gather_batch_dims",
         lambda i: R.GatherV2(params=_P, indices=i, axis=1, batch_dims=1, name="subject"),
         (np.array([[0, 4, 2], [1, 1, 3]], np.int32),)),
    Case("gather_batch_dims_axis_2", "gather_batch_dims",
         lambda i: R.GatherV2(params=_f32(33, 2, 3, 5, 2), indices=i, axis=2, batch_dims=-1,
                              name="subject"), (np.array([[0, 4, 2, 2], [1, 1, 3, 0]], np.int32),)),
    Case("top_k_unsorted", "topk_unsorted",
         lambda x: R.TopKV2(input=x, k=5, sorted=False, name="subject")[0], (_f32(34, 3, 20),),
         # TF leaves the unsorted order unspecified: sorted is a valid (TF's own) answer.
         reference=lambda x: tf.math.top_k(x, 5, sorted=True).values),
    # -- spectral, strings --
    Case("rfft_shorter_length", "rfft_length",
         lambda x: _real_imag(R.RFFT(input=x, fft_length=[6], name="subject")), (_f32(35, 2, 8),),
         wasm_error=_NO_COMPLEX_ON_WASM),
    Case("rfft_signal_padded", "rfft_length",
         # tf.signal.rfft pads the input to fft_length itself (TF's kernel never pads).
         lambda x: _real_imag(tf.signal.rfft(x, [12], name="subject")), (_f32(36, 2, 8),),
         wasm_error=_NO_COMPLEX_ON_WASM),
    Case("irfft_mismatched_length", "irfft_length",
         lambda x: R.IRFFT(input=x, fft_length=[6], name="subject"),
         (np.ones((2, 5), np.complex64),),
         refusal=("IRFFT", "fft_length (input 1)", "6 (input's inner dimension 5)")),
    Case("regex_backreference", "regex_rewrite",
         lambda s: R.StaticRegexReplace(input=s, pattern="(\\w+)-(\\w+)", rewrite="\\2_\\1",
                                        name="subject"),
         (np.array([b"abc-def"], dtype=object),),
         refusal=("StaticRegexReplace", "rewrite", "'\\\\2_\\\\1'")),
    Case("regex_inline_flag", "regex_pattern",
         lambda s: R.StaticRegexReplace(input=s, pattern="(?i)abc", rewrite="x", name="subject"),
         (np.array([b"ABC"], dtype=object),),
         refusal=("StaticRegexReplace", "pattern", "'(?i)abc'")),
    # -- quantization, dtypes --
    Case("fake_quant_default", "fake_quant",
         lambda x: R.FakeQuantWithMinMaxVars(inputs=x, min=-1.3, max=2.1, name="subject"),
         (np.linspace(-3, 3, 121).astype(np.float32),)),
    Case("fake_quant_4_bits_narrow", "fake_quant",
         lambda x: R.FakeQuantWithMinMaxVars(inputs=x, min=-1.3, max=2.1, num_bits=4,
                                             narrow_range=True, name="subject"),
         (np.linspace(-3, 3, 121).astype(np.float32),)),
    Case("cast_to_uint8", "narrow_int",
         lambda x: tf.cast(R.Cast(x=x, DstT=tf.uint8, name="subject"), tf.int32),
         (np.array([-3.7, 300.5], np.float32),),
         refusal=("Cast", "T / DstT", "DstT=uint8 (from float32)")),
    Case("add_int8", "narrow_int",
         lambda x: tf.cast(R.AddV2(x=tf.cast(x, tf.int8), y=tf.constant([100, 100], tf.int8),
                                   name="subject"), tf.int32),
         (np.array([100, -100], np.int32),), refusal=("AddV2", "T / DstT", "T=int8")),
    Case("cast_to_bfloat16", "bfloat16",
         lambda x: tf.cast(R.Cast(x=x, DstT=tf.bfloat16, name="subject"), tf.float32) * 3.0,
         (np.array([1.5, 2.25], np.float32),), refusal=("Cast", "T / DstT / SrcT / dtype",
                                                         "DstT=bfloat16")),
]


def _real_imag(z):
    return tf.concat([tf.math.real(z), tf.math.imag(z)], axis=-1)


# Rules checked on GraphDefs built by hand (tests below): TensorFlow's importer adds the
# default attributes, and fused ops only reach function bodies from upstream graphs.
UNIT_TESTED = {
    "bn_epsilon": "test_missing_defaults_are_materialized",
    "missing_defaults": "test_missing_defaults_are_materialized",
    "vect_c": "test_vectorized_layout_is_refused",
    "fused_ops": "test_fused_ops_in_a_function_body_are_refused",
}


# -- building, converting and running every case once -------------------------------------


@dataclasses.dataclass
class Run:
    case: Case
    source: pathlib.Path
    graph_def: object
    feeds: Dict[str, np.ndarray]
    expected: Optional[np.ndarray]
    out_dir: pathlib.Path
    error: Optional[ConversionError] = None
    results: Dict[str, tfjs_node.JobResult] = dataclasses.field(default_factory=dict)


def _dtype(array: np.ndarray):
    return tf.string if array.dtype == object else tf.as_dtype(array.dtype)


def _freeze(case: Case, path: pathlib.Path):
    """Writes the case's GraphDef; returns it, the feeds and TF's output (None if refused)."""

    def build(body):
        graph = tf.Graph()
        with graph.as_default():
            placeholders = [tf.compat.v1.placeholder(_dtype(a), a.shape, name="in%d" % i)
                            for i, a in enumerate(case.inputs)]
            tf.identity(body(*placeholders), name="out")
        return graph

    graph = build(case.build)
    graph_def = graph.as_graph_def()
    path.write_bytes(graph_def.SerializeToString())
    feeds = {"in%d" % i: a for i, a in enumerate(case.inputs)}
    expected = None
    if case.refusal is None:
        # A separate graph: TF's session rejects a graph holding a kernel-less node.
        reference = build(case.reference) if case.reference is not None else graph
        with tf.compat.v1.Session(graph=reference) as session:
            expected = session.run("out:0", {"in%d:0" % i: a for i, a in enumerate(case.inputs)})
    return graph_def, feeds, expected


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Dict[str, Run]:
    root = tmp_path_factory.mktemp("semantics")
    out, jobs = {}, []
    for case in CASES:
        source = root / (case.id + ".pb")
        graph_def, feeds, expected = _freeze(case, source)
        run = Run(case, source, graph_def, feeds, expected, root / case.id)
        out[case.id] = run
        try:
            api.convert(str(source), str(run.out_dir), input_format="tf_frozen_model",
                        output_format="tfjs_graph_model", output_node_names="out")
        except ConversionError as error:
            run.error = error
            continue
        for backend in BACKENDS:
            jobs.append((run, tfjs_node.Job(run.out_dir, feeds, backend=backend, kind="graph",
                                            method="execute", output_names=["out"],
                                            job_id="%s [%s]" % (case.id, backend))))
    for (run, job), result in zip(jobs, tfjs_node.run_jobs([job for _, job in jobs])):
        run.results[job.backend] = result
    return out


def _subject_matches(run: Run) -> List[str]:
    """Keys of the rules that match node ``subject`` of the source graph."""
    return [rule.key for rule in semantics.matching_rules(run.graph_def, "subject")]


def _check_close(run: Run, backend: str, got: np.ndarray) -> float:
    expected = run.expected
    assert got.shape == expected.shape, "%s on %s: shape %s, want %s" % (
        run.case.id, backend, got.shape, expected.shape)
    if expected.dtype.kind in "iub":
        np.testing.assert_array_equal(got.astype(np.int64), expected.astype(np.int64),
                                      err_msg="%s on %s" % (run.case.id, backend))
        return 0.0
    tolerances.check_close([got], [expected], TOLERANCE, "%s on %s" % (run.case.id, backend))
    return float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_case(case: Case, runs):
    run = runs[case.id]
    assert case.rule in _subject_matches(run), (
        "%s does not exercise rule %s; it matches %s" % (case.id, case.rule, _subject_matches(run)))
    if case.refusal is not None:
        assert isinstance(run.error, UnsupportedOpError), (
            "%s: want the conversion refused, got %r" % (case.id, run.error))
        message = str(run.error)
        op, attribute, value = case.refusal
        assert message.startswith(str(run.source) + ": "), message
        assert "node subject (%s) in graph: %s = %s: TensorFlow.js" % (
            op, attribute, value) in message, message
        assert "fix: " in message, message
        return
    assert run.error is None, "%s: conversion failed: %s" % (case.id, run.error)
    errors = []
    for backend in BACKENDS:
        result = run.results[backend]
        if backend == "wasm" and case.wasm_error is not None:
            assert not result.ok and result.error_message == case.wasm_error, (
                "%s: expected wasm's known limitation %r, got %s" % (
                    case.id, case.wasm_error, "success" if result.ok else result.error_message))
            continue
        result.check()
        errors.append("%s %.3g" % (backend, _check_close(run, backend, result.outputs[0])))
    print("%s: max error %s" % (case.id, ", ".join(errors)))


def test_every_rule_has_a_case():
    keys = [rule.key for rule in semantics.RULES]
    assert len(set(keys)) == len(keys), "duplicate rule keys"
    covered = {case.rule for case in CASES} | set(UNIT_TESTED)
    assert sorted(set(keys) - covered) == [], "rules without a test case"
    assert sorted(covered - set(keys)) == [], "cases of unknown rules"


def test_every_rule_cites_files_of_the_installed_tfjs():
    modules = tfjs_node.node_modules() / "@tensorflow"
    for rule in semantics.RULES:
        assert rule.action in ("rewrite", "refuse"), rule.key
        assert (rule.rewrite is not None) == (rule.action == "rewrite"), rule.key
        cited = re.findall(r"(tfjs-[\w-]+/dist/[\w/]+?\.js)", rule.tfjs)
        assert cited, "%s cites no tfjs file: %s" % (rule.key, rule.tfjs)
        for path in cited:
            assert (modules / path).is_file(), "%s cites %s, not in %s" % (rule.key, path, modules)


def test_rewritten_batch_norm_keeps_its_name_and_drops_the_training_op(runs):
    run = runs["bn_training_nchw_layernorm_form"]
    nodes = {n["name"]: n for n in json.loads((run.out_dir / "model.json").read_text())[
        "modelTopology"]["node"]}
    assert nodes["subject"]["op"] == "Mul"  # ones scale and zeros offset are dropped
    assert not [n for n in nodes.values() if n["op"].startswith("FusedBatchNorm")]
    assert sorted(n["op"] for n in nodes.values()
                  if n["name"].startswith("subject/") and n["op"] != "Const") == [
        "AddV2", "Mean", "Mean", "Rsqrt", "SquaredDifference", "Sub"]


def test_skip_op_check_does_not_skip_the_guard(runs, tmp_path):
    run = runs["maxpool_explicit"]
    with pytest.raises(UnsupportedOpError) as info:
        api.convert(str(run.source), str(tmp_path / "out"), input_format="tf_frozen_model",
                    output_format="tfjs_graph_model", output_node_names="out",
                    skip_op_check=True)
    assert "node subject (MaxPool) in graph: padding = EXPLICIT" in str(info.value)


# -- function bodies, initializer, hand-built GraphDefs -------------------------------------


def _loop_with_mod(tmp_path: pathlib.Path) -> pathlib.Path:
    class Loop(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([4], tf.int32, name="x")])
        def __call__(self, x):
            _, y = tf.while_loop(lambda i, acc: i < 3,
                                 lambda i, acc: (i + 1, R.Mod(x=acc, y=5) - 3),
                                 (tf.constant(0), x))
            return {"y": y}

    module = Loop()
    path = tmp_path / "loop"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.__call__})
    return path


def test_function_bodies_are_checked_and_the_lowered_loop_is_rewritten(tmp_path):
    source = _loop_with_mod(tmp_path)
    with pytest.raises(UnsupportedOpError) as info:
        api.convert(str(source), str(tmp_path / "v2"), output_format="tfjs_graph_model",
                    control_flow_v2=True)
    message = str(info.value)
    assert re.search(r"node \S+ \(Mod\) in function \S+: T = int32: ", message), message
    assert "convert without --control_flow_v2" in message
    # Lowered (the default), the loop body is in the main graph and Mod is rewritten.
    api.convert(str(source), str(tmp_path / "lowered"), output_format="tfjs_graph_model")
    x = np.array([-7, 12, -1, 4], np.int32)
    want = x
    for _ in range(3):
        want = np.fmod(want, 5) - 3
    outputs = tfjs_node.run_in_tfjs(tmp_path / "lowered", {"x": x}, kind="graph",
                                    method="executeAsync", output_names=["y"])
    for backend in BACKENDS:
        np.testing.assert_array_equal(outputs[backend][0], want, err_msg=backend)


def _graph_def(*nodes):
    from tensorflow.core.framework import graph_pb2
    graph = graph_pb2.GraphDef()
    for node in nodes:
        graph.node.add().CopyFrom(node)
    return graph


def _node(name, op, inputs=(), **attrs):
    from tensorflow.core.framework import node_def_pb2
    node = node_def_pb2.NodeDef(name=name, op=op, input=list(inputs))
    for key, value in attrs.items():
        if isinstance(value, bytes):
            node.attr[key].s = value
        elif isinstance(value, float):
            node.attr[key].f = value
        elif isinstance(value, bool):
            node.attr[key].b = value
        elif isinstance(value, list):
            node.attr[key].list.i.extend(value)
        else:
            node.attr[key].type = value
    return node


def _const_node(name, value):
    from tensorflow.python.framework import tensor_util
    node = _node(name, "Const", dtype=tf.as_dtype(value.dtype).as_datatype_enum)
    node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
    return node


def test_initializer_is_checked():
    main = _graph_def(_node("x", "Placeholder", dtype=3))
    init = _graph_def(_node("a", "Placeholder", dtype=3), _node("b", "Placeholder", dtype=3),
                      _node("subject", "Mod", ["a", "b"], T=3))
    with pytest.raises(UnsupportedOpError) as info:
        semantics.check_semantics([("graph", main), ("initializer", init)], "src.pb")
    assert str(info.value).startswith("src.pb: 1 node(s)")
    assert "node subject (Mod) in initializer: T = int32: " in str(info.value)


def test_vectorized_layout_is_refused():
    graph = _graph_def(_node("x", "Placeholder", dtype=1),
                       _node("subject", "MaxPool", ["x"], T=1, data_format=b"NCHW_VECT_C",
                             ksize=[1, 1, 2, 2], strides=[1, 1, 2, 2], padding=b"VALID"))
    with pytest.raises(UnsupportedOpError) as info:
        semantics.check_semantics([("graph", graph)], "src.pb")
    assert "node subject (MaxPool) in graph: data_format = NCHW_VECT_C: " in str(info.value)


def test_fused_ops_in_a_function_body_are_refused():
    graph = _graph_def(_node("x", "Placeholder", dtype=1))
    func = graph.library.function.add()
    func.signature.name = "body"
    func.node_def.add().CopyFrom(_node("subject", "_FusedMatMul", ["a", "b", "c"], T=1))
    func.node_def[0].attr["fused_ops"].list.s.extend([b"BiasAdd", b"Tanh"])
    with pytest.raises(UnsupportedOpError) as info:
        semantics.check_semantics([("graph", graph)], "src.pb")
    assert ("node subject (_FusedMatMul) in function body: fused_ops / data_format / "
            "filter_format = [BiasAdd, Tanh] data_format=NHWC filter_format=HWIO: "
            in str(info.value)), str(info.value)


def test_missing_defaults_are_materialized():
    """Attributes TF fills in on import but a GraphDef may lack (TF.js reads undefined)."""
    x = _node("x", "Placeholder", dtype=1)
    conv = _node("conv", "Conv2D", ["x", "w"], T=1, strides=[1, 1, 1, 1], padding=b"SAME")
    space = _node("space", "DepthToSpace", ["conv"], T=1)
    space.attr["block_size"].i = 2
    bn = _node("bn", "FusedBatchNormV3", ["space", "s", "s", "m", "s"], T=1, U=1,
               is_training=False)
    graph = _graph_def(x, _const_node("w", np.ones((1, 1, 2, 8), np.float32)), conv, space,
                       _const_node("s", np.ones((2,), np.float32)),
                       _const_node("m", np.zeros((2,), np.float32)), bn)
    out = semantics.rewrite_semantics(graph, ["bn"])
    nodes = {n.name: n for n in out.node}
    assert list(nodes["conv"].attr["dilations"].list.i) == [1, 1, 1, 1]
    assert nodes["space"].attr["data_format"].s == b"NHWC"
    assert nodes["bn"].op == "FusedBatchNormV3"
    assert nodes["bn"].attr["epsilon"].f == pytest.approx(1e-4)
    semantics.check_semantics([("graph", out)], "src.pb")


def test_nothing_to_rewrite_returns_the_same_graph():
    graph = _graph_def(_node("x", "Placeholder", dtype=1), _node("y", "Relu", ["x"], T=1))
    assert semantics.rewrite_semantics(graph, ["y"]) is graph
