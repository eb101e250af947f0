"""JSON from untrusted files: one-line errors and a nesting limit.

``json.loads`` raises RecursionError on deep nesting, and code walking a parsed
config recursively can hit it later; so every JSON the converter reads goes
through ``loads``, which refuses documents nested deeper than ``MAX_DEPTH``
(Keras configs of nested models are a few dozen levels deep).
"""

import json
from typing import Any, Union

from converter.errors import InvalidModelError

MAX_DEPTH = 256


def loads(data: Union[str, bytes], where: str) -> Any:
    """Parses ``data``; ``where`` starts the message ("m.h5: attribute 'model_config'").

    Raises:
      InvalidModelError: not UTF-8 JSON, or nested deeper than MAX_DEPTH.
    """
    try:
        doc = json.loads(data)
    except RecursionError:
        raise InvalidModelError("%s: JSON nested deeper than %d levels" % (where, MAX_DEPTH)) \
            from None
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidModelError("%s: not valid JSON (%s)"
                                % (where, str(e).splitlines()[0][:200])) from None
    stack = [(doc, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidModelError("%s: JSON nested deeper than %d levels" % (where, MAX_DEPTH))
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values() if isinstance(v, (dict, list)))
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value if isinstance(v, (dict, list)))
    return doc
