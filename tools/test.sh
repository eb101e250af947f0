#!/usr/bin/env bash
# Runs the whole test suite (all tiers, slow ones included) after setting up:
# buildifier over every BUILD/.bzl/WORKSPACE/MODULE.bazel file, then
# the pytest suite (unit, golden, CLI, TF.js parity, Bazel integration), then
# `bazel test //...` (Starlark analysis tests and tests of built models).
# Extra arguments go to pytest, e.g. tools/test.sh -m "not slow" -x.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
# Starlark formatting and lint (buildifier), before anything slow.
tools/lint_starlark.sh
# loadfile: a module's batched TF.js fixture runs once, on one worker.
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"
bazel_flags=(--config=ci)
[ -n "${CI:-}" ] && bazel_startup=(--batch --host_jvm_args=-Xmx2g) || bazel_startup=()
bazel "${bazel_startup[@]}" test "${bazel_flags[@]}" //...
# The example workspace consumes the rules as a user's repository would.
(cd examples && bazel "${bazel_startup[@]}" test "${bazel_flags[@]}" //...)
