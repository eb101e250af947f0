"""Models over 2 GiB (issue 8, tfjs#7260): every path whose format holds one converts it.

The model is ``bench/bench_large.py``'s: 2 281 914 368 bytes of float32 weights in
five Dense layers, the largest tensor 1 GiB, its files written with h5py from
Keras-saved templates with seeded values. Layers paths stream (peak RSS asserted
under half the largest tensor: holding the model, or even that tensor, would
fail it); outputs are checked by manifest, shard sizes, a SHA-256 of the weight
stream shared by every path, and sampled values recomputed from the seeds. A
SavedModel converts to a graph model with its large variables left out of the
frozen GraphDef (protobuf cannot serialize 2 GiB) and streamed from the
checkpoint; Keras and TF.js layers sources to a graph model are refused in one
line naming the file and the limit, exit 1, the previous output untouched, from
the declared weight shapes before Keras loads anything (peak RSS under 1 GiB).

The paths through Keras itself (tfjs_layers_model -> keras ``.h5`` / ``.keras``)
peak at 8-9.3 GB (``converter/writers/keras.py`` holds several copies of the
model): they run where the machine has 16 GiB or more, or with
``TFJS_LARGE_KERAS_PATHS=1``; ``bench/bench_large.py`` measures them.

The fast tests at the end check the streaming machinery on tiny models.
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from bench import bench_large as bl  # noqa: E402
import test_cli  # noqa: E402

slow = pytest.mark.slow
MiB = 1 << 20
# Streaming holds one 4 MiB chunk; reading the model (or its largest tensor) whole
# would take 2176 MiB (1024 MiB).
STREAMING_RSS_LIMIT = bl.LARGEST_TENSOR_BYTES // 2


def _memory_total_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


# The paths through Keras (writers/keras.py) hold the whole model in Keras: 8-9.3
# GB of RSS. They run where the machine has 16 GiB or more (CI's
# 24 GiB does), or when TFJS_LARGE_KERAS_PATHS=1 forces them.
KERAS_PATHS = (os.environ.get("TFJS_LARGE_KERAS_PATHS", "") == "1"
               or (os.environ.get("TFJS_LARGE_KERAS_PATHS", "") != "0"
                   and _memory_total_bytes() >= 16 << 30))
keras_paths = pytest.mark.skipif(
    not KERAS_PATHS, reason="peaks at 8-9.3 GB of RSS in Keras itself (writers/keras.py); "
    "this machine has under 16 GiB of memory "
    "(TFJS_LARGE_KERAS_PATHS=1 forces it)")


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("large")
    bl.build_templates(str(root / "templates"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def k3_h5(work):
    """The Keras 3 ``.h5`` at full size (deleted after the module)."""
    path = str(work / "k3.h5")
    bl.inflate_h5(str(work / "templates" / "k3.h5"), path)
    yield path
    _remove(path)


@pytest.fixture(scope="module")
def layers(work, k3_h5):
    """``k3.h5`` converted to a TF.js layers model: (dir, stderr, wall, peak RSS)."""
    out = str(work / "layers")
    code, err, wall, rss = bl.run_converter([k3_h5, out])
    assert code == 0, err
    yield out, err, wall, rss
    _remove(out)


def _manifest(model_dir):
    with open(os.path.join(model_dir, "model.json")) as f:
        doc = json.load(f)
    (group,) = doc["weightsManifest"]
    return doc, group


def check_layers_output(model_dir, shard_size=4 * MiB):
    """Manifest, shard sizes and sampled values of a converted big model."""
    doc, group = _manifest(model_dir)
    assert doc["format"] == "layers-model"
    assert [(w["name"], tuple(w["shape"]), w["dtype"]) for w in group["weights"]] == \
        [(n, s, "float32") for n, s in bl.full_shapes()]
    sizes = [os.path.getsize(os.path.join(model_dir, p)) for p in group["paths"]]
    assert sum(sizes) == bl.TOTAL_BYTES == 2281914368
    assert len(sizes) == math.ceil(bl.TOTAL_BYTES / shard_size)
    assert set(sizes[:-1]) == {shard_size}
    layers = doc["modelTopology"]["model_config"]["config"]["layers"]
    assert [l["config"].get("units") for l in layers if l["class_name"] == "Dense"] == \
        [16384, 16384, 8192, 8192, 4096]
    check_sampled_values(model_dir, group, sizes)


def check_sampled_values(model_dir, group, sizes, name_of=lambda name: name):
    """Four values of every weight, read from the shards, equal the seeded ones bit for bit.

    ``name_of`` maps a manifest name to the model's weight name.
    """
    starts = np.cumsum([0] + sizes)
    offset = 0
    checked = 0
    for spec in group["weights"]:
        shape = tuple(spec["shape"])
        name = name_of(spec["name"])
        for index in bl.sample_indices(shape):
            at = offset + 4 * int(np.ravel_multi_index(index, shape))
            shard = int(np.searchsorted(starts, at, side="right")) - 1
            with open(os.path.join(model_dir, group["paths"][shard]), "rb") as f:
                f.seek(at - int(starts[shard]))
                raw = f.read(4)
                if len(raw) < 4:  # the value straddles two shards
                    with open(os.path.join(model_dir, group["paths"][shard + 1]), "rb") as g:
                        raw += g.read(4 - len(raw))
            want = bl.expected_value(name, shape, index)
            assert raw == want.tobytes(), (name, index, np.frombuffer(raw, "<f4"), want)
            checked += 1
        offset += 4 * math.prod(shape)
    assert checked == 40


def check_keras_h5_values(h5_file):
    """Sampled values of every weight of a Keras-written file (datasets found by shape)."""
    import h5py
    datasets = []
    h5_file.visititems(lambda n, o: datasets.append(o) if isinstance(o, h5py.Dataset) else None)
    by_shape = {}
    for d in datasets:
        by_shape.setdefault(tuple(d.shape), []).append(d)
    for name, shape in bl.full_shapes():
        # d1/d2 biases share a shape (16384,), as do d3/d4's (8192,): any match is enough
        # for kernels (all distinct); for biases one of them must match.
        candidates = by_shape[shape]
        index_list = bl.sample_indices(shape)
        want = [bl.expected_value(name, shape, i).tobytes() for i in index_list]
        assert any([np.asarray(d[i], "<f4").tobytes() for i in index_list] == want
                   for d in candidates), name
    assert sum(d.size * 4 for d in datasets) == bl.TOTAL_BYTES


def _previous_output(work, name):
    """A small earlier conversion at ``name``: a refused run must leave it as it was."""
    out = str(work / name)
    code, err, _, _ = bl.run_converter([str(work / "templates" / "k3.h5"), out])
    assert code == 0, err
    return out, test_cli.tree_digest(out)


def _one_line_error(err):
    """The converter's own line (TensorFlow may log before it)."""
    lines = [l for l in err.strip().splitlines() if l.startswith("tfjs_converter: error:")]
    assert len(lines) == 1, err
    return lines[0]


