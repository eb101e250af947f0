"""The converter as a pip package: wheel contents, console scripts, extras, --version, quiet logs.

Fast tests build the wheel with the dev venv's setuptools (no network) and run
the CLI from the sources. The two venv tests do what a user does, in fresh
venvs under the test's temp dir:

* ``test_fresh_venv_from_the_lock`` (slow): ``pip install --require-hashes
  --no-deps -r requirements_lock.txt && pip install --no-deps .``, then
  ``tfjs-convert model.h5 out/`` (byte-identical to the sources' output), a
  graph conversion whose stderr holds no TensorFlow start-up lines (some with
  ``--debug``) and ``tensorflowjs_converter --version``. The lock is ~2.5 GB
  installed (about 55 s here). ``TFJS_TEST_LOCK_VENV=<venv built from
  requirements_lock.txt>`` (e.g. .venv-lock, or Bazel's converter environment)
  reuses one instead: the fresh venv then sees its site-packages through a
  ``.pth`` file, after its installed versions are checked against the lock.
* ``test_numpy_h5py_only_venv``: numpy and h5py hash-checked at the lock's
  versions, then ``pip install .`` with dependencies (nothing else may be
  installed); the layers path works, a graph conversion fails in one line
  naming the ``[tf]`` extra, and ``--version`` names whichever distribution
  provides ``tensorflow`` (tensorflow-cpu, tf-nightly, ...) without importing it.

``pip install .`` builds in an isolated environment, so pip takes setuptools
from the package index (PyPI or the machine's mirror); pip may use its cache.
"""

import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile
from typing import Dict, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements_lock.txt"
sys.path.insert(0, str(ROOT))

from converter import extras, tf_logs  # noqa: E402

try:
    import tomllib
except ImportError:  # Python 3.10: pip's own copy of the same parser
    from pip._vendor import tomli as tomllib

_IGNORED = shutil.ignore_patterns(".git", ".venv*", ".bazel_root", "bazel-*", "node_modules",
                                  "__pycache__", ".pybuild", ".hypothesis", ".pytest_cache",
                                  "*.egg-info", "build")
# What TensorFlow 2.21 printed on stderr for one graph conversion on this machine
# (no GPU), before tf_logs: each line must count as noise.
_TF_NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796596084.029444    6936 port.cc:153] oneDNN custom operations are on. You "
    "may see slightly different numerical results due to floating-point round-off errors from "
    "different computation orders. To turn them off, set the environment variable "
    "`TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796596084.029729    6936 cudart_stub.cc:31] Could not find cuda drivers on "
    "your machine, GPU will not be used.",
    "I0000 00:00:1796596084.071459    6936 cpu_feature_guard.cc:227] This TensorFlow binary is "
    "optimized to use available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 AVX512_FP16 "
    "AVX_VNNI AMX_TILE AMX_INT8 AMX_BF16 FMA, in other operations, rebuild TensorFlow with the "
    "appropriate compiler flags.",
    "E0000 00:00:1796596085.434383    6936 cuda_platform.cc:52] failed call to cuInit: "
    "INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)",
    "I0000 00:00:1796596085.567542    6936 devices.cc:67] Number of eligible GPUs (core count "
    ">= 8, compute capability >= 0.0): 0",
    "I0000 00:00:1796596085.567697    6936 single_machine.cc:376] Starting new session",
    "W1206 22:31:05.123456    6936 op_level_cost_estimator.cc:699] Error in PredictCost() for "
    "the op: op: \"Softmax\"",
]
_NOISE_RE = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:\d+\.\d+ )",
                       re.M)


