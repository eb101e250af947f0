"""Benchmarks conversions of a model with over 2 GiB of float32 weights: wall time and peak RSS.

The model (tfjs#7260): ``Input(4096)`` then Dense layers d1..d5 of 16384, 16384,
8192, 8192 and 4096 units, 2 281 914 368 bytes of float32 weights (over the
2 147 483 648 of 2 GiB), its largest tensor d2/kernel of 1 GiB. Its sources are
built cheaply and deterministically: Keras (3, and tf_keras for Keras 2) saves a
tiny model of the same structure (units 5..9 on 4 inputs) as a template, whose
files are then rewritten with h5py at full size (every shape and config value
mapped by ``SIZES``), the values seeded per 16 MiB block (``block_values``), so
a sampled value can be recomputed without the model (``expected_value``).

Paths measured (each a fresh ``python -m converter`` process, spawn to exit;
peak RSS is the child's ``ru_maxrss`` from ``wait4``, spawned by a small launcher):

- ``.h5`` (Keras 3 and Keras 2 layouts) and ``.keras`` -> tfjs_layers_model;
- tfjs_layers_model -> tfjs_layers_model (re-shard to 64 MiB shards);
- tfjs_layers_model -> keras ``.h5`` and ``.keras``;
- tf_saved_model -> tfjs_graph_model, which converts: the large variables stay
  out of the frozen GraphDef (one protobuf message, limited to 2 GiB) and are
  streamed from the SavedModel's checkpoint into the shards;
- ``.h5`` / tfjs_layers_model -> tfjs_graph_model, which refuse the model (the
  Keras model's variables have no checkpoint to stream from; their time and RSS
  are those of the refusal, made from the declared shapes before Keras loads).

Each case runs ``--runs`` times (median reported; 3 is the minimum), after a
wait for a quiet machine (``bench/machine.py``); RSS is also given as a multiple
of the largest tensor. Results: ``bench/results/bench_large.json``. Needs about
16 GB of free disk under ``--workdir`` (default: a temp dir, removed at the end).

Usage: .venv/bin/python -m bench.bench_large [--runs 3] [--cases h5_k3_to_layers,...]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results", "bench_large.json")

SEED = 7260
# Template size -> full size: the input width, then each Dense layer's units.
SIZES = {4: 4096, 5: 16384, 6: 16384, 7: 8192, 8: 8192, 9: 4096}
LAYERS = ("d1", "d2", "d3", "d4", "d5")
TEMPLATE_INPUT, TEMPLATE_UNITS = 4, (5, 6, 7, 8, 9)
BLOCK_BYTES = 16 << 20


def full_shapes() -> List[Tuple[str, Tuple[int, ...]]]:
    """``(TF.js weight name, shape)`` of every weight, in model order."""
    out, fan_in = [], TEMPLATE_INPUT
    for name, units in zip(LAYERS, TEMPLATE_UNITS):
        out.append((name + "/kernel", (SIZES[fan_in], SIZES[units])))
        out.append((name + "/bias", (SIZES[units],)))
        fan_in = units
    return out


TOTAL_BYTES = sum(int(np.prod(s)) * 4 for _, s in full_shapes())
LARGEST_TENSOR_BYTES = max(int(np.prod(s)) * 4 for _, s in full_shapes())


def weight_key(name: str) -> List[int]:
    """The seed words of a weight: its layer index and kind (kernel 0, bias 1)."""
    layer, kind = name.split("/")
    return [SEED, LAYERS.index(layer), 0 if kind == "kernel" else 1]


def _rows_per_block(shape: Sequence[int]) -> int:
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * 4 if len(shape) > 1 else 4
    return max(1, BLOCK_BYTES // row_bytes)


def block_values(name: str, shape: Sequence[int], block: int) -> np.ndarray:
    """Rows ``[block * r, (block + 1) * r)`` of weight ``name`` (r = rows per block)."""
    r = _rows_per_block(shape)
    rows = min(r, shape[0] - block * r)
    rng = np.random.default_rng(weight_key(name) + [block])
    return rng.random((rows,) + tuple(shape[1:]), dtype=np.float32) - np.float32(0.5)


def blocks(name: str, shape: Sequence[int]) -> Iterator[Tuple[int, np.ndarray]]:
    """``(first row, values)`` of each block of weight ``name``."""
    r = _rows_per_block(shape)
    for block, start in enumerate(range(0, shape[0], r)):
        yield start, block_values(name, shape, block)


def expected_value(name: str, shape: Sequence[int], index: Sequence[int]) -> np.float32:
    """The value of weight ``name`` at ``index``, recomputed from its block."""
    r = _rows_per_block(shape)
    values = block_values(name, shape, index[0] // r)
    return values[(index[0] % r,) + tuple(index[1:])]


def sample_indices(shape: Sequence[int], n: int = 4, seed: int = 0) -> List[Tuple[int, ...]]:
    """The first and last index of ``shape`` and ``n - 2`` seeded ones between."""
    rng = np.random.default_rng([SEED, seed] + list(shape))
    out = [tuple(0 for _ in shape), tuple(d - 1 for d in shape)]
    out += [tuple(int(rng.integers(d)) for d in shape) for _ in range(n - 2)]
    return out


# -- sources --------------------------------------------------------------------------

_TEMPLATE_SCRIPT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
out = sys.argv[1]
import keras, tf_keras
def build(k, v3):
    layers = [k.Input((4,))] if v3 else [k.layers.InputLayer(input_shape=(4,))]
    layers += [k.layers.Dense(u, name=n) for n, u in zip(%r, %r)]
    return k.Sequential(layers, name="big")
m3 = build(keras, True)
m3.save(os.path.join(out, "k3.h5"))
m3.save(os.path.join(out, "k3.keras"))
build(tf_keras, False).save(os.path.join(out, "k2.h5"))
""" % (LAYERS, TEMPLATE_UNITS)


