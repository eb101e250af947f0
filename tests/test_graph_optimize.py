"""Tests of converter.graph.optimize: each pass, then real Keras graphs in TF and TF.js.

Unit tests build small random graphs, run one pass, and check (a) the pattern
was rewritten or left alone, (b) the outputs are unchanged within 1e-5
(TensorFlow session; TF.js-only ops are expanded back to TF ops to run).
Model tests export Keras 3 models, freeze them and run Grappler as the
converter does (``graph_helpers``), run ``optimize_graph``, check the graph
structure, then write the result with the converter's graph writer and run it
in TensorFlow.js on cpu and wasm against TensorFlow.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from converter.graph import grappler, optimize  # noqa: E402
from converter.graph.model import TensorInfo  # noqa: E402
from converter.graph.optimize import batch_norm, fuse, prelu, unfuse  # noqa: E402
import graph_helpers  # noqa: E402

ATOL = 1e-5
FUSED_OPS = (unfuse.FUSED_CONV2D, unfuse.FUSED_MATMUL, unfuse.FUSED_DEPTHWISE)
TFJS_ACTIVATIONS = {"Relu", "Relu6", "Elu", "Sigmoid", "LeakyRelu", "Prelu"}


# -- helpers ------------------------------------------------------------------------


def _graph(build, input_shape, seed=0):
    """GraphDef of ``build(x, rng)`` with a float32 placeholder ``x``; output node ``out``."""
    rng = np.random.RandomState(seed)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, input_shape, name="x")
        tf.identity(build(x, rng), name="out")
    return graph.as_graph_def()


def _const(rng, *shape, low=-1.0, high=1.0):
    return tf.constant(rng.uniform(low, high, shape).astype(np.float32))


def _feed(shape, seed=1):
    return {"x": np.random.RandomState(seed).randn(*shape).astype(np.float32)}


def _assert_same_outputs(before, after, feed, fetch=("out",), atol=ATOL):
    want = graph_helpers.run_graph(before, feed, fetch)
    got = graph_helpers.run_graph(after, feed, fetch)
    for w, g in zip(want, got):
        scale = max(1.0, float(np.abs(w).max()))
        np.testing.assert_allclose(g, w, rtol=0, atol=atol * scale)


def _ops(graph_def):
    """The sorted op types, without Const/Placeholder/Identity."""
    return sorted(n.op for n in graph_def.node
                  if n.op not in ("Const", "Placeholder", "Identity"))


def _node(graph_def, op):
    found = [n for n in graph_def.node if n.op == op]
    assert len(found) == 1, "want one %s node, found %d: %s" % (op, len(found), _ops(graph_def))
    return found[0]


def _fused_ops(node):
    return [s.decode() for s in node.attr["fused_ops"].list.s]


def _const_shapes(graph_def):
    return {n.name: tuple(d.size for d in n.attr["value"].tensor.tensor_shape.dim)
            for n in graph_def.node if n.op == "Const"}


def fused_bias_problems(graph_def):
    """Every fused op whose bias is not a rank-1 Const of the op's channel count."""
    shapes = _const_shapes(graph_def)
    problems = []
    for node in graph_def.node:
        if node.op not in FUSED_OPS:
            continue
        ops = _fused_ops(node)
        args = [i for i in node.input if not i.startswith("^")][2:]
        if ops[0] != "BiasAdd":
            problems.append("%s: fused_ops %s" % (node.name, ops))
            continue
        bias = args[0].split(":")[0]
        if bias not in shapes or len(shapes[bias]) != 1:
            problems.append("%s: bias %s shape %s" % (node.name, bias, shapes.get(bias)))
        if len(ops) > 2 or (len(ops) == 2 and ops[1] not in TFJS_ACTIVATIONS):
            problems.append("%s: fused_ops %s" % (node.name, ops))
        if len(args) != node.attr["num_args"].i:
            problems.append("%s: %d args, num_args %d" % (node.name, len(args),
                                                           node.attr["num_args"].i))
    return problems