def _check_refusal(code, err, source, previous, digest, rss):
    """Refused from the weights' declared sizes, before Keras loads anything."""
    line = _one_line_error(err)
    assert code == 1, err
    assert source in line and "2147483647 bytes" in line and "protobuf" in line, line
    assert "would hold over 2281914368 bytes (the weights of 10 tensors)" in line, line
    assert test_cli.tree_digest(previous) == digest
    # TensorFlow's import and the metadata; Keras holding the model took 6.8-8 GB.
    assert rss < bl.LARGEST_TENSOR_BYTES, "peak RSS %.0f MiB" % (rss / MiB)
    print("refused in one line, peak RSS %.0f MiB" % (rss / MiB))


@slow
def test_keras3_h5_to_layers_streams(layers):
    out, err, wall, rss = layers
    check_layers_output(out)
    assert rss < STREAMING_RSS_LIMIT, "peak RSS %.0f MiB" % (rss / MiB)


@slow
def test_keras2_h5_to_layers_streams(work, layers):
    src, out = str(work / "k2.h5"), str(work / "from_k2")
    bl.inflate_h5(str(work / "templates" / "k2.h5"), src)
    try:
        code, err, wall, rss = bl.run_converter([src, out])
        _remove(src)
        assert code == 0, err
        assert rss < STREAMING_RSS_LIMIT, "peak RSS %.0f MiB" % (rss / MiB)
        check_layers_output(out)
        assert bl.stream_digest(out) == bl.stream_digest(layers[0])
    finally:
        _remove(src)
        _remove(out)