def build_templates(directory: str) -> None:
    """Keras saves the tiny models (``k3.h5``, ``k3.keras``, ``k2.h5``) in ``directory``."""
    os.makedirs(directory, exist_ok=True)
    subprocess.run([sys.executable, "-c", _TEMPLATE_SCRIPT, directory], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def inflate_config(value):
    """A template config with every size mapped to the full model's (``SIZES``)."""
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if key == "units" and v in SIZES:
                out[key] = SIZES[v]
            else:
                out[key] = inflate_config(v)
        return out
    if isinstance(value, list):
        if len(value) == 2 and value[0] is None and value[1] in SIZES:
            return [None, SIZES[value[1]]]
        return [inflate_config(v) for v in value]
    return value


def _weight_name(template_shape: Tuple[int, ...]) -> str:
    """The weight a template dataset holds, from its shape (sizes 4..9 are unique)."""
    if len(template_shape) == 2:
        return LAYERS[TEMPLATE_UNITS.index(template_shape[1])] + "/kernel"
    return LAYERS[TEMPLATE_UNITS.index(template_shape[0])] + "/bias"


def inflate_h5(template, out_path: str, config_attr: bool = True) -> None:
    """Writes ``template`` (an h5py File, or a path) again at full size: same groups,
    attributes and dataset names, datasets of the full shapes filled block by block,
    ``model_config`` inflated."""
    import h5py
    src = h5py.File(template, "r") if isinstance(template, str) else template
    with h5py.File(out_path, "w") as dst:
        def copy_attrs(s, d):
            for key, value in s.attrs.items():
                if key == "model_config" and config_attr:
                    text = value.decode() if isinstance(value, bytes) else str(value)
                    value = json.dumps(inflate_config(json.loads(text)))
                d.attrs[key] = value
        copy_attrs(src, dst)

        def visit(name, obj):
            if isinstance(obj, h5py.Group):
                copy_attrs(obj, dst.require_group(name))
            else:
                weight = _weight_name(obj.shape)
                shape = tuple(SIZES[d] for d in obj.shape)
                ds = dst.create_dataset(name, shape=shape, dtype="<f4")
                copy_attrs(obj, ds)
                for start, values in blocks(weight, shape):
                    ds[start:start + len(values)] = values
        src.visititems(visit)
    if isinstance(template, str):
        src.close()


def inflate_keras(template_path: str, out_path: str, scratch: str) -> None:
    """The template ``.keras`` at full size: config.json inflated, model.weights.h5
    rewritten, stored uncompressed as Keras stores it."""
    import h5py
    with zipfile.ZipFile(template_path) as z:
        config = json.loads(z.read("config.json"))
        metadata = z.read("metadata.json")
        weights_tmp = os.path.join(scratch, "template.weights.h5")
        with open(weights_tmp, "wb") as f:
            f.write(z.read("model.weights.h5"))
    big_weights = os.path.join(scratch, "model.weights.h5")
    with h5py.File(weights_tmp, "r") as t:
        inflate_h5(t, big_weights)
    with zipfile.ZipFile(out_path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("metadata.json", metadata)
        z.writestr("config.json", json.dumps(inflate_config(config)))
        z.write(big_weights, "model.weights.h5")
    os.remove(big_weights)
    os.remove(weights_tmp)


_SAVED_MODEL_SCRIPT = r"""
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, tensorflow as tf
sys.path.insert(0, %r)
from bench import bench_large as bl
out = sys.argv[1]

class Big(tf.Module):
    def __init__(self):
        super().__init__()
        self.weights_ = []
        for name, shape in bl.full_shapes():
            v = tf.Variable(tf.zeros(shape, tf.float32), name=name.replace("/", "_"))
            for start, values in bl.blocks(name, shape):
                v[start:start + len(values)].assign(values)
            self.weights_.append(v)

    @tf.function(input_signature=[tf.TensorSpec([None, %d], tf.float32)])
    def serve(self, x):
        for i in range(0, len(self.weights_), 2):
            x = tf.matmul(x, self.weights_[i]) + self.weights_[i + 1]
        return {"y": x}

m = Big()
tf.saved_model.save(m, out, signatures={"serving_default": m.serve})
""" % (ROOT, SIZES[TEMPLATE_INPUT])


def build_saved_model(out_path: str) -> None:
    """A tf.Module SavedModel with the same weights (as variables; a MatMul chain)."""
    subprocess.run([sys.executable, "-c", _SAVED_MODEL_SCRIPT, out_path], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# -- measuring --------------------------------------------------------------------------

# Spawns the command given as arguments and prints "<wall s> <peak RSS KiB>". A
# child forked from a large process (a pytest worker with TensorFlow loaded)
# counts that process's pages in its own ru_maxrss until exec; forked from this
# small launcher, it does not.
_LAUNCHER = """
import os, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(time.perf_counter() - start, usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def run_converter(args: Sequence[str]) -> Tuple[int, str, float, float]:
    """Runs ``python -m converter ARGS``: ``(exit code, stderr, wall s, peak RSS bytes)``."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "converter",
                               *map(str, args)],
                              stdout=subprocess.PIPE, stderr=err, text=True,
                              env=dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="3"))
        err.seek(0)
        text = err.read().decode(errors="replace")
    wall, rss_kib = proc.stdout.split()
    return proc.returncode, text, float(wall), float(rss_kib) * 1024.0


