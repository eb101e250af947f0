#!/usr/bin/env bash
# Sets up this checkout on a fresh machine: Bazel and the Debian packages the
# build and tests use, the Python venv (.venv) from the hash-locked requirements,
# and the npm packages of the TF.js test harness.
# Idempotent: a step re-runs only when something is missing or a lock changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages: Bazel 4.2.3 and the rule sets WORKSPACE maps offline, nginx
# (the HTTP remote cache of the cache tests) and a headless Chromium (the example
# app checked in a real browser), openssl (its layout test recomputes the SRI
# hashes). Node.js 18+ with npm must already be there
# (machines of this kind ship Node 20; Debian's npm would pin an older Node).
debs=(bazel-bootstrap bazel-skylib bazel-rules-java bazel-rules-proto nginx
      chromium-headless-shell openssl)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "setup: apt-get install ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(not ((3, 10) <= sys.version_info[:2] <= (3, 13)))'; then
  echo "setup: $python is Python $("$python" -c 'import platform; print(platform.python_version())'); want 3.10-3.13 (TensorFlow 2.21)" >&2
  exit 1
fi

stamp=$(cat requirements_lock.txt requirements_dev_lock.txt | sha256sum | cut -c1-16)
if [ "$(cat .venv/.lock-stamp 2>/dev/null)" != "$stamp" ]; then
  echo "setup: creating .venv from requirements_dev_lock.txt (hash-checked)" >&2
  rm -rf .venv
  "$python" -m venv .venv
  # (grep drops the noise of this image's pip.conf naming absent local indexes)
  .venv/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
    -r requirements_dev_lock.txt 2>&1 | { grep -v "^WARNING: Location .* is ignored" || true; }
  [ "${PIPESTATUS[0]}" = 0 ] || { echo "setup: pip install failed" >&2; exit 1; }
  echo "$stamp" > .venv/.lock-stamp
fi

for tool in node npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool not found; install Node.js 18+ with npm" >&2; exit 1; }
done
# The pinned TF.js npm packages the verifier and the tests run models in, into
# .venv/tfjs_js (npm ci against converter/verify/js/package-lock.json; a marker
# holds the lock's hash, so this is a no-op when they are there).
.venv/bin/python -m converter.verify install
# LiteRT.js (@litertjs/core) for the .tflite tests and bench/bench_litert.py, into
# .venv/litertjs_js (npm ci against tests/js/package-lock.json; no-op when there).
PYTHONPATH=. .venv/bin/python tests/litertjs_runner.py install
# buildifier (@bazel/buildifier, pinned by tools/buildifier/package-lock.json) for
# tools/lint_starlark.sh; npm ci only when the lock changed.
bfy=tools/buildifier
bfy_stamp=$(sha256sum "$bfy/package-lock.json" | cut -c1-16)
if [ "$(cat "$bfy/node_modules/.lock-stamp" 2>/dev/null)" != "$bfy_stamp" ]; then
  (cd "$bfy" && npm ci --silent --no-audit --no-fund)
  echo "$bfy_stamp" > "$bfy/node_modules/.lock-stamp"
fi
