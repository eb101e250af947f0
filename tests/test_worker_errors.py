"""The persistent worker answers every request, whatever it raises, and keeps serving.

One real ``worker.py --persistent_worker`` process (the JSON protocol Bazel
speaks) gets requests that fail in ways the converter does not raise on
purpose: a SavedModel while ``import tensorflow`` fails (a ``tensorflow``
package on PYTHONPATH that raises ImportError, standing in for a broken
environment) and a corrupt HDF5 file (an h5py read error). A deeply nested
model.json, which once was a RecursionError, is now refused on purpose by
``converter.jsonio``; it stays here as a regression check. After each, a good
request on the same process succeeds. The last test sends one request of each
hostile-input class of issue 8 (huge unwritten or wrongly shaped weights,
truncated files, Lambda and foreign modules in a model.json, broken
quantization, FIFOs and devices, unwritable or self-overwriting outputs), each
followed by a good one.
"""

import json
import os
import pathlib
import select
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKER = ROOT / "converter" / "worker.py"
RESPONSE_TIMEOUT_S = 120


class Worker:
    """A persistent worker subprocess; ``ask`` sends one WorkRequest, returns its response."""

    def __init__(self, env, cwd):
        self.proc = subprocess.Popen(
            [sys.executable, "-B", str(WORKER), "--persistent_worker"], cwd=cwd, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.pid = self.proc.pid
        self.next_id = 1

    def ask(self, *arguments: str) -> dict:
        request_id = self.next_id
        self.next_id += 1
        self.proc.stdin.write(json.dumps({"arguments": list(arguments), "inputs": [],
                                          "requestId": request_id}).encode())
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], RESPONSE_TIMEOUT_S)
        assert ready, "no response to request %d within %d s" % (request_id, RESPONSE_TIMEOUT_S)
        line = self.proc.stdout.readline()
        assert line, "the worker died: exit %s, stderr:\n%s" % (
            self.proc.wait(10), self.proc.stderr.read().decode(errors="replace"))
        response = json.loads(line)
        assert response["requestId"] == request_id, response
        return response

    def close(self) -> int:
        self.proc.stdin.close()
        code = self.proc.wait(60)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return code


def _one_line(response: dict) -> str:
    output = response["output"]
    assert output.endswith("\n") and output.count("\n") == 1, repr(output)
    assert "Traceback" not in output, output
    return output.rstrip("\n")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("worker_errors")
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    good = base / "good.h5"
    model.save(good)
    # A corrupt weight chunk: h5py's gzip filter fails when the reader reads it.
    import h5py
    import numpy as np
    corrupt = base / "corrupt.h5"
    corrupt.write_bytes(good.read_bytes())
    with h5py.File(corrupt, "r+") as f:
        path = [n for n in _datasets(f["model_weights"]) if n.endswith("kernel")][0]
        path = "model_weights/" + path
        data = f[path][()]
        del f[path]
        f.create_dataset(path, data=np.ones_like(data), chunks=data.shape, compression="gzip")
        chunk = f[path].id.get_chunk_info(0)
    raw = bytearray(corrupt.read_bytes())
    for i in range(chunk.byte_offset, chunk.byte_offset + chunk.size):
        raw[i] ^= 0x5A
    corrupt.write_bytes(bytes(raw))
    deep = base / "deep" / "model.json"
    deep.parent.mkdir()
    depth = 100_000
    deep.write_text('{"format": "layers-model", "modelTopology": %s%s}' % ("[" * depth, "]" * depth))
    saved_model = base / "saved_model"
    saved_model.mkdir()
    (saved_model / "saved_model.pb").write_bytes(b"\x08\x01")
    fake = base / "fake_site" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise ImportError("no tensorflow in this environment")\n')
    return {"base": base, "good": good, "corrupt": corrupt, "deep": deep,
            "saved_model": saved_model, "fake_site": fake.parent}


def _datasets(group):
    names = []
    group.visititems(lambda name, obj: names.append(name) if hasattr(obj, "shape") else None)
    return names


@pytest.fixture(scope="module")
def worker(inputs):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(inputs["fake_site"])  # `import tensorflow` fails in the worker
    env["CUDA_VISIBLE_DEVICES"] = ""
    w = Worker(env, cwd=inputs["base"])
    yield w
    assert w.close() == 0


def _check_good(worker, inputs, name):
    out = inputs["base"] / name
    response = worker.ask(str(inputs["good"]), str(out))
    assert response["exitCode"] == 0, response
    assert response["output"] == ""
    assert (out / "model.json").is_file()
    assert sorted(p.name for p in out.iterdir()) == ["group1-shard1of1.bin", "model.json"]
    assert worker.proc.poll() is None and worker.proc.pid == worker.pid


