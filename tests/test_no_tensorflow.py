"""The Keras -> TF.js layers path never imports TensorFlow or Keras.

(TF.js -> Keras files are written by Keras, so that direction needs the 'tf' extra.)

The conversion runs in a fresh interpreter whose import system refuses
``tensorflow``, ``keras`` and ``tf_keras``: any attempt fails the conversion,
and afterwards none of them may be in ``sys.modules``.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_GUARD = r"""
import importlib.abc, sys
BANNED = ("tensorflow", "keras", "tf_keras")
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BANNED:
            raise ImportError("banned import of %s on the layers path" % name)
sys.meta_path.insert(0, Refuse())
from converter.api import convert
convert(sys.argv[1], sys.argv[2], **eval(sys.argv[3]))
loaded = sorted(m for m in sys.modules if m.split(".")[0] in BANNED)
assert not loaded, loaded
print("ok")
"""


def _convert_without_tf(src, out, **options):
    proc = subprocess.run([sys.executable, "-c", _GUARD, str(src), str(out), repr(options)],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    import keras
    import tf_keras
    d = tmp_path_factory.mktemp("src")
    keras.utils.set_random_seed(0)
    k3 = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                           keras.layers.Dense(2)])
    k3.save(d / "k3.keras")
    k3.save(d / "k3.h5")
    k3.save_weights(d / "k3.weights.h5")
    k2 = tf_keras.Sequential([tf_keras.layers.Dense(3, input_shape=(4,)), tf_keras.layers.Dense(2)])
    k2.save(d / "k2.h5")
    return d


@pytest.mark.parametrize("name,options", [
    ("k3.keras", {}),
    ("k3.h5", {}),
    ("k2.h5", {"quantize_uint8": ()}),
    ("k3.weights.h5", {}),
])
def test_keras_to_layers_without_tensorflow(tmp_path, sources, name, options):
    out = tmp_path / "out"
    _convert_without_tf(sources / name, out, **options)
    assert (out / "model.json").exists()


@pytest.mark.parametrize("output_format,name", [("keras_keras", "back.keras"),
                                                 ("keras", "back.h5")])
def test_layers_to_keras_without_tensorflow_names_the_extra(tmp_path, sources, output_format,
                                                            name):
    """TF.js -> Keras files are built and saved by Keras itself (its TensorFlow
    backend), so without it the conversion stops before any work, in one line."""
    _convert_without_tf(sources / "k3.keras", tmp_path / "tfjs")
    proc = subprocess.run([sys.executable, "-c", _GUARD, str(tmp_path / "tfjs"),
                           str(tmp_path / name), repr({"output_format": output_format})],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.endswith("converting tfjs_layers_model to %s needs TensorFlow (module "
                         "tensorflow), which is not installed here; install the 'tf' extra: "
                         "pip install 'tfjs-rules-converter[tf]' (from a checkout: pip install "
                         "'.[tf]')" % output_format), proc.stderr
    assert not (tmp_path / name).exists()
