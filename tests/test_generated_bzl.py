"""One source of truth: converter/request.py, the generated .bzl, tfjs_model and the CLI.

tools/gen_bzl_defaults.py writes tfjs_rules/private/generated_formats.bzl from
request.py; these tests fail when the checked-in file is stale, when tfjs_model
holds a default of its own instead of the generated one, when the CLI's flag
defaults differ from the request's, and when the JSON request file the rule
writes is read as another request than the flags it replaced.
"""

import ast
import hashlib
import importlib.util
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Dict, List

import pytest

from converter import cli
from converter import request as rq
from converter.errors import UsageError

ROOT = pathlib.Path(__file__).resolve().parent.parent
GENERATED = ROOT / "tfjs_rules" / "private" / "generated_formats.bzl"
RULE = ROOT / "tfjs_rules" / "private" / "tfjs_model.bzl"
WORKER = ROOT / "converter" / "worker.py"

_spec = importlib.util.spec_from_file_location("gen_bzl_defaults",
                                               ROOT / "tools" / "gen_bzl_defaults.py")
gen = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gen)

# tfjs_model attributes named otherwise than their request field.
_ATTR_FIELDS = {"content_hash": "content_hash_shards"}
# What an attribute without a default holds, per attr.<type>.
_IMPLIED = {"string": "", "bool": False, "int": 0, "string_list": []}


def constants(text: str) -> Dict[str, object]:
    """The top-level constants of a generated .bzl text (it is literal Python syntax)."""
    return {t.id: ast.literal_eval(node.value) for node in ast.parse(text).body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def _jsonable(value):
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------ the generated file

def test_regenerating_changes_nothing():
    assert gen.derive() == GENERATED.read_text(encoding="utf-8"), \
        "generated_formats.bzl is stale: run .venv/bin/python tools/gen_bzl_defaults.py"
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_bzl_defaults.py"),
                           "--check"], capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_generation_is_deterministic_and_sorted():
    text = gen.derive()
    assert text == gen.derive()
    for name, value in constants(text).items():
        if isinstance(value, dict):
            assert list(value) == sorted(value), "%s keys are not sorted" % name
    # buildifier's layout: 4-space indents, trailing commas, double quotes, no tabs.
    assert "\t" not in text
    for line in text.split('"""', 2)[2].splitlines():
        stripped = line.lstrip(" ")
        if stripped.startswith("#"):
            continue
        assert "'" not in line, line
        assert (len(line) - len(stripped)) % 4 == 0, line
        if line.startswith("    ") and not stripped.endswith(("[", "{")):
            assert stripped.endswith(","), line


def _buildifier():
    """$BUILDIFIER, else tools/buildifier's npm install, else one on PATH (or None)."""
    if os.environ.get("BUILDIFIER"):
        return os.environ["BUILDIFIER"]
    local = ROOT / "tools" / "buildifier" / "node_modules" / ".bin" / "buildifier"
    return str(local) if local.exists() else shutil.which("buildifier")


def test_generated_text_is_buildifier_clean(tmp_path):
    buildifier = _buildifier()
    if buildifier is None:
        pytest.skip("buildifier not installed (cd tools/buildifier && npm ci, or set BUILDIFIER)")
    path = tmp_path / "generated_formats.bzl"
    path.write_text(gen.derive(), encoding="utf-8")
    proc = subprocess.run([buildifier, "--lint=warn", "--mode=check", str(path)],
                          capture_output=True, text=True, check=False)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


