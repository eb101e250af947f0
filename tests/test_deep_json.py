"""JSON nested 100000 deep, in every place a reader parses JSON: one line, exit 1."""

import json
import zipfile

import h5py
import pytest

from converter import cli

DEEP = "[" * 100000 + "]" * 100000
DEEPISH = json.dumps({"a": [[[[[[[[[[0]]]]]]]]]]})  # legal, shallow


def _model_json(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"format": "layers-model", "modelTopology": %s, "weightsManifest": []}'
                    % DEEP)
    return path, "%s: JSON nested deeper than 256 levels" % path


def _h5(tmp_path):
    path = tmp_path / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["model_config"] = DEEP
        f.create_group("model_weights")
    return path, "%s: attribute 'model_config': JSON nested deeper than 256 levels" % path


def _keras(tmp_path):
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", DEEP)
        z.writestr("metadata.json", "{}")
        z.writestr("model.weights.h5", b"")
    return path, "%s: config.json: JSON nested deeper than 256 levels" % path


@pytest.mark.parametrize("make", [_model_json, _h5, _keras])
@pytest.mark.parametrize("output_format", [None, "tfjs_graph_model"])
def test_deep_json_is_one_line(tmp_path, capsys, make, output_format):
    path, message = make(tmp_path)
    argv = [str(path), str(tmp_path / "out")]
    if output_format:
        argv.insert(0, "--output_format=" + output_format)
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err == "tfjs_converter: error: " + message, err
    assert not (tmp_path / "out").exists()


def test_shallow_json_parses():
    from converter import jsonio
    assert jsonio.loads(DEEPISH, "x") == json.loads(DEEPISH)
