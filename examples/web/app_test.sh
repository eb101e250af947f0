#!/usr/bin/env bash
# Checks the layout of a web_app directory: app_test.sh APP_DIR MODEL_NAME...
#
# The app must hold index.html, vendor/tf.min.js, manifest.json and
# models/<name>/model.json for exactly the given models; manifest.json must
# list every other file in the app with its true size, sha256 and sha384 SRI
# string (one line
# per file, as bundle.py writes it), in sorted order, with no absolute path;
# every shard a model.json names must be there. The checker is then run on
# tampered copies, to show that it catches what it is meant to.
set -euo pipefail

# check_app DIR NAME...: prints one line per problem; fails if there is any.
check_app() {
  local dir=$1
  shift
  local manifest="$dir/manifest.json" problems=0 rel size sha sri name shard
  problem() { echo "  $*"; problems=$((problems + 1)); }

  for rel in index.html manifest.json vendor/tf.min.js vendor/tf-backend-wasm.min.js; do
    [ -f "$dir/$rel" ] || problem "missing $rel"
  done
  [ -f "$manifest" ] || { echo "  no manifest"; return 1; }

  local listed want
  listed=$(grep -o '"name": "[^"]*"' "$manifest" | cut -d'"' -f4 | tr '\n' ' ')
  want=$(printf '%s\n' "$@" | LC_ALL=C sort | tr '\n' ' ')
  [ "$listed" = "$want" ] || problem "manifest lists models [$listed], want [$want] (sorted)"
  for name in "$@"; do
    [ -f "$dir/models/$name/model.json" ] || problem "missing models/$name/model.json"
    grep -qF "\"model_json\": \"models/$name/model.json\"" "$manifest" ||
      problem "manifest has no model_json for $name"
  done

  local count=0
  while IFS= read -r rel; do
    count=$((count + 1))
    size=$(stat -L -c %s "$dir/$rel")
    sha=$(sha256sum <"$dir/$rel" | cut -d' ' -f1)
    sri="sha384-$(openssl dgst -sha384 -binary <"$dir/$rel" | base64 -w0)"
    grep -qF "{\"path\": \"$rel\", \"size\": $size, \"sha256\": \"$sha\", \"integrity\": \"$sri\"}" "$manifest" ||
      problem "$rel ($size bytes, sha256 $sha, $sri) is not in the manifest as such"
  done < <(cd "$dir" && find -L . -type f ! -path ./manifest.json | sed 's|^\./||' | LC_ALL=C sort)
  local entries
  entries=$(grep -c '{"path": ' "$manifest" || true)
  [ "$entries" = "$count" ] || problem "manifest lists $entries files, the app holds $count"

  local paths
  paths=$(grep -o '{"path": "[^"]*"' "$manifest" | cut -d'"' -f4)
  local got
  for got in "$(grep '^models/' <<<"$paths" || true)" "$(grep -v '^models/' <<<"$paths" || true)"; do
    [ "$got" = "$(LC_ALL=C sort <<<"$got")" ] || problem "manifest paths are not sorted: $got"
  done
  if grep -qE '"(path|model_json)": "/|execroot|bazel-out' "$manifest"; then
    problem "manifest holds an absolute or build-tree path"
  fi

  for name in "$@"; do
    [ -f "$dir/models/$name/model.json" ] || continue
    for shard in $(grep -o '"[^"/]*\.bin"' "$dir/models/$name/model.json" | tr -d '"'); do
      [ -f "$dir/models/$name/$shard" ] || problem "models/$name/model.json names missing $shard"
    done
  done
  [ "$problems" = 0 ]
}

# expect_caught WHAT PATTERN DIR NAME...: the checker must fail, naming PATTERN.
expect_caught() {
  local what=$1 pattern=$2 out
  shift 2
  if out=$(check_app "$@"); then
    echo "FAIL: the checker missed: $what" >&2
    exit 1
  fi
  if ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL: the checker caught $what but did not name $pattern:" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "ok: caught $what"
}

app=$1
shift
[ $# -gt 0 ] || { echo "usage: app_test.sh APP_DIR MODEL_NAME..." >&2; exit 2; }

if ! out=$(check_app "$app" "$@"); then
  echo "FAIL: $app:" >&2
  echo "$out" >&2
  exit 1
fi
echo "ok: $app holds models $* and a manifest that matches every file"

first=$1
tmp=${TEST_TMPDIR:-$(mktemp -d)}
fresh() {
  rm -rf "$tmp/app"
  cp -RL "$app" "$tmp/app"
  chmod -R u+w "$tmp/app"
}
shard=$(cd "$app/models/$first" && ls ./*.bin | head -n 1 | sed 's|^\./||')

fresh
printf '\x01' | dd of="$tmp/app/models/$first/$shard" bs=1 seek=100 conv=notrunc status=none
expect_caught "a changed byte in a shard" "models/$first/$shard" "$tmp/app" "$@"

fresh
rm "$tmp/app/models/$first/$shard"
expect_caught "a missing shard" "missing $shard" "$tmp/app" "$@"

fresh
echo stray >"$tmp/app/models/$first/stray.txt"
expect_caught "a file the manifest does not list" "stray.txt" "$tmp/app" "$@"

fresh
expect_caught "a model the app should not have" "manifest lists models" "$tmp/app" "$@" extra_model

echo "PASS"
