"""Writes model.json deterministically: sorted keys, no NaN, UTF-8, no paths or times."""

import json
import os
from typing import Any, Dict

from converter import __version__
from converter.errors import InvalidModelError
from converter.weights import format as wf

CONVERTED_BY = "tfjs_rules converter v%s" % __version__


def dumps(doc: Dict[str, Any]) -> bytes:
    """Serializes a model.json document; the same document gives the same bytes."""
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False,
                          ensure_ascii=False)
    except ValueError as e:
        # JSON.parse in the browser rejects NaN/Infinity, so never write them.
        raise InvalidModelError("model.json would hold a non-finite number (%s); TF.js cannot "
                                "parse NaN or Infinity" % e) from None
    return text.encode("utf-8")


def write_model_json(doc: Dict[str, Any], directory: str) -> str:
    path = os.path.join(directory, wf.MODEL_JSON)
    with open(path, "wb") as f:
        f.write(dumps(doc))
    return path
