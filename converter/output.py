"""Atomic outputs: build next to the destination, then swap it in.

A conversion writes into a fresh temporary sibling of the output path. Only
when it has fully succeeded is the sibling renamed into place, so on any failure
the previous output is untouched, nothing partial remains, and stale shards of
an earlier conversion never survive.
"""

import contextlib
import os
import shutil
import tempfile
from typing import Iterator

from converter.errors import UsageError
from converter.weights import format as wf


def _parent(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _ensure_parent(path: str) -> str:
    parent = _parent(path)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise UsageError("output %s: parent %s is not a directory" % (path, parent))
    os.makedirs(parent, exist_ok=True)
    return parent


def _check_replaceable_dir(path: str) -> None:
    """Refuses to replace a directory that holds anything but a TF.js model."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise UsageError("output %s exists and is not a directory; remove it or choose "
                         "another output path" % path)
    foreign = sorted(n for n in os.listdir(path)
                     if n != wf.MODEL_JSON and not wf.is_shard_file_name(n))
    if foreign:
        raise UsageError(
            "output directory %s holds files that are not part of a TF.js model (%s); "
            "choose an empty or model directory" % (path, ", ".join(foreign[:3])))


@contextlib.contextmanager
def atomic_directory(path: str) -> Iterator[str]:
    """Yields a temporary directory that replaces ``path`` on success.

    ``path`` may not exist, or be a directory holding only ``model.json`` and
    shard files (a previous conversion); anything else is refused, so a mistyped
    output path never deletes a user's files.
    """
    _check_replaceable_dir(path)
    parent = _ensure_parent(path)
    base = os.path.basename(os.path.abspath(path))
    tmp = tempfile.mkdtemp(prefix=".%s.tmp-" % base, dir=parent)
    try:
        yield tmp
        os.chmod(tmp, 0o755)
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=".%s.old-" % base, dir=parent)
            os.rename(path, os.path.join(old, "d"))
            os.rename(tmp, path)
            shutil.rmtree(old)
        else:
            os.rename(tmp, path)
    finally:
        if os.path.lexists(tmp):
            shutil.rmtree(tmp)


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yields a temporary file path that replaces ``path`` on success."""
    if os.path.isdir(path):
        raise UsageError("output %s is a directory; Keras outputs are files (e.g. model.h5)" % path)
    parent = _ensure_parent(path)
    base = os.path.basename(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".%s.tmp-" % base, dir=parent)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)
