"""A persistent worker whose sources change under it converts with the new code, never the old.

Bazel keys a worker by its tool files and should start a new one when they
change; if an old process were reused, its already-imported modules would
produce outputs under the new sources' action key and poison caches. The
worker compares a stamp (size, mtime) of its sources per request: on a
change it runs that request in a fresh process and re-executes itself.
Checked on a copy of the converter whose error prefix (``cli.PROG``) is edited
between two requests to the same worker process.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ask(proc, request_id, *arguments):
    proc.stdin.write(json.dumps({"arguments": list(arguments), "requestId": request_id}).encode())
    proc.stdin.flush()
    line = proc.stdout.readline()
    assert line, proc.stderr.read().decode()
    return json.loads(line)


def test_changed_sources_take_effect_in_the_same_worker(tmp_path):
    shutil.copytree(ROOT / "converter", tmp_path / "converter",
                    ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    missing = str(tmp_path / "missing.h5")
    proc = subprocess.Popen([sys.executable, "-I", "-B", str(tmp_path / "converter" / "worker.py"),
                             "--persistent_worker"], cwd=tmp_path, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        first = _ask(proc, 1, missing, str(tmp_path / "out"))
        assert first["exitCode"] == 1 and first["output"].startswith("tfjs_converter: error: ")
        cli = tmp_path / "converter" / "cli.py"
        text = cli.read_text()
        assert 'PROG = "tfjs_converter"' in text
        cli.write_text(text.replace('PROG = "tfjs_converter"', 'PROG = "tfjs_converter_edited"'))
        for request_id in (2, 3):  # the fresh process, then the re-executed worker
            response = _ask(proc, request_id, missing, str(tmp_path / "out"))
            assert response["requestId"] == request_id
            assert response["exitCode"] == 1, response
            assert response["output"].startswith("tfjs_converter_edited: error: %s" % missing), \
                response
        assert proc.poll() is None
    finally:
        proc.stdin.close()
        assert proc.wait(60) == 0
        proc.stdout.close()
        proc.stderr.close()
