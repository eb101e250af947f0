"""Atomic outputs: build next to the destination, then swap it in.

A conversion writes into a fresh temporary sibling of the output path. Only
when it has fully succeeded is the sibling renamed into place, so on any failure
the previous output is untouched, nothing partial remains, and stale shards of
an earlier conversion never survive.

A process killed mid-conversion (SIGKILL, OOM killer, power loss) cannot clean
up, so every run first reaps the leftovers of earlier runs to the same output.
Each run owns a random token ``T`` and names its siblings ``.<out>.lock-T``
(created first, removed last), ``.<out>.tmp-T`` and ``.<out>.old-T``. It holds
an exclusive ``flock`` on the lock file for its whole life. The kernel drops
that lock when the process dies, however it dies, so "the lock can be taken"
proves the owner is gone; a pid would not (pids are reused, and differ across
PID namespaces sharing one directory). Entries whose lock is held, or whose
filesystem cannot lock, are never touched; names that do not match this exact
pattern (other outputs, files of older converter versions) neither.

Output-side ``OSError``s (no space, read-only or unwritable parent, quota) are
reported as one-line ``ConversionError``s naming the output and the reason.
"""

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
from typing import Iterator, Optional

from converter.errors import ConversionError, UsageError
from converter.weights import format as wf

try:
    import fcntl
except ImportError:  # Windows: no flock, so leftovers are kept (never judged stale).
    fcntl = None

_TOKEN = re.compile(r"[0-9a-f]{16}\Z")
_LOCK, _TMP, _OLD = "lock", "tmp", "old"
# Errors that only writing produces: inside a conversion they always mean the
# output side, whatever file the library (h5py) was writing.
_WRITE_ERRNOS = frozenset(
    getattr(errno, n) for n in ("ENOSPC", "EDQUOT", "EFBIG", "EROFS") if hasattr(errno, n))
# flock errors meaning "this filesystem cannot lock", not "someone holds it".
_NO_LOCKING = frozenset(
    getattr(errno, n) for n in ("ENOLCK", "EOPNOTSUPP", "ENOTSUP", "ENOSYS", "EINVAL", "EBADF")
    if hasattr(errno, n))
