"""Hostile paths: an output that is or holds the input, and inputs that are not regular files."""

import os
import pathlib
import threading

import pytest

from converter import api, cli


@pytest.fixture
def layers_model(tmp_path):
    """A Keras 3 .h5 (m.h5) and its TF.js layers model (X/)."""
    import keras
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(tmp_path / "m.h5")
    api.convert(str(tmp_path / "m.h5"), str(tmp_path / "X"))
    return tmp_path


def _snapshot(root: pathlib.Path):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _run(argv, capsys):
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip()


def test_output_directory_holding_the_input_is_refused(layers_model, capsys):
    before = _snapshot(layers_model)
    code, err = _run(["--quantize_uint8", "--output_format=tfjs_layers_model",
                      layers_model / "X" / "model.json", layers_model / "X"],
                     capsys)
    assert code == 2
    assert err == ("tfjs_converter: error: output %s contains the input %s, which the conversion "
                   "would replace; choose another output path"
                   % (layers_model / "X", layers_model / "X" / "model.json"))
    assert _snapshot(layers_model) == before


def test_output_symlink_to_the_input_is_refused(layers_model, capsys):
    link = layers_model / "link.h5"
    os.symlink(layers_model / "m.h5", link)
    before = _snapshot(layers_model)
    code, err = _run(["--output_format=keras", layers_model / "m.h5", link], capsys)
    assert code == 2 and "(the same file)" in err
    hard = layers_model / "hard.h5"
    os.link(layers_model / "m.h5", hard)
    code, err = _run(["--output_format=keras", layers_model / "m.h5", hard], capsys)
    assert code == 2 and "(the same file)" in err
    assert (layers_model / "m.h5").read_bytes() == before["m.h5"]


def test_output_inside_the_input_directory_is_refused(layers_model, capsys):
    code, err = _run([layers_model / "X", layers_model / "X" / "sub"], capsys)
    assert code == 2 and "is inside the input directory" in err


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_non_regular_inputs_are_refused_without_reading(tmp_path, capsys, kind):
    if kind == "fifo":
        path = tmp_path / "model.h5"
        os.mkfifo(path)
        want = "is a FIFO"
    else:
        path = pathlib.Path("/dev/zero")
        want = "is a device"
    result = {}
    worker = threading.Thread(target=lambda: result.update(rc=_run([path, tmp_path / "o"], capsys)))
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "the converter blocked reading %s" % path
    code, err = result["rc"]
    assert code == 1
    assert err == "tfjs_converter: error: %s: %s; want a regular file or a directory" % (path, want)


def test_device_metadata_file_is_refused(layers_model, capsys):
    code, err = _run(["--metadata", "k:/dev/zero", layers_model / "m.h5", layers_model / "Y"],
                     capsys)
    assert code == 1
    assert err == ("tfjs_converter: error: metadata file /dev/zero (key 'k'): is a device; "
                   "want a regular file")
    assert not (layers_model / "Y").exists()


def test_deep_metadata_json_is_one_line(layers_model, capsys):
    deep = layers_model / "deep.json"
    deep.write_text("[" * 100000 + "]" * 100000)
    code, err = _run(["--metadata", "k:%s" % deep, layers_model / "m.h5", layers_model / "Y"],
                     capsys)
    assert code == 1 and "\n" not in err
    assert err == ("tfjs_converter: error: metadata file %s (key 'k'): JSON nested deeper "
                   "than 256 levels" % deep), err

