"""The converter's one error hierarchy.

Every failure the converter reports on purpose is a ``ConversionError``. The CLI
prints ``str(error)`` as one line and exits with ``error.exit_code``: 2 for usage
errors, 1 for everything else. Messages say what went wrong, where (file, layer,
tensor, node), what was expected and what was found, and the fix when known.
"""


# Longest message str() gives; a library's message quoted in ours (Keras's
# "Exception encountered when calling ..." blocks run to kilobytes) is cut there.
MAX_MESSAGE_CHARS = 2000


class ConversionError(Exception):
    """Base class of every error the converter raises on purpose.

    ``str()`` is always one line: line breaks in the message (a quoted library
    error spans several) become spaces, runs of blanks one space, and the
    whole is cut at ``MAX_MESSAGE_CHARS``.
    """

    exit_code = 1

    def __str__(self) -> str:
        text = " ".join(super().__str__().split())
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[:MAX_MESSAGE_CHARS - 3].rstrip() + "..."
        return text


class UsageError(ConversionError):
    """Bad flags or arguments: wrong format pair, conflicting options, bad values."""

    exit_code = 2


class InvalidModelError(ConversionError):
    """A model file or directory is missing, unreadable or structurally wrong."""


class InvalidWeightsError(ConversionError):
    """Weight data does not match its manifest, or a value cannot be represented."""


class UnsupportedLayerError(ConversionError):
    """A Keras layer TensorFlow.js cannot run (names the layer and its class)."""


class UnsupportedOpError(ConversionError):
    """A graph op TensorFlow.js cannot run (names the op, nodes and counts)."""