def _env(**extra) -> Dict[str, str]:
    """The caller's environment without what would change the result: the sources on
    PYTHONPATH, and a TensorFlow log level (the tests check the CLI's own default)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", tf_logs.LOG_LEVEL_VAR, "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env.update(extra)
    return env


def _run(cmd: List, cwd=None, env=None, check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env or _env(), capture_output=True,
                          text=True, check=False, stdin=subprocess.DEVNULL)
    if check:
        assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (
            " ".join(map(str, cmd)), proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:])
    return proc


def lock_entries(path: pathlib.Path = LOCK) -> Dict[str, str]:
    """{normalized name: the lock's whole entry (the pin with its --hash lines)}."""
    entries, current = {}, None
    for line in path.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            current = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            entries[current] = line
        elif current and line.startswith("    --hash="):
            entries[current] += "\n" + line
        elif not line.startswith("    "):
            current = None
    return entries


def lock_version(name: str) -> str:
    return re.match(r"^\S+==(\S+)", lock_entries()[name]).group(1)


def _source_tree(dst: pathlib.Path) -> pathlib.Path:
    """A copy of the checkout as a user has it (no venvs, caches or Bazel trees)."""
    shutil.copytree(ROOT, dst, symlinks=True, ignore=_IGNORED)
    return dst


def _venv(path: pathlib.Path) -> pathlib.Path:
    _run([sys.executable, "-m", "venv", path])
    return path / "bin"


def _site_packages(bindir: pathlib.Path) -> pathlib.Path:
    out = _run([bindir / "python", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"])
    return pathlib.Path(out.stdout.strip())


def _installed(bindir: pathlib.Path) -> Dict[str, str]:
    """{normalized name: version} of the distributions the venv's python sees."""
    out = _run([bindir / "python", "-c", textwrap.dedent("""
        import importlib.metadata as m, re
        for d in m.distributions():
            print(re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(), d.version)
        """)])
    return dict(line.split() for line in out.stdout.splitlines())


@pytest.fixture(scope="module")
def model_h5(tmp_path_factory) -> pathlib.Path:
    """A tiny Keras 3 HDF5 model (seeded), saved by the dev venv's Keras."""
    path = tmp_path_factory.mktemp("model") / "model.h5"
    _run([sys.executable, "-c", textwrap.dedent("""
        import sys, keras
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(2)])
        m.save(sys.argv[1])
        """), path])
    return path


@pytest.fixture(scope="module")
def reference(model_h5, tmp_path_factory) -> pathlib.Path:
    """model_h5 converted by the sources (python -m converter in the dev venv)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    _run([sys.executable, "-m", "converter", model_h5, out], cwd=ROOT)
    return out


def _tree(path: pathlib.Path) -> Dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


# ------------------------------------------------------------------------ metadata


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_pyproject_agrees_with_the_extras_table():
    project = _pyproject()["project"]
    assert project["name"] == extras.DIST_NAME
    assert project["dependencies"] == ["numpy>=1.23", "h5py>=3.8"]
    names = {extra: tuple(re.match(r"^[A-Za-z0-9._-]+", r).group(0) for r in reqs)
             for extra, reqs in project["optional-dependencies"].items()}
    assert names == extras.EXTRAS
    assert project["scripts"] == {"tfjs-convert": "converter.cli:main",
                                  "tensorflowjs_converter": "converter.cli:main"}
    # Every extra's requirement is pinned by the lock (so the locked env has them all).
    pinned = lock_entries()
    assert [r for reqs in extras.EXTRAS.values() for r in reqs if r not in pinned] == []


def test_wheel_holds_the_package_and_its_data_only(tmp_path):
    src = _source_tree(tmp_path / "src")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
          "-w", tmp_path / "dist", src])
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    assert wheel.name == "tfjs_rules_converter-0.1.0-py3-none-any.whl"
    names = set(zipfile.ZipFile(wheel).namelist())
    info = "tfjs_rules_converter-0.1.0.dist-info/"
    package = {n for n in names if not n.startswith(info)}
    # Every file of converter/ but Bazel's BUILD and caches, and nothing else.
    want = {str(p.relative_to(src)) for p in (src / "converter").rglob("*")
            if p.is_file() and p.name != "BUILD" and "__pycache__" not in p.parts}
    assert package == want
    assert {"converter/graph/tfjs_ops.json", "converter/verify/js/run_models.js",
            "converter/verify/js/package-lock.json"} <= package
    assert not [n for n in names if n.startswith(("tests/", "bench/", "tfjs_rules/", "examples/"))]
    entry_points = zipfile.ZipFile(wheel).read(info + "entry_points.txt").decode()
    assert "tfjs-convert = converter.cli:main" in entry_points
    assert "tensorflowjs_converter = converter.cli:main" in entry_points
    metadata = zipfile.ZipFile(wheel).read(info + "METADATA").decode()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == [
        "Requires-Dist: numpy>=1.23", "Requires-Dist: h5py>=3.8"]
    # setuptools' scratch stays out of build/ (next to BUILD on a case-insensitive disk).
    assert not (src / "build").exists() and (src / ".pybuild").is_dir()


def _readme_commands() -> List[List[str]]:
    """The commands of the README's "Converter without Bazel" code block, split like a shell."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Converter without Bazel"):]
    start = section.index("```bash\n") + len("```bash\n")
    block = section[start:section.index("\n```", start)]
    commands = []
    for line in block.splitlines():
        for command in line.split("&&"):
            words = shlex.split(command, comments=True)
            if words:
                commands.append(words)
    return commands


def test_readme_commands_are_the_package_s(capsys):
    from converter import cli
    from converter.verify import __main__ as verify_cli
    commands = _readme_commands()
    programs = {c[0] for c in commands}
    assert programs == {"pip", "tfjs-convert", "python"}, programs
    project = _pyproject()["project"]
    for words in commands:
        if words[0] == "pip":
            assert words[1] == "install"
            for target in [w for w in words[2:] if w.startswith(".")]:
                m = re.fullmatch(r"\.(?:\[([a-z,]+)\])?", target)
                assert m, target
                for extra in (m.group(1) or "").split(",") if m.group(1) else ():
                    assert extra in project["optional-dependencies"], words
        elif words[0] == "tfjs-convert":
            if words[1:] == ["--help"]:
                with pytest.raises(SystemExit) as exit_info:
                    cli.build_parser().parse_args(["--help"])
                assert exit_info.value.code == 0
                continue
            args = cli.build_parser().parse_args(cli.normalize_argv(words[1:]))
            if not args.version:
                cli.request_from_args(args)  # raises UsageError on a bad command
        else:
            assert words[:3] == ["python", "-m", "converter.verify"], words
            verify_cli._parser().parse_args(words[3:])  # pylint: disable=protected-access
    capsys.readouterr()
    assert ["tfjs-convert", "model.h5", "out/"] in commands
    assert ["pip", "install", "--no-deps", "."] in commands


def test_missing_onnx_extra_is_named_before_any_work(tmp_path, model_h5):
    """With TensorFlow there but tf2onnx refused by the import system, keras -> onnx names
    the onnx extra, and TensorFlow is not even imported (the check comes first)."""
    proc = _run([sys.executable, "-c", textwrap.dedent("""
        import importlib.abc, sys
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "tf2onnx":
                    raise ImportError("no tf2onnx here")
        sys.meta_path.insert(0, Refuse())
        from converter.cli import main
        code = main(sys.argv[1:])
        assert "tensorflow" not in sys.modules
        sys.exit(code)
        """), model_h5, tmp_path / "model.onnx", "--output_format=onnx"], cwd=ROOT, check=False)
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr == (
        "tfjs_converter: error: converting keras to onnx needs tf2onnx (module tf2onnx), which "
        "is not installed here; install the 'onnx' extra: pip install "
        "'tfjs-rules-converter[onnx]' (from a checkout: pip install '.[onnx]')\n")
    assert not (tmp_path / "model.onnx").exists()


# ---------------------------------------------------------------------- log noise


def test_tensorflow_start_up_lines_are_noise():
    for line in _TF_NOISE:
        assert tf_logs.is_noise(line.encode()), line


@pytest.mark.parametrize("line", [
    "tfjs_converter: error: model.h5: no model_config attribute",
    "tfjs_converter: warning: 2 weights are float64",
    "F0000 00:00:1796596085.434383    6936 tensor_shape.cc:413] Check failed: d >= 0 (-1 vs. 0)",
    "E0000 00:00:1796596085.434383    6936 graph_properties.cc:12] shape inference failed",
    "Traceback (most recent call last):",
    "Segmentation fault (core dumped)",
    "",
])
def test_other_lines_are_kept(line):
    assert not tf_logs.is_noise(line.encode())


def test_filter_drops_noise_and_keeps_the_rest_in_order(tmp_path):
    script = textwrap.dedent("""
        import os, subprocess, sys
        from converter import tf_logs
        noise = sys.argv[1].encode()
        with tf_logs.quiet(debug=sys.argv[2] == "debug"):
            os.write(2, noise + b"\\nnative line 1\\n" + noise + b"\\n")
            print("python line", file=sys.stderr)
            subprocess.run([sys.executable, "-c",
                            "import os; os.write(2, b'child line\\\\n')"], check=True)
            os.write(2, b"unterminated")
        print("after", file=sys.stderr)
        """)
    noise = _TF_NOISE[1]
    quiet = _run([sys.executable, "-c", script, noise, "quiet"], cwd=ROOT)
    assert quiet.stderr == "native line 1\npython line\nchild line\nunterminatedafter\n"
    debug = _run([sys.executable, "-c", script, noise, "debug"], cwd=ROOT)
    assert debug.stderr == ("%s\nnative line 1\n%s\npython line\nchild line\nunterminatedafter\n"
                            % (noise, noise))


def test_graph_conversion_is_quiet_by_default_and_not_with_debug(tmp_path, model_h5):
    cmd = [sys.executable, "-m", "converter", "--output_format=tfjs_graph_model", model_h5]
    quiet = _run(cmd + [tmp_path / "quiet"], cwd=ROOT)
    assert quiet.stderr == ""
    assert quiet.stdout == "tfjs_converter: wrote %s (tfjs_graph_model, 3 weights in 1 group)\n" \
        % (tmp_path / "quiet")
    debug = _run(cmd + [tmp_path / "debug", "--debug"], cwd=ROOT)
    noise = _NOISE_RE.findall(debug.stderr)
    assert len(noise) >= 3, debug.stderr
    assert all(tf_logs.is_noise(line.encode()) for line in debug.stderr.splitlines()), debug.stderr
    assert _tree(tmp_path / "quiet") == _tree(tmp_path / "debug")


def test_bazel_action_entry_point_is_quiet(tmp_path, model_h5):
    """worker.py one-shot (an @flagfile: what a Bazel action without a worker runs)."""
    flags = tmp_path / "args.flags"
    flags.write_text("%s\n%s\n--output_format=tfjs_graph_model\n" % (model_h5, tmp_path / "out"))
    proc = _run([sys.executable, "-I", ROOT / "converter" / "worker.py", "@%s" % flags])
    assert (proc.stdout, proc.stderr) == ("", "")
    assert (tmp_path / "out" / "model.json").is_file()
    flags.write_text(flags.read_text() + "--debug\n")
    noisy = _run([sys.executable, "-I", ROOT / "converter" / "worker.py", "@%s" % flags])
    assert len(_NOISE_RE.findall(noisy.stderr)) >= 3, noisy.stderr


def test_bazel_request_file_entry_point_is_quiet(tmp_path, model_h5):
    """worker.py one-shot with a JSON request file (what tfjs_model's action passes)."""
    request = tmp_path / "request.json"
    flags = tmp_path / "args.flags"
    flags.write_text("--request_file=%s\n" % request)
    for name, debug in (("quiet", "false"), ("debug", "true")):
        request.write_text('{"input_path": "%s", "output_path": "%s", "output_format": '
                           '"tfjs_graph_model", "debug": %s}' % (model_h5, tmp_path / name, debug))
        proc = _run([sys.executable, "-I", ROOT / "converter" / "worker.py", "@%s" % flags])
        assert (tmp_path / name / "model.json").is_file()
        if debug == "false":
            assert (proc.stdout, proc.stderr) == ("", "")
        else:
            assert len(_NOISE_RE.findall(proc.stderr)) >= 3, proc.stderr


# ------------------------------------------------------------------------- version


def test_version_names_installed_distributions_without_importing_tensorflow():
    proc = _run([sys.executable, "-c", textwrap.dedent("""
        import sys
        from converter.cli import main
        main(["--version"])
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules
        """)], cwd=ROOT)
    assert proc.stdout == "tfjs_converter 0.1.0 (numpy %s, h5py %s, tensorflow %s, keras %s, " \
        "tf-keras %s)\n" % tuple(lock_version(n) for n in ("numpy", "h5py", "tensorflow", "keras",
                                                            "tf-keras"))


def _fake_tensorflow(root: pathlib.Path, dist: str, version: str) -> pathlib.Path:
    """A distribution ``dist`` providing the module ``tensorflow``, which refuses to be imported."""
    root.mkdir(parents=True)
    (root / "tensorflow").mkdir()
    (root / "tensorflow" / "__init__.py").write_text("raise ImportError('imported by --version')\n")
    info = root / ("%s-%s.dist-info" % (dist.replace("-", "_"), version))
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
                                   % (dist, version))
    (info / "RECORD").write_text("tensorflow/__init__.py,,\n%s/METADATA,,\n%s/RECORD,,\n"
                                 % (info.name, info.name))
    return root


# ------------------------------------------------------------------- fresh venvs


def _layers_conversion(bindir: pathlib.Path, model_h5, reference, work: pathlib.Path) -> None:
    """``tfjs-convert model.h5 out/`` in ``work``: one line on stdout, nothing on stderr,
    the sources' bytes."""
    shutil.copy(model_h5, work / "model.h5")
    proc = _run([bindir / "tfjs-convert", "model.h5", "out/"], cwd=work)
    assert (proc.stdout, proc.stderr) == (
        "tfjs_converter: wrote out/ (tfjs_layers_model, 4 weights in 1 group)\n", "")
    assert _tree(work / "out") == _tree(reference)


@pytest.mark.slow
def test_fresh_venv_from_the_lock(tmp_path, model_h5, reference):
    timings = {}
    start = time.monotonic()
    src = _source_tree(tmp_path / "src")
    bindir = _venv(tmp_path / "venv")
    reuse = os.environ.get("TFJS_TEST_LOCK_VENV")
    if reuse:
        locked = pathlib.Path(reuse) / "bin"
        pinned = {n: lock_version(n) for n in lock_entries()}
        have = _installed(locked)
        assert {n: have.get(n) for n in pinned} == pinned, "%s is not requirements_lock.txt's" % reuse
        (_site_packages(bindir) / "_lock_env.pth").write_text("%s\n" % _site_packages(locked))
    else:
        _run([bindir / "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", LOCK])
    timings["lock"] = time.monotonic() - start
    t = time.monotonic()
    _run([bindir / "pip", "install", "-q", "--no-deps", "."], cwd=src)
    timings["package"] = time.monotonic() - t

    work = tmp_path / "work"
    work.mkdir()
    _layers_conversion(bindir, model_h5, reference, work)

    # A graph conversion: TensorFlow's start-up lines only with --debug.
    graph = [bindir / "tfjs-convert", "--output_format", "tfjs_graph_model", "model.h5"]
    quiet = _run(graph + ["graph/"], cwd=work)
    assert (quiet.stdout, quiet.stderr) == (
        "tfjs_converter: wrote graph/ (tfjs_graph_model, 3 weights in 1 group)\n", "")
    debug = _run(graph + ["graph_debug/", "--debug"], cwd=work)
    assert len(_NOISE_RE.findall(debug.stderr)) >= 3, debug.stderr

    version = _run([bindir / "tensorflowjs_converter", "--version"], cwd=work)
    assert version.stdout == "tfjs_converter 0.1.0 (numpy %s, h5py %s, tensorflow %s, keras %s, " \
        "tf-keras %s)\n" % tuple(lock_version(n) for n in ("numpy", "h5py", "tensorflow", "keras",
                                                            "tf-keras"))
    assert version.stderr == ""
    # The scripts are the package's, not the checkout's.
    where = _run([bindir / "python", "-c", "import converter; print(converter.__file__)"], cwd=work)
    assert where.stdout.startswith(str(_site_packages(bindir)))
    timings["total"] = time.monotonic() - start
    print("\nfresh lock venv (%s): %s" % ("reused %s" % reuse if reuse else "installed",
                                           ", ".join("%s %.1f s" % kv for kv in timings.items())))


# Runs every supported (input, output) pair through converter.api.run in the venv under
# test; prints "<input> <output>: ok" or ": <error class> <message>". Sources: argv 1-3
# (.h5, .keras, TF.js layers model); the TensorFlow-only inputs are stand-ins, as a
# missing extra must be reported before the input is read.
_EVERY_PAIR = textwrap.dedent("""
    import os, sys
    from converter import api, request as rq
    from converter.errors import ConversionError
    h5, keras_file, layers, work = sys.argv[1:5]
    os.makedirs(os.path.join(work, "saved_model"))
    open(os.path.join(work, "saved_model", "saved_model.pb"), "wb").close()
    open(os.path.join(work, "frozen.pb"), "wb").close()
    os.makedirs(os.path.join(work, "graph"))
    with open(os.path.join(work, "graph", "model.json"), "w") as f:
        f.write('{"format": "graph-model", "modelTopology": {}, "weightsManifest": []}')
    sources = {"keras": h5, "keras_keras": keras_file, "tfjs_layers_model": layers,
               "keras_saved_model": os.path.join(work, "saved_model"),
               "tf_saved_model": os.path.join(work, "saved_model"),
               "tf_hub": os.path.join(work, "saved_model"),
               "tf_frozen_model": os.path.join(work, "frozen.pb"),
               "tfjs_graph_model": os.path.join(work, "graph")}
    suffix = {"keras": ".h5", "keras_keras": ".keras", "tflite": ".tflite", "onnx": ".onnx"}
    for n, (i, o) in enumerate(api.supported_pairs()):
        out = os.path.join(work, "out%d%s" % (n, suffix.get(o, "")))
        try:
            api.run(rq.ConversionRequest(input_path=sources[i], output_path=out,
                                         input_format=i, output_format=o))
            print("%s %s: ok" % (i, o))
        except ConversionError as e:
            print("%s %s: %s %s" % (i, o, type(e).__name__, e))
    """)


@pytest.fixture(scope="module")
def model_keras(model_h5) -> pathlib.Path:
    """model_h5 as a Keras 3 .keras archive."""
    path = model_h5.with_suffix(".keras")
    _run([sys.executable, "-c", "import sys, keras; keras.saving.load_model(sys.argv[1])"
          ".save(sys.argv[2])", model_h5, path])
    return path


def test_numpy_h5py_only_venv(tmp_path, model_h5, model_keras, reference):
    timings = {}
    start = time.monotonic()
    src = _source_tree(tmp_path / "src")
    bindir = _venv(tmp_path / "venv")
    entries = lock_entries()
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("%s\n%s\n" % (entries["numpy"], entries["h5py"]))
    _run([bindir / "pip", "install", "-q", "--require-hashes", "--no-deps", "-r", requirements])
    before = _installed(bindir)
    timings["numpy+h5py"] = time.monotonic() - start
    t = time.monotonic()
    # With dependencies: numpy and h5py satisfy them, so nothing else may come in.
    _run([bindir / "pip", "install", "-q", "."], cwd=src)
    timings["package"] = time.monotonic() - t
    after = _installed(bindir)
    assert {n: v for n, v in after.items() if n not in before} == {extras.DIST_NAME: "0.1.0"}
    assert (after["numpy"], after["h5py"]) == (lock_version("numpy"), lock_version("h5py"))

    work = tmp_path / "work"
    work.mkdir()
    _layers_conversion(bindir, model_h5, reference, work)

    graph = _run([bindir / "tfjs-convert", "--output_format=tfjs_graph_model", "model.h5",
                  "graph/"], cwd=work, check=False)
    assert (graph.returncode, graph.stdout) == (1, "")
    assert graph.stderr == (
        "tfjs_converter: error: converting keras to tfjs_graph_model needs TensorFlow (module "
        "tensorflow), which is not installed here; install the 'tf' extra: pip install "
        "'tfjs-rules-converter[tf]' (from a checkout: pip install '.[tf]')\n")
    assert not (work / "graph").exists()

    # Every supported pair: converted (the layers path) or refused in the one line.
    pairs = _run([bindir / "python", "-c", _EVERY_PAIR, work / "model.h5", model_keras,
                  work / "out", work / "pairs"], cwd=work)
    results = dict(line.split(": ", 1) for line in pairs.stdout.splitlines())
    from converter import api
    assert len(results) == len(api.supported_pairs())
    for pair, result in results.items():
        i, o = pair.split(" ")
        modules = extras.needed_modules(i, o)
        if not modules:
            assert result == "ok", pair
            continue
        assert modules[0] == "tensorflow", pair  # the first missing one is named
        assert result == (
            "ConversionError converting %s to %s needs TensorFlow (module tensorflow), which is "
            "not installed here; install the 'tf' extra: pip install 'tfjs-rules-converter[tf]' "
            "(from a checkout: pip install '.[tf]')" % (i, o)), pair
    assert sorted(p for p, r in results.items() if r == "ok") == [
        "keras tfjs_layers_model", "keras_keras tfjs_layers_model",
        "tfjs_layers_model tfjs_layers_model"]

    version = _run([bindir / "tensorflowjs_converter", "--version"], cwd=work)
    assert version.stdout == (
        "tfjs_converter 0.1.0 (numpy %s, h5py %s, TensorFlow not installed (graph paths need "
        "it: pip install 'tfjs-rules-converter[tf]' (from a checkout: pip install '.[tf]')))\n"
        % (lock_version("numpy"), lock_version("h5py")))

    # Whatever the distribution providing `tensorflow` is called, --version names it,
    # from its metadata (the fake module raises if imported).
    for dist, v in (("tensorflow-cpu", "2.21.0"), ("tf-nightly", "2.22.0.dev20260101"),
                    ("tensorflow-intel", "2.18.1")):
        fake = _fake_tensorflow(tmp_path / dist, dist, v)
        proc = _run([bindir / "tensorflowjs_converter", "--version"], cwd=work,
                    env=_env(PYTHONPATH=str(fake)))
        assert proc.stdout == "tfjs_converter 0.1.0 (numpy %s, h5py %s, %s %s)\n" % (
            lock_version("numpy"), lock_version("h5py"), dist, v)
    timings["total"] = time.monotonic() - start
    print("\nnumpy+h5py venv: %s" % ", ".join("%s %.1f s" % kv for kv in timings.items()))