def stream_digest(model_dir: str) -> str:
    """SHA-256 of a TF.js model's weight stream (its group's shards concatenated)."""
    import hashlib
    with open(os.path.join(model_dir, "model.json")) as f:
        doc = json.load(f)
    h = hashlib.sha256()
    for group in doc["weightsManifest"]:
        for path in group["paths"]:
            with open(os.path.join(model_dir, path), "rb") as f:
                while True:
                    chunk = f.read(8 << 20)
                    if not chunk:
                        break
                    h.update(chunk)
    return h.hexdigest()


# (case, source key, output name, extra args, expected exit code).
CASES = [
    ("h5_k3_to_layers", "k3.h5", "out_k3", ["--output_format=tfjs_layers_model"], 0),
    ("h5_k2_to_layers", "k2.h5", "out_k2", ["--output_format=tfjs_layers_model"], 0),
    ("keras_to_layers", "k3.keras", "out_keras", ["--output_format=tfjs_layers_model"], 0),
    ("layers_reshard_64MiB", "layers", "out_reshard",
     ["--output_format=tfjs_layers_model", "--weight_shard_size_bytes=%d" % (64 << 20)], 0),
    ("layers_to_keras_h5", "layers", "out.h5", ["--output_format=keras"], 0),
    ("layers_to_keras_keras", "layers", "out.keras", ["--output_format=keras_keras"], 0),
    ("h5_k3_to_graph", "k3.h5", "out_graph_h5", ["--output_format=tfjs_graph_model"], 1),
    ("layers_to_graph", "layers", "out_graph_layers", ["--output_format=tfjs_graph_model"], 1),
    ("saved_model_to_graph", "saved_model", "out_graph_sm",
     ["--input_format=tf_saved_model", "--output_format=tfjs_graph_model"], 0),
]