def test_deep_json_is_one_line_and_the_worker_serves_on(worker, inputs):
    response = worker.ask(str(inputs["deep"]), str(inputs["base"] / "out_deep"))
    assert response["exitCode"] == 1, response
    line = _one_line(response)
    assert line == "tfjs_converter: error: %s: JSON nested deeper than 256 levels" \
        % inputs["deep"], line
    assert not (inputs["base"] / "out_deep").exists()
    _check_good(worker, inputs, "out_after_deep")


def test_import_error_is_one_line_and_the_worker_serves_on(worker, inputs):
    response = worker.ask("--input_format=tf_saved_model", "--output_format=tfjs_graph_model",
                          str(inputs["saved_model"]), str(inputs["base"] / "out_sm"))
    assert response["exitCode"] == 1, response
    line = _one_line(response)
    assert line.startswith("tfjs_converter: error: %s: unexpected ImportError: no tensorflow "
                           "in this environment" % inputs["saved_model"]), line
    _check_good(worker, inputs, "out_after_import")


def test_h5py_read_error_is_one_line_and_the_worker_serves_on(worker, inputs):
    response = worker.ask(str(inputs["corrupt"]), str(inputs["base"] / "out_corrupt"))
    assert response["exitCode"] == 1, response
    line = _one_line(response)
    assert line.startswith("tfjs_converter: error: %s: " % inputs["corrupt"]), line
    assert "filter returned failure during read" in line, line
    _check_good(worker, inputs, "out_after_corrupt")


def test_debug_adds_the_traceback(worker, inputs):
    response = worker.ask("--debug", "--input_format=tf_saved_model",
                          "--output_format=tfjs_graph_model", str(inputs["saved_model"]),
                          str(inputs["base"] / "out_sm_debug"))
    assert response["exitCode"] == 1, response
    output = response["output"]
    assert "Traceback (most recent call last)" in output, output
    assert 'raise ImportError("no tensorflow in this environment")' in output, output
    last = output.rstrip("\n").splitlines()[-1]
    assert last.startswith("tfjs_converter: error: %s: unexpected ImportError"
                           % inputs["saved_model"]), last
    _check_good(worker, inputs, "out_after_debug")


def test_usage_error_keeps_its_exit_code(worker, inputs):
    response = worker.ask("--output_format=no_such_format", str(inputs["good"]),
                          str(inputs["base"] / "out_usage"))
    assert response["exitCode"] == 2, response
    assert _one_line(response).startswith("tfjs_converter: error: ")
    _check_good(worker, inputs, "out_after_usage")


def test_one_shot_flagfile_reports_the_unexpected_error(inputs):
    flagfile = inputs["base"] / "deep.flags"
    flagfile.write_text("--input_format=tf_saved_model\n--output_format=tfjs_graph_model\n"
                        "%s\n%s\n" % (inputs["saved_model"], inputs["base"] / "out_sm_once"))
    env = dict(os.environ, PYTHONPATH=str(inputs["fake_site"]), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-B", str(WORKER), "@%s" % flagfile], env=env,
                          capture_output=True, text=True, timeout=RESPONSE_TIMEOUT_S)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("tfjs_converter: error: %s: unexpected ImportError"
                                  % inputs["saved_model"]), proc.stderr
    assert not (inputs["base"] / "out_sm_once").exists()


# --------------------------------------------------------------------------
# Issue 8: one request of each hostile or broken class, each followed by a good
# request on the same worker process.