def test_generated_values_are_request_py():
    got = constants(GENERATED.read_text(encoding="utf-8"))
    assert got["INPUT_FORMATS"] == list(rq.INPUT_FORMATS)
    assert got["OUTPUT_FORMATS"] == list(rq.OUTPUT_FORMATS)
    assert got["TFJS_OUTPUTS"] == list(rq.TFJS_OUTPUTS)
    assert got["DEFAULT_OUTPUT_FORMAT"] == rq.DEFAULT_OUTPUT_FORMAT
    assert got["DEFAULT_OUTPUT_FORMAT"]["tfjs_graph_model"] == "tf_saved_model"
    assert got["DEFAULT_OUTPUT_FORMAT"]["tfjs_layers_model"] == "keras"
    assert got["QUANTIZE_DTYPES"] == list(rq.QUANTIZE_DTYPES)
    assert got["NODE_VERIFY_BACKENDS"] == list(rq.NODE_VERIFY_BACKENDS)
    assert got["DEFAULTS"] == _jsonable(rq.field_defaults())
    assert got["RULE_DEFAULTS"] == _jsonable({**rq.field_defaults(), "verify": True})
    assert got["OPTION_KINDS"]["metadata"] == "string_pairs"
    assert got["OPTION_CHOICES"]["verify_backends"] == ["cpu", "wasm", "webgl"]
    assert got["TFJS_GRAPH_MODEL"] == "tfjs_graph_model"
    assert got["DEFAULT_SHARD_SIZE_BYTES"] == rq.ConversionRequest("a", "b").shard_size()


def test_a_default_changed_in_request_py_only_is_caught(monkeypatch, tmp_path):
    defaults = dict(rq.field_defaults(), saved_model_tags="serve,gpu")
    monkeypatch.setattr(rq, "field_defaults", lambda: defaults)
    assert gen.derive() != GENERATED.read_text(encoding="utf-8")
    assert '"saved_model_tags": "serve,gpu",' in gen.derive()
    assert gen.main(["--check"]) == 1


def test_starlark_spelling():
    assert gen.starlark(["a", 'b"c']) == '[\n    "a",\n    "b\\"c",\n]'
    assert gen.starlark({"b": None, "a": [True, 3]}) == \
        '{\n    "a": [\n        True,\n        3,\n    ],\n    "b": None,\n}'
    assert gen.starlark([]) == "[]" and gen.starlark({}) == "{}"
    with pytest.raises(TypeError):
        gen.starlark(1.5)


# ------------------------------------------------------------------ tfjs_model

def rule_default_problems(rule_text: str, generated_text: str) -> List[str]:
    """Why tfjs_model's attribute defaults are not request.py's ([] when they are).

    Every attribute that is a request field must take its default from the
    generated file (RULE_DEFAULTS["field"] or DEFAULT_SHARD_SIZE_BYTES), and
    that must resolve to the request's rule default; a field whose default is
    None (or an empty list) must be an attribute without a default (empty: not set).
    """
    generated = constants(generated_text)
    rule_defaults = generated["RULE_DEFAULTS"]
    call = [n.value for n in ast.parse(rule_text).body if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "tfjs_model" for t in n.targets)][0]
    attrs = [k.value for k in call.keywords if k.arg == "attrs"][0]
    problems, seen = [], set()
    for key, value in zip(attrs.keys, attrs.values):
        name = ast.literal_eval(key)
        field = _ATTR_FIELDS.get(name, name)
        if field not in rule_defaults:
            continue
        seen.add(field)
        kind = value.func.attr
        default = [k.value for k in value.keywords if k.arg == "default"]
        want = rule_defaults[field]
        if field == "weight_shard_size_bytes":
            want = generated["DEFAULT_SHARD_SIZE_BYTES"]
        if want is None or want == []:  # not set: the attribute's empty value
            if default:
                problems.append("%s: has a default, want none (the request's is %r)"
                                % (name, want))
            continue
        if not default:
            problems.append("%s: implied default %r, want %r from generated_formats.bzl"
                            % (name, _IMPLIED[kind], want))
            continue
        node = default[0]
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                node.value.id == "RULE_DEFAULTS":
            got = rule_defaults.get(ast.literal_eval(node.slice), "<no such key>")
        elif isinstance(node, ast.Name) and node.id in generated:
            got = generated[node.id]
        else:
            problems.append("%s: default %s is the rule's own, want it from generated_formats.bzl"
                            % (name, ast.unparse(node)))
            continue
        if got != want:
            problems.append("%s: default %s is %r, want %r" % (name, ast.unparse(node), got, want))
    # Fields the rule sets from attributes of these names.
    for field in ("verify", "verify_backends", "saved_model_tags", "strip_debug_ops",
                  "content_hash_shards", "weight_shard_size_bytes"):
        if field not in seen:
            problems.append("no attribute for request field %s" % field)
    return problems


