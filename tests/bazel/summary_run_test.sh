#!/bin/sh
# Runs a tfjs_model's `.summary` executable the ways a user does and checks that
# it prints the summary JSON byte for byte: summary_run_test.sh EXECUTABLE SUMMARY_JSON.
set -eu
exe="$1"
want="$2"
out="$TEST_TMPDIR/printed.json"
err="$TEST_TMPDIR/stderr.txt"

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ -x "$exe" ] || fail "$exe is not executable"
grep -q '"shard_count": ' "$want" || fail "$want has no shard_count"

# As `bazel run` starts it: in the runfiles tree.
"$exe" >"$out" || fail "$exe exited $?"
cmp "$want" "$out" || fail "$exe printed something else than $want"

# From another directory, by absolute path: found through $TEST_SRCDIR.
abs="$PWD/$exe"
(cd "$TEST_TMPDIR" && "$abs") >"$out" || fail "$abs run from $TEST_TMPDIR exited $?"
cmp "$want" "$out" || fail "$abs run from $TEST_TMPDIR printed something else than $want"

# Without the runfiles variables it may still find its own runfiles tree; if it
# cannot, it must fail and say why, never succeed with other output.
if (cd "$TEST_TMPDIR" && env -u TEST_SRCDIR -u RUNFILES_DIR "$abs") >"$out" 2>"$err"; then
    cmp "$want" "$out" || fail "$abs without runfiles variables printed something else"
else
    grep -q "cannot find" "$err" || fail "$abs without runfiles variables: $(cat "$err")"
fi
echo "PASS: $exe prints $want"