_CLAIM_ATTEMPTS = 100
# Siblings are opened without following a symlink planted at their name, and
# never leak into child processes (verify runs node and browsers).
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _parent(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def _base(path: str) -> str:
    return os.path.basename(os.path.abspath(path))


def _sibling(parent: str, base: str, kind: str, token: str) -> str:
    return os.path.join(parent, ".%s.%s-%s" % (base, kind, token))


def _ensure_parent(path: str) -> str:
    parent = _parent(path)
    if os.path.exists(parent) and not os.path.isdir(parent):
        raise UsageError("output %s: parent %s is not a directory" % (path, parent))
    os.makedirs(parent, exist_ok=True)
    return parent


# What a SavedModel directory holds (TensorFlow writes these names).
SAVED_MODEL_ENTRIES = frozenset(("saved_model.pb", "saved_model.pbtxt", "fingerprint.pb",
                                 "keras_metadata.pb", "variables", "assets"))


def _check_replaceable_dir(path: str, saved_model: bool = False) -> None:
    """Refuses to replace a directory that holds anything but a TF.js model (or SavedModel)."""
    if not os.path.lexists(path):
        return
    if not os.path.isdir(path) or os.path.islink(path):
        raise UsageError("output %s exists and is not a directory; remove it or choose "
                         "another output path" % path)
    if saved_model:
        foreign = sorted(n for n in os.listdir(path) if n not in SAVED_MODEL_ENTRIES)
        what = "a SavedModel"
    else:
        foreign = sorted(n for n in os.listdir(path)
                         if n != wf.MODEL_JSON and not wf.is_shard_file_name(n))
        what = "a TF.js model"
    if foreign:
        raise UsageError(
            "output directory %s holds files that are not part of %s (%s); "
            "choose an empty or model directory" % (path, what, ", ".join(foreign[:3])))


def _reason(e: OSError) -> str:
    # h5py puts a multi-line HDF5 report in strerror but the real errno in errno.
    text = os.strerror(e.errno) if e.errno else (e.strerror or str(e))
    return " ".join(text.split())


def _in_area(name, parent: str, base: str, path: str) -> bool:
    """Whether ``name`` is the output, inside it, or one of its siblings."""
    if not isinstance(name, (str, bytes)):
        return False
    full = os.path.abspath(os.fsdecode(name))
    out = os.path.abspath(path)
    return (full == out or full.startswith(out + os.sep)
            or full.startswith(os.path.join(parent, ".%s." % base)))


def _output_error(e: OSError, path: str) -> ConversionError:
    parent, base = _parent(path), _base(path)
    where = e.filename
    if where is None or _in_area(where, parent, base, path):
        return ConversionError("cannot write output %s: %s" % (path, _reason(e)))
    return ConversionError("cannot write output %s: %s: %s"
                           % (path, os.fsdecode(where), _reason(e)))


def _is_output_side(e: OSError, path: str) -> bool:
    parent, base = _parent(path), _base(path)
    return e.errno in _WRITE_ERRNOS or any(
        _in_area(n, parent, base, path) for n in (e.filename, e.filename2))


def _output_cause(e: BaseException, path: str) -> Optional[OSError]:
    """The output-side OSError that ``e`` is, or was raised while handling.

    h5py closing a file after a failed write raises a RuntimeError ("Can't
    decrement id ref count") that hides the OSError saying why the write failed.
    """
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and _is_output_side(e, path):
            return e
        e = e.__context__
    return None


@contextlib.contextmanager
def _output_errors(path: str, body: bool = False) -> Iterator[None]:
    """Re-raises an ``OSError`` as the one-line ``ConversionError`` naming ``path``.

    Args:
      path: the output path, as the user gave it.
      body: the block is the writer's (the conversion's own code): only errors
        that writing produces, or that name the output or its siblings, are the
        output's, also when a library's cleanup raised another error on top of
        them; anything else, and every ConversionError, propagates unchanged.
    """
    try:
        yield
    except ConversionError:
        raise
    except OSError as e:
        if body and not _is_output_side(e, path):
            raise
        raise _output_error(e, path) from e
    except Exception as e:  # re-raised unchanged unless it hides an output-side OSError
        cause = _output_cause(e, path) if body else None
        if cause is None:
            raise
        raise _output_error(cause, path) from e


def _try_lock(fd: int) -> Optional[bool]:
    """True: locked by us; False: held by a live process; None: cannot lock here."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError as e:
        if e.errno in _NO_LOCKING:
            return None
        raise
    return True


def _is_open_at(fd: int, path: str) -> bool:
    """Whether ``path`` still names the file open as ``fd`` (not unlinked or replaced)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


class _Claim:
    """A run's token and the held lock that marks its siblings as live.

    The lock file exists, locked, before any other sibling of the token, and is
    removed after all of them: a sibling without a takeable lock is stale.
    """

    def __init__(self, parent: str, base: str):
        self.parent, self.base = parent, base
        for _ in range(_CLAIM_ATTEMPTS):
            token = secrets.token_hex(8)
            lock = _sibling(parent, base, _LOCK, token)
            try:
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            except FileExistsError:
                continue
            # A reaper may take the new file's lock before we do (it then removes
            # the file): only a lock held by us on the file still at its name counts.
            locked = _try_lock(fd)
            if locked is not False and _is_open_at(fd, lock):
                self.token, self.lock, self._fd = token, lock, fd
                return
            os.close(fd)
        raise FileExistsError(errno.EEXIST, "no free temporary name after %d attempts"
                              % _CLAIM_ATTEMPTS, os.path.join(parent, "." + base))

    def sibling(self, kind: str) -> str:
        return _sibling(self.parent, self.base, kind, self.token)

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.lock)
        os.close(self._fd)


