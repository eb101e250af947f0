"""Weights whose declared shape, dtype or size a layer cannot have (issue 8, defect 3).

Each hostile file is built here from a small tf_keras / Keras 3 model. The
converter must refuse it before reading a byte of the weight (so a 30 KB file
declaring a 4 GB kernel costs neither time nor memory), with one line naming
the file and the weight, exit 1, and the previous output untouched.
"""

import io
import os
import subprocess
import sys
import zipfile

import h5py
import numpy as np
import pytest

from test_cli import ROOT, _assert_failed, make_layers_model, run, tree_digest

# A refused conversion never reads the weight: its peak RSS is the converter's
# own (numpy + h5py, no TensorFlow: about 80 MB), far below the declared sizes.
MAX_RSS_MB = 300


def _rewrite(src, dst, kernel=None, bias=None, units=None):
    """A copy of ``src`` with the Dense layer's datasets replaced: each of
    ``kernel``/``bias`` is an array, or a callable making the dataset in a group."""
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        if units is not None:
            config = f.attrs["model_config"]
            config = config.decode() if isinstance(config, bytes) else config
            f.attrs["model_config"] = config.replace('"units": 3', '"units": %d' % units)
        group = f["model_weights/dense/dense"]
        for name, value in (("kernel:0", kernel), ("bias:0", bias)):
            if value is None:
                continue
            del group[name]
            if callable(value):
                value(group, name)
            else:
                group[name] = value
    return dst


# Runs the command given as arguments and prints its peak RSS in KB. A child
# forked from pytest (TensorFlow loaded) would count pytest's pages in its own
# ru_maxrss until exec; forked from this small process, it does not.
_MEASURE = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _run_measured(src, out):
    """The CLI as a child process: (exit code, stderr, peak RSS in MB)."""
    proc = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "converter",
                           str(src), str(out), "--output_format=tfjs_layers_model"],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    return proc.returncode, proc.stderr, int(proc.stdout.split()[-1]) / 1024


def _refused(tmp_path, previous, src, message):
    out, digest = previous
    code, stderr, rss_mb = _run_measured(src, out)
    _assert_failed(tmp_path, out, digest, code, stderr, 1, message)
    assert rss_mb < MAX_RSS_MB, "peak RSS %.0f MB" % rss_mb
    return rss_mb


@pytest.mark.parametrize("side", [32768, 100000])
def test_unwritten_huge_kernel_is_refused_without_allocating(tmp_path, previous, good_h5, side):
    bad = _rewrite(good_h5, tmp_path / "huge.h5", units=side,
                   kernel=lambda g, n: g.create_dataset(n, shape=(side, side), dtype="f4"),
                   bias=np.zeros(side, np.float32))
    assert os.path.getsize(bad) < 1 << 20
    _refused(tmp_path, previous, bad,
             "%s: weight 'dense/kernel' (shape [%d, %d], float32) declares %d bytes but the file "
             "stores 0 bytes of it (unwritten or sparse); refusing to read it"
             % (bad, side, side, side * side * 4))


def test_partly_written_chunked_kernel_is_refused(tmp_path, previous, good_h5):
    def partial(group, name):
        dataset = group.create_dataset(name, shape=(4, 3), dtype="f4", chunks=(1, 3))
        dataset[0] = [1, 2, 3]  # one chunk of four written; the rest would read as zeros
    bad = _rewrite(good_h5, tmp_path / "sparse.h5", kernel=partial)
    _refused(tmp_path, previous, bad,
             "%s: weight 'dense/kernel' (shape [4, 3], float32) declares 48 bytes but the file "
             "stores 12 bytes of it (unwritten or sparse); refusing to read it" % bad)


def test_compression_bomb_is_refused(tmp_path, previous, good_h5):
    side = 4096
    bad = _rewrite(good_h5, tmp_path / "bomb.h5", units=side,
                   kernel=lambda g, n: g.create_dataset(
                       n, data=np.zeros((side, side), np.float32), chunks=(1024, 1024),
                       compression="gzip", compression_opts=9),
                   bias=np.zeros(side, np.float32))
    with h5py.File(bad, "r") as f:
        stored = f["model_weights/dense/dense/kernel:0"].id.get_storage_size()
    assert os.path.getsize(bad) < 1 << 20 and stored * 64 < side * side * 4
    _refused(tmp_path, previous, bad,
             "%s: weight 'dense/kernel' (shape [%d, %d], float32) declares %d bytes but the file "
             "stores %d bytes of it (compressed beyond 64:1); refusing to read it"
             % (bad, side, side, side * side * 4, stored))


