"""Lays out a servable TF.js web app directory; the tool behind web_app (defs.bzl).

Usage (arguments usually come from a Bazel param file, one per line)::

    bundle.py --out DIR [--model NAME FORMAT MODEL_DIR SUMMARY_JSON]... [--asset PATH FILE]...

Writes ``DIR/models/NAME/`` (a copy of each model directory), each asset at
``DIR/PATH``, and ``DIR/manifest.json``. A model directory must hold exactly the
files its summary lists, with the sizes, sha256 and sha384 Subresource
Integrity strings it records; anything else is an error, because the manifest
is what a deployment trusts (the page fetches every model file with the
manifest's ``integrity``, so the browser refuses a shard whose bytes changed). Output is
deterministic: sorted, no times, no absolute paths. Standard library only.
"""

import argparse
import base64
import hashlib
import json
import os
import sys
from typing import Dict, List, Sequence

MANIFEST = "manifest.json"
MODELS_DIR = "models"
# tfjs_model's format -> the `format` that model.json and its summary record.
_JSON_FORMATS = {"tfjs_layers_model": "layers-model", "tfjs_graph_model": "graph-model"}
_CHUNK = 1 << 20


class BundleError(Exception):
    """The inputs are inconsistent; the message names the model and file."""


def copy_file(src: str, dst: str) -> Dict[str, object]:
    """Copies ``src`` to ``dst`` (contents only, no times or modes).

    Returns:
      ``{"size": bytes, "sha256": hex, "integrity": "sha384-<base64>"}`` of the
      bytes written (the last is what ``fetch(url, {integrity})`` and
      ``<link rel=preload integrity=...>`` take).
    """
    digest = hashlib.sha256()
    sri = hashlib.sha384()
    size = 0
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while True:
            chunk = fin.read(_CHUNK)
            if not chunk:
                break
            digest.update(chunk)
            sri.update(chunk)
            size += len(chunk)
            fout.write(chunk)
    return {"size": size, "sha256": digest.hexdigest(),
            "integrity": "sha384-" + base64.b64encode(sri.digest()).decode("ascii")}


def _read_summary(name: str, path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError) as e:
        raise BundleError("model %r: cannot read summary %s: %s" % (name, path, e)) from None
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, list) or not all(
            isinstance(f, dict) and isinstance(f.get("name"), str) and isinstance(f.get("size"), int)
            and isinstance(f.get("sha256"), str) and isinstance(f.get("integrity"), str)
            for f in files):
        raise BundleError("model %r: summary %s has no valid `files` list of {name, size, sha256, "
                          "integrity}" % (name, path))
    return summary


