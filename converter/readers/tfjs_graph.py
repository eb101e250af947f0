"""Reads a TF.js graph model (model.json + shards) into a GraphModel.

Accepts what every converter wrote: 1.x (``convertedBy`` "TensorFlow.js
Converter v1.x", sometimes without ``signature``), 2.x-4.x and third-party
tools (no ``format``, no ``signature``, any group/shard layout and file names).
Weights go through ``converter.weights.reader`` (manifest validated before any
allocation, shard paths kept inside the model directory), quantized weights are
dequantized exactly as TF.js does (``quantize.dequantize_tensor``), and each
value is put back into the ``Const`` node of the same name, in the main graph,
the function library (v2 control flow) or the initializer (hash tables), with
the dtype the node declares (TF.js stores int64 constants as int32).

Without a ``signature``, the inputs are the Placeholders and the outputs the
graph's sinks (nodes no other node consumes), which is what TF.js executes.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from converter.errors import InvalidModelError, InvalidWeightsError
from converter.graph.model import GraphModel, TensorInfo
from converter.graph.tensors import PAYLOAD_FIELDS
from converter.model import Tensor
from converter.readers.detect import is_graph_model_json
from converter.weights import format as wf
from converter.weights import quantize
from converter.weights.reader import read_model_json, read_weight_groups

STRUCTURED_OUTPUT_KEYS = "structuredOutputKeys"
# Sinks that are never outputs: they compute nothing TF.js returns.
_NOT_OUTPUTS = ("Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "Assert", "Print",
                "PrintV2", "SaveV2", "RestoreV2")


def model_json_path(path: str) -> str:
    """``path`` itself, or its model.json when ``path`` is a directory."""
    return os.path.join(path, wf.MODEL_JSON) if os.path.isdir(path) else path


def read_graph_document(path: str) -> Tuple[str, Dict[str, Any]]:
    """``(model.json path, parsed document)`` of the graph model at ``path``.

    Raises:
      InvalidModelError: missing, not JSON, not a graph model, or lacking
        ``modelTopology`` / ``weightsManifest``.
    """
    json_path = model_json_path(path)
    doc = read_model_json(json_path)
    if not is_graph_model_json(doc):
        raise InvalidModelError("%s: not a TF.js graph model (format %r and no GraphDef "
                                "modelTopology); want format %r" % (
                                    json_path, doc.get(wf.FORMAT), wf.GRAPH_MODEL_FORMAT))
    for key in (wf.MODEL_TOPOLOGY, wf.WEIGHTS_MANIFEST):
        if key not in doc:
            raise InvalidModelError("%s: missing key %r" % (json_path, key))
    if not isinstance(doc[wf.MODEL_TOPOLOGY], dict):
        raise InvalidModelError("%s: modelTopology is a %s; want a GraphDef object"
                                % (json_path, type(doc[wf.MODEL_TOPOLOGY]).__name__))
    return json_path, doc


def read_graph_weights(json_path: str, doc: Dict[str, Any]) -> List[List[Tensor]]:
    """The stored weight groups (quantized tensors as stored) of a graph model."""
    return read_weight_groups(doc[wf.WEIGHTS_MANIFEST], os.path.dirname(os.path.abspath(json_path)),
                              json_path)


def _check_nodes(value: Any, what: str, json_path: str) -> None:
    """Every node an object with a non-empty string name and op (protobuf's JSON
    parser would accept others as empty nodes)."""
    nodes = [(what + ".node", value.get("node", []))]
    library = value.get("library") or {}
    if not isinstance(library, dict):
        raise InvalidModelError("%s: %s.library is a %s; want an object"
                                % (json_path, what, type(library).__name__))
    functions = library.get("function", [])
    if not isinstance(functions, list):
        raise InvalidModelError("%s: %s.library.function is a %s; want a list"
                                % (json_path, what, type(functions).__name__))
    for i, func in enumerate(functions):
        if not isinstance(func, dict):
            raise InvalidModelError("%s: %s.library.function[%d] is a %s; want an object"
                                    % (json_path, what, i, type(func).__name__))
        nodes.append(("%s.library.function[%d].nodeDef" % (what, i), func.get("nodeDef", [])))
    for where, entries in nodes:
        if not isinstance(entries, list):
            raise InvalidModelError("%s: %s is a %s; want a list"
                                    % (json_path, where, type(entries).__name__))
        for i, node in enumerate(entries):
            if not isinstance(node, dict) or not all(
                    isinstance(node.get(k), str) and node.get(k) for k in ("name", "op")):
                raise InvalidModelError("%s: %s[%d] is not a node with a name and an op"
                                        % (json_path, where, i))


def _parse_graph_def(value: Any, what: str, json_path: str):
    from google.protobuf import json_format
    from tensorflow.core.framework import graph_pb2
    if not isinstance(value, dict):
        raise InvalidModelError("%s: %s is a %s; want a GraphDef object"
                                % (json_path, what, type(value).__name__))
    _check_nodes(value, what, json_path)
    graph_def = graph_pb2.GraphDef()
    try:
        # Third-party tools add keys of their own; TF.js ignores them too.
        json_format.ParseDict(value, graph_def, ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError) as e:
        raise InvalidModelError("%s: %s is not a valid GraphDef: %s"
                                % (json_path, what, e)) from None
    return graph_def


def _dtype_enum(name: Any, where: str) -> int:
    from tensorflow.core.framework import types_pb2
    try:
        return types_pb2.DataType.Value(name)
    except (ValueError, TypeError):
        raise InvalidModelError("%s: dtype %r is not a TensorFlow DataType"
                                % (where, name)) from None


def _shape(tensor_shape: Any, where: str) -> Optional[Tuple[int, ...]]:
    if tensor_shape is None:
        return None
    if not isinstance(tensor_shape, dict):
        raise InvalidModelError("%s: tensorShape is a %s; want an object" % (
            where, type(tensor_shape).__name__))
    if tensor_shape.get("unknownRank"):
        return None
    dims = []
    for d in tensor_shape.get("dim", []):
        try:
            dims.append(int(d.get("size", -1)) if isinstance(d, dict) else int(d))
        except (TypeError, ValueError):
            raise InvalidModelError("%s: tensorShape dim %r is not an integer"
                                    % (where, d)) from None
    return tuple(dims)


def _tensor_infos(entries: Any, what: str, json_path: str) -> Tuple[TensorInfo, ...]:
    if entries is None:
        return ()
    if not isinstance(entries, dict):
        raise InvalidModelError("%s: %s is a %s; want an object" % (
            json_path, what, type(entries).__name__))
    out = []
    for key, entry in entries.items():
        where = "%s: %s %r" % (json_path, what, key)
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidModelError("%s has no tensor name" % where)
        dtype = entry.get("dtype", "DT_FLOAT")
        _dtype_enum(dtype, where)
        resource = entry.get("resourceId")
        out.append(TensorInfo(key, entry["name"], dtype, _shape(entry.get("tensorShape"), where),
                              None if resource is None else str(resource)))
    return tuple(out)


def _all_nodes(graph_def):
    for node in graph_def.node:
        yield node
    for func in graph_def.library.function:
        for node in func.node_def:
            yield node


def _inferred_signature(graph_def, json_path: str) -> Tuple[Tuple[TensorInfo, ...],
                                                            Tuple[TensorInfo, ...]]:
    """Placeholders in, sinks out: what TF.js runs for a model without a signature."""
    from tensorflow.core.framework import types_pb2
    inputs, consumed = [], set()
    for node in graph_def.node:
        for ref in node.input:
            consumed.add(ref.lstrip("^").split(":")[0])
    for node in graph_def.node:
        if node.op == "Placeholder":
            shape = node.attr["shape"].shape if "shape" in node.attr else None
            dims = None if shape is None or shape.unknown_rank else tuple(
                int(d.size) for d in shape.dim)
            inputs.append(TensorInfo(node.name, node.name + ":0",
                                     types_pb2.DataType.Name(node.attr["dtype"].type), dims))
    outputs = []
    for node in graph_def.node:
        if node.name in consumed or node.op in _NOT_OUTPUTS:
            continue
        dtype = "DT_FLOAT"
        for attr in ("T", "dtype", "out_type", "DstT"):
            if attr in node.attr and node.attr[attr].type:
                dtype = types_pb2.DataType.Name(node.attr[attr].type)
                break
        outputs.append(TensorInfo(node.name, node.name + ":0", dtype, None))
    if not outputs:
        raise InvalidModelError("%s: no signature and no sink node to use as an output" % json_path)
    return tuple(inputs), tuple(outputs)


def _fill_const(node, tensor: Tensor, json_path: str) -> None:
    from tensorflow.core.framework import types_pb2
    from tensorflow.python.framework import tensor_util
    where = "%s: Const %s" % (json_path, node.name)
    declared = node.attr["dtype"].type if "dtype" in node.attr else node.attr["value"].tensor.dtype
    if not declared:
        declared = node.attr["value"].tensor.dtype
    data = tensor.data
    want_shape = tuple(int(d.size) for d in node.attr["value"].tensor.tensor_shape.dim)
    if node.attr["value"].tensor.HasField("tensor_shape") and want_shape != tuple(data.shape) \
            and int(np.prod(want_shape, dtype=np.int64)) != data.size:
        raise InvalidWeightsError("%s has shape %s but its weight has shape %s"
                                  % (where, list(want_shape), list(data.shape)))
    name = types_pb2.DataType.Name(declared)
    if name == "DT_STRING":
        values = [bytes(v) for v in data.reshape(-1)]
        proto = tensor_util.make_tensor_proto(values, types_pb2.DT_STRING, list(data.shape))
    else:
        from tensorflow.python.framework import dtypes
        np_dtype = dtypes.as_dtype(declared).as_numpy_dtype
        converted = data.astype(np_dtype)
        if data.dtype.kind in "iu" and np.dtype(np_dtype).kind in "iu" \
                and not np.array_equal(converted.astype(np.int64), data.astype(np.int64)):
            raise InvalidWeightsError("%s: weight values do not fit the declared %s"
                                      % (where, name))
        proto = tensor_util.make_tensor_proto(converted, declared, list(data.shape))
    node.attr["value"].tensor.CopyFrom(proto)


def _fill_consts(graphs, weights: Dict[str, Tensor], json_path: str) -> None:
    for graph_def in graphs:
        for node in _all_nodes(graph_def):
            if node.op != "Const":
                continue
            tensor = weights.get(node.name)
            if tensor is None:
                existing = node.attr["value"].tensor
                inline = any(f.name in PAYLOAD_FIELDS for f, _ in existing.ListFields())
                if inline or any(d.size == 0 for d in existing.tensor_shape.dim):
                    continue  # inlined by the tool that wrote it, or empty
                raise InvalidWeightsError("%s: Const node %r has no weight of that name in "
                                          "weightsManifest" % (json_path, node.name))
            _fill_const(node, tensor, json_path)


def read_tfjs_graph(path: str) -> GraphModel:
    """Reads the graph model at ``path`` (model.json or its directory).

    Returns:
      A GraphModel with every Const payload inline (dequantized as TF.js
      dequantizes), the signature (or one inferred from Placeholders and sinks),
      the initializer and its signature, and ``userDefinedMetadata``.

    Raises:
      InvalidModelError: model.json is malformed or not a graph model.
      InvalidWeightsError: the manifest or shards are inconsistent, or a Const
        has no weight.
    """
    json_path, doc = read_graph_document(path)
    graph_def = _parse_graph_def(doc[wf.MODEL_TOPOLOGY], "modelTopology", json_path)
    initializer = None
    if doc.get(wf.MODEL_INITIALIZER):
        initializer = _parse_graph_def(doc[wf.MODEL_INITIALIZER], "modelInitializer", json_path)
    groups = read_graph_weights(json_path, doc)
    weights = {}
    for group in groups:
        for tensor in group:
            weights[tensor.name] = quantize.dequantize_tensor(tensor, json_path)
    _fill_consts([graph_def] + ([initializer] if initializer is not None else []), weights,
                 json_path)
    del weights, groups
    signature = doc.get(wf.SIGNATURE)
    if isinstance(signature, dict) and signature.get("outputs"):
        inputs = _tensor_infos(signature.get("inputs"), "signature.inputs", json_path)
        outputs = _tensor_infos(signature.get("outputs"), "signature.outputs", json_path)
    else:
        inputs, outputs = _inferred_signature(graph_def, json_path)
    init_outputs: Tuple[TensorInfo, ...] = ()
    init_sig = doc.get(wf.INITIALIZER_SIGNATURE)
    if isinstance(init_sig, dict):
        init_outputs = _tensor_infos(init_sig.get("outputs"), "initializerSignature.outputs",
                                     json_path)
    metadata = doc.get(wf.USER_DEFINED_METADATA) or {}
    if not isinstance(metadata, dict):
        raise InvalidModelError("%s: userDefinedMetadata is a %s; want an object"
                                % (json_path, type(metadata).__name__))
    metadata = dict(metadata)
    structured = metadata.pop(STRUCTURED_OUTPUT_KEYS, None)
    if structured is not None and (not isinstance(structured, list) or
                                   not all(isinstance(k, str) for k in structured)):
        raise InvalidModelError("%s: userDefinedMetadata.structuredOutputKeys is %r; want a "
                                "list of strings" % (json_path, structured))
    return GraphModel(graph_def=graph_def, inputs=inputs, outputs=outputs,
                      initializer=initializer, initializer_outputs=init_outputs,
                      structured_output_keys=structured,
                      generated_by=doc.get(wf.GENERATED_BY), user_metadata=metadata,
                      source=json_path)
