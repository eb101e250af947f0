"""Writes a LayersModel as a TF.js layers model: model.json plus weight shards."""

from typing import Any, Dict

from converter.model import LayersModel
from converter.weights import format as wf
from converter.weights.writer import write_weight_groups
from converter.writers.model_json import CONVERTED_BY, write_model_json


def layers_model_json(model: LayersModel, manifest) -> Dict[str, Any]:
    """The model.json document of ``model`` given its weights manifest."""
    doc = {
        wf.FORMAT: wf.LAYERS_MODEL_FORMAT,
        wf.GENERATED_BY: model.generated_by,
        wf.CONVERTED_BY: CONVERTED_BY,
        wf.MODEL_TOPOLOGY: model.topology,
        wf.WEIGHTS_MANIFEST: manifest,
    }
    if model.user_metadata:
        doc[wf.USER_DEFINED_METADATA] = model.user_metadata
    if model.training_config is not None:
        doc[wf.TRAINING_CONFIG] = model.training_config
    return doc


def write_tfjs_layers(model: LayersModel, directory: str,
                      shard_size: int = wf.DEFAULT_SHARD_SIZE_BYTES,
                      content_hash: bool = False) -> None:
    """Writes ``model`` into the (empty) ``directory``; ``content_hash`` puts each
    shard's content hash in its name."""
    manifest = write_weight_groups(model.groups, directory, shard_size, content_hash)
    write_model_json(layers_model_json(model, manifest), directory)
