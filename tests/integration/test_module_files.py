"""The Bzlmod files agree with each other and with the WORKSPACE path (no Bazel needed).

Bazel 4.2.3 cannot load MODULE.bazel or tfjs_rules/extensions.bzl, so what can
be checked here is checked statically: the files parse (Python's ``ast`` reads
this Starlark; buildifier lints it when tools/buildifier has it installed), the
names MODULE.bazel uses are the ones the extension creates and the WORKSPACE
macros declare, the extension's tag has the environment rule's attributes with
the same defaults, and .bcr/ points at a test module that overrides tfjs_rules
with this checkout at this version.
"""

import ast
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
from typing import Dict, List

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BCR = ROOT / ".bcr"
TEST_MODULE = BCR / "test_module"
# Starlark files only Bzlmod (Bazel 6+) reads, and those 4.2.3 reads beside them.
MODULE_FILES = [
    ROOT / "MODULE.bazel",
    ROOT / "WORKSPACE.bzlmod",
    ROOT / "tfjs_rules" / "extensions.bzl",
    TEST_MODULE / "MODULE.bazel",
    TEST_MODULE / "BUILD.bazel",
    TEST_MODULE / "WORKSPACE",
    TEST_MODULE / "WORKSPACE.bzlmod",
]


def _parse(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _calls(path: pathlib.Path, func: str) -> List[ast.Call]:
    """Top-level calls of `func` (also `x = func(...)`), in order."""
    out = []
    for node in _parse(path).body:
        value = node.value if isinstance(node, (ast.Expr, ast.Assign)) else None
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
                value.func.id == func:
            out.append(value)
    return out


def _kwargs(call: ast.Call) -> Dict[str, object]:
    out = {}
    for kw in call.keywords:
        try:
            out[kw.arg] = ast.literal_eval(kw.value)
        except ValueError:
            out[kw.arg] = ast.unparse(kw.value)
    return out


def _constant(path: pathlib.Path, name: str):
    """A top-level NAME = value; `"a" + "b"` and other names' concatenation folded."""
    env = {}
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                env[node.targets[0].id] = eval(compile(ast.Expression(node.value), "<c>", "eval"),
                                               {"__builtins__": {}}, dict(env))
            except Exception:  # noqa: BLE001  (calls like rule(...): not constants)
                continue
    return env[name]


def _attr_defaults(call: ast.Call) -> Dict[str, object]:
    """{attr: default} of an `attrs = {...}` dict of a rule()/tag_class() call."""
    attrs = next(kw.value for kw in call.keywords if kw.arg == "attrs")
    out = {}
    for key, value in zip(attrs.keys, attrs.values):
        default = next((kw.value for kw in value.keywords if kw.arg == "default"), None)
        try:
            out[ast.literal_eval(key)] = None if default is None else ast.literal_eval(default)
        except ValueError:
            out[ast.literal_eval(key)] = ast.unparse(default)
    return out


def _assigned_call(path: pathlib.Path, name: str) -> ast.Call:
    for node in _parse(path).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            assert isinstance(node.value, ast.Call), name
            return node.value
    raise AssertionError("no %s = ... in %s" % (name, path))


@pytest.mark.parametrize("path", MODULE_FILES, ids=[str(p.relative_to(ROOT)) for p in MODULE_FILES])
def test_module_files_parse(path):
    assert path.is_file(), path
    _parse(path)


def _buildifier():
    """$BUILDIFIER, else tools/buildifier's npm install, else one on PATH."""
    if os.environ.get("BUILDIFIER"):
        return os.environ["BUILDIFIER"]
    local = ROOT / "tools" / "buildifier" / "node_modules" / ".bin" / "buildifier"
    return str(local) if local.exists() else shutil.which("buildifier")


def test_module_files_are_buildifier_clean():
    buildifier = _buildifier()
    if buildifier is None:
        pytest.skip("buildifier not installed (cd tools/buildifier && npm ci, or set BUILDIFIER)")
    result = subprocess.run([buildifier, "--lint=warn", "--mode=check"] +
                            [str(p) for p in MODULE_FILES],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert result.returncode == 0, result.stdout


def test_module_uses_and_registers_the_repositories_the_extension_creates():
    ext = ROOT / "tfjs_rules" / "extensions.bzl"
    env_name, toolchains_name = _constant(ext, "ENV_NAME"), _constant(ext, "TOOLCHAINS_NAME")
    assert (env_name, toolchains_name) == ("tfjs_converter_env", "tfjs_converter_env_toolchains")

    module = ROOT / "MODULE.bazel"
    (decl,) = _calls(module, "module")
    assert _kwargs(decl)["name"] == "tfjs_rules"
    assert re.fullmatch(r"\d+\.\d+\.\d+", _kwargs(decl)["version"]), _kwargs(decl)
    deps = [_kwargs(c) for c in _calls(module, "bazel_dep")]
    assert deps and all(re.fullmatch(r"\d+\.\d+\.\d+", d.get("version", "")) for d in deps), deps
    (use,) = _calls(module, "use_extension")
    assert [ast.literal_eval(a) for a in use.args] == ["//tfjs_rules:extensions.bzl", "tfjs"]
    (repos,) = _calls(module, "use_repo")
    assert [ast.literal_eval(a) for a in repos.args[1:]] == [env_name, toolchains_name]
    registered = [ast.literal_eval(a) for c in _calls(module, "register_toolchains")
                  for a in c.args]
    # The light repository only: registering a label of the environment would fetch it.
    assert registered == ["@%s//:all" % toolchains_name], registered


def test_workspace_macros_declare_the_same_names():
    text = (ROOT / "tfjs_rules" / "repositories.bzl").read_text()
    ext = ROOT / "tfjs_rules" / "extensions.bzl"
    assert 'name = "%s"' % _constant(ext, "ENV_NAME") in text
    assert '_tfjs_converter_toolchains(name = name + "_toolchains", env = name)' in text
    assert 'native.register_toolchains("@%s_toolchains//:toolchain" % name)' in text


def test_env_tag_has_the_environment_rules_attributes_and_defaults():
    tag = _attr_defaults(_assigned_call(ROOT / "tfjs_rules" / "extensions.bzl", "_env"))
    env = _attr_defaults(_assigned_call(ROOT / "tfjs_rules" / "private" / "env.bzl",
                                        "tfjs_converter_env"))
    assert sorted(tag) == sorted(env), (sorted(tag), sorted(env))
    for name in ("python", "root", "python_versions", "timeout"):
        assert tag[name] == env[name], name
    assert tag["requirements_lock"] == "Label('//:requirements_lock.txt')"


def test_bcr_templates_and_test_module():
    metadata = json.loads((BCR / "metadata.template.json").read_text())
    assert set(metadata) >= {"homepage", "maintainers", "repository", "versions"}, metadata
    assert metadata["maintainers"] and metadata["versions"] == []
    source = json.loads((BCR / "source.template.json").read_text())
    assert set(source) == {"integrity", "strip_prefix", "url"}, source
    assert all(k in source["url"] for k in ("{OWNER}", "{REPO}", "{TAG}")), source["url"]

    presubmit = (BCR / "presubmit.yml").read_text()
    paths = re.findall(r"^\s*module_path:\s*\"([^\"]+)\"\s*$", presubmit, re.M)
    assert paths == [".bcr/test_module"], paths
    assert (ROOT / paths[0]) == TEST_MODULE
    assert "bcr_test_module:" in presubmit and "test_targets:" in presubmit

    (root_decl,) = _calls(ROOT / "MODULE.bazel", "module")
    version = _kwargs(root_decl)["version"]
    (dep,) = [d for d in map(_kwargs, _calls(TEST_MODULE / "MODULE.bazel", "bazel_dep"))
              if d["name"] == "tfjs_rules"]
    assert dep["version"] == version, (dep, version)
    (override,) = _calls(TEST_MODULE / "MODULE.bazel", "local_path_override")
    kwargs = _kwargs(override)
    assert kwargs["module_name"] == "tfjs_rules"
    assert (TEST_MODULE / kwargs["path"]).resolve() == ROOT


def test_bzl_files_use_apis_bazel_4_2_to_9_accept():
    """House style on every .bzl of the rules and the module files."""
    files = sorted((ROOT / "tfjs_rules").rglob("*.bzl")) + \
        sorted((ROOT / "tfjs_rules").rglob("BUILD")) + MODULE_FILES
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for i, line in enumerate(text.splitlines(), 1):
            if "incompatible_use_toolchain_transition" in line or 'cfg = "host"' in line:
                offenders.append("%s:%d: %s" % (path.relative_to(ROOT), i, line.strip()))
        for m in re.finditer(r"\bglob\((.*?)\)", text, re.S):
            if "allow_empty" not in m.group(1):
                offenders.append("%s: glob without allow_empty" % path.relative_to(ROOT))
    assert not offenders, "\n".join(offenders)


def _test_docs():
    """tests/test_docs.py's doc-table readers (that module is not a package's)."""
    spec = importlib.util.spec_from_file_location("_test_docs", ROOT / "tests" / "test_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("heading,rel,name", [
    ("`tfjs_converter_toolchains`", "private/toolchain.bzl", "tfjs_converter_toolchains"),
    ("`tfjs.env`", "extensions.bzl", "_env"),
])
def test_light_repository_and_env_tag_are_documented(heading, rel, name):
    docs = _test_docs()
    rows = docs.table_rows(docs.section(heading), "attribute")
    call = _assigned_call(ROOT / "tfjs_rules" / rel, name)
    attrs = _attr_defaults(call)
    assert sorted(set(rows) - {"name"}) == sorted(attrs), (sorted(rows), sorted(attrs))
    attrs_dict = next(kw.value for kw in call.keywords if kw.arg == "attrs")
    for key, value in zip(attrs_dict.keys, attrs_dict.values):
        attr = ast.literal_eval(key)
        mandatory = any(kw.arg == "mandatory" and ast.literal_eval(kw.value) is True
                        for kw in value.keywords)
        want = "required" if mandatory else attrs[attr]
        assert docs._doc_default(rows[attr][1]) == want, (attr, rows[attr], want)
