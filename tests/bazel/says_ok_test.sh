#!/bin/sh
# Prints a check's result file and passes when it starts with "ok:" (the check
# ran in the build and fails it on any mismatch): says_ok_test.sh RESULT.
set -eu
cat "$1"
head -c 3 "$1" | grep -q '^ok:' || { echo "FAIL: $1 does not start with ok:" >&2; exit 1; }
