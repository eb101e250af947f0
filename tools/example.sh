#!/usr/bin/env bash
# The main job: builds the example workspace (examples/) with Bazel, the way a
# user's repository consumes tfjs_rules, and checks what it built in real
# TensorFlow.js.
#
#   1. tools/setup.sh: Bazel and Debian packages, .venv, the TF.js harness (npm).
#   2. In examples/: bazel test //models:all //web:all, which builds MobileNetV2
#      from code (fixed seed) into bazel-bin/models/mobilenet.h5, converts it to
#      bazel-bin/models/mobilenet_tfjs (a layers model), mobilenet_uint8_tfjs
#      (quantized) and mobilenet_graph_tfjs (a graph model: batch norms folded,
#      ops fused), lays out the servable bazel-bin/web/app, and runs the app's
#      tests.
#   3. examples/verify.py: Keras vs TF.js (Node, cpu + wasm; predict for the
#      layers models, execute for the graph model) on the built models, the
#      graph model's structure, and the app's page in a headless browser when
#      one is installed; prints a summary.
#
# The first run also creates the converter's Python environment (pip, about a
# minute) and fetches TF.js's browser bundle (npm). Bazel runs in --batch mode,
# so no server or worker is left running afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(seconds)" 'BEGIN { printf "%.1f", b - a }'; }

t0=$(seconds)
tools/setup.sh
t_setup=$(elapsed "$t0")

t1=$(seconds)
(cd examples && bazel --batch test --config=ci //models:all //web:all)
t_build=$(elapsed "$t1")

t2=$(seconds)
.venv/bin/python examples/verify.py
t_verify=$(elapsed "$t2")

echo "example: setup ${t_setup} s, bazel build+test ${t_build} s, verification ${t_verify} s"