@slow
def test_keras_archive_to_layers_streams(work, layers):
    src, out = str(work / "k3.keras"), str(work / "from_keras")
    bl.inflate_keras(str(work / "templates" / "k3.keras"), src, str(work))
    try:
        code, err, wall, rss = bl.run_converter([src, out, "--output_format=tfjs_layers_model"])
        _remove(src)
        assert code == 0, err
        assert rss < STREAMING_RSS_LIMIT, "peak RSS %.0f MiB" % (rss / MiB)
        check_layers_output(out)
        assert bl.stream_digest(out) == bl.stream_digest(layers[0])
    finally:
        _remove(src)
        _remove(out)


@slow
def test_layers_reshard_streams(work, layers):
    out = str(work / "reshard")
    try:
        code, err, wall, rss = bl.run_converter(
            [layers[0], out, "--output_format=tfjs_layers_model",
             "--weight_shard_size_bytes=%d" % (64 * MiB)])
        assert code == 0, err
        assert rss < STREAMING_RSS_LIMIT, "peak RSS %.0f MiB" % (rss / MiB)
        check_layers_output(out, shard_size=64 * MiB)
        assert len(_manifest(out)[1]["paths"]) == 35
        assert bl.stream_digest(out) == bl.stream_digest(layers[0])
    finally:
        _remove(out)


@slow
def test_keras_h5_to_graph_refuses_in_one_line(work, k3_h5):
    previous, digest = _previous_output(work, "graph_from_h5")
    code, err, wall, rss = bl.run_converter([k3_h5, previous, "--output_format=tfjs_graph_model"])
    _check_refusal(code, err, k3_h5, previous, digest, rss)


def _graph_weight_name(name):
    """``StatefulPartitionedCall/MatMul_2/ReadVariableOp`` -> ``d3/kernel`` (add_i: bias)."""
    op = name.split("/")[1]
    kind, _, index = op.partition("_")
    return "d%d/%s" % (int(index or 0) + 1, "kernel" if kind == "MatMul" else "bias")


@slow
def test_saved_model_to_graph_streams_weights_from_the_checkpoint(work):
    src, out = str(work / "saved_model"), str(work / "graph")
    bl.build_saved_model(src)
    try:
        code, err, wall, rss = bl.run_converter(
            [src, out, "--input_format=tf_saved_model", "--output_format=tfjs_graph_model"])
        assert code == 0, err
        # TensorFlow's ~550 MB and TensorFlow's pool of the largest value read (1 GiB);
        # holding the model would take 550 + 2176 MiB.
        assert rss < 2 * bl.LARGEST_TENSOR_BYTES, "peak RSS %.0f MiB" % (rss / MiB)
        doc, group = _manifest(out)
        assert doc["format"] == "graph-model"
        assert sorted((_graph_weight_name(w["name"]), tuple(w["shape"]), w["dtype"])
                      for w in group["weights"]) == sorted((n, s, "float32")
                                                           for n, s in bl.full_shapes())
        sizes = [os.path.getsize(os.path.join(out, p)) for p in group["paths"]]
        assert sum(sizes) == bl.TOTAL_BYTES and len(sizes) == 545
        check_sampled_values(out, group, sizes, _graph_weight_name)
        nodes = doc["modelTopology"]["node"]
        assert sorted(n["op"] for n in nodes) == sorted(
            ["Const"] * 10 + ["MatMul"] * 5 + ["AddV2"] * 5 + ["Placeholder", "Identity"])
        assert not [n for n in nodes if any(a.startswith("_tfjs") for a in n.get("attr", {}))]
    finally:
        _remove(src)
        _remove(out)


@slow
def test_layers_to_graph_refuses_in_one_line(work, layers):
    previous, digest = _previous_output(work, "graph_from_layers")
    code, err, wall, rss = bl.run_converter([layers[0], previous,
                                             "--output_format=tfjs_graph_model"])
    _check_refusal(code, err, layers[0], previous, digest, rss)