def bundle_model(name: str, model_format: str, model_dir: str, summary_path: str,
                 out: str) -> dict:
    """Copies one model directory to ``out/models/<name>/`` and checks it against its summary.

    Returns:
      The model's manifest entry.

    Raises:
      BundleError: the summary is unreadable, disagrees with the format, or the
        directory's files differ from the summary's (missing, extra, size, sha256,
        integrity).
    """
    summary = _read_summary(name, summary_path)
    want_format = _JSON_FORMATS.get(model_format)
    if want_format is None:
        raise BundleError("model %r: format %r is not one of %s"
                          % (name, model_format, ", ".join(sorted(_JSON_FORMATS))))
    if summary.get("format") != want_format:
        raise BundleError("model %r: summary %s says format %r, want %r (for %s)"
                          % (name, summary_path, summary.get("format"), want_format, model_format))
    listed = {f["name"]: f for f in summary["files"]}
    for file_name in listed:
        if "/" in file_name or file_name in ("", ".", ".."):
            raise BundleError("model %r: summary %s lists %r; want plain file names"
                              % (name, summary_path, file_name))
    try:
        present = set(os.listdir(model_dir))
    except OSError as e:
        raise BundleError("model %r: cannot list %s: %s" % (name, model_dir, e)) from None
    if present != set(listed):
        raise BundleError("model %r: %s holds %s but its summary lists %s (missing: %s; extra: %s)"
                          % (name, model_dir, sorted(present), sorted(listed),
                             sorted(set(listed) - present) or "none",
                             sorted(present - set(listed)) or "none"))
    files = []
    for file_name in sorted(listed):
        src = os.path.join(model_dir, file_name)
        if not os.path.isfile(src):
            raise BundleError("model %r: %s is not a regular file" % (name, src))
        rel = "/".join([MODELS_DIR, name, file_name])
        got = copy_file(src, os.path.join(out, *rel.split("/")))
        want = listed[file_name]
        keys = ("size", "sha256", "integrity")
        if [got[k] for k in keys] != [want[k] for k in keys]:
            raise BundleError("model %r: %s has %d bytes, sha256 %s, %s; its summary says %d bytes, "
                              "sha256 %s, %s" % ((name, src) + tuple(got[k] for k in keys)
                                                 + tuple(want[k] for k in keys)))
        files.append(dict(path=rel, **got))
    model_json = "/".join([MODELS_DIR, name, "model.json"])
    if model_json not in [f["path"] for f in files]:
        raise BundleError("model %r: %s has no model.json" % (name, model_dir))
    return {
        "name": name,
        "format": model_format,
        "model_json": model_json,
        "source": summary.get("source"),
        "weight_bytes": summary.get("weight_bytes"),
        "total_bytes": sum(f["size"] for f in files),
        "files": files,
    }


def _render(value, indent: int = 0) -> str:
    """JSON with one line per file entry, so the manifest diffs and greps well."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict) and "path" in value:
        return json.dumps(value)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = ['%s%s: %s' % (inner, json.dumps(k), _render(v, indent + 1)) for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + _render(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value)


def bundle(out: str, models: Sequence[Sequence[str]], assets: Sequence[Sequence[str]]) -> dict:
    """Writes the app directory.

    Args:
      out: the output directory (created if missing).
      models: ``(name, format, model_dir, summary_json)`` tuples.
      assets: ``(path in the app, source file)`` pairs.

    Returns:
      The manifest, also written to ``out/manifest.json``.

    Raises:
      BundleError: a name or path is repeated or invalid, or a model does not
        match its summary.
    """
    os.makedirs(out, exist_ok=True)
    names = [m[0] for m in models]
    paths = [a[0] for a in assets]
    for kind, values in (("model name", names), ("asset path", paths)):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            raise BundleError("%s %s given more than once" % (kind, ", ".join(map(repr, repeated))))
    for path in paths:
        parts = path.split("/")
        if path.startswith("/") or any(p in ("", ".", "..") for p in parts) or \
                parts[0] in (MANIFEST, MODELS_DIR):
            raise BundleError("asset path %r must be relative, without '.' or '..', and not %s "
                              "or under %s/" % (path, MANIFEST, MODELS_DIR))
    entries: List[dict] = [bundle_model(*m, out) for m in sorted(models)]
    asset_entries = [dict(path=path, **copy_file(src, os.path.join(out, *path.split("/"))))
                     for path, src in sorted(assets)]
    manifest = {
        "models": entries,
        "assets": asset_entries,
        "total_bytes": sum(e["total_bytes"] for e in entries) + sum(a["size"] for a in asset_entries),
    }
    with open(os.path.join(out, MANIFEST), "w", encoding="utf-8", newline="\n") as f:
        f.write(_render(manifest) + "\n")
    return manifest


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bundle.py", description=__doc__.split("\n")[0],
                                     fromfile_prefix_chars="@")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--model", nargs=4, action="append", default=[],
                        metavar=("NAME", "FORMAT", "MODEL_DIR", "SUMMARY"))
    parser.add_argument("--asset", nargs=2, action="append", default=[], metavar=("PATH", "FILE"))
    args = parser.parse_args(argv)
    try:
        bundle(args.out, args.model, args.asset)
    except BundleError as e:
        print("bundle.py: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
