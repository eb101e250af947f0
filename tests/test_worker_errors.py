"""The persistent worker answers every request, whatever it raises, and keeps serving.

One real ``worker.py --persistent_worker`` process (the JSON protocol Bazel
speaks) gets requests that fail in ways the converter does not raise on
purpose: a SavedModel while ``import tensorflow`` fails (a ``tensorflow``
package on PYTHONPATH that raises ImportError, standing in for a broken
environment) and a corrupt HDF5 file (an h5py read error). A deeply nested
model.json, which once was a RecursionError, is now refused on purpose by
``converter.jsonio``; it stays here as a regression check. After each, a good
request on the same process succeeds.
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