def unfolded_affine_after_conv(graph_def):
    """Mul/Add/AddV2/Sub/RealDiv by a Const that reads a conv/matmul (fused or not)."""
    by_name = {n.name: n for n in graph_def.node}
    convs = {"Conv2D", "DepthwiseConv2dNative", "MatMul", "BiasAdd"} | set(FUSED_OPS)
    found = []
    for node in graph_def.node:
        if node.op not in ("Mul", "Add", "AddV2", "Sub", "RealDiv"):
            continue
        sources = [by_name.get(i.split(":")[0]) for i in node.input if not i.startswith("^")]
        if any(s is not None and s.op == "Const" for s in sources) and any(
                s is not None and s.op in convs for s in sources):
            found.append(node.name)
    return found


def _conv(kind, x, rng, channels_in, channels=6):
    """Conv2D / depthwise (multiplier 2) / MatMul (x flattened to [N, K])."""
    if kind == "conv":
        return tf.nn.conv2d(x, _const(rng, 3, 3, channels_in, channels), 1, "SAME"), channels
    if kind == "depthwise":
        return tf.nn.depthwise_conv2d(x, _const(rng, 3, 3, channels_in, 2), [1, 1, 1, 1],
                                      "SAME"), channels_in * 2
    if kind == "matmul":
        return tf.matmul(tf.reshape(x, [-1, 4 * 4 * channels_in]),
                         _const(rng, 4 * 4 * channels_in, channels)), channels
    if kind == "matmul_tb":
        return tf.matmul(tf.reshape(x, [-1, 4 * 4 * channels_in]),
                         _const(rng, channels, 4 * 4 * channels_in), transpose_b=True), channels
    raise ValueError(kind)


KINDS = ("conv", "depthwise", "matmul", "matmul_tb")
BASE_OP = {"conv": "Conv2D", "depthwise": "DepthwiseConv2dNative", "matmul": "MatMul",
           "matmul_tb": "MatMul"}


# -- batch-norm folding and bias normalization --------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("const_shape", ["vector", "rank4", "scalar"])
def test_fold_keras_batch_norm_form(kind, const_shape):
    """conv -> Mul(const) -> AddV2(const) (Keras 3 export) folds to conv(w') -> BiasAdd."""
    def shaped(rng, channels):
        rank = 4 if kind in ("conv", "depthwise") else 2
        if const_shape == "scalar":
            return _const(rng)
        if const_shape == "rank4":
            return _const(rng, *([1] * (rank - 1) + [channels]))
        return _const(rng, channels)

    def build(x, rng):
        y, channels = _conv(kind, x, rng, 3)
        y = y * shaped(rng, channels) + shaped(rng, channels)
        return tf.nn.relu(y)

    before = _graph(build, [None, 4, 4, 3])
    after = batch_norm.fold_affine_into_weights(before, ["out"])
    want = [BASE_OP[kind], "BiasAdd", "Relu"] + (["Reshape"] if "matmul" in kind else [])
    assert _ops(after) == sorted(want)
    bias = _node(after, "BiasAdd")
    assert len(_const_shapes(after)[bias.input[1]]) == 1
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_fold_chain_of_sub_div_rsub_and_bias_add():
    """BiasAdd, Sub, RealDiv, const - x and Mul compose into one scale and one bias."""
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3)
        y = tf.nn.bias_add(y, _const(rng, c))
        y = (y - _const(rng, c)) / _const(rng, c, low=0.5, high=2.0)
        y = _const(rng, 1, 1, 1, c) - y
        return y * _const(rng, c)

    before = _graph(build, [None, 5, 5, 3])
    after = batch_norm.fold_affine_into_weights(before, ["out"])
    assert _ops(after) == ["BiasAdd", "Conv2D"]
    _assert_same_outputs(before, after, _feed((2, 5, 5, 3)))


