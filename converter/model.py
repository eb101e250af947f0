"""The framework-free in-memory model every reader produces and every writer consumes.

A model is a topology (a JSON-compatible dict, or ``None`` for weights-only input)
plus ordered groups of named tensors. Tensors hold numpy arrays; nothing here
imports TensorFlow.
"""

import dataclasses
from typing import Any, Dict, List, Optional, Tuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class Quantization:
    """How a tensor's stored values map back to its logical dtype.

    Attributes:
      dtype: storage dtype name: ``uint8``, ``uint16`` (affine) or ``float16``.
      min: affine offset (``value = q * scale + min``); ``None`` for float16.
      scale: affine step; ``None`` for float16.
    """

    dtype: str
    min: Optional[float] = None
    scale: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One named weight.

    Attributes:
      name: unique weight name, e.g. ``dense/kernel``.
      data: the values. For an unquantized tensor, a numpy array of the logical
        dtype (``float32``, ``int32``, ``bool``, ``complex64``; ``object`` holding
        ``bytes`` for strings) or of a wider dtype that the writer narrows. For a
        quantized tensor, the stored values (``uint8``/``uint16``/``float16``).
      dtype: the logical TF.js dtype name (``float32``, ``int32``, ``bool``,
        ``string``, ``complex64``).
      quantization: set when ``data`` holds quantized storage values.
    """

    name: str
    data: np.ndarray
    dtype: str
    quantization: Optional[Quantization] = None

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(int(d) for d in self.data.shape)


WeightGroup = List[Tensor]


@dataclasses.dataclass(frozen=True)
class LayersModel:
    """A Keras-style layers model, the unit of the layers path.

    Attributes:
      topology: the ``modelTopology`` dict written to ``model.json``
        (``{"class_name": ..., "config": ...}`` under ``model_config`` plus
        ``keras_version``/``backend``), already in the form TF.js accepts; ``None``
        for a weights-only source.
      groups: ordered weight groups; each becomes one set of shard files.
      generated_by: value of ``generatedBy`` (e.g. ``keras v3.15.1``) or ``None``.
      user_metadata: value of ``userDefinedMetadata`` (``{}`` for none).
      layer_of: maps a weight name to its top-level layer name; used to split
        weights by layer. Empty when unknown.
      training_config: top-level ``trainingConfig`` of a TF.js-saved model, kept
        as is; ``None`` when absent.
    """

    topology: Optional[Dict[str, Any]]
    groups: Tuple[WeightGroup, ...]
    generated_by: Optional[str] = None
    user_metadata: Dict[str, Any] = dataclasses.field(default_factory=dict)
    layer_of: Dict[str, str] = dataclasses.field(default_factory=dict)
    training_config: Optional[Dict[str, Any]] = None

    def tensors(self) -> List[Tensor]:
        """All tensors in manifest order."""
        return [t for group in self.groups for t in group]

    def replace(self, **changes) -> "LayersModel":
        return dataclasses.replace(self, **changes)
