"""A model.json topology is checked the same way on every output path (issue 8, defect 11),
and config values out of range are refused on the Keras input side too (defect 5).

tfjs -> tfjs used to copy the topology unchecked: a Lambda, a custom module,
``units: -3`` or swapped kernel shapes converted at exit 0 while -> keras
refused them. Each case here is built in the test from a small model.json and
run through the CLI: exit 1, one line naming the input file, previous output
untouched.
"""

import copy
import json
import math

import numpy as np
import pytest

from converter.model import Tensor
from test_cli import TOPOLOGY, _assert_failed, dense_tensors, run, tree_digest, write_topology_model


def _edited(edit):
    topology = copy.deepcopy(TOPOLOGY)
    edit(topology["config"]["layers"])
    return topology


def _refused_everywhere(tmp_path, previous, src, problem):
    out, digest = previous
    h5 = tmp_path / "out.h5"
    for fmt, dst in (("tfjs_layers_model", out), ("keras", h5)):
        code, _, stderr = run(src, dst, "--output_format=%s" % fmt)
        _assert_failed(tmp_path, out, digest, code, stderr, 1, stderr[len("tfjs_converter: error: "):-1])
        assert stderr.startswith("tfjs_converter: error: %s" % src), (fmt, stderr)
        assert problem in stderr, (fmt, stderr)
        assert not h5.exists()


def test_lambda_layer_is_refused_on_every_output(tmp_path, previous):
    def edit(layers):
        layers.append({"class_name": "Lambda", "config": {"name": "lam", "function": "x"}})
    src = write_topology_model(tmp_path / "src", _edited(edit))
    _refused_everywhere(tmp_path, previous, src,
                        "layer 'lam' (Lambda): TF.js 4.22 has no layer class Lambda; Lambda "
                        "layers hold Python code")


def test_custom_module_is_refused_on_every_output(tmp_path, previous):
    def edit(layers):
        layers[1]["module"] = "os"
    src = write_topology_model(tmp_path / "src", _edited(edit))
    _refused_everywhere(tmp_path, previous, src, "names module 'os'; only Keras's own modules")


def test_custom_module_of_an_initializer_is_refused(tmp_path, previous):
    def edit(layers):
        layers[0]["config"]["kernel_initializer"] = {
            "module": "subprocess", "class_name": "Popen", "config": {}}
    src = write_topology_model(tmp_path / "src", _edited(edit))
    _refused_everywhere(tmp_path, previous, src, "names module 'subprocess'")


@pytest.mark.parametrize("key,value,want", [
    ("units", -3, "layer 'dense_1' (Dense): units is -3; it must be a positive integer"),
    ("units", 2.5, "layer 'dense_1' (Dense): units is 2.5; it must be a positive integer"),
    ("units", True, "layer 'dense_1' (Dense): units is True; it must be a positive integer"),
])
def test_out_of_range_config_values_are_refused(tmp_path, previous, key, value, want):
    def edit(layers):
        layers[1]["config"][key] = value
    src = write_topology_model(tmp_path / "src", _edited(edit))
    _refused_everywhere(tmp_path, previous, src, want)


def test_swapped_kernel_shapes_are_refused(tmp_path, previous):
    src = write_topology_model(tmp_path / "src", TOPOLOGY, dense_tensors((4, 3)))
    _refused_everywhere(tmp_path, previous, src,
                        "tensor 'dense/kernel' has shape [4, 3]; Keras builds weight 'kernel' "
                        "with shape [3, 4]")


@pytest.mark.parametrize("epsilon", [math.nan, math.inf, -1.0])
def test_bad_batchnorm_epsilon_is_refused_on_every_output(tmp_path, previous, epsilon):
    topology = {"class_name": "Sequential", "config": {"name": "seq", "layers": [
        {"class_name": "BatchNormalization",
         "config": {"name": "bn", "axis": -1, "epsilon": epsilon, "batch_input_shape": [None, 3]}}]}}
    layer = topology["config"]["layers"][0]["config"]
    layer["epsilon"] = 0.001
    tensors = [Tensor("bn/%s" % n, np.ones(3, np.float32), "float32")
               for n in ("gamma", "beta", "moving_mean", "moving_variance")]
    src = write_topology_model(tmp_path / "src", topology, tensors)
    # Our writer refuses to put NaN/Infinity into model.json; a hostile one does.
    with open(src / "model.json") as f:
        doc = json.load(f)
    doc["modelTopology"]["model_config"]["config"]["layers"][0]["config"]["epsilon"] = epsilon
    with open(src / "model.json", "w") as f:
        json.dump(doc, f)
    _refused_everywhere(tmp_path, previous, src,
                        "layer 'bn' (BatchNormalization): epsilon is %r; it must be a finite "
                        "number >= 0" % epsilon)


def test_a_valid_model_still_converts_on_every_output(tmp_path):
    src = write_topology_model(tmp_path / "src", TOPOLOGY)
    for fmt, out in (("tfjs_layers_model", "o1"), ("keras", "o2.h5")):
        code, _, stderr = run(src, tmp_path / out, "--output_format=%s" % fmt)
        assert code == 0, stderr


@pytest.fixture(scope="module")
def conv_h5(tmp_path_factory):
    import tf_keras
    path = tmp_path_factory.mktemp("conv") / "conv.h5"
    model = tf_keras.Sequential([tf_keras.layers.Conv2D(2, 3, input_shape=(8, 8, 1), name="c"),
                                 tf_keras.layers.MaxPooling2D(2, name="p")])
    model.save(path)
    return path


@pytest.mark.parametrize("layer,key,want", [
    (1, "strides", "layer 'c' (Conv2D): strides is [1, 0]; it must be a positive integer or a "
                   "list of them"),
    (2, "strides", "layer 'p' (MaxPooling2D): strides is [1, 0]; it must be a positive integer "
                   "or a list of them"),
    (2, "pool_size", "layer 'p' (MaxPooling2D): pool_size is [1, 0]; it must be a positive "
                     "integer or a list of them"),
])
def test_zero_strides_and_sizes_in_keras_h5(tmp_path, previous, conv_h5, layer, key, want):
    import h5py
    bad = tmp_path / "zero.h5"
    bad.write_bytes(conv_h5.read_bytes())
    with h5py.File(bad, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        config["config"]["layers"][layer]["config"][key] = [1, 0]
        f.attrs["model_config"] = json.dumps(config)
    out, digest = previous
    for fmt in ("tfjs_layers_model", "keras"):
        code, _, stderr = run(bad, out, "--output_format=%s" % fmt)
        _assert_failed(tmp_path, out, digest, code, stderr, 1, "%s: %s" % (bad, want))
    # The graph path loads the model with Keras itself, whose refusal is quoted:
    # still one line, naming the file.
    # (TensorFlow's own log lines come first on stderr.)
    code, _, stderr = run(bad, out, "--output_format=tfjs_graph_model")
    last = stderr.splitlines()[-1]
    assert code == 1 and "Traceback" not in stderr and tree_digest(out) == digest
    assert last.startswith("tfjs_converter: error: %s: Keras cannot load this model: " % bad), last