def test_fold_scale_only_renames_conv():
    """conv -> Mul(const) with no offset: the conv takes the Mul's name, no BiasAdd."""
    def build(x, rng):
        y, c = _conv("depthwise", x, rng, 3)
        return tf.multiply(y, _const(rng, c), name="bn_scale")

    before = _graph(build, [None, 5, 5, 3])
    after = batch_norm.fold_affine_into_weights(before, ["out"])
    assert _ops(after) == ["DepthwiseConv2dNative"]
    assert _node(after, "DepthwiseConv2dNative").name == "bn_scale"
    _assert_same_outputs(before, after, _feed((2, 5, 5, 3)))


def test_add_of_rank1_const_becomes_bias_add():
    """Bias-add normalization: AddV2(conv, const[C]) -> BiasAdd."""
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3)
        return tf.add(y, _const(rng, c), name="bias")

    before = _graph(build, [None, 5, 5, 3])
    after = batch_norm.fold_affine_into_weights(before, ["out"])
    assert _ops(after) == ["BiasAdd", "Conv2D"]
    assert _node(after, "BiasAdd").name == "bias"
    _assert_same_outputs(before, after, _feed((2, 5, 5, 3)))


def test_fused_batch_norm_is_folded():
    """Inference FusedBatchNormV3 after a conv folds into the weights + one BiasAdd."""
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3)
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            y, _const(rng, c), _const(rng, c), mean=_const(rng, c),
            variance=_const(rng, c, low=0.5, high=1.5), epsilon=1e-3, is_training=False)
        return tf.nn.relu6(y)

    before = _graph(build, [None, 5, 5, 3])
    assert "FusedBatchNormV3" in _ops(before)
    after = batch_norm.decompose_batch_norms(before, ["out"])
    after = batch_norm.fold_affine_into_weights(after, ["out"])
    assert _ops(after) == ["BiasAdd", "Conv2D", "Relu6"]
    _assert_same_outputs(before, after, _feed((2, 5, 5, 3)))


@pytest.mark.parametrize("case", ["spatial_const", "full_const", "residual", "two_readers",
                                  "conv_is_output", "broadcasting_const"])
def test_non_matching_patterns_untouched(case):
    """Anything that is not a per-channel const on a single-reader conv stays as it is."""
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3)
        if case == "spatial_const":
            return y * _const(rng, 1, 5, 1, 1)
        if case == "full_const":
            return y + _const(rng, 5, 5, c)
        if case == "residual":
            return y + tf.nn.conv2d(x, _const(rng, 1, 1, 3, c), 1, "SAME")
        if case == "two_readers":
            return (y * _const(rng, c)) + tf.nn.relu(y)
        if case == "conv_is_output":
            return y * _const(rng, c)
        return y + _const(rng, 2, 1, 1, 1, c)  # rank 5: would broadcast the output up

    before = _graph(build, [None, 5, 5, 3])
    outputs = ["out", "Conv2D"] if case == "conv_is_output" else ["out"]
    after = batch_norm.fold_affine_into_weights(before, outputs)
    assert _ops(after) == _ops(before)
    assert not any(n.op == "BiasAdd" for n in after.node)


def test_constant_add_after_residual_sum_is_pushed_into_conv():
    """AddN(conv, r) + const (Grappler's rewrite of a residual BN) folds into the conv bias."""
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3, channels=3)
        total = tf.math.add_n([y * _const(rng, c), tf.nn.relu(x)], name="sum")
        return tf.add(total, _const(rng, 1, 1, 1, c), name="offset")

    before = _graph(build, [None, 5, 5, 3])
    after = optimize.optimize_graph(before, ["out"])
    assert _ops(after) == sorted([unfuse.FUSED_CONV2D, "AddN", "Relu"])
    assert _node(after, "AddN").name == "offset"
    assert unfolded_affine_after_conv(after) == []
    _assert_same_outputs(before, after, _feed((2, 5, 5, 3)))


# -- fusion -------------------------------------------------------------------------


def _activation(name, y):
    if name == "LeakyRelu":
        return tf.nn.leaky_relu(y, alpha=0.3)
    return {"Relu": tf.nn.relu, "Relu6": tf.nn.relu6, "Elu": tf.nn.elu,
            "Sigmoid": tf.sigmoid, "Tanh": tf.tanh}[name](y)