def test_rule_defaults_are_the_generated_ones():
    assert rule_default_problems(RULE.read_text(encoding="utf-8"),
                                 GENERATED.read_text(encoding="utf-8")) == []


def test_a_default_changed_in_the_rule_only_is_caught():
    text = RULE.read_text(encoding="utf-8")
    changed = text.replace('default = RULE_DEFAULTS["strip_debug_ops"]', "default = True")
    assert changed != text
    assert rule_default_problems(changed, GENERATED.read_text(encoding="utf-8")) == [
        "strip_debug_ops: default True is the rule's own, want it from generated_formats.bzl"]
    wrong_key = text.replace('default = RULE_DEFAULTS["control_flow_v2"]',
                             'default = RULE_DEFAULTS["strip_debug_ops"]')
    assert rule_default_problems(wrong_key, GENERATED.read_text(encoding="utf-8")) == [
        "control_flow_v2: default RULE_DEFAULTS['strip_debug_ops'] is True, want False"]


def test_a_default_changed_in_the_generated_file_only_is_caught():
    generated = GENERATED.read_text(encoding="utf-8")
    changed = generated.replace('"saved_model_tags": "serve",', '"saved_model_tags": "x",')
    assert changed != generated and changed != gen.derive()


# ------------------------------------------------------------------ the CLI

def test_cli_defaults_are_the_request_defaults():
    args = cli.build_parser().parse_args(["in.h5", "out"])
    defaults = rq.field_defaults()
    for name, value in vars(args).items():
        if name in defaults:
            assert value == defaults[name], name
    assert cli.request_from_args(args) == rq.ConversionRequest("in.h5", "out")


def test_a_default_changed_in_the_cli_only_is_caught(monkeypatch):
    monkeypatch.setattr(cli, "_DEFAULTS", dict(rq.field_defaults(), strip_debug_ops=False))
    with pytest.raises(AssertionError, match="strip_debug_ops"):
        test_cli_defaults_are_the_request_defaults()


# ------------------------------------------------------------------ the JSON request

def test_request_dict_round_trips():
    request = rq.ConversionRequest("m.h5", "out", quantize_uint8=("conv*", "d/kernel"),
                                   quantize_float16=rq.ALL_WEIGHTS,
                                   metadata=(("labels", "l.json"),), verify=True,
                                   verify_backends=("wasm",), weight_shard_size_bytes=1024)
    doc = json.loads(json.dumps(rq.request_to_dict(request)))
    assert rq.request_from_dict(doc) == request
    assert rq.request_from_dict({"input_path": "a", "output_path": "b"}) == \
        rq.ConversionRequest("a", "b")


@pytest.mark.parametrize("doc, message", [
    ([], "r.json: got a JSON list, want an object of request fields"),
    ({"input_path": "a"}, "r.json: missing output_path"),
    ({"input_path": "a", "output_path": "b", "verfy": True},
     "r.json: unknown field(s) verfy; want fields of ConversionRequest (content_hash_shards,"),
    ({"input_path": "a", "output_path": "b", "verify": "true"},
     "r.json: verify got 'true', want true or false"),
    ({"input_path": "a", "output_path": "b", "weight_shard_size_bytes": True},
     "r.json: weight_shard_size_bytes got True, want an integer or null"),
    ({"input_path": "a", "output_path": "b", "weight_shard_size_bytes": 0},
     "r.json: weight_shard_size_bytes got 0, want a positive integer"),
    ({"input_path": "a", "output_path": "b", "quantize_uint8": "conv*"},
     "r.json: quantize_uint8 got 'conv*', want a list of strings or null"),
    ({"input_path": "a", "output_path": "b", "metadata": [["k"]]},
     "r.json: metadata got [['k']], want a list of [key, value] string pairs"),
    ({"input_path": "a", "output_path": "b", "output_format": "tfjs"},
     "r.json: output_format got 'tfjs', want one of tfjs_layers_model, tfjs_graph_model,"),
    ({"input_path": "a", "output_path": "b", "verify_backends": ["cpu", "gpu"]},
     "r.json: verify_backends got 'gpu', want one of cpu, wasm, webgl"),
    ({"input_path": None, "output_path": "b"}, "r.json: input_path got None, want a string"),
])
def test_bad_request_dicts_are_usage_errors(doc, message):
    with pytest.raises(UsageError) as e:
        rq.request_from_dict(doc, "r.json")
    assert str(e.value).startswith(message), str(e.value)