def test_compressed_real_weights_still_convert(tmp_path, good_h5):
    rng = np.random.default_rng(0)
    good = _rewrite(good_h5, tmp_path / "gzip.h5",
                    kernel=lambda g, n: g.create_dataset(
                        n, data=rng.standard_normal((4, 3)).astype(np.float32),
                        compression="gzip"))
    code, _, stderr = run(good, tmp_path / "out", "--output_format=tfjs_layers_model")
    assert code == 0, stderr


@pytest.mark.parametrize("kernel,bias,problem", [
    (np.zeros((4, 5), np.float32), None,
     "weight 'dense/kernel' (shape [4, 5], float32) does not have the shape its layer's config "
     "implies: [?, 3]"),
    (np.zeros((4, 3, 1), np.float32), None,
     "weight 'dense/kernel' (shape [4, 3, 1], float32) does not have the shape its layer's "
     "config implies: [?, 3]"),
    (None, np.float32(1.0),
     "weight 'dense/bias' (shape [], float32) does not have the shape its layer's config "
     "implies: [3]"),
    (None, np.zeros(4, np.float32),
     "weight 'dense/bias' (shape [4], float32) does not have the shape its layer's config "
     "implies: [3]"),
    (None, np.array([b"a", b"b", b"c"]),
     "weight 'dense/bias' (shape [3], |S1): a layer weight must hold numbers"),
])
def test_wrong_shape_or_dtype_for_the_layer(tmp_path, previous, good_h5, kernel, bias, problem):
    bad = _rewrite(good_h5, tmp_path / "shape.h5", kernel=kernel, bias=bias)
    _refused(tmp_path, previous, bad, "%s: %s" % (bad, problem))


def _keras3_archive(path):
    import keras
    model = keras.Sequential([keras.Input((6, 6, 2)),
                              keras.layers.Conv2D(5, 3, name="conv"),
                              keras.layers.Flatten(),
                              keras.layers.Dense(2, name="dense")])
    model.save(path)
    return path


def test_keras3_archive_with_a_swapped_kernel_shape(tmp_path, previous):
    good = _keras3_archive(tmp_path / "good.keras")
    bad = tmp_path / "bad.keras"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "model.weights.h5":
                buffer = io.BytesIO(data)
                with h5py.File(buffer, "r+") as f:
                    path = "layers/conv2d/vars/0"  # Keras 3 paths follow the class
                    kernel = f[path][()]
                    del f[path]
                    f[path] = np.transpose(kernel, (0, 1, 3, 2))  # (3, 3, 5, 2): in/out swapped
                data = buffer.getvalue()
            zout.writestr(info, data)
    _refused(tmp_path, previous, bad,
             "%s!model.weights.h5: weight 'conv/kernel' (shape [3, 3, 5, 2], float32) does not have "
             "the shape its layer's config implies: [3, 3, ?, 5]" % bad)


def test_every_layer_rule_plans_shapes_real_keras_weights_have(tmp_path):
    """The planned shapes agree with what Keras itself creates, layer by layer."""
    import keras
    from converter.readers import keras_config

    layers = [
        (keras.layers.Dense(7), (4,)),
        (keras.layers.Conv1D(5, 3), (8, 2)),
        (keras.layers.Conv2D(5, (3, 2)), (8, 8, 2)),
        (keras.layers.Conv2DTranspose(5, 3), (8, 8, 2)),
        (keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (8, 8, 3)),
        (keras.layers.SeparableConv2D(5, 3, depth_multiplier=2), (8, 8, 3)),
        (keras.layers.BatchNormalization(), (8, 3)),
        (keras.layers.LayerNormalization(), (8, 3)),
        (keras.layers.Embedding(11, 4), (5,)),
        (keras.layers.LSTM(6), (5, 3)),
        (keras.layers.GRU(6, reset_after=False), (5, 3)),
        (keras.layers.SimpleRNN(6), (5, 3)),
    ]
    for layer, input_shape in layers:
        layer.build((1,) + input_shape)
        cls = type(layer).__name__
        planned = keras_config.LAYER_RULES[cls].weights(layer.get_config())
        got = [tuple(w.shape) for w in layer.weights]
        assert len(planned) == len(got), cls
        for var, shape in zip(planned, got):
            assert var.shape is not None and len(var.shape) == len(shape), (cls, var, shape)
            assert all(want in (None, have) for want, have in zip(var.shape, shape)), \
                (cls, var.local, var.shape, shape)
