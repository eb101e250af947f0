"""The converter toolchain is declared in a light repository: unrelated builds fetch no environment.

`tfjs_rules_dependencies()` declares two repositories: `@tfjs_converter_env`
(the 2 GB venv pip builds under the env root) and `@tfjs_converter_env_toolchains`
(the registered `toolchain()`, a few lines of BUILD). Toolchain resolution
loads every registered toolchain in every build, so before the split a plain
`py_test` built the venv. Here, in a fresh output base with an empty
`TFJS_RULES_ENV_ROOT`:

* a `py_test` and a `genrule` of this repository build, the light repository is
  fetched (so resolution did read it), and the environment is not: no
  `@tfjs_converter_env` under the output base, nothing in the env root;
* in examples/ (a user workspace), `bazel test //web:bundle_test`, the target of
  the original report, passes the same way;
* a `tfjs_model` does fetch the environment. That half uses the env root every
  other integration test uses (`$TFJS_RULES_ENV_ROOT`, default
  /var/tmp/tfjs_rules/envs), so a warm machine does not build a second 2 GB venv.
"""

import os
import pathlib

import pytest

import bazel_harness as bh

pytestmark = pytest.mark.bazel

ENV_REPO = "tfjs_converter_env"
TOOLCHAINS_REPO = "tfjs_converter_env_toolchains"
SHARED_ENV_ROOT = os.environ.get("TFJS_RULES_ENV_ROOT", "/var/tmp/tfjs_rules/envs")

UNRELATED_BUILD = """\
# Written by tests/integration/test_bazel_light_toolchain.py: nothing here converts a model.
py_test(
    name = "unrelated_test",
    size = "small",
    srcs = ["unrelated_test.py"],
)

genrule(
    name = "unrelated_gen",
    outs = ["unrelated.txt"],
    cmd = "echo unrelated > $@",
)
"""


def _fetched(output_base: pathlib.Path) -> set:
    """Names of the external repositories Bazel has fetched into this output base."""
    external = output_base / "external"
    if not external.is_dir():
        return set()
    return {p.name[1:-len(".marker")] for p in external.glob("@*.marker")} | \
        {p.name for p in external.iterdir() if p.is_dir()}


@pytest.fixture
def empty_env_root(tmp_path, monkeypatch):
    """An empty TFJS_RULES_ENV_ROOT for the Bazel commands of one test."""
    root = tmp_path / "envs"
    root.mkdir()
    # bazel_harness passes os.environ to every client; the repository rule reads it.
    monkeypatch.setenv("TFJS_RULES_ENV_ROOT", str(root))
    return root


def test_unrelated_py_test_and_genrule_fetch_no_environment(checkouts, empty_env_root):
    bazel = checkouts["light"]
    pkg = bazel.checkout / "unrelated"
    pkg.mkdir()
    (pkg / "BUILD").write_text(UNRELATED_BUILD)
    (pkg / "unrelated_test.py").write_text("assert 1 + 1 == 2\n")
    assert ENV_REPO not in _fetched(bazel.output_base)  # a fresh output base

    run = bazel.build(["//unrelated:unrelated_test", "//unrelated:unrelated_gen"])

    assert (bazel.bin_dir / "unrelated" / "unrelated.txt").read_text() == "unrelated\n"
    assert (bazel.bin_dir / "unrelated" / "unrelated_test").is_file()
    fetched = _fetched(bazel.output_base)
    assert TOOLCHAINS_REPO in fetched, "resolution did not read the registered toolchains"
    assert ENV_REPO not in fetched, "a py_test and a genrule fetched @%s:\n%s" % (
        ENV_REPO, run.output)
    assert sorted(os.listdir(empty_env_root)) == []
    # The light repository is what its docs say: one toolchain() pointing into the env.
    build = (bazel.output_base / "external" / TOOLCHAINS_REPO / "BUILD.bazel").read_text()
    assert 'toolchain = "@%s//:converter_toolchain"' % ENV_REPO in build
    assert "load(" not in build


def test_examples_bundle_test_fetches_no_environment(checkouts, empty_env_root):
    # The report's reproduction: examples/ is a user workspace with its own Bazel.
    examples = bh.Bazel(checkouts["light"].checkout / "examples")
    try:
        run = examples.run("test", "--config=ci", "//web:bundle_test")
        assert "//web:bundle_test" in run.output and "PASSED" in run.output, run.output
        fetched = _fetched(examples.output_base)
        assert TOOLCHAINS_REPO in fetched
        assert ENV_REPO not in fetched, run.output
        assert sorted(os.listdir(empty_env_root)) == []
    finally:
        examples.shutdown()


def test_tfjs_model_fetches_the_environment(checkouts, monkeypatch):
    monkeypatch.setenv("TFJS_RULES_ENV_ROOT", SHARED_ENV_ROOT)
    bazel = checkouts["light"]
    assert ENV_REPO not in _fetched(bazel.output_base)

    bazel.build([bh.label("mlp_0_tfjs")])

    assert ENV_REPO in _fetched(bazel.output_base)
    launcher = (bazel.output_base / "external" / ENV_REPO / "python3").read_text()
    venv = launcher.split("exec ", 1)[1].split("/bin/python3", 1)[0]
    assert os.path.dirname(venv) == os.path.normpath(SHARED_ENV_ROOT), launcher
    assert os.path.isfile(os.path.join(venv, ".complete")), venv
    model_json = bazel.bin_dir / bh.PACKAGE / "mlp_0_tfjs" / "model.json"
    assert model_json.read_text().startswith("{"), model_json
