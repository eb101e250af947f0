"""tfjs_model_test under `bazel test`: a matching model passes, a mismatched one fails with the report.

//tests/bazel:mlp_wrong_source_check is mlp_tfjs (converted from mlp.h5, seed 0)
checked against mlp_other.h5 (the same MLP with seed-7 weights), so every
output differs. It is tagged manual, so `bazel test //...` never runs it; this
test runs it by label, next to the passing //tests/bazel:mlp_tfjs_check.
"""

import re

import pytest

pytestmark = pytest.mark.bazel

GOOD = "//tests/bazel:mlp_tfjs_check"
BAD = "//tests/bazel:mlp_wrong_source_check"


@pytest.fixture(scope="module")
def test_run(checkouts):
    bazel = checkouts["t"]
    # --config=ci keeps going, so both tests run; exit code 3: some tests failed.
    return bazel.run("test", "--config=ci", "--test_output=errors", GOOD, BAD, check=False)


def test_mismatched_source_fails_with_the_report(test_run):
    out = test_run.output
    assert test_run.returncode == 3, out[-3000:]
    assert re.search(r"^%s\s+FAILED" % re.escape(BAD), out, re.M), out[-3000:]
    assert ("converter.verify: error: tests/bazel/mlp_tfjs/model.json: verification against "
            "tests/bazel/mlp_other.h5 failed") in out, out[-3000:]
    # One line per output and backend: which values, the error sizes, the first index.
    for backend in ("cpu", "wasm"):
        line = re.search(r"output 0 \[%s\]: (\d+) of (\d+) values off .*first at \[0, 0\]: "
                         r"got \S+, TensorFlow \S+; max abs err (\S+), max rel err (\S+)"
                         % backend, out)
        assert line, "no %s report line in:\n%s" % (backend, out[-3000:])
        assert int(line.group(1)) > 0 and float(line.group(3)) > 1e-3


def test_matching_source_passes(test_run):
    out = test_run.output
    assert re.search(r"^%s\s+PASSED" % re.escape(GOOD), out, re.M), out[-3000:]
    assert "Executed 2 out of 2 tests: 1 test passes and 1 fails locally." in out, out[-3000:]