def _tree(path: pathlib.Path) -> Dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def _worker(cwd, *args):
    return subprocess.run([sys.executable, "-I", "-B", str(WORKER), *args], cwd=cwd,
                          capture_output=True, text=True, check=False)


def test_request_file_converts_to_the_bytes_of_the_flags_it_replaced(good_h5, tmp_path):
    """What tfjs_model writes now and what it passed before: the same model, byte for byte."""
    (tmp_path / "labels.json").write_text('{"a": 1}')
    request = {"input_path": str(good_h5), "output_path": str(tmp_path / "out_json"),
               "output_format": "tfjs_layers_model", "quantize_uint8": ["*"],
               "weight_shard_size_bytes": 4194304, "split_weights_by_layer": True,
               "metadata": [["labels", str(tmp_path / "labels.json")]],
               "summary_file": str(tmp_path / "json.summary.json"), "source_label": "//m:h5"}
    (tmp_path / "r.json").write_text(json.dumps(request) + "\n")
    (tmp_path / "r.flags").write_text("--request_file=%s\n" % (tmp_path / "r.json"))
    flags = [str(good_h5), str(tmp_path / "out_flags"), "--output_format=tfjs_layers_model",
             "--quantize_uint8=*", "--weight_shard_size_bytes=4194304",
             "--split_weights_by_layer=true", "--metadata=labels:%s" % (tmp_path / "labels.json"),
             "--summary_file=%s" % (tmp_path / "flags.summary.json"), "--source_label=//m:h5"]
    (tmp_path / "f.flags").write_text("".join(f + "\n" for f in flags))
    for flagfile in ("r.flags", "f.flags"):
        proc = _worker(tmp_path, "@" + str(tmp_path / flagfile))
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", ""), flagfile
    assert _tree(tmp_path / "out_json") == _tree(tmp_path / "out_flags")
    summary = json.loads((tmp_path / "json.summary.json").read_text())
    assert summary == json.loads((tmp_path / "flags.summary.json").read_text())
    assert summary["source"] == "//m:h5" and summary["quantized_weights"] == {"uint8": 2}


def test_bad_request_file_is_one_line_exit_2(tmp_path):
    (tmp_path / "r.json").write_text('{"input_path": "m.h5", "output_path": "o", "verify": 1}')
    (tmp_path / "r.flags").write_text("--request_file=%s\n" % (tmp_path / "r.json"))
    proc = _worker(tmp_path, "@" + str(tmp_path / "r.flags"))
    assert proc.returncode == 2
    assert proc.stderr == "tfjs_converter: error: request file %s: verify got 1, want true or " \
        "false\n" % (tmp_path / "r.json")
    (tmp_path / "r.json").write_text("[1,")
    proc = _worker(tmp_path, "@" + str(tmp_path / "r.flags"))
    assert proc.returncode == 2 and proc.stderr.startswith(
        "tfjs_converter: error: request file %s: not valid JSON" % (tmp_path / "r.json"))
    proc = _worker(tmp_path, "--request_file=%s" % (tmp_path / "r.json"), "extra")
    assert proc.returncode == 2 and "--request_file takes no other arguments" in proc.stderr
