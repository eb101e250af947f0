#!/usr/bin/env bash
# The main job: builds the embedded example model end to end.
# MobileNetV2 (weights=None, fixed seed) -> .keras -> TF.js layers model, then
# loads it in real TensorFlow.js (cpu and wasm) and checks it against Keras.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
tools/setup.sh
out=${1:-build/example}
exec .venv/bin/python -m examples.mobilenet_example "$out"
