"""docs/rules.md against the .bzl files: every symbol, attribute and provider field.

Runs without Bazel: the .bzl files are read as text and parsed with Python's
``ast`` (the Starlark they use is Python syntax). A rule's attributes come from
its ``rule(attrs = {...})`` call, a function's arguments from its ``def``. The
doc must list each in its section, as a table row with the same type and
default, and nothing that no longer exists.
"""

import ast
import pathlib
import re
import sys
from typing import Dict, List, Optional, Tuple

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULES = ROOT / "tfjs_rules"
DOC = ROOT / "docs" / "rules.md"

# The value an attribute has when its attr.<type>() call gives no default.
_IMPLIED_DEFAULTS = {
    "string": "",
    "bool": False,
    "int": 0,
    "string_list": [],
    "label_list": [],
    "output_list": [],
    "label_keyed_string_dict": {},
    "string_dict": {},
    "label": None,
}
# Attributes every rule has, listed in the doc only where worth saying.
_COMMON_ATTRS = {"name", "visibility", "tags", "testonly"}

# (section heading in the doc, .bzl file, rule name in it)
_RULES = [
    ("`tfjs_model`", "private/tfjs_model.bzl", "tfjs_model"),
    ("`<name>.summary`", "private/macros.bzl", "tfjs_model_summary"),
    ("`tfjs_model_test`", "private/tfjs_model_test.bzl", "tfjs_model_test"),
    ("`tfjs_py_run`", "private/py_run.bzl", "tfjs_py_run"),
    ("`tflite_model`", "private/tflite_model.bzl", "tflite_model"),
    ("`onnx_model`", "private/tflite_model.bzl", "onnx_model"),
    ("`tfjs_converter_env`", "private/env.bzl", "tfjs_converter_env"),
    ("`tfjs_converter_binary`", "private/converter_binary.bzl", "tfjs_converter_binary"),
    ("`tfjs_converter_toolchain`", "private/toolchain.bzl", "tfjs_converter_toolchain"),
]
# (section heading, .bzl file, function name)
_FUNCTIONS = [
    ("`tfjs_rules_dependencies`", "repositories.bzl", "tfjs_rules_dependencies"),
    ("`tfjs_rules_register_toolchains`", "repositories.bzl", "tfjs_rules_register_toolchains"),
]


def _module(rel: str) -> ast.Module:
    return ast.parse((RULES / rel).read_text(encoding="utf-8"), filename=rel)


def _top_level_assign(module: ast.Module, name: str) -> ast.expr:
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node.value
    raise AssertionError("no top-level %s = ... in the module" % name)


def _keyword(call: ast.Call, name: str) -> Optional[ast.expr]:
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _generated_constants() -> Dict[str, object]:
    """The constants of private/generated_formats.bzl (literals, generated from
    converter/request.py), which rule attributes take their defaults from."""
    module = _module("private/generated_formats.bzl")
    return {t.id: ast.literal_eval(node.value) for node in module.body
            if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def _value(node: Optional[ast.expr]):
    """A literal's value, a generated constant's (``NAME`` or ``NAME["key"]``), or
    the source text of anything else (e.g. Label(...))."""
    if node is None:
        return None
    try:
        return ast.literal_eval(node)
    except ValueError:
        pass
    constants = _generated_constants()
    if isinstance(node, ast.Name) and node.id in constants:
        return constants[node.id]
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
            and node.value.id in constants):
        return constants[node.value.id][ast.literal_eval(node.slice)]
    return ast.unparse(node)


def exported_symbols(rel: str) -> List[str]:
    """Public names a .bzl file defines: top-level assignments and functions."""
    names = []
    for node in _module(rel).body:
        if isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.FunctionDef):
            names.append(node.name)
    return [n for n in names if not n.startswith("_")]


def rule_attrs(rel: str, rule: str) -> Dict[str, Tuple[str, object, bool]]:
    """{attr: (type, default, mandatory)} of the public attributes of `rule`."""
    call = _top_level_assign(_module(rel), rule)
    assert isinstance(call, ast.Call), "%s is not a rule() call" % rule
    attrs = _keyword(call, "attrs")
    if attrs is None:
        return {}
    assert isinstance(attrs, ast.Dict), "%s: attrs is not a dict literal" % rule
    out = {}
    for key, value in zip(attrs.keys, attrs.values):
        name = ast.literal_eval(key)
        if name.startswith("_"):
            continue
        assert isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute), name
        kind = value.func.attr
        mandatory = _value(_keyword(value, "mandatory")) is True
        default = _keyword(value, "default")
        out[name] = (kind, _value(default) if default is not None else _IMPLIED_DEFAULTS[kind],
                     mandatory)
    return out


