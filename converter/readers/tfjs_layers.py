"""Reads a TF.js layers model (model.json + shards) into a LayersModel."""

import os

from converter.errors import InvalidModelError
from converter.model import LayersModel
from converter.readers.tfjs_topology import check_topology
from converter.weights import format as wf
from converter.weights.reader import read_model_json, read_weight_groups


def model_json_path(path: str) -> str:
    """``path`` itself, or its model.json when ``path`` is a directory."""
    return os.path.join(path, wf.MODEL_JSON) if os.path.isdir(path) else path


def read_tfjs_layers(path: str) -> LayersModel:
    """Reads the layers model at ``path`` (model.json or its directory).

    Quantized weights stay quantized (see ``quantize.dequantize_tensor``), so a
    reshard without new quantization is lossless.

    Raises:
      InvalidModelError: model.json is missing, not JSON, not a layers model, or
        lacks ``modelTopology``/``weightsManifest``.
      InvalidWeightsError: the manifest or shards are inconsistent.
      UnsupportedLayerError: a layer TF.js cannot run (``tfjs_topology``).
    """
    json_path = model_json_path(path)
    doc = read_model_json(json_path)
    fmt = doc.get(wf.FORMAT)
    if fmt is not None and fmt != wf.LAYERS_MODEL_FORMAT:
        raise InvalidModelError("%s: format is %r; want %r (a graph model cannot be read as a "
                                "layers model)" % (json_path, fmt, wf.LAYERS_MODEL_FORMAT))
    for key in (wf.MODEL_TOPOLOGY, wf.WEIGHTS_MANIFEST):
        if key not in doc:
            raise InvalidModelError("%s: missing key %r" % (json_path, key))
    topology = doc[wf.MODEL_TOPOLOGY]
    if topology is not None and not isinstance(topology, dict):
        raise InvalidModelError("%s: modelTopology is a %s; want an object or null"
                                % (json_path, type(topology).__name__))
    check_topology(topology, json_path)
    metadata = doc.get(wf.USER_DEFINED_METADATA) or {}
    if not isinstance(metadata, dict):
        raise InvalidModelError("%s: userDefinedMetadata is a %s; want an object"
                                % (json_path, type(metadata).__name__))
    groups = read_weight_groups(doc[wf.WEIGHTS_MANIFEST], os.path.dirname(json_path) or ".",
                                json_path)
    generated_by = doc.get(wf.GENERATED_BY)
    return LayersModel(
        topology=topology,
        groups=tuple(groups),
        generated_by=generated_by if isinstance(generated_by, str) else None,
        user_metadata=metadata,
        layer_of={t.name: t.name.split("/")[0] for g in groups for t in g},
        training_config=doc.get(wf.TRAINING_CONFIG),
    )
