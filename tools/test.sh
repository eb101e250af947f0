#!/usr/bin/env bash
# Runs the whole test suite (all tiers, slow ones included) after setting up:
# buildifier over every BUILD/.bzl/WORKSPACE/MODULE.bazel file, then
# the pytest suite (unit, golden, CLI, TF.js parity, Bazel integration), then
# `bazel test //...` (Starlark analysis tests and tests of built models).
# Extra arguments go to both pytest runs, e.g. tools/test.sh -x.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
# Starlark formatting and lint (buildifier), before anything slow.
tools/lint_starlark.sh
# loadfile: a module's batched TF.js fixture runs once, on one worker.
.venv/bin/python -m pytest -n 2 --dist loadfile -m "not fuzz" "$@"
# The fuzz tier in a process of its own: its peak-RSS bound means something only
# where no other test has grown the process first.
.venv/bin/python -m pytest -p no:xdist -m fuzz tests/fuzz "$@"
bazel_flags=(--config=ci)
[ -n "${CI:-}" ] && bazel_startup=(--batch --host_jvm_args=-Xmx2g) || bazel_startup=()
bazel "${bazel_startup[@]}" test "${bazel_flags[@]}" //...
# The example workspace consumes the rules as a user's repository would.
(cd examples && bazel "${bazel_startup[@]}" test "${bazel_flags[@]}" //...)
