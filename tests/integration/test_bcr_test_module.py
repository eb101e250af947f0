"""The BCR test module (.bcr/test_module) builds and passes its test, here on Bazel 4.2.3.

The Bazel Central Registry runs that module with Bzlmod (MODULE.bazel,
local_path_override of this repository); Bazel 4.2.3 has no Bzlmod, so here the
same BUILD runs through the module's WORKSPACE (what Bazel 7+ ignores beside
its WORKSPACE.bzlmod). That checks what 4.2.3 can: the test module's targets,
script and test are right, from a workspace outside this repository that
reaches the rules as @tfjs_rules. The environment is the shared one of the
other integration tests (``$TFJS_RULES_ENV_ROOT``, default /var/tmp/tfjs_rules/envs).
"""

import json
import shutil

import pytest

import bazel_harness as bh

pytestmark = pytest.mark.bazel

# What the repository's .bazelrc gives 4.2.3; the test module ships no .bazelrc,
# since newer Bazel rejects the JSON-worker flag (docs/rules.md, support table).
FLAGS_4_2 = (
    "--experimental_worker_allow_json_protocol",
    "--strategy=TfjsConvert=worker,sandboxed",
    "--experimental_repository_disable_download",
    "--nosandbox_debug",
    "--incompatible_strict_action_env",
    "--jobs=2",
    "--worker_max_instances=TfjsConvert=1",
    "--curses=no",
    "--test_output=errors",
)


def test_bcr_test_module_converts_and_passes(checkouts):
    module = checkouts["bcr"].checkout / ".bcr" / "test_module"
    # Its own output root inside the checkout (tools/bazel), as every checkout here.
    (module / "tools").mkdir()
    shutil.copy2(checkouts["bcr"].checkout / "tools" / "bazel", module / "tools" / "bazel")
    (module / ".bazelignore").write_text(".bazel_root\n")
    bazel = bh.Bazel(module)
    try:
        run = bazel.run("test", *FLAGS_4_2, "//...")
        assert "//:tiny_tfjs_test" in run.output and "PASSED" in run.output, run.output
        assert "Executed 1 out of 1 test: 1 test passes." in run.output, run.output
        bin_dir = bazel.output_base / "execroot" / "tfjs_rules_test_module" / "bazel-out" / \
            "k8-fastbuild" / "bin"
        model = json.loads((bin_dir / "tiny_tfjs" / "model.json").read_text())
        assert model["format"] == "layers-model"
        weights = [w["name"] for g in model["weightsManifest"] for w in g["weights"]]
        assert len(weights) == 4, weights  # two Dense layers: kernel and bias each
        assert {w.split("/")[0] for w in weights} == {"hidden", "logits"}, weights
    finally:
        bazel.shutdown()
