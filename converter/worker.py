"""Bazel entry point of the converter: one-shot, or a JSON-protocol persistent worker.

Run as ``python -I converter/worker.py ARGS`` (one-shot, ARGS may be an
``@flagfile``) or with ``--persistent_worker``, reading WorkRequests from stdin
and writing one WorkResponse per request. The arguments are either
``--request_file=PATH`` alone, what tfjs_model passes: a JSON object whose keys
are the fields of ``ConversionRequest`` (see ``request.request_from_dict``) plus
the worker's own ``summary_file`` (where to write a JSON summary of the
output), ``source_label`` and ``debug``; or the CLI's arguments plus
``--summary_file=PATH`` and ``--source_label=LABEL``. Every request gets a
response and the worker lives on: a ``ConversionError`` gives its one-line
message and exit code; anything else a request raises (an ImportError of a missing dependency, an OSError or
h5py error, a RecursionError of a deeply nested input, MemoryError, ...) gives
one line naming the input file and the exception, exit code 1, and the
traceback only with ``--debug``. TensorFlow, when a graph path needs it, is
imported once per worker, not per model.
"""

import os
import sys

# Run as a script in isolated mode (-I), the repository root is not on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import base64  # noqa: E402
import contextlib  # noqa: E402
import gc  # noqa: E402
import hashlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import traceback  # noqa: E402
from typing import Iterator, List, Optional, Tuple  # noqa: E402

from converter import cli  # noqa: E402
from converter import jsonio  # noqa: E402
from converter import request as rq  # noqa: E402
from converter import tf_logs  # noqa: E402
from converter.errors import ConversionError, InvalidModelError, UsageError  # noqa: E402
from converter.weights import format as wf  # noqa: E402

_OWN_FLAGS = ("--summary_file", "--source_label")
_REQUEST_FILE_FLAG = "--request_file"
# Keys of a request file that are the worker's, not the conversion's: (key, JSON type).
_OWN_KEYS = (("summary_file", str), ("source_label", str), ("debug", bool))


def expand_flagfiles(args: List[str]) -> List[str]:
    out = []
    for a in args:
        if a.startswith("@") and os.path.isfile(a[1:]):
            with open(a[1:], encoding="utf-8") as f:
                out.extend(line.rstrip("\n") for line in f if line.strip())
        else:
            out.append(a)
    return out


def _split_own_flags(args: List[str]):
    own, rest = {}, []
    for a in args:
        name, sep, value = a.partition("=")
        if sep and name in _OWN_FLAGS:
            own[name[2:]] = value
        else:
            rest.append(a)
    return own, rest


def summarize(output_dir: str, source_label: str) -> dict:
    """Format, files (name, size, sha256 and the SRI ``integrity`` string, sha384),
    shard count and byte totals of a TF.js output."""
    files = []
    for name in sorted(os.listdir(output_dir)):
        with open(os.path.join(output_dir, name), "rb") as f:
            data = f.read()
        files.append({"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                      "integrity": "sha384-" + base64.b64encode(
                          hashlib.sha384(data).digest()).decode("ascii")})
    with open(os.path.join(output_dir, wf.MODEL_JSON), encoding="utf-8") as f:
        doc = json.load(f)
    weights = [w for g in doc.get(wf.WEIGHTS_MANIFEST, []) for w in g[wf.WEIGHTS]]
    quantized = {}
    for w in weights:
        q = w.get(wf.QUANTIZATION, {}).get(wf.DTYPE)
        if q:
            quantized[q] = quantized.get(q, 0) + 1
    shards = [f for f in files if wf.is_shard_file_name(f["name"])]
    return {
        "source": source_label,
        "format": doc.get(wf.FORMAT),
        "num_weights": len(weights),
        "num_groups": len(doc.get(wf.WEIGHTS_MANIFEST, [])),
        "quantized_weights": quantized,
        "shard_count": len(shards),
        "weight_bytes": sum(f["size"] for f in shards),
        "total_bytes": sum(f["size"] for f in files),
        "files": files,
    }


def _request_file(args: List[str]) -> Optional[str]:
    """The path of ``--request_file=PATH`` in (expanded) args, or None."""
    for a in args:
        name, sep, value = a.partition("=")
        if name == _REQUEST_FILE_FLAG:
            return value if sep else ""
    return None


