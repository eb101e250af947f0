#!/bin/sh
# sh_test entry point: check_model.sh PYTHON CHECKER MODEL_DIR SUMMARY [CHECKS...].
# PYTHON is the converter environment's python3 launcher (there is no registered
# Python toolchain for py_test here); -I keeps the host's site-packages out.
set -eu
python="$1"
shift
exec "$python" -I -B "$@"
