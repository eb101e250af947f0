#!/usr/bin/env bash
# bazel run //web:serve [-- PORT]: serves the built app on 127.0.0.1.
set -euo pipefail
app=$1
port=${2:-8000}
echo "serving $(cd "$app" && pwd -P) at http://127.0.0.1:$port/ (Ctrl-C stops)"
exec python3 -m http.server --bind 127.0.0.1 --directory "$app" "$port"