def _read_request_doc(path: str) -> dict:
    """The JSON object of a request file.

    Raises:
      UsageError: unreadable, not JSON, or not an object.
    """
    where = "request file %s" % path
    try:
        with open(path, "rb") as f:
            data = f.read()
        doc = jsonio.loads(data, where)
    except OSError as e:
        raise UsageError("%s: cannot read it (%s)" % (where, e.strerror or e)) from None
    except InvalidModelError as e:
        raise UsageError(str(e)) from None
    if not isinstance(doc, dict):
        raise UsageError("%s: got a JSON %s, want an object of request fields"
                         % (where, type(doc).__name__))
    return doc


def read_request_file(path: str) -> Tuple[rq.ConversionRequest, dict]:
    """(the conversion, the worker's own keys) a request file holds.

    Raises:
      UsageError: the file is unreadable or not a valid request.
    """
    doc = _read_request_doc(path)
    own = {}
    for key, kind in _OWN_KEYS:
        if key in doc:
            value = doc.pop(key)
            if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                raise UsageError("request file %s: %s got %r, want a %s"
                                 % (path, key, value, "string" if kind is str else "boolean"))
            own[key] = value
    return rq.request_from_dict(doc, "request file %s" % path), own


def _write_summary(path: str, output_dir: str, source_label: str) -> None:
    summary = summarize(output_dir, source_label)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")


def _convert_request_file(path: str) -> int:
    """Runs the conversion of a request file; returns its exit code. Prints what
    the CLI prints."""
    debug = bool(path) and _debug_in_request_file(path)  # also for an invalid request
    try:
        if not path:
            raise UsageError("%s wants a path (%s=PATH)" % (_REQUEST_FILE_FLAG,
                                                            _REQUEST_FILE_FLAG))
        request, own = read_request_file(path)
        from converter.api import run
        with tf_logs.quiet(debug):  # as the CLI: TensorFlow's start-up noise only with debug
            result = run(request)
    except ConversionError as e:
        if debug:
            traceback.print_exc()
        print("%s: error: %s" % (cli.PROG, e), file=sys.stderr)
        return e.exit_code
    print("%s: wrote %s (%s)" % (cli.PROG, result.output_path, cli.written_text(result)))
    if result.verification:
        print("%s: verified: %s" % (cli.PROG, result.verification))
    if "summary_file" in own:
        _write_summary(own["summary_file"], request.output_path, own.get("source_label", ""))
    return 0


def convert_once(args: List[str]) -> int:
    """Runs one conversion; returns its exit code. Prints what the CLI prints."""
    args = expand_flagfiles(args)
    request_file = _request_file(args)
    if request_file is not None:
        if len(args) != 1:
            print("%s: error: %s takes no other arguments, got %s" % (
                cli.PROG, _REQUEST_FILE_FLAG, " ".join(args)), file=sys.stderr)
            return UsageError.exit_code
        return _convert_request_file(request_file)
    own, rest = _split_own_flags(args)
    code = cli.main(rest)
    if code == 0 and "summary_file" in own:
        output_dir = cli.build_parser().parse_args(cli.normalize_argv(rest)).output_path
        _write_summary(own["summary_file"], output_dir, own.get("source_label", ""))
    return code


def read_requests(fd: int) -> Iterator[dict]:
    """Yields WorkRequests from ``fd``.

    Bazel 4.2.3 writes JSON requests back to back with no newline between them,
    so requests are cut by decoding, not by lines.
    """
    decoder = json.JSONDecoder()
    buf = ""
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return
        buf += chunk.decode("utf-8")
        while True:
            buf = buf.lstrip()
            if not buf:
                break
            try:
                request, end = decoder.raw_decode(buf)
            except ValueError:
                break  # an incomplete request: read more
            buf = buf[end:]
            yield request


def _input_path(args: List[str]) -> str:
    """The request's input path, for naming it in an unexpected error's message."""
    request_file = _request_file(expand_flagfiles(args))
    if request_file is not None:
        try:
            path = _read_request_doc(request_file).get("input_path")
        except (ConversionError, OSError):  # unreadable: the error is about the file
            path = None
        return path if isinstance(path, str) else "<request file %s>" % request_file
    rest = _split_own_flags(expand_flagfiles(args))[1]
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            return cli.build_parser().parse_args(cli.normalize_argv(rest)).input_path
    except (SystemExit, ConversionError, OSError):  # unparsable: the error is about the args
        return "<arguments %s>" % " ".join(rest)


def _debug_in_request_file(path: str) -> bool:
    try:
        return _read_request_doc(path).get("debug") is True
    except (ConversionError, OSError):
        return False


