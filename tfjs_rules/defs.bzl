"""Public API of tfjs_rules: load + re-export only."""

load("//tfjs_rules:providers.bzl", _TfjsModelInfo = "TfjsModelInfo")
load("//tfjs_rules/private:macros.bzl", _tfjs_model = "tfjs_model")
load("//tfjs_rules/private:py_run.bzl", _tfjs_py_run = "tfjs_py_run")
load("//tfjs_rules/private:tfjs_model_test.bzl", _tfjs_model_test = "tfjs_model_test")

TfjsModelInfo = _TfjsModelInfo
tfjs_model = _tfjs_model
tfjs_model_test = _tfjs_model_test
tfjs_py_run = _tfjs_py_run