@pytest.mark.parametrize("kind", ("conv", "depthwise", "matmul"))
@pytest.mark.parametrize("activation", ["Relu", "Relu6", "Elu", "Sigmoid", "LeakyRelu", "Tanh",
                                        None])
def test_fuse_bias_and_activation(kind, activation):
    """BiasAdd + activation fuse when both TF.js backends run them, else only BiasAdd."""
    def build(x, rng):
        y, c = _conv(kind, x, rng, 3)
        y = tf.nn.bias_add(y, _const(rng, c))
        return _activation(activation, y) if activation else y

    before = _graph(build, [None, 4, 4, 3])
    after = fuse.fuse_conv_bias_activation(before, ["out"])
    fused_node = _node(after, unfuse.FUSED_OP_OF[BASE_OP[kind]])
    fusable = activation in unfuse.FUSABLE_ACTIVATIONS[BASE_OP[kind]]
    assert _fused_ops(fused_node) == (["BiasAdd", activation] if fusable else ["BiasAdd"])
    if activation and not fusable:
        assert activation in _ops(after)
    if activation == "LeakyRelu" and fusable:
        assert fused_node.attr["leakyrelu_alpha"].f == pytest.approx(0.3)
    assert fused_bias_problems(after) == []
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_activation_without_bias_gets_zero_bias():
    """conv -> Relu (no bias) fuses with a zero rank-1 bias, never with fused_ops=[Relu]."""
    def build(x, rng):
        return tf.nn.relu(_conv("conv", x, rng, 3)[0])

    before = _graph(build, [None, 4, 4, 3])
    after = fuse.fuse_conv_bias_activation(before, ["out"])
    node = _node(after, unfuse.FUSED_CONV2D)
    assert _fused_ops(node) == ["BiasAdd", "Relu"]
    assert _const_shapes(after)[node.input[2]] == (6,)
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_residual_add_is_never_fused():
    """conv -> BiasAdd -> Add(residual) -> Relu: only the BiasAdd fuses (the ResNet case)."""
    def build(x, rng):
        y = tf.nn.bias_add(tf.nn.conv2d(x, _const(rng, 3, 3, 3, 3), 1, "SAME"),
                           _const(rng, 3))
        return tf.nn.relu(y + x)

    before = _graph(build, [None, 4, 4, 3])
    after = optimize.optimize_graph(before, ["out"])
    assert _ops(after) == sorted([unfuse.FUSED_CONV2D, "AddV2", "Relu"])
    assert _fused_ops(_node(after, unfuse.FUSED_CONV2D)) == ["BiasAdd"]
    assert fused_bias_problems(after) == []
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_upstream_residual_fusion_is_undone():
    """A remapper-style _FusedConv2D [BiasAdd, Add, Relu] (residual as 2nd arg) is split."""
    def build(x, rng):
        y = tf.nn.bias_add(tf.nn.conv2d(x, _const(rng, 3, 3, 3, 3), 1, "SAME", name="conv"),
                           _const(rng, 3), name="bias")
        return tf.nn.relu(tf.add(y, tf.nn.relu(x, name="residual"), name="add"), name="act")

    before = _graph(build, [None, 4, 4, 3])
    # What the TF remapper emits for this pattern (and TF.js wasm rejects: rank-4 "bias").
    remapped = type(before)()
    remapped.CopyFrom(before)
    nodes = {n.name: n for n in remapped.node}
    act = nodes["act"]
    act.op = unfuse.FUSED_CONV2D
    del act.input[:]
    act.input.extend(list(nodes["conv"].input) + [nodes["bias"].input[1], "residual"])
    for key in ("strides", "padding", "data_format", "dilations", "explicit_paddings",
                "use_cudnn_on_gpu"):
        act.attr[key].CopyFrom(nodes["conv"].attr[key])
    act.attr["fused_ops"].list.s.extend([b"BiasAdd", b"Add", b"Relu"])
    act.attr["num_args"].i = 2
    act.attr["TArgs"].list.type.extend([1, 1])
    for name in ("conv", "bias", "add"):
        remapped.node.remove(nodes[name])
    try:
        _assert_same_outputs(before, remapped, _feed((2, 4, 4, 3)))  # TF runs it
    except tf.errors.UnimplementedError:
        # TF runs this fusion only where its oneDNN kernels are on (CPU-dependent);
        # the graph is still what the remapper emits elsewhere, so split it anyway.
        pass
    after = optimize.optimize_graph(remapped, ["out"])
    assert fused_bias_problems(after) == []
    assert [_fused_ops(n) for n in after.node if n.op in FUSED_OPS] == [["BiasAdd"]]
    assert _ops(after) == sorted([unfuse.FUSED_CONV2D, "AddV2", "Relu", "Relu"])
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def _fuse_matmul_by_hand(graph_def, fused_ops):
    """``graph_def`` with its MatMul -> BiasAdd -> activation chain as one _FusedMatMul."""
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    nodes = {n.name: n for n in out.node}
    matmul = next(n for n in out.node if n.op == "MatMul")
    bias = next(n for n in out.node if n.op == "BiasAdd")
    act = next(n for n in out.node if list(n.input) == [bias.name])
    act_name = act.name
    act.op = unfuse.FUSED_MATMUL
    del act.input[:]
    act.input.extend(list(matmul.input) + [bias.input[1]])
    for key in ("transpose_a", "transpose_b", "T"):
        act.attr[key].CopyFrom(matmul.attr[key])
    act.attr["fused_ops"].list.s.extend(fused_ops)
    act.attr["num_args"].i = 1
    act.attr["epsilon"].f = 0.0
    for name in (matmul.name, bias.name):
        out.node.remove(nodes[name])
    assert act_name == act.name
    return out


