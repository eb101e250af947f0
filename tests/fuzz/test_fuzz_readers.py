"""Seeded mutation fuzzing of the readers (issue 8): any exception other than the
converter's own errors fails, as does peak RSS growing past a bound on a tiny input.

Targets: the TF.js model.json / weights manifest / shards, the quantization
block, the Keras HDF5 ``.h5`` and the ``.keras`` archive readers. Each starts from
a small valid model built here and mutates it with hypothesis (byte flips, cuts
and insertions; JSON leaves replaced by hostile values), then converts it in
process on the TF-free layers path.

Budget: ``FUZZ_SECONDS`` per target (default 20: the tier adds about a minute on
two workers) and at most ``FUZZ_EXAMPLES`` examples; ``FUZZ_SEED`` varies the
seed (default 0, so CI runs the same inputs every time). A long run:

    FUZZ_SECONDS=3600 FUZZ_EXAMPLES=1000000 FUZZ_SEED=$RANDOM \\
        .venv/bin/python -m pytest -m fuzz -p no:xdist tests/fuzz

A failure is shrunk by hypothesis and printed as the mutation to replay.
"""

import copy
import faulthandler
import io
import json
import os
import shutil
import tempfile
import time
import zipfile

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from converter import api
from converter.errors import ConversionError
from converter.readers import tfjs_topology
from converter.readers.tfjs_layers import read_tfjs_layers
from converter.weights import quantize
from test_cli import TOPOLOGY, make_layers_model, save_dense_h5

pytestmark = pytest.mark.fuzz

SECONDS = float(os.environ.get("FUZZ_SECONDS", "20"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3000"))
SEED = int(os.environ.get("FUZZ_SEED", "0"))
# A tiny input (under 100 KB) may not grow the process's peak RSS by more than
# this: every declared size is checked against the real file before allocating.
MAX_RSS_GROWTH_MB = 200
# One tiny conversion takes milliseconds; this long is a hang.
HANG_SECONDS = 60

FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
                suppress_health_check=list(HealthCheck), print_blob=True)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    raise KeyError(key)


class Budget:
    """Stops a target after SECONDS (later examples return at once) and bounds RSS.

    The bound is on the target's own peak: Linux's high-water mark (VmHWM) is reset
    to the current RSS when the target starts (``5`` into /proc/self/clear_refs),
    so neither an earlier target's peak hides this one's nor a one-time start-up
    cost an earlier step paid counts against it.
    """

    def __init__(self):
        self.deadline = time.monotonic() + SECONDS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        self.rss_before = _status_mb("VmRSS")
        self.examples = 0

    def spent(self) -> bool:
        if time.monotonic() > self.deadline:
            return True
        self.examples += 1
        return False

    def check_rss(self):
        growth = _status_mb("VmHWM") - self.rss_before
        print("fuzz: %d examples, peak RSS growth %.0f MB (bound %d)"
              % (self.examples, growth, MAX_RSS_GROWTH_MB))
        assert growth < MAX_RSS_GROWTH_MB, "peak RSS grew by %.0f MB" % growth


def _convert(src: str, out_dir: str, **options) -> None:
    """Converts; only the converter's own errors may come out, within HANG_SECONDS.

    A hang in native code (libhdf5 looping on a corrupt heap holds the GIL) cannot
    be interrupted from Python: faulthandler's watchdog thread dumps every stack
    and exits the process, which fails the run instead of stalling CI.
    """
    out = os.path.join(out_dir, "out")
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    try:
        api.convert(src, out, output_format="tfjs_layers_model", **options)
    except ConversionError as e:
        assert "\n" not in str(e), str(e)
    finally:
        faulthandler.cancel_dump_traceback_later()
        shutil.rmtree(out, ignore_errors=True)


# Byte mutations: (offset fraction, kind, byte value, length).
BYTE_EDITS = st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["flip", "set", "cut", "insert"]),
                                st.integers(0, 255), st.integers(1, 64)), min_size=1, max_size=6)