def function_args(rel: str, name: str) -> Dict[str, object]:
    """{argument: default} of function `name` (``**kwargs`` as "**kwargs": None)."""
    for node in _module(rel).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            args = node.args.args
            defaults = [None] * (len(args) - len(node.args.defaults)) + node.args.defaults
            out = {a.arg: _value(d) for a, d in zip(args, defaults)}
            if node.args.kwarg:
                out["**" + node.args.kwarg.arg] = None
            return out
    raise AssertionError("no def %s in %s" % (name, rel))


def _text(node: Optional[ast.expr]) -> str:
    """A doc string: a literal or a `+` concatenation of literals ("" for anything else)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def provider_fields(rel: str, name: str) -> Dict[str, str]:
    """{field: doc} of provider `name`."""
    fields = _keyword(_top_level_assign(_module(rel), name), "fields")
    assert isinstance(fields, ast.Dict), "%s: fields is not a dict literal" % name
    return {ast.literal_eval(k): _text(v) for k, v in zip(fields.keys, fields.values)}


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def section(heading: str) -> str:
    """The doc's text under the heading containing `heading`, to the next heading."""
    lines = doc_text().splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^(#+) (.*)$", line)
        if m and m.group(2).strip() == heading:
            level = len(m.group(1))
            body = []
            for nxt in lines[i + 1:]:
                m2 = re.match(r"^(#+) ", nxt)
                if m2 and len(m2.group(1)) <= level:
                    break
                body.append(nxt)
            return "\n".join(body)
    raise AssertionError("docs/rules.md has no heading %r" % heading)


def table_rows(text: str, header: str) -> Dict[str, List[str]]:
    """{first cell without backticks: other cells} of the table in text whose header
    row starts with `| header |` (a section may hold other tables)."""
    rows: Dict[str, List[str]] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("| %s |" % header):
            assert not inside and not rows, "two `| %s |` tables in one section" % header
            inside = True
            continue
        if inside and not line.startswith("|"):
            inside = False
        m = re.match(r"^\| `([^`]+)` \|(.*)\|$", line)
        if inside and m:
            rows[m.group(1)] = [c.strip() for c in re.split(r"(?<!\\)\|", m.group(2))]
    return rows


def _doc_default(cell: str):
    """A table's default cell as a value: `"serve"` -> 'serve', `[]` -> []."""
    if cell == "required":
        return cell
    m = re.fullmatch(r"`(.*)`", cell)
    assert m, "default cell %r is neither `literal` nor required" % cell
    return _value(ast.parse(m.group(1), mode="eval").body)


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("rel", ["defs.bzl", "repositories.bzl"])
def test_every_exported_symbol_has_a_section(rel):
    symbols = exported_symbols(rel)
    assert symbols, "no symbols found in %s" % rel
    for symbol in symbols:
        section("`%s`" % symbol)  # raises when missing


def test_defs_exports_the_public_api():
    # The names docs/rules.md and users' BUILD files load; renaming one breaks them.
    assert sorted(exported_symbols("defs.bzl")) == [
        "TfjsModelFileInfo", "TfjsModelInfo", "onnx_model", "tfjs_converter_binary", "tfjs_model",
        "tfjs_model_test", "tfjs_py_run", "tflite_model"]


@pytest.mark.parametrize("heading,rel,rule", _RULES, ids=[r[2] for r in _RULES])
def test_rule_attributes_are_documented(heading, rel, rule):
    attrs = rule_attrs(rel, rule)
    assert attrs, "no attributes parsed from %s" % rule
    rows = table_rows(section(heading), "attribute")
    missing = sorted(set(attrs) - set(rows))
    assert not missing, "docs/rules.md %s lacks attributes %s" % (heading, missing)
    stale = sorted(set(rows) - set(attrs) - _COMMON_ATTRS)
    assert not stale, "docs/rules.md %s lists attributes %s that %s lacks" % (heading, stale, rule)
    for name, (kind, default, mandatory) in attrs.items():
        cells = rows[name]
        assert cells[0] == kind, "%s.%s: doc type %r, want %r" % (rule, name, cells[0], kind)
        want = "required" if mandatory else default
        assert _doc_default(cells[1]) == want, "%s.%s: doc default %r, want %r" % (
            rule, name, cells[1], want)
        assert cells[2], "%s.%s has no description" % (rule, name)


def test_tfjs_model_macro_arguments_are_documented():
    rows = table_rows(section("`tfjs_model`"), "attribute")
    for arg in function_args("private/macros.bzl", "tfjs_model"):
        if not arg.startswith("**"):
            assert arg in rows, "docs/rules.md `tfjs_model` lacks the macro argument %s" % arg


@pytest.mark.parametrize("heading,rel,function", _FUNCTIONS, ids=[f[2] for f in _FUNCTIONS])
def test_function_arguments_are_documented(heading, rel, function):
    args = function_args(rel, function)
    rows = table_rows(section(heading), "argument")
    assert sorted(rows) == sorted(args), "%s: doc rows %s, want the arguments %s" % (
        function, sorted(rows), sorted(args))
    for name, default in args.items():
        if name.startswith("**"):
            continue
        assert _doc_default(rows[name][0]) == default, "%s(%s): doc default %r, want %r" % (
            function, name, rows[name][0], default)


def test_provider_fields_are_documented():
    fields = provider_fields("providers.bzl", "TfjsModelInfo")
    assert fields, "no fields parsed from TfjsModelInfo"
    rows = table_rows(section("`TfjsModelInfo`"), "field")
    assert sorted(rows) == sorted(fields), "doc fields %s, want %s" % (sorted(rows), sorted(fields))
    for name in fields:
        assert all(rows[name]), "TfjsModelInfo.%s has an empty type or description" % name


def test_file_provider_fields_are_documented():
    fields = provider_fields("providers.bzl", "TfjsModelFileInfo")
    rows = table_rows(section("`TfjsModelFileInfo`"), "field")
    assert fields and sorted(rows) == sorted(fields), (sorted(rows), sorted(fields))
    for name, text in fields.items():
        assert all(rows[name]) and text, "TfjsModelFileInfo.%s lacks a type or doc" % name


def test_every_rule_attr_and_provider_field_has_doc_in_starlark():
    """House style: every rule, attribute and provider field carries doc =."""
    for _, rel, rule in _RULES:
        call = _top_level_assign(_module(rel), rule)
        assert _value(_keyword(call, "doc")), "%s has no doc" % rule
        attrs = _keyword(call, "attrs")
        for key, value in zip(attrs.keys, attrs.values):
            assert _keyword(value, "doc") is not None, "%s.%s has no doc" % (
                rule, ast.literal_eval(key))
    for field, text in provider_fields("providers.bzl", "TfjsModelInfo").items():
        assert text, "TfjsModelInfo.%s has no doc" % field


def test_lock_refresh_command_is_documented():
    command = ("pip-compile --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url "
               "--no-emit-find-links -o requirements_lock.txt requirements.in")
    assert command in doc_text()
    # The same flags as the command the lock's own header records.
    header = (ROOT / "requirements_lock.txt").read_text().split("\n\n")[0]
    recorded = header.split("#    pip-compile ", 1)[1].split("\n")[0].split()
    documented = command.replace("-o requirements_lock.txt",
                                 "--output-file=requirements_lock.txt").split()[1:]
    assert sorted(recorded) == sorted(documented), (recorded, documented)


# ------------------------------------------------------------------ the parser itself

def test_parser_reads_types_defaults_and_mandatory():
    attrs = rule_attrs("private/tfjs_model.bzl", "tfjs_model")
    assert attrs["src"] == ("label", None, True)
    assert attrs["weight_shard_size_bytes"] == ("int", 4194304, False)
    assert attrs["saved_model_tags"] == ("string", "serve", False)
    assert attrs["split_weights_by_layer"] == ("bool", False, False)
    assert "_worker" not in attrs
    assert function_args("repositories.bzl", "tfjs_rules_dependencies")["requirements_lock"] == \
        "Label('//:requirements_lock.txt')"


def test_doc_parser_compares_values_not_spelling():
    assert _doc_default('`"serve"`') == "serve"
    assert _doc_default("`4194304`") == 4194304
    assert _doc_default('`["3.10", "3.11"]`') == ["3.10", "3.11"]
    assert _doc_default('`Label("//:x")`') == "Label('//:x')"
    with pytest.raises(AssertionError):
        _doc_default("serve")


def test_missing_attribute_is_caught(monkeypatch):
    text = doc_text().replace("| `skip_op_check` |", "| `skip_op_checks` |")
    monkeypatch.setattr(sys.modules[__name__], "doc_text", lambda: text)
    with pytest.raises(AssertionError, match="lacks attributes \\['skip_op_check'\\]"):
        test_rule_attributes_are_documented(*_RULES[0])


def test_wrong_default_is_caught(monkeypatch):
    text = doc_text().replace("| `weight_shard_size_bytes` | int | `4194304` |",
                              "| `weight_shard_size_bytes` | int | `1048576` |")
    monkeypatch.setattr(sys.modules[__name__], "doc_text", lambda: text)
    with pytest.raises(AssertionError, match="weight_shard_size_bytes: doc default"):
        test_rule_attributes_are_documented(*_RULES[0])
