"""Public API of tfjs_rules: load + re-export only."""

load("//tfjs_rules:providers.bzl", _TfjsModelInfo = "TfjsModelInfo")
load("//tfjs_rules/private:macros.bzl", _tfjs_model = "tfjs_model")

TfjsModelInfo = _TfjsModelInfo
tfjs_model = _tfjs_model