@slow
@keras_paths
@pytest.mark.parametrize("fmt,name", [("keras", "out.h5"), ("keras_keras", "out.keras")])
def test_layers_to_keras(work, layers, fmt, name):
    import h5py
    import zipfile
    out = str(work / name)
    try:
        code, err, wall, rss = bl.run_converter([layers[0], out, "--output_format=" + fmt])
        assert code == 0, err
        if fmt == "keras":
            with h5py.File(out, "r") as f:
                check_keras_h5_values(f)
        else:
            with zipfile.ZipFile(out) as z, z.open("model.weights.h5") as member, \
                    h5py.File(member, "r") as f:
                check_keras_h5_values(f)
    finally:
        _remove(out)


# -- the streaming machinery, on tiny models (fast) -----------------------------------

@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("templates"))
    bl.build_templates(root)
    return root


@pytest.mark.parametrize("source", ["k3.h5", "k2.h5", "k3.keras"])
def test_stored_tensors_write_the_bytes_read_ones_do(templates, tmp_path, monkeypatch, source):
    import converter
    from converter.weights import stored
    from converter.readers.keras_h5 import read_keras_h5
    from converter.readers.keras_v3 import read_keras_v3
    from converter.readers.tfjs_layers import read_tfjs_layers
    src = os.path.join(templates, source)
    converter.convert(src, tmp_path / "read", output_format="tfjs_layers_model")
    monkeypatch.setattr(stored, "STORED_MIN_BYTES", 0)
    reader = read_keras_v3 if source.endswith(".keras") else read_keras_h5
    kept = reader(src).tensors()
    assert [type(t).__name__ for t in kept] == ["StoredTensor"] * 10
    converter.convert(src, tmp_path / "stored", output_format="tfjs_layers_model")
    assert test_cli.tree_digest(tmp_path / "stored") == test_cli.tree_digest(tmp_path / "read")
    # A TF.js model's weights spanning 7-byte shards come back from their ranges.
    converter.convert(tmp_path / "read", tmp_path / "tiny_shards",
                      output_format="tfjs_layers_model", weight_shard_size_bytes=7)
    again = read_tfjs_layers(str(tmp_path / "tiny_shards")).tensors()
    assert all(type(t).__name__ == "StoredTensor" for t in again)
    assert max(len(t.ranges) for t in again) > 1
    for a, b in zip(kept, again):
        assert a.shape == b.shape and a.data.tobytes() == b.data.tobytes()


def test_a_source_changed_after_reading_is_an_error(templates, tmp_path, monkeypatch):
    from converter.errors import InvalidModelError
    from converter.weights import stored
    from converter.readers.keras_h5 import read_keras_h5
    from converter.writers.tfjs_layers import write_tfjs_layers
    src = str(tmp_path / "k3.h5")
    shutil.copy(os.path.join(templates, "k3.h5"), src)
    monkeypatch.setattr(stored, "STORED_MIN_BYTES", 0)
    model = read_keras_h5(src)
    with open(src, "ab") as f:
        f.write(b"\0")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InvalidModelError) as e:
        write_tfjs_layers(model, str(out))
    assert str(e.value) == ("%s: %s changed while being converted (weight 'd1/kernel'); "
                            "convert it again" % (src, src))


_SMALL_SAVED_MODEL = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf

class M(tf.Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.w = [tf.Variable(rng.standard_normal(s).astype(np.float32))
                  for s in [(8, 16), (16,), (16, 4), (4,)]]

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32)])
    def serve(self, x):
        h = tf.nn.relu(tf.matmul(x, self.w[0]) + self.w[1])
        return {"y": tf.matmul(h, self.w[2]) + self.w[3]}

