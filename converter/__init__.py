"""TF/Keras → TensorFlow.js converter: the Python core of tfjs_rules."""

__version__ = "0.1.0"


def convert(input_path, output_path, **options):
    """Converts a model; see converter.api.convert."""
    from converter.api import convert as _convert
    return _convert(input_path, output_path, **options)