def test_fused_tanh_from_upstream_is_split():
    """An upstream _FusedMatMul [BiasAdd, Tanh] (neither backend runs it) is split."""
    def build(x, rng):
        y = tf.matmul(tf.reshape(x, [-1, 48]), _const(rng, 48, 5))
        return tf.tanh(tf.nn.bias_add(y, _const(rng, 5)))

    before = _graph(build, [None, 4, 4, 3])
    for node in before.node:
        node.device = "/device:CPU:0"
    remapped = type(before)()
    remapped.CopyFrom(before)
    grappler.run_grappler(remapped, [TensorInfo("x", "x:0", "DT_FLOAT", (-1, 4, 4, 3))],
                          [TensorInfo("out", "out:0", "DT_FLOAT", (-1, 5))], ("remap",),
                          iterations=1)
    if [_fused_ops(n) for n in remapped.node if n.op == unfuse.FUSED_MATMUL] != [
            ["BiasAdd", "Tanh"]]:
        # The remapper fuses Tanh only where oneDNN is on (CPU-dependent): make
        # the node it makes elsewhere by hand.
        remapped = _fuse_matmul_by_hand(before, [b"BiasAdd", b"Tanh"])
    assert [_fused_ops(n) for n in remapped.node if n.op == unfuse.FUSED_MATMUL] == [
        ["BiasAdd", "Tanh"]]
    after = optimize.optimize_graph(remapped, ["out"])
    assert [_fused_ops(n) for n in after.node if n.op in FUSED_OPS] == [["BiasAdd"]]
    assert "Tanh" in _ops(after)
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_fused_intermediate_with_two_readers_untouched():
    def build(x, rng):
        y = tf.nn.bias_add(_conv("conv", x, rng, 3)[0], _const(rng, 6))
        return tf.nn.relu(y) + y

    before = _graph(build, [None, 4, 4, 3])
    after = fuse.fuse_conv_bias_activation(before, ["out"])
    node = _node(after, unfuse.FUSED_CONV2D)
    assert _fused_ops(node) == ["BiasAdd"]
    assert "Relu" in _ops(after)
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


# -- PReLU --------------------------------------------------------------------------