m = M()
tf.saved_model.save(m, sys.argv[1], signatures={"serving_default": m.serve})
"""


def test_deferred_variables_convert_to_the_same_function(tmp_path, monkeypatch):
    """Kernels deferred (as if over 2 GiB) give a graph model that computes what the source does."""
    import subprocess
    import converter
    import tensorflow as tf
    from converter.graph import saved_model
    src = str(tmp_path / "sm")
    subprocess.run([sys.executable, "-c", _SMALL_SAVED_MODEL, src], check=True,
                   capture_output=True)
    converter.convert(src, tmp_path / "frozen", input_format="tf_saved_model")
    # Each kernel "weighs" 1 GiB: over the limit, so both are deferred; biases are frozen.
    monkeypatch.setattr(saved_model, "_variable_bytes",
                        lambda v: (1 << 30) if v.shape.rank == 2 else 64)
    converter.convert(src, tmp_path / "deferred", input_format="tf_saved_model")
    frozen, deferred = (_manifest(tmp_path / d)[1]["weights"] for d in ("frozen", "deferred"))
    kernels = [w for w in deferred if len(w["shape"]) == 2]
    assert [w["name"] for w in kernels] == ["StatefulPartitionedCall/MatMul/ReadVariableOp",
                                            "StatefulPartitionedCall/MatMul_1/ReadVariableOp"]
    assert {w["name"] for w in kernels} <= {w["name"] for w in frozen}
    converter.convert(tmp_path / "deferred", tmp_path / "back", output_format="tf_saved_model")
    x = tf.constant(np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32))
    want = tf.saved_model.load(src).signatures["serving_default"](x=x)["y"].numpy()
    got = tf.saved_model.load(str(tmp_path / "back")).signatures["serving_default"](x=x)
    assert np.array_equal(list(got.values())[0].numpy(), want)


def test_deferral_refused_when_the_rest_is_still_too_large(tmp_path, monkeypatch):
    import subprocess
    import converter
    from converter.errors import InvalidModelError
    from converter.graph import saved_model
    src = str(tmp_path / "sm")
    subprocess.run([sys.executable, "-c", _SMALL_SAVED_MODEL, src], check=True,
                   capture_output=True)
    # Four variables of 1 GiB, none as large as DEFER_MIN_BYTES (2 GiB).
    monkeypatch.setattr(saved_model, "DEFER_MIN_BYTES", 1 << 31)
    monkeypatch.setattr(saved_model, "_variable_bytes", lambda v: 1 << 30)
    with pytest.raises(InvalidModelError) as e:
        converter.convert(src, tmp_path / "out", input_format="tf_saved_model")
    message = str(e.value)
    assert message.startswith("%s (signature serving_default): a TF.js graph model is converted "
                              "through one frozen GraphDef, which would hold " % src), message
    assert "(4294967296 of them the weights of 4 variables), over protobuf's limit of " \
        "2147483647 bytes for one message (even without its variables of 2147483648 bytes " \
        "or more)" in message, message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["h5", "keras", "layers"])
def test_keras_sources_to_graph_refused_before_keras_loads(tmp_path, monkeypatch, kind):
    """Weights over the limit (lowered to 10 bytes; every file counts as large) are refused
    from our TF-free read of the source: Keras never loads the model."""
    import converter
    import keras
    from converter.errors import InvalidModelError
    from converter.graph import keras as graph_keras
    from converter.graph import saved_model
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    model.save(str(tmp_path / "m.h5"))
    model.save(str(tmp_path / "m.keras"))
    src = str(tmp_path / ("m." + kind))
    if kind == "layers":
        converter.convert(str(tmp_path / "m.h5"), src)
    monkeypatch.setattr(saved_model, "PROTOBUF_LIMIT_BYTES", 10)
    monkeypatch.setattr(graph_keras, "_CHECK_FILES_FROM_BYTES", 0)

    def no_keras(*args):
        raise AssertionError("Keras was asked to load %s" % (args,))

    monkeypatch.setattr(graph_keras, "load_keras_model", no_keras)
    monkeypatch.setattr("converter.writers.keras.build_keras_model", no_keras)
    with pytest.raises(InvalidModelError) as e:
        converter.convert(src, tmp_path / "out", output_format="tfjs_graph_model")
    where = os.path.join(src, "model.json") if kind == "layers" else src
    assert str(e.value) == (
        "%s: a TF.js graph model is converted through one frozen GraphDef, which would hold "
        "over 60 bytes (the weights of 2 tensors), over protobuf's limit of 10 bytes for one "
        "message (a Keras model's weights cannot stay out of it); convert to tfjs_layers_model "
        "instead (it streams weights of any size), or split the model" % where)
    assert not (tmp_path / "out").exists()
