"""Graph model bytes do not depend on what the process traced before (persistent workers)."""

import hashlib

import pytest

from converter import api


@pytest.fixture(scope="module")
def lstm_saved_model(tmp_path_factory):
    import keras
    keras.utils.set_random_seed(0)
    path = tmp_path_factory.mktemp("sm") / "lstm"
    keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4)]).export(str(path), verbose=False)
    return path


def _digest(directory):
    return hashlib.sha256((directory / "model.json").read_bytes()).hexdigest()


@pytest.mark.parametrize("control_flow_v2", [False, True])
def test_same_bytes_after_other_traces(tmp_path, lstm_saved_model, control_flow_v2):
    import tensorflow as tf

    @tf.autograph.experimental.do_not_convert
    @tf.function
    def unrelated(x):
        return x * 2.0

    digests = []
    for i in range(3):
        unrelated(tf.constant(float(i)))  # advances TensorFlow's function-name counter
        out = tmp_path / ("out%d" % i)
        api.convert(lstm_saved_model, out, control_flow_v2=control_flow_v2)
        digests.append(_digest(out))
        raw = (out / "model.json").read_text()
        assert "experimentalDebugInfo" not in raw and "originalFuncNames" not in raw
    assert digests[0] == digests[1] == digests[2]