def _keras_prelu(y, alpha):
    """What Keras 3 PReLU lowers to: relu(x) + (-alpha) * relu(-x)."""
    return tf.nn.relu(y) + tf.constant(-alpha) * tf.nn.relu(-y)


@pytest.mark.parametrize("alpha_shape,fused_alpha", [
    ((6,), (6,)),            # per channel
    ((1, 1, 6), (6,)),       # Keras shared_axes=[1, 2]
    ((4, 4, 6), None),       # full: stays a standalone Prelu with alpha [4, 4, 6]
    ((4, 4, 1), None),       # shared_axes=[3]: materialized to [4, 4, 6] for wasm
])
def test_prelu_fusion(alpha_shape, fused_alpha):
    def build(x, rng):
        y = tf.nn.bias_add(_conv("conv", x, rng, 3)[0], _const(rng, 6))
        alpha = rng.uniform(0.05, 0.5, alpha_shape).astype(np.float32)
        return _keras_prelu(y, alpha)

    before = _graph(build, [None, 4, 4, 3])
    after = optimize.optimize_graph(before, ["out"])
    shapes = _const_shapes(after)
    if fused_alpha is not None:
        node = _node(after, unfuse.FUSED_CONV2D)
        assert _fused_ops(node) == ["BiasAdd", "Prelu"]
        assert shapes[node.input[3]] == fused_alpha
        assert _ops(after) == [unfuse.FUSED_CONV2D]
    else:
        node = _node(after, "Prelu")
        assert shapes[node.input[1]] == (4, 4, 6)
        assert _ops(after) == sorted([unfuse.FUSED_CONV2D, "Prelu"])
    _assert_same_outputs(before, after, _feed((2, 4, 4, 3)))


def test_prelu_with_unknown_shape_is_left_alone():
    """alpha [1, 1, 1] with inner 1s needs x's static shape to be rewritten safely."""
    def build(x, rng):
        return _keras_prelu(x, rng.uniform(0.1, 0.3, (5, 1, 1)).astype(np.float32))

    before = _graph(build, [None, None, None, 3])
    after = prelu.fuse_prelu(before, ["out"])
    assert "Prelu" not in _ops(after)


def test_wasm_alpha_layouts():
    assert prelu.wasm_alpha(np.ones((1, 1, 3), np.float32), (None, 4, 4, 3)).shape == (1,)
    alpha = np.arange(3, dtype=np.float32).reshape(1, 1, 3)
    assert prelu.wasm_alpha(alpha, (None, 4, 4, 3)).shape == (3,)
    alpha = np.arange(4, dtype=np.float32).reshape(4, 1, 1)
    assert prelu.wasm_alpha(alpha, (None, 4, 2, 3)).shape == (4, 2, 3)
    assert prelu.wasm_alpha(alpha, (None, 4, None, 3)) is None
    assert prelu.wasm_alpha(np.ones((2, 3), np.float32), (None, 1, 3)) is None


# -- the whole pipeline -------------------------------------------------------------


def test_pass_list_order_and_reasons():
    names = [name for name, _, _ in optimize.PASSES]
    assert names == ["expand_fused_ops", "decompose_batch_norms",
                     "fold_affine_into_weights", "remove_unused_constants",
                     "push_constant_adds_into_convs",
                     "fuse_prelu", "fuse_conv_bias_activation", "remove_unused_constants"]
    assert all(len(reason) > 20 for _, _, reason in optimize.PASSES)


def test_optimize_does_not_mutate_input_and_is_idempotent():
    def build(x, rng):
        y, c = _conv("conv", x, rng, 3)
        return tf.nn.relu(y * _const(rng, c) + _const(rng, c))

    before = _graph(build, [None, 4, 4, 3])
    snapshot = before.SerializeToString()
    once = optimize.optimize_graph(before, ["out"])
    assert before.SerializeToString() == snapshot
    twice = optimize.optimize_graph(once, ["out"])
    assert graph_helpers.op_counts(twice) == graph_helpers.op_counts(once)
    assert graph_helpers.op_counts(once) == {"Placeholder": 1, "Const": 2,
                                             unfuse.FUSED_CONV2D: 1, "Identity": 1}


