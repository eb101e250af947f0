"""Weight layouts in real TF.js: split by layer, tiny shards, metadata, re-conversion chains.

Each layout only moves bytes, so TF.js must reproduce Keras exactly as for the
default layout (float32 bound of tests/tolerances.py), on cpu and wasm.
"""

import json

import numpy as np
import pytest

import tfjs_node
import tolerances
from converter import api

MODELS = ("cnn_bn", "multi_io")


@pytest.fixture(scope="module")
def layouts(zoo_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("layouts")
    (root / "labels.json").write_text('{"classes": ["a", "b"]}')
    made = {}
    for name in MODELS:
        src = zoo_cache.export(name, "keras3_keras")
        base = root / name
        split = base / "split"
        # Shards of 1000 bytes: most tensors span several files.
        api.convert(src.path, split, split_weights_by_layer=True, weight_shard_size_bytes=1000,
                    metadata=(("labels", str(root / "labels.json")),))
        # TF.js -> TF.js: merged again into one group, 4 MiB shards, metadata kept.
        merged = base / "merged"
        api.convert(split, merged, output_format="tfjs_layers_model")
        # TF.js -> .keras -> TF.js: the reverse path and back.
        api.convert(merged, base / "back.keras", output_format="keras_keras")
        again = base / "again"
        api.convert(base / "back.keras", again)
        made[name] = (src, {"split": split, "merged": merged, "again": again})
    jobs = [tfjs_node.Job(model_dir=d, inputs=src.inputs, backend=b, job_id="%s-%s-%s" % (n, k, b))
            for n, (src, dirs) in made.items() for k, d in dirs.items() for b in tfjs_node.BACKENDS]
    results = {j.job_id: r for j, r in zip(jobs, tfjs_node.run_jobs(jobs))}
    return made, results


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("layout", ["split", "merged", "again"])
def test_layout_matches_keras(layouts, name, layout):
    made, results = layouts
    src, dirs = made[name]
    for backend in tfjs_node.BACKENDS:
        result = results["%s-%s-%s" % (name, layout, backend)].check()
        tolerances.check_close(result.outputs, src.expected, tolerances.lookup(name, "float32"),
                               "%s %s on %s" % (name, layout, backend))


@pytest.mark.parametrize("name", MODELS)
def test_split_layout_files(layouts, name):
    made, _ = layouts
    split = made[name][1]["split"]
    doc = json.loads((split / "model.json").read_text())
    groups = doc["weightsManifest"]
    assert len(groups) > 1
    for gi, group in enumerate(groups):
        layers = {w["name"].split("/")[0] for w in group["weights"]}
        assert len(layers) == 1, layers
        assert all(p.startswith("group%d-shard" % (gi + 1)) for p in group["paths"])
        sizes = [(split / p).stat().st_size for p in group["paths"]]
        assert all(s == 1000 for s in sizes[:-1]) and 0 < sizes[-1] <= 1000
    assert doc["userDefinedMetadata"] == {"labels": {"classes": ["a", "b"]}}
    merged = json.loads((made[name][1]["merged"] / "model.json").read_text())
    assert len(merged["weightsManifest"]) == 1
    assert merged["userDefinedMetadata"] == doc["userDefinedMetadata"]
    assert [w["name"] for g in groups for w in g["weights"]] == \
        [w["name"] for w in merged["weightsManifest"][0]["weights"]]