def _debug(args: List[str]) -> bool:
    request_file = _request_file(args)
    if request_file is not None:
        return _debug_in_request_file(request_file)
    return any(a.split("=", 1)[0] == "--debug" and not a.endswith(("=false", "=0", "=no", "=off"))
               for a in args)


def unexpected_error_line(args: List[str], error: BaseException) -> str:
    """One line naming the input and an exception the converter did not raise on purpose."""
    message = " ".join(str(error).split())
    return "%s: error: %s: unexpected %s%s (a converter bug or a broken environment; rerun " \
        "with --debug for the traceback)\n" % (
            cli.PROG, _input_path(args), type(error).__name__, ": " + message if message else "")


def run_quietly(args: List[str]) -> Tuple[int, str]:
    """Runs one conversion; returns (exit code, output). Build tools are silent on
    success, so the output is empty then.

    Never raises for a request's failure: whatever a conversion raises becomes
    exit code 1 and one line (see the module docstring), so a persistent worker
    answers every request and keeps serving.
    """
    out = io.StringIO()
    failure = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            code = convert_once(args)
        except SystemExit as e:  # argparse --help and friends
            code = e.code if isinstance(e.code, int) else 1
        # Deliberately broad, and never silent: this is the worker's boundary, where an
        # unexpected exception must become a response instead of killing the process.
        except Exception as e:  # noqa: BLE001
            code, failure = 1, e
            trace = traceback.format_exc()
    if failure is not None:
        # What ran before it (e.g. library warnings) and the traceback only with --debug:
        # otherwise the response is the one line.
        shown = out.getvalue() + trace if _debug(expand_flagfiles(args)) else ""
        return code, shown + unexpected_error_line(args, failure)
    return code, out.getvalue() if code else ""


def handle(request: dict) -> Tuple[int, str]:
    """Runs one WorkRequest; returns (exit code, output)."""
    result = run_quietly(list(request.get("arguments", [])))
    gc.collect()  # keep the worker's memory flat across many models
    return result


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def source_stamp() -> Tuple[Tuple[str, int, int], ...]:
    """(path, size, mtime) of every converter source file (symlinks followed)."""
    stamp = []
    for root, dirs, files in os.walk(_PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d not in ("__pycache__", "node_modules"))
        for name in sorted(files):
            if name.endswith((".py", ".json", ".js")):
                path = os.path.join(root, name)
                st = os.stat(path)
                stamp.append((path, st.st_size, st.st_mtime_ns))
    return tuple(stamp)


def _run_fresh(request: dict) -> Tuple[int, str]:
    """Runs one request in a new one-shot worker process, i.e. with the current sources."""
    with tempfile.NamedTemporaryFile("w", suffix=".flags", delete=False,
                                     encoding="utf-8") as f:
        f.write("".join(a + "\n" for a in request.get("arguments", [])))
    try:
        proc = subprocess.run([sys.executable, "-I", "-B", os.path.abspath(__file__),
                               "@" + f.name], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    finally:
        os.unlink(f.name)
    return proc.returncode, proc.stderr.decode("utf-8", "replace")


def serve(stdin_fd: int, stdout) -> None:
    """Answers requests until stdin closes.

    The converter's modules are imported once, so a worker that outlived a
    change of its sources would convert with the old code under the new
    sources' action key (and so poison caches). Bazel is meant to restart it;
    in case it does not, every request first compares the sources' stamp with
    the one at start: on a change the request runs in a fresh process and the
    worker re-executes itself (same pid, same pipes) before the next one.
    """
    stamp = source_stamp()
    for request in read_requests(stdin_fd):
        stale = source_stamp() != stamp
        code, output = _run_fresh(request) if stale else handle(request)
        response = {"exitCode": code, "output": output, "requestId": request.get("requestId", 0)}
        stdout.write(json.dumps(response) + "\n")
        stdout.flush()
        if stale:
            sys.stderr.flush()
            os.execv(sys.executable, sys.orig_argv)


def main(argv: List[str]) -> int:
    if "--persistent_worker" in argv:
        protocol_out = sys.stdout
        sys.stdout = sys.stderr  # a stray print must not corrupt the protocol stream
        serve(sys.stdin.fileno(), protocol_out)
        return 0
    if any(a.startswith("@") for a in argv):  # a one-shot Bazel action: silent on success
        code, output = run_quietly(argv)
        sys.stderr.write(output)
        return code
    return convert_once(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