# -- real Keras models --------------------------------------------------------------


def _mobilenet():
    import keras
    model = keras.applications.MobileNetV2(weights=None, input_shape=(96, 96, 3),
                                           classifier_activation=None)
    graph_helpers.randomize_batch_norms(model)
    return model


def _resnet():
    import keras
    model = keras.applications.ResNet50(weights=None, input_shape=(64, 64, 3),
                                        classifier_activation=None)
    graph_helpers.randomize_batch_norms(model)
    return model


def _lstm(unroll=False):
    import keras
    inputs = keras.Input((10, 8))
    x = keras.layers.LSTM(16, return_sequences=True, unroll=unroll)(inputs)
    x = keras.layers.LSTM(8, unroll=unroll)(x)
    outputs = keras.layers.Dense(4)(x)
    model = keras.Model(inputs, outputs)
    _randomize(model, seed=5)
    return model


def _randomize(model, seed):
    """Random weights everywhere (zero biases would be folded away by Grappler)."""
    rng = np.random.RandomState(seed)
    for layer in model.layers:
        if layer.get_weights() and type(layer).__name__ != "BatchNormalization":
            low = 0.05 if type(layer).__name__ == "PReLU" else -0.3
            layer.set_weights([rng.uniform(low, 0.5 if low > 0 else 0.3, w.shape)
                               .astype(np.float32) for w in layer.get_weights()])


