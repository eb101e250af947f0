"""--content_hash_shards: shard names carry their content hash; model.json, TF.js and the summary agree.

Layers and graph outputs get ``groupG-shardIofN.<16 hex>.bin`` names, the hex
the first 64 bits of the shard's SHA-384; the bytes are the same as without the
flag (only names differ); TF.js (Node, cpu) loads the result and reproduces
Keras; a content-hashed model reads back as a TF.js input; replacing a plain
output with a hashed one leaves no stale shard; the worker's summary gives each
file's SRI ``integrity`` (``sha384-<base64>``) over its bytes.
"""

import base64
import hashlib
import json
import os
import re

import numpy as np
import pytest

from converter import api, worker
from converter import request as rq
from converter.verify import runtime

HASHED = re.compile(r"^group(\d+)-shard(\d+)of(\d+)\.([0-9a-f]{16})\.bin$")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras  # pylint: disable=import-outside-toplevel
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((6,), name="x"), keras.layers.Dense(40, activation="tanh"),
                              keras.layers.Dense(3, name="scores")])
    path = tmp_path_factory.mktemp("content_hash") / "mlp.h5"
    model.save(path)
    x = np.random.default_rng(0).uniform(-1, 1, (4, 6)).astype(np.float32)
    return path, x, np.asarray(model(x))


def _convert(src, out, **kwargs):
    return api.run(rq.ConversionRequest(input_path=str(src), output_path=str(out), **kwargs))


def _shard_paths(model_dir):
    doc = json.loads((model_dir / "model.json").read_text())
    return [p for g in doc["weightsManifest"] for p in g["paths"]]


@pytest.mark.parametrize("output_format", [rq.TFJS_LAYERS_MODEL, rq.TFJS_GRAPH_MODEL])
def test_names_are_the_content_hash_and_bytes_unchanged(source, tmp_path, output_format):
    src, _, _ = source
    plain, hashed = tmp_path / "plain", tmp_path / "hashed"
    _convert(src, plain, output_format=output_format, weight_shard_size_bytes=256)
    _convert(src, hashed, output_format=output_format, weight_shard_size_bytes=256,
             content_hash_shards=True)
    paths = _shard_paths(hashed)
    assert len(paths) > 1
    assert sorted(p.name for p in hashed.iterdir()) == sorted(paths + ["model.json"])
    plain_paths = _shard_paths(plain)
    for path, plain_path in zip(paths, plain_paths):
        m = HASHED.match(path)
        assert m, path
        data = (hashed / path).read_bytes()
        assert m.group(4) == hashlib.sha384(data).hexdigest()[:16]
        assert path == plain_path[:-len(".bin")] + "." + m.group(4) + ".bin"
        assert data == (plain / plain_path).read_bytes()
    plain_doc = json.loads((plain / "model.json").read_text())
    hashed_doc = json.loads((hashed / "model.json").read_text())
    for group in plain_doc["weightsManifest"] + hashed_doc["weightsManifest"]:
        group.pop("paths")
    assert plain_doc == hashed_doc


def test_reproducible(source, tmp_path):
    src, _, _ = source
    for name in ("a", "b"):
        _convert(src, tmp_path / name, weight_shard_size_bytes=300, content_hash_shards=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").iterdir()} == \
        {p.name: p.read_bytes() for p in (tmp_path / "b").iterdir()}


def test_tfjs_loads_it_and_matches_keras(source, tmp_path):
    src, x, want = source
    results = []
    for output_format in (rq.TFJS_LAYERS_MODEL, rq.TFJS_GRAPH_MODEL):
        out = tmp_path / output_format
        _convert(src, out, output_format=output_format, weight_shard_size_bytes=512,
                 content_hash_shards=True)
        kind, method = (("layers", "predict") if output_format == rq.TFJS_LAYERS_MODEL
                        else ("graph", "execute"))
        results.append(runtime.Job(model_dir=str(out), inputs=[x], backend="cpu", kind=kind,
                                   method=method, job_id=kind))
    for result in runtime.run_jobs(results):
        assert result.ok, (result.job.label, result.error_stage, result.error_message)
        np.testing.assert_allclose(result.outputs[0], want, rtol=1e-5, atol=1e-5)


def test_hashed_model_reads_back_and_replaces_a_plain_one(source, tmp_path):
    src, _, _ = source
    hashed = tmp_path / "hashed"
    _convert(src, hashed, weight_shard_size_bytes=256, content_hash_shards=True)
    back = tmp_path / "back"
    _convert(hashed / "model.json", back, input_format=rq.TFJS_LAYERS_MODEL,
             output_format=rq.TFJS_LAYERS_MODEL, weight_shard_size_bytes=256)
    assert all(re.match(r"^group1-shard\d+of\d+\.bin$", p) for p in _shard_paths(back))
    # The plain output in place: a hashed conversion replaces it, no plain shard survives.
    _convert(hashed / "model.json", back, input_format=rq.TFJS_LAYERS_MODEL,
             output_format=rq.TFJS_LAYERS_MODEL, weight_shard_size_bytes=256,
             content_hash_shards=True)
    assert sorted(p.name for p in back.iterdir()) == sorted(_shard_paths(hashed) + ["model.json"])


def test_flag_needs_a_tfjs_output(source, tmp_path):
    src, _, _ = source
    from converter.errors import ConversionError  # pylint: disable=import-outside-toplevel
    with pytest.raises(ConversionError, match="content_hash_shards.*a TF.js output format"):
        _convert(src, tmp_path / "out.keras", output_format=rq.KERAS_KERAS,
                 content_hash_shards=True)


def test_summary_lists_sri_integrity(source, tmp_path):
    src, _, _ = source
    out = tmp_path / "out"
    _convert(src, out, weight_shard_size_bytes=256, content_hash_shards=True)
    summary = worker.summarize(str(out), "//x:y")
    names = sorted(f["name"] for f in summary["files"])
    assert names == sorted(_shard_paths(out) + ["model.json"])
    for f in summary["files"]:
        data = (out / f["name"]).read_bytes()
        assert f["integrity"] == "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
        assert f["size"] == len(data)
    assert summary["shard_count"] == len(_shard_paths(out))
    assert summary["weight_bytes"] == sum(f["size"] for f in summary["files"]
                                          if f["name"] != "model.json")


def test_cli_flag(source, tmp_path):
    from converter import cli  # pylint: disable=import-outside-toplevel
    src, _, _ = source
    out = tmp_path / "out"
    assert cli.main(["--content_hash_shards", str(src), str(out)]) == 0
    assert all(HASHED.match(p) for p in _shard_paths(out))