def build_sources(workdir: str, needed: Sequence[str]) -> Dict[str, str]:
    """Builds the sources the cases need under ``workdir``; returns key -> path."""
    templates = os.path.join(workdir, "templates")
    build_templates(templates)
    paths = {}
    for key in needed:
        path = os.path.join(workdir, key if key != "layers" else "layers_src")
        if key in ("k3.h5", "k2.h5"):
            inflate_h5(os.path.join(templates, key), path)
        elif key == "k3.keras":
            inflate_keras(os.path.join(templates, key), path, workdir)
        elif key == "saved_model":
            build_saved_model(path)
        paths[key] = path
    if "layers" in needed:
        source = paths.get("k3.h5") or os.path.join(workdir, "k3.h5")
        if not os.path.exists(source):
            inflate_h5(os.path.join(templates, "k3.h5"), source)
            paths["k3.h5"] = source
        code, err, _, _ = run_converter([source, paths["layers"],
                                         "--output_format=tfjs_layers_model"])
        if code != 0:
            raise SystemExit("building the layers source failed: %s" % err)
    return paths


def main(argv=None) -> int:
    from bench import machine
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cases", default=",".join(c[0] for c in CASES))
    parser.add_argument("--workdir", default=None,
                        help="where sources and outputs go (default: a temp dir, removed)")
    machine.add_quiet_arguments(parser)
    args = parser.parse_args(argv)
    machine.check_runs(parser, args.runs)
    names = machine.parse_list(parser, args.cases, [c[0] for c in CASES])
    cases = [c for c in CASES if c[0] in names]
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench_large_")
    os.makedirs(workdir, exist_ok=True)
    try:
        paths = build_sources(workdir, sorted({c[1] for c in cases}))
        quiet = machine.wait_for_quiet(args.max_load, args.wait_s)
        results = {"python": sys.version.split()[0], "cpus": os.cpu_count(), "runs": args.runs,
                   "model": {"total_weight_bytes": TOTAL_BYTES,
                             "largest_tensor_bytes": LARGEST_TENSOR_BYTES,
                             "weights": [{"name": n, "shape": list(s)} for n, s in full_shapes()]},
                   "load_average_before": machine.load_average(), "quiet_before": quiet,
                   "cases": {}}
        samples: Dict[str, List[Tuple[float, float]]] = {c[0]: [] for c in cases}
        messages: Dict[str, str] = {}
        loads = []
        for _ in range(args.runs):  # round by round, so load bursts hit every case alike
            for case, source, out_name, extra, want in cases:
                out = os.path.join(workdir, out_name)
                code, err, wall, rss = run_converter([paths[source], out, *extra])
                loads.append(os.getloadavg()[0])
                if code != want:
                    raise SystemExit("%s: exit %d, want %d: %s" % (case, code, want, err))
                if want:
                    messages[case] = err.strip()
                samples[case].append((wall, rss))
                if os.path.isdir(out):
                    shutil.rmtree(out)
                elif os.path.exists(out):
                    os.remove(out)
        results["load_average_1min_during"] = {"median": statistics.median(loads),
                                               "max": max(loads)}
        for case, source, _, _, want in cases:
            walls = [s[0] for s in samples[case]]
            rss = [s[1] for s in samples[case]]
            entry = {"source": source, "outcome": "converts" if want == 0 else "refuses",
                     "wall_s_median": statistics.median(walls), "wall_s_all": walls,
                     "peak_rss_mib_median": statistics.median(rss) / 2 ** 20,
                     "peak_rss_mib_all": [r / 2 ** 20 for r in rss],
                     "peak_rss_over_largest_tensor": statistics.median(rss)
                     / LARGEST_TENSOR_BYTES,
                     "peak_rss_over_model": statistics.median(rss) / TOTAL_BYTES}
            if case in messages:
                entry["message"] = messages[case]
            results["cases"][case] = entry
            print("%-24s %-8s wall %7.1f s  peak RSS %7.0f MiB  = %.2fx largest tensor"
                  % (case, entry["outcome"], entry["wall_s_median"], entry["peak_rss_mib_median"],
                     entry["peak_rss_over_largest_tensor"]))
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=2, sort_keys=True)
        print("wrote", RESULTS)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