def _small_cnn():
    """Every activation and folding form we fuse, in one small model."""
    import keras
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.PReLU(shared_axes=[1, 2])(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ELU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="sigmoid")(x)
    x = keras.layers.PReLU()(x)
    y = keras.layers.Conv2D(8, 1, activation="tanh")(x)
    x = keras.layers.Add()([x, y])
    x = keras.layers.Conv2D(6, 3, strides=2)(x)
    x = keras.layers.LeakyReLU(0.3)(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(10)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.LeakyReLU(0.2)(x)
    outputs = keras.layers.Dense(3, activation="elu")(x)
    model = keras.Model(inputs, outputs)
    _randomize(model, seed=3)
    graph_helpers.randomize_batch_norms(model)
    return model


MODELS = {
    "small_cnn": (_small_cnn, (2, 12, 12, 3), "execute"),
    "mobilenet_v2": (_mobilenet, (2, 96, 96, 3), "execute"),
    "lstm": (_lstm, (2, 10, 8), "executeAsync"),
    "lstm_unrolled": (lambda: _lstm(unroll=True), (2, 10, 8), "execute"),
    "resnet50": (_resnet, (1, 64, 64, 3), "execute"),
}


class Converted:
    """A Keras model frozen and Grappler-optimized by the converter, then optimize_graph."""

    def __init__(self, name, root):
        build, shape, self.method = MODELS[name]
        model = build()
        self.x = np.random.RandomState(7).uniform(-1, 1, shape).astype(np.float32)
        self.keras_out = np.asarray(model(self.x))
        frozen = graph_helpers.frozen_keras_export(model, root / name)
        self.before = frozen.graph_def
        self.input = frozen.inputs[0].node
        self.outputs = [o.node for o in frozen.outputs]
        self.after = optimize.optimize_graph(self.before, self.outputs)
        self.model_dir = graph_helpers.write_graph_model(frozen, self.after,
                                                         root / (name + "_tfjs"))


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    cache = {}
    root = tmp_path_factory.mktemp("graph_optimize")

    def get(name):
        if name not in cache:
            cache[name] = Converted(name, root)
        return cache[name]
    return get


def _check_structure(conv):
    assert fused_bias_problems(conv.after) == []
    assert unfolded_affine_after_conv(conv.after) == []
    counts = graph_helpers.op_counts(conv.after)
    return counts


def test_mobilenet_v2_structure(converted):
    conv = converted("mobilenet_v2")
    before = graph_helpers.op_counts(conv.before)
    counts = _check_structure(conv)
    assert unfolded_affine_after_conv(conv.before), "the export should leave BN arithmetic"
    assert before.get("Mul", 0) >= 17 and before.get("AddV2", 0) > 10
    # Every convolution fused: 35 Conv2D + 17 depthwise; only the 10 residual adds remain.
    assert counts.get("Conv2D", 0) == 0 and counts.get("DepthwiseConv2dNative", 0) == 0
    assert counts[unfuse.FUSED_CONV2D] == before["Conv2D"]
    assert counts[unfuse.FUSED_DEPTHWISE] == before["DepthwiseConv2dNative"]
    assert counts.get("Mul", 0) == 0
    assert counts.get("AddV2", 0) + counts.get("AddN", 0) == 10
    assert counts.get("Relu6", 0) == 0


@pytest.mark.parametrize("name", ["lstm", "lstm_unrolled"])
def test_lstm_structure(converted, name):
    conv = converted(name)
    _check_structure(conv)
    counts = graph_helpers.op_counts(conv.after)
    # One input-projection MatMul per cell step fuses with the cell bias; the Dense too.
    assert counts.get(unfuse.FUSED_MATMUL, 0) >= 3
    assert counts.get("BiasAdd", 0) == 0


@pytest.mark.slow
def test_resnet50_structure(converted):
    conv = converted("resnet50")
    before = graph_helpers.op_counts(conv.before)
    counts = _check_structure(conv)
    assert counts.get("Conv2D", 0) == 0
    assert counts[unfuse.FUSED_CONV2D] == before["Conv2D"]
    # The 16 residual sums stay unfused.
    assert counts.get("AddV2", 0) + counts.get("AddN", 0) == 16


def test_small_cnn_structure(converted):
    conv = converted("small_cnn")
    counts = _check_structure(conv)
    fused_lists = sorted(str(_fused_ops(n)) for n in conv.after.node if n.op in FUSED_OPS)
    assert "['BiasAdd', 'Prelu']" in fused_lists
    assert "['BiasAdd', 'LeakyRelu']" in fused_lists
    assert "['BiasAdd', 'Elu']" in fused_lists
    assert counts.get("Prelu", 0) == 1  # the full-shape alpha stays standalone
    assert counts.get("Tanh", 0) == 1


@pytest.mark.parametrize("name", ["small_cnn", "mobilenet_v2", "lstm", "lstm_unrolled",
                                  pytest.param("resnet50", marks=pytest.mark.slow)])
def test_tf_parity(converted, name):
    """The optimized graph, run by TensorFlow, matches Keras."""
    conv = converted(name)
    got = graph_helpers.run_graph(conv.after, {conv.input: conv.x}, conv.outputs)[0]
    scale = max(1.0, float(np.abs(conv.keras_out).max()))
    np.testing.assert_allclose(got, conv.keras_out, rtol=0, atol=ATOL * scale)


# The while-loop LSTM is not here: TF.js cannot run its lowered loop even before
# optimization (a graph-pipeline matter); the unrolled LSTM covers the fused MatMuls.
@pytest.mark.parametrize("name", ["small_cnn", "mobilenet_v2", "lstm_unrolled",
                                  pytest.param("resnet50", marks=pytest.mark.slow)])
def test_tfjs_parity(converted, name):
    """The optimized graph runs on TF.js cpu and wasm and matches Keras."""
    from tfjs_node import run_in_tfjs
    conv = converted(name)
    scale = max(1.0, float(np.abs(conv.keras_out).max()))
    results = run_in_tfjs(conv.model_dir, {conv.input: conv.x}, kind="graph",
                          method=conv.method, output_names=conv.outputs)
    errors = {}
    for backend, outs in results.items():
        errors[backend] = float(np.abs(outs[0] - conv.keras_out).max())
        np.testing.assert_allclose(outs[0], conv.keras_out, rtol=0, atol=ATOL * scale,
                                   err_msg="%s on %s" % (conv.model_dir, backend))
    print("%s: max|y| %.3g, max abs error vs Keras %s" % (name, scale, errors))