def _mutate_bytes(data: bytes, edits) -> bytes:
    buf = bytearray(data)
    for fraction, kind, value, length in edits:
        at = min(int(fraction * len(buf)), max(len(buf) - 1, 0))
        if kind == "flip" and buf:
            buf[at] ^= 1 << (value % 8)
        elif kind == "set" and buf:
            buf[at:at + length] = bytes([value]) * len(buf[at:at + length])
        elif kind == "cut":
            del buf[at:at + length]
        else:
            buf[at:at] = bytes([value]) * length
    return bytes(buf)


HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-2 ** 70, 2 ** 70),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from([1e308, -1e308, 0.0, -0.0]),
    st.text(max_size=20), st.sampled_from(["float32", "int32", "uint8", "float16", "string", "..",
                                           "../x", "/etc/hostname", "Lambda", "os"]),
    st.lists(st.integers(-3, 10 ** 6), max_size=5), st.dictionaries(st.text(max_size=5),
                                                                  st.integers(), max_size=3))


def _leaves(value, path=()):
    """Every (path, leaf) of a JSON document, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _leaves(value[key], path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, path + (index,))


def _replace(doc, path, new):
    if not path:
        return new
    doc = copy.deepcopy(doc)
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return doc


JSON_EDITS = st.lists(st.tuples(st.floats(0, 1), HOSTILE_VALUES), min_size=1, max_size=4)


def _mutate_json(doc, edits, under=()):
    for fraction, value in edits:
        paths = [p for p, _ in _leaves(doc) if p[:len(under)] == under]
        doc = _replace(doc, paths[min(int(fraction * len(paths)), len(paths) - 1)], value)
    return doc


@pytest.fixture(scope="module")
def work():
    # A mutation may make an input another format whose reader imports
    # TensorFlow/Keras (a graph model.json): import them first, so the RSS bound
    # measures what the readers allocate, not the import.
    import keras  # noqa: F401
    import tensorflow
    # ... and start TensorFlow's runtime (thread pools, oneDNN: ~200 MB on the first
    # op), then convert a valid model once, as a layers and as a graph model.json,
    # so the first target's bound does not pay for what every conversion warms up.
    tensorflow.zeros([1]).numpy()
    # Hypothesis builds its Unicode tables (~170 MB peak, cached in .hypothesis/
    # afterwards, so only a fresh clone pays) and scans the source for constants
    # the first time a strategy draws: draw from every strategy once.
    @settings(max_examples=20, database=None, suppress_health_check=list(HealthCheck))
    @given(JSON_EDITS, BYTE_EDITS)
    def draw(json_edits, byte_edits):
        pass

    draw()
    with tempfile.TemporaryDirectory(prefix="fuzz_") as tmp:
        warm = make_layers_model(os.path.join(tmp, "warm"), shard_size=40)
        _convert(warm, tmp)
        with open(os.path.join(warm, "model.json")) as f:
            doc = json.load(f)
        doc["format"] = "graph-model"
        with open(os.path.join(warm, "model.json"), "w") as f:
            json.dump(doc, f)
        _convert(warm, tmp)
        shutil.rmtree(warm)
        yield tmp


def _layers_dir(work, name, quantized=False):
    return make_layers_model(os.path.join(work, name), shard_size=40, quantized=quantized)


def _fresh_copy(src, work):
    dst = tempfile.mkdtemp(dir=work)
    shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return dst


def fuzz(*strategies):
    """Runs the decorated body once per hypothesis example of ``strategies`` (seeded,
    within the time and example budget), then checks the peak-RSS bound and that the
    budget allowed a meaningful number of examples. Used as a statement::

        @fuzz(BYTE_EDITS)
        def _(edits): ...
    """
    def run_all(body):
        budget = Budget()

        @FUZZ
        @seed(SEED)
        @given(st.tuples(*strategies))
        def run(args):
            if not budget.spent():
                body(*args)

        run()
        budget.check_rss()
        assert budget.examples >= 10
    return run_all


def _convert_bytes(work, name: str, data: bytes, **options) -> None:
    """Writes ``data`` as ``name`` in a fresh directory and converts it (see _convert)."""
    case = tempfile.mkdtemp(dir=work)
    path = os.path.join(case, name)
    with open(path, "wb") as f:
        f.write(data)
    _convert(path, case, **options)
    shutil.rmtree(case)


def test_fuzz_model_json_and_manifest(work):
    src = _layers_dir(work, "layers")
    with open(os.path.join(src, "model.json")) as f:
        doc = json.load(f)

    @fuzz(JSON_EDITS)
    def _(edits):
        case = _fresh_copy(src, work)
        with open(os.path.join(case, "model.json"), "w") as f:
            json.dump(_mutate_json(doc, edits), f)
        _convert(case, case)
        shutil.rmtree(case)


def test_fuzz_model_json_bytes_and_shards(work):
    src = _layers_dir(work, "layers_bytes")

    @fuzz(st.sampled_from(sorted(os.listdir(src))), BYTE_EDITS)
    def _(name, edits):
        case = _fresh_copy(src, work)
        path = os.path.join(case, name)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(_mutate_bytes(data, edits))
        _convert(case, case)
        shutil.rmtree(case)


def test_fuzz_quantization_block(work):
    src = _layers_dir(work, "quantized", quantized=True)
    with open(os.path.join(src, "model.json")) as f:
        doc = json.load(f)

    @fuzz(st.integers(0, 3), JSON_EDITS)
    def _(index, edits):
        case = _fresh_copy(src, work)
        spec = ("weightsManifest", 0, "weights", index)
        with open(os.path.join(case, "model.json"), "w") as f:
            json.dump(_mutate_json(doc, edits, spec), f)
        try:  # read, then dequantize as TF.js would (the Keras outputs do)
            model = read_tfjs_layers(case)
            for group in model.groups:
                for tensor in group:
                    quantize.dequantize_tensor(tensor, case)
        except ConversionError as e:
            assert "\n" not in str(e), str(e)
        shutil.rmtree(case)


def test_fuzz_topology_checker(work):
    @fuzz(JSON_EDITS)
    def _(edits):
        try:
            tfjs_topology.check_topology(_mutate_json(TOPOLOGY, edits), "model.json")
        except ConversionError as e:
            assert "\n" not in str(e), str(e)


def test_fuzz_keras_h5(work):
    with open(save_dense_h5(os.path.join(work, "good.h5")), "rb") as f:
        data = f.read()

    @fuzz(BYTE_EDITS)
    def _(edits):
        _convert_bytes(work, "m.h5", _mutate_bytes(data, edits), input_format="keras")


@pytest.fixture(scope="module")
def good_keras(work):
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense"),
                              keras.layers.Dense(2, name="dense_1")])
    path = os.path.join(work, "good.keras")
    model.save(path)
    return path


def test_fuzz_keras_archive_bytes(work, good_keras):
    with open(good_keras, "rb") as f:
        data = f.read()

    @fuzz(BYTE_EDITS)
    def _(edits):
        _convert_bytes(work, "m.keras", _mutate_bytes(data, edits), input_format="keras_keras")


def test_fuzz_keras_archive_members(work, good_keras):
    """Valid zips whose config.json or weights member is mutated (so the CRC holds)."""
    with zipfile.ZipFile(good_keras) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])

    @fuzz(st.booleans(), JSON_EDITS, BYTE_EDITS)
    def _(edit_config, json_edits, byte_edits):
        changed = dict(members)
        if edit_config:
            changed["config.json"] = json.dumps(_mutate_json(config, json_edits)).encode()
        else:
            changed["model.weights.h5"] = _mutate_bytes(members["model.weights.h5"], byte_edits)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            for name, payload in changed.items():
                archive.writestr(name, payload)
        _convert_bytes(work, "m.keras", buf.getvalue(), input_format="keras_keras")
