"""Writes a GraphModel as a TF.js graph model: model.json plus one sharded weight group.

Constants are streamed out of the GraphDef into the shards one at a time (their
payloads cleared as they go), then the GraphDef, holding only dtypes and shapes
for its constants, is written as protobuf JSON.
"""

from typing import Any, Dict

from converter.graph.model import GraphModel
from converter.graph.weights import stream_weights
from converter.weights import format as wf
from converter.weights.writer import write_weight_stream
from converter.writers.model_json import CONVERTED_BY, write_model_json


def _proto_json(message) -> Dict[str, Any]:
    from google.protobuf import json_format
    return json_format.MessageToDict(message)


def graph_model_json(model: GraphModel, manifest) -> Dict[str, Any]:
    """The model.json document of ``model`` (constants already cleared)."""
    doc: Dict[str, Any] = {
        wf.FORMAT: wf.GRAPH_MODEL_FORMAT,
        wf.GENERATED_BY: model.generated_by,
        wf.CONVERTED_BY: CONVERTED_BY,
        wf.SIGNATURE: {
            "inputs": {i.key: i.to_json() for i in model.inputs},
            "outputs": {o.key: o.to_json() for o in model.outputs},
        },
        wf.MODEL_TOPOLOGY: _proto_json(model.graph_def),
        wf.WEIGHTS_MANIFEST: manifest,
    }
    metadata = dict(model.user_metadata)
    if model.structured_output_keys is not None:
        metadata["structuredOutputKeys"] = list(model.structured_output_keys)
    if metadata:
        doc[wf.USER_DEFINED_METADATA] = metadata
    if model.initializer is not None:
        doc[wf.MODEL_INITIALIZER] = _proto_json(model.initializer)
        doc[wf.INITIALIZER_SIGNATURE] = {
            "outputs": {o.key: o.to_json() for o in model.initializer_outputs}}
    return doc


def write_tfjs_graph(model: GraphModel, directory: str,
                     shard_size: int = wf.DEFAULT_SHARD_SIZE_BYTES,
                     content_hash: bool = False) -> int:
    """Writes ``model`` into the (empty) ``directory``; returns the number of weights.
    ``content_hash`` puts each shard's content hash in its name.

    The model's GraphDefs are consumed: their Const payloads are cleared.
    """
    group = write_weight_stream(stream_weights(model), directory, shard_size,
                                content_hash=content_hash)
    write_model_json(graph_model_json(model, [group]), directory)
    return len(group[wf.WEIGHTS])


def write_tfjs_graph_document(doc: Dict[str, Any], tensors, metadata: Dict[str, Any],
                              directory: str, shard_size: int = wf.DEFAULT_SHARD_SIZE_BYTES,
                              content_hash: bool = False) -> None:
    """Writes a read graph model again with new weights (re-shard / re-quantize).

    Every key of ``doc`` but ``weightsManifest`` is kept as read (topology,
    signature, initializer, ``convertedBy``); ``metadata`` entries are merged
    into ``userDefinedMetadata``. ``tensors`` become one weight group.
    """
    from converter.weights.writer import write_weight_groups
    manifest = write_weight_groups([list(tensors)], directory, shard_size, content_hash)
    out = dict(doc)
    out[wf.WEIGHTS_MANIFEST] = manifest
    if metadata:
        merged = dict(out.get(wf.USER_DEFINED_METADATA) or {})
        merged.update(metadata)
        out[wf.USER_DEFINED_METADATA] = merged
    write_model_json(out, directory)
