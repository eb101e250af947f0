"""Transforms of layers models: (de)quantization, grouping by layer, metadata.

Each is a pure function LayersModel -> LayersModel.
"""

from typing import Dict, Optional, Sequence, Tuple

from converter import jsonio
from converter.errors import InvalidModelError
from converter.model import LayersModel
from converter.weights import quantize


def dequantize(model: LayersModel) -> LayersModel:
    """Replaces quantized tensors by the float values TF.js reconstructs."""
    if not any(t.quantization for t in model.tensors()):
        return model
    return model.replace(groups=tuple([quantize.dequantize_tensor(t) for t in g]
                                      for g in model.groups))


def quantize_weights(model: LayersModel,
                     patterns_by_dtype: Dict[str, Optional[Tuple[str, ...]]],
                     where: Optional[str] = None) -> LayersModel:
    """Quantizes the float32 weights chosen by ``patterns_by_dtype``."""
    groups = quantize.quantize_groups(model.groups, patterns_by_dtype, where)
    return model.replace(groups=tuple(groups))


def split_by_layer(model: LayersModel) -> LayersModel:
    """One weight group per top-level layer, in order of first appearance.

    A layer without weights gets no group. Weights whose layer is unknown are
    grouped by the first component of their name.
    """
    order = []
    by_layer: Dict[str, list] = {}
    for tensor in model.tensors():
        layer = model.layer_of.get(tensor.name) or tensor.name.split("/")[0]
        if layer not in by_layer:
            by_layer[layer] = []
            order.append(layer)
        by_layer[layer].append(tensor)
    return model.replace(groups=tuple(by_layer[name] for name in order))


def merge_groups(model: LayersModel) -> LayersModel:
    """All weights in one group (a re-shard of a split model without the split flag)."""
    if len(model.groups) <= 1:
        return model
    return model.replace(groups=(model.tensors(),))


def load_metadata(entries: Sequence[Tuple[str, str]]) -> Dict[str, object]:
    """Reads ``(key, json_path)`` pairs into a ``userDefinedMetadata`` dict."""
    from converter.readers.detect import check_regular_file
    out = {}
    for key, path in entries:
        try:
            check_regular_file(path, "metadata file %s (key %r)" % (path, key))
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise InvalidModelError("metadata file %s (key %r): no such file" % (path, key)) from None
        except OSError as e:
            raise InvalidModelError("metadata file %s (key %r): cannot read: %s"
                                    % (path, key, e.strerror)) from None
        out[key] = jsonio.loads(data, "metadata file %s (key %r)" % (path, key))
    return out


def add_metadata(model: LayersModel, metadata: Dict[str, object]) -> LayersModel:
    """Merges ``metadata`` into the model's (new keys win)."""
    if not metadata:
        return model
    merged = dict(model.user_metadata)
    merged.update(metadata)
    return model.replace(user_metadata=merged)
