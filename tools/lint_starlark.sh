#!/usr/bin/env bash
# Checks that every tracked Starlark file (BUILD, .bzl, WORKSPACE, MODULE.bazel)
# is buildifier-formatted and lint-clean (buildifier 8.2.1 from npm, set up by
# tools/setup.sh). `tools/lint_starlark.sh --fix` formats them instead.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
buildifier=tools/buildifier/node_modules/.bin/buildifier
[ -x "$buildifier" ] || { echo "lint_starlark: $buildifier missing; run tools/setup.sh" >&2; exit 1; }
mapfile -t files < <(git ls-files --cached --others --exclude-standard \
  | grep -E '(^|/)(BUILD|BUILD\.bazel|WORKSPACE|WORKSPACE\.bazel|WORKSPACE\.bzlmod|MODULE\.bazel)$|\.bzl$')
if [ "${1:-}" = "--fix" ]; then
  exec "$buildifier" --mode=fix "${files[@]}"
fi
"$buildifier" --lint=warn --mode=check "${files[@]}" || {
  echo "lint_starlark: buildifier found the above in ${#files[@]} files; tools/lint_starlark.sh --fix formats (warnings need a fix or a justified '# buildifier: disable=')" >&2
  exit 1
}
echo "lint_starlark: ${#files[@]} Starlark files formatted and lint-clean (buildifier $("$buildifier" --version | sed -n 's/^buildifier version: //p'))"