def _hostile_inputs(base, good_h5):
    """name -> (arguments, a fragment the one-line error must hold)."""
    import h5py
    import numpy as np
    from test_cli import TOPOLOGY, dense_tensors, write_topology_model

    base = base / "hostile"
    base.mkdir()
    cases = {}

    def h5_variant(name, edit):
        path = base / name
        path.write_bytes(good_h5.read_bytes())
        with h5py.File(path, "r+") as f:
            edit(f)
        return path

    def replace_kernel(make):
        def edit(f):
            group = f["model_weights/dense/dense"] if "model_weights/dense/dense" in f \
                else f["model_weights/dense"]
            kernel = [n for n in group if n.startswith("kernel")][0]
            del group[kernel]
            make(group, kernel)
        return edit

    def set_config(key, value):
        def edit(f):
            text = f.attrs["model_config"]
            config = json.loads(text.decode() if isinstance(text, bytes) else text)
            config["config"]["layers"][-1]["config"][key] = value
            f.attrs["model_config"] = json.dumps(config)
        return edit

    path = h5_variant("unwritten.h5", lambda f: (set_config("units", 100000)(f), replace_kernel(
        lambda g, n: g.create_dataset(n, shape=(100000, 100000), dtype="f4"))(f)))
    cases["unwritten_huge_kernel"] = ([path], "unwritten or sparse")
    path = h5_variant("shape.h5", replace_kernel(
        lambda g, n: g.create_dataset(n, data=np.zeros((4, 5), np.float32))))
    cases["wrong_kernel_shape"] = ([path], "does not have the shape its layer's config implies")
    path = h5_variant("string.h5", replace_kernel(
        lambda g, n: g.create_dataset(n, data=np.array([[b"x"] * 3] * 4))))
    cases["string_kernel"] = ([path], "a layer weight must hold numbers")
    path = h5_variant("units.h5", set_config("units", -3))
    cases["negative_units"] = ([path], "units is -3; it must be a positive integer")
    truncated = base / "truncated.h5"
    truncated.write_bytes(good_h5.read_bytes()[:4000])
    cases["truncated_h5"] = ([truncated], "the file is corrupt or incomplete")
    cases["truncated_h5_to_graph"] = (
        ["--output_format=tfjs_graph_model", truncated], "the file is corrupt or incomplete")

    def tfjs_model(name, topology, tensors=None, edit_json=None):
        directory = write_topology_model(base / name, topology, tensors)
        if edit_json:
            doc = json.loads((directory / "model.json").read_text())
            edit_json(doc)
            (directory / "model.json").write_text(json.dumps(doc))
        return directory

    lam = json.loads(json.dumps(TOPOLOGY))
    lam["config"]["layers"].append({"class_name": "Lambda", "config": {"name": "lam"}})
    cases["lambda_tfjs_to_tfjs"] = ([tfjs_model("lambda", lam)], "no layer class Lambda")
    module = json.loads(json.dumps(TOPOLOGY))
    module["config"]["layers"][1]["module"] = "os"
    cases["module_os"] = ([tfjs_model("module", module)], "names module 'os'")
    cases["swapped_kernel"] = ([tfjs_model("swapped", TOPOLOGY, dense_tensors((4, 3)))],
        "Keras builds weight 'kernel' with shape [3, 4]")

    def quantization(block):
        def edit(doc):
            doc["weightsManifest"][0]["weights"][0]["quantization"] = block
        return edit
    cases["quantization_dtype_list"] = (
        [tfjs_model("qlist", TOPOLOGY, edit_json=quantization(
            {"dtype": ["uint8"], "scale": 1.0, "min": 0.0}))], "dense/kernel")
    cases["quantization_scale_huge"] = (
        ["--output_format=keras", tfjs_model("qhuge", TOPOLOGY, edit_json=quantization(
            {"dtype": "uint8", "scale": 1e308, "min": 0.0})), base / "qhuge.h5"], "dense/kernel")

    fifo = base / "fifo.h5"
    os.mkfifo(fifo)
    cases["fifo_input"] = ([fifo], "want a regular file")
    cases["dev_zero_metadata"] = (["--metadata=meta:/dev/zero", good_h5], "/dev/zero")
    blocker = base / "a_file"
    blocker.write_text("x")
    cases["output_parent_is_a_file"] = ([good_h5, blocker / "out"], str(blocker))
    cases["output_is_the_input"] = (["--output_format=keras", good_h5, good_h5], str(good_h5))
    return cases


HOSTILE = ["unwritten_huge_kernel", "wrong_kernel_shape", "string_kernel", "negative_units",
           "truncated_h5", "truncated_h5_to_graph", "lambda_tfjs_to_tfjs", "module_os",
           "swapped_kernel", "quantization_dtype_list", "quantization_scale_huge", "fifo_input",
           "dev_zero_metadata", "output_parent_is_a_file", "output_is_the_input"]


@pytest.fixture(scope="module")
def hostile(inputs):
    from test_cli import save_dense_h5
    return _hostile_inputs(inputs["base"], save_dense_h5(inputs["base"] / "good_k2.h5"))


def test_every_hostile_class_is_answered_and_the_worker_serves_on(worker, inputs, hostile):
    """The issue's worker test: each failing class, then a good request, one process."""
    assert sorted(hostile) == sorted(HOSTILE)
    for index, name in enumerate(HOSTILE):
        arguments, fragment = hostile[name]
        arguments = [str(a) for a in arguments]
        if len([a for a in arguments if not a.startswith("--")]) == 1:  # no output given
            arguments.append(str(inputs["base"] / ("out_hostile_%d" % index)))
        response = worker.ask(*arguments)
        assert response["exitCode"] in (1, 2), (name, response)  # 2: a usage error (output path)
        line = _one_line(response)
        assert line.startswith("tfjs_converter: error: "), (name, line)
        assert fragment in line, (name, line)
        assert "unexpected" not in line, (name, line)
        _check_good(worker, inputs, "out_after_hostile_%d" % index)