def _remove(path: str) -> None:
    """Removes ``path`` without following symlinks: a link is unlinked, never its target."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)  # refuses a symlinked top and never follows links inside
    else:
        os.unlink(path)


def _reap_token(parent: str, base: str, token: str, path: str) -> None:
    """Removes the siblings of ``token`` if their owner is provably gone."""
    lock = _sibling(parent, base, _LOCK, token)
    try:
        st = os.lstat(lock)
    except FileNotFoundError:
        st = None  # removed last by its owner: what is left is stale
    if st is not None and stat.S_ISDIR(st.st_mode):
        return  # not a lock we made: judge nothing
    if st is None or not stat.S_ISREG(st.st_mode):
        # No lock, or a link or FIFO at its name (never ours): the owner is gone.
        _remove_siblings(parent, base, token, path)
        if st is not None:
            os.unlink(lock)
        return
    # O_NONBLOCK: a FIFO swapped in after the lstat never hangs us.
    fd = os.open(lock, os.O_RDWR | getattr(os, "O_NONBLOCK", 0) | _NOFOLLOW)
    try:
        # Not takeable: live or unknowable. Taken but no longer at its name:
        # another run reaped this token meanwhile.
        if _try_lock(fd) is True and _is_open_at(fd, lock):
            _remove_siblings(parent, base, token, path)
            os.unlink(lock)
    finally:
        os.close(fd)


def _remove_siblings(parent: str, base: str, token: str, path: str) -> None:
    _remove(_sibling(parent, base, _TMP, token))
    old = _sibling(parent, base, _OLD, token)
    previous = os.path.join(old, "d")
    # Killed between moving the previous output aside and moving the new one in:
    # the previous output is the only complete one, so put it back.
    if (os.path.isdir(old) and not os.path.islink(old) and os.path.isdir(previous)
            and not os.path.islink(previous) and not os.path.lexists(path)):
        os.rename(previous, path)
    _remove(old)


def _reap_leftovers(parent: str, base: str, path: str) -> None:
    """Removes stale siblings left by killed runs to the same output.

    Best effort: a leftover that cannot be removed (another user's, a raced
    removal) does not fail this conversion; a later run tries again.
    """
    try:
        names = os.listdir(parent)
    except OSError:
        return  # a missing or unreadable parent is reported by the writes that need it
    prefix = ".%s." % base
    tokens = set()
    for name in names:
        if name.startswith(prefix):
            kind, sep, token = name[len(prefix):].partition("-")
            # The exact token pattern keeps other outputs' siblings out: output
            # "m.tmp-x" has ".m.tmp-x.tmp-T", whose "token" for "m" is not hex.
            if sep and kind in (_LOCK, _TMP, _OLD) and _TOKEN.match(token):
                tokens.add(token)
    for token in sorted(tokens):
        try:
            _reap_token(parent, base, token, path)
        except OSError:
            continue


@contextlib.contextmanager
def atomic_directory(path: str, saved_model: bool = False) -> Iterator[str]:
    """Yields a temporary directory that replaces ``path`` on success.

    ``path`` may not exist, or be a directory holding only ``model.json`` and
    shard files (a previous conversion; with ``saved_model``, only the entries
    of a SavedModel); anything else is refused, so a mistyped output path never
    deletes a user's files.

    Raises:
      UsageError: ``path`` cannot be an output directory.
      ConversionError: the output cannot be written (no space, permissions);
        the previous output is then untouched.
    """
    parent, base = _parent(path), _base(path)
    with _output_errors(path):
        _reap_leftovers(parent, base, path)
        _check_replaceable_dir(path, saved_model)
        _ensure_parent(path)
        claim = _Claim(parent, base)
    tmp = claim.sibling(_TMP)
    try:
        with _output_errors(path):
            os.mkdir(tmp, 0o700)
        with _output_errors(path, body=True):
            yield tmp
        with _output_errors(path):
            os.chmod(tmp, 0o755)
            _swap_directory(tmp, path, claim.sibling(_OLD))
    finally:
        # A failed removal leaves a stale sibling for a later run to reap.
        with contextlib.suppress(OSError):
            _remove(tmp)
        claim.release()


def _swap_directory(tmp: str, path: str, old: str) -> None:
    if not os.path.lexists(path):
        os.rename(tmp, path)
        return
    os.mkdir(old, 0o700)
    previous = os.path.join(old, "d")
    os.rename(path, previous)
    try:
        os.rename(tmp, path)
    except OSError:
        os.rename(previous, path)
        os.rmdir(old)
        raise
    # The new output is in place: a failed removal of the old one is a stale
    # sibling for a later run, not a failed conversion.
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yields a temporary file path that replaces ``path`` on success.

    Raises:
      UsageError: ``path`` is a directory.
      ConversionError: the output cannot be written (no space, permissions);
        the previous output is then untouched.
    """
    parent, base = _parent(path), _base(path)
    with _output_errors(path):
        _reap_leftovers(parent, base, path)
        if os.path.isdir(path):
            raise UsageError("output %s is a directory; Keras outputs are files (e.g. model.h5)"
                             % path)
        _ensure_parent(path)
        claim = _Claim(parent, base)
    tmp = claim.sibling(_TMP)
    try:
        with _output_errors(path):
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600))
        with _output_errors(path, body=True):
            yield tmp
        with _output_errors(path):
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            _remove(tmp)
        claim.release()
