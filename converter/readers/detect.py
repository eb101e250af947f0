"""Detects the format of a source model from its bytes and layout, never its name alone."""

import os
import stat
import zipfile

from converter import jsonio
from converter import request as rq
from converter.errors import InvalidModelError
from converter.weights import format as wf

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _is_hdf5(path: str) -> bool:
    # HDF5 allows a user block, so the signature may also sit at 512, 1024, ...
    with open(path, "rb") as f:
        offset = 0
        size = os.fstat(f.fileno()).st_size
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def is_graph_model_json(doc: object) -> bool:
    """Whether a parsed model.json is a graph model.

    Converters since 1.x write ``format: "graph-model"``; some third-party tools
    omit ``format``, but a graph topology is a GraphDef (``node`` / ``versions``),
    which no layers topology (``class_name`` / ``config``) has.
    """
    if not isinstance(doc, dict):
        return False
    if doc.get(wf.FORMAT) == wf.GRAPH_MODEL_FORMAT:
        return True
    topology = doc.get(wf.MODEL_TOPOLOGY)
    return isinstance(topology, dict) and ("node" in topology or "versions" in topology)


def _model_json_format(path: str) -> str:
    with open(path, "rb") as f:
        doc = jsonio.loads(f.read(), path)
    return rq.TFJS_GRAPH_MODEL if is_graph_model_json(doc) else rq.TFJS_LAYERS_MODEL


def check_regular_file(path: str, what: str, directory_ok: bool = False) -> None:
    """Refuses FIFOs, devices and sockets (reading them blocks or never ends).

    Raises:
      InvalidModelError: ``path`` is missing, or neither a regular file nor (when
        ``directory_ok``) a directory.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InvalidModelError("%s: no such file or directory" % what) from None
    except OSError as e:
        raise InvalidModelError("%s: cannot stat: %s" % (what, e.strerror)) from None
    if stat.S_ISREG(mode) or (directory_ok and stat.S_ISDIR(mode)):
        return
    kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or
            stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode) else
            "a directory" if stat.S_ISDIR(mode) else "not a regular file")
    raise InvalidModelError("%s: is %s; want a regular file%s" % (
        what, kind, " or a directory" if directory_ok else ""))


def detect_input_format(path: str) -> str:
    """Returns the input format name of ``path``.

    Raises:
      InvalidModelError: ``path`` does not exist or is no known model format.
    """
    check_regular_file(path, path, directory_ok=True)
    if os.path.isdir(path):
        names = set(os.listdir(path))
        if wf.MODEL_JSON in names:
            return _model_json_format(os.path.join(path, wf.MODEL_JSON))
        if "tfhub_module.pb" in names:
            return rq.TF_HUB
        if "saved_model.pb" in names or "saved_model.pbtxt" in names:
            if os.path.exists(os.path.join(path, "keras_metadata.pb")):
                return rq.KERAS_SAVED_MODEL
            return rq.TF_SAVED_MODEL
        raise InvalidModelError("%s: directory holds no model.json, saved_model.pb or "
                                "tfhub_module.pb; cannot tell its format" % path)
    if _is_hdf5(path):
        return rq.KERAS
    if zipfile.is_zipfile(path):
        return rq.KERAS_KERAS
    if path.endswith(".json"):
        return _model_json_format(path)
    if path.endswith(".pb"):
        return rq.TF_FROZEN_MODEL
    raise InvalidModelError("%s: not an HDF5 file, .keras archive, model.json or .pb; pass "
                            "--input_format" % path)
