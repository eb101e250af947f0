"""The in-memory graph model every graph reader produces and the graph writer consumes.

A graph model is a frozen GraphDef plus its signature. Constants stay inside the
GraphDef's ``Const`` nodes until the writer streams them into weight shards one
at a time, so a large model is never held twice. The GraphDef is a protobuf
message (TensorFlow's ``GraphDef``); this module itself imports no TensorFlow.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Tuple


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One signature entry, written as ``{name, dtype, tensorShape[, resourceId]}``.

    Attributes:
      key: the signature key (``serving_default``'s input/output name).
      name: the graph tensor, ``node:index``.
      dtype: the DataType enum name, e.g. ``DT_FLOAT``.
      shape: dims (-1 unknown), or ``None`` for unknown rank.
      resource_id: pairs a resource input with the initializer output that
        creates it (hash tables); ``None`` for ordinary tensors.
    """

    key: str
    name: str
    dtype: str
    shape: Optional[Tuple[int, ...]]
    resource_id: Optional[str] = None

    @property
    def node(self) -> str:
        return self.name.split(":")[0].lstrip("^")

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.shape is None:
            out["tensorShape"] = {"unknownRank": True}
        else:
            out["tensorShape"] = {"dim": [{"size": str(d)} for d in self.shape]} if self.shape else {}
        if self.resource_id is not None:
            out["resourceId"] = self.resource_id
        return out


@dataclasses.dataclass(frozen=True)
class GraphModel:
    """A frozen graph and everything model.json says about it.

    Attributes:
      graph_def: the GraphDef (with its function library), Const payloads inline.
      inputs: signature inputs in key order (resource inputs carry a resource_id).
      outputs: signature outputs in key order.
      initializer: GraphDef that creates and fills resources (hash tables), or None.
      initializer_outputs: its outputs, each with the resource_id of the input it feeds.
      structured_output_keys: ``userDefinedMetadata.structuredOutputKeys``, or None.
      generated_by: ``generatedBy`` (the TensorFlow version that wrote the source).
      user_metadata: ``userDefinedMetadata`` entries from ``--metadata``.
      quantization: ``{const name: storage dtype}`` for the weights to quantize.
      source: the input path, for messages.
    """

    graph_def: Any
    inputs: Tuple[TensorInfo, ...]
    outputs: Tuple[TensorInfo, ...]
    initializer: Any = None
    initializer_outputs: Tuple[TensorInfo, ...] = ()
    structured_output_keys: Optional[List[str]] = None
    generated_by: Optional[str] = None
    user_metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)
    quantization: Dict[str, str] = dataclasses.field(default_factory=dict)
    source: Optional[str] = None

    def replace(self, **changes) -> "GraphModel":
        return dataclasses.replace(self, **changes)

    def graphs(self) -> List[Tuple[str, Any]]:
        """``(label, GraphDef)`` of the main graph and the initializer, if any."""
        out = [("graph", self.graph_def)]
        if self.initializer is not None:
            out.append(("initializer", self.initializer))
        return out
