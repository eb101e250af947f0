"""A mutable, indexed copy of a GraphDef that the optimization passes edit.

Each pass copies the caller's GraphDef into a ``GraphEditor``, rewrites nodes
in place, and returns ``editor.to_graph_def()``: the caller's proto is never
mutated. Names are the GraphDef's own: ``node``, ``node:1``, ``^node``.

TensorFlow is imported lazily (only graph transforms may import it).
"""

import collections
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np


def parse_input(text: str) -> Tuple[str, int, bool]:
    """Splits an input reference into ``(node name, output index, is control)``."""
    if text.startswith("^"):
        return text[1:], -1, True
    name, _, index = text.partition(":")
    return name, int(index) if index else 0, False


def to_ndarray(tensor_proto) -> np.ndarray:
    """The numpy value of a TensorProto."""
    from tensorflow.python.framework import tensor_util  # pylint: disable=import-outside-toplevel
    return tensor_util.MakeNdarray(tensor_proto)


class GraphEditor:
    """Nodes by name, in a stable order, plus the consumers of every node.

    Attributes:
      protected: node names that must keep their name and value (graph outputs).
    """

    def __init__(self, graph_def, protected: Iterable[str] = ()):
        from tensorflow.core.framework import graph_pb2  # pylint: disable=import-outside-toplevel
        # pylint: disable-next=import-outside-toplevel
        from tensorflow.core.framework import node_def_pb2
        self._node_def = node_def_pb2.NodeDef
        self._template = graph_pb2.GraphDef()
        self._template.CopyFrom(graph_def)
        del self._template.node[:]
        self._nodes: Dict[str, object] = collections.OrderedDict()
        for node in graph_def.node:
            copy = self._node_def()
            copy.CopyFrom(node)
            self._nodes[node.name] = copy
        self.protected: Set[str] = {parse_input(n)[0] for n in protected}
        self._consumers: Dict[str, List[str]] = {}
        self._reindex()

    # -- reading --------------------------------------------------------------------

    def __contains__(self, name: str) -> bool:
        return name in self._nodes

    def node(self, name: str):
        """The NodeDef named ``name`` (KeyError if absent)."""
        return self._nodes[name]

    def nodes(self) -> List[object]:
        """A snapshot list of the nodes, in graph order."""
        return list(self._nodes.values())

    def consumers(self, name: str) -> List[str]:
        """Names of the nodes that read any output of ``name`` (data or control)."""
        return list(self._consumers.get(name, ()))

    def sole_data_consumer(self, name: str):
        """The one node reading ``name`` through a data edge, if that is its only reader.

        Returns None when ``name`` is protected (a graph output), has several
        readers, a control-edge reader, or is read more than once by its reader.
        """
        if name in self.protected:
            return None
        readers = self._consumers.get(name, ())
        if len(readers) != 1:
            return None
        reader = self._nodes[readers[0]]
        refs = [parse_input(i) for i in reader.input if parse_input(i)[0] == name]
        if len(refs) != 1 or refs[0][2] or refs[0][1] != 0:
            return None
        return reader

    def const_value(self, text: str) -> Optional[np.ndarray]:
        """The value of input ``text`` if it is output 0 of a Const node, else None."""
        name, index, control = parse_input(text)
        node = self._nodes.get(name)
        if node is None or control or index != 0 or node.op != "Const":
            return None
        return to_ndarray(node.attr["value"].tensor)

    @staticmethod
    def data_inputs(node) -> List[str]:
        """The node's data inputs, in order."""
        return [i for i in node.input if not i.startswith("^")]

    @staticmethod
    def control_inputs(node) -> List[str]:
        """The node's control inputs (``^name``), in order."""
        return [i for i in node.input if i.startswith("^")]

    def unique_name(self, base: str) -> str:
        """``base``, or ``base_<n>`` if a node already has that name."""
        if base not in self._nodes:
            return base
        n = 1
        while "%s_%d" % (base, n) in self._nodes:
            n += 1
        return "%s_%d" % (base, n)

    # -- editing --------------------------------------------------------------------

    def new_node(self, op: str, name: str, inputs: Sequence[str] = (), device: str = ""):
        """A fresh NodeDef (not yet in the graph; ``put`` it)."""
        node = self._node_def()
        node.op = op
        node.name = name
        node.input.extend(inputs)
        if device:
            node.device = device
        return node

    def add_const(self, base_name: str, value: np.ndarray, like: Optional[str] = None) -> str:
        """Adds a Const node holding ``value``; returns its (unique) name.

        ``like`` names the input the value derives from (usually a Const): the
        new node copies its device and control inputs, which is what keeps a
        constant inside a lowered while loop's frame.
        """
        # pylint: disable-next=import-outside-toplevel
        from tensorflow.python.framework import tensor_util
        from tensorflow.python.framework import dtypes  # pylint: disable=import-outside-toplevel
        name = self.unique_name(base_name)
        source = self._nodes.get(parse_input(like)[0]) if like else None
        node = self.new_node("Const", name,
                             self.control_inputs(source) if source is not None else (),
                             source.device if source is not None else "")
        value = np.asarray(value)
        node.attr["dtype"].type = dtypes.as_dtype(value.dtype).as_datatype_enum
        node.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(value))
        self.put(node)
        return name

    def put(self, node) -> None:
        """Adds ``node``, or replaces the node of the same name (keeping its position)."""
        old = self._nodes.get(node.name)
        if old is not None:
            self._unlink(old)
        self._nodes[node.name] = node
        self._link(node)

    def remove(self, name: str) -> None:
        """Deletes a node; its readers must have been rewired first."""
        node = self._nodes.pop(name)
        self._unlink(node)

    def replace_inputs(self, node, inputs: Sequence[str]) -> None:
        """Sets the inputs of an existing node, keeping the consumer index right."""
        self._unlink(node)
        del node.input[:]
        node.input.extend(inputs)
        self._link(node)

    def to_graph_def(self):
        """A new GraphDef with the current nodes, library and versions."""
        out = type(self._template)()
        out.CopyFrom(self._template)
        for node in self._nodes.values():
            out.node.add().CopyFrom(node)
        return out

    # -- internals ------------------------------------------------------------------

    def _reindex(self) -> None:
        self._consumers = {}
        for node in self._nodes.values():
            self._link(node)

    def _link(self, node) -> None:
        for text in node.input:
            self._consumers.setdefault(parse_input(text)[0], []).append(node.name)

    def _unlink(self, node) -> None:
        for text in node.input:
            readers = self._consumers.get(parse_input(text)[0])
            if readers and node.name in readers:
                readers.remove(node.name)


def dtype_enum(name: str) -> int:
    """The DataType enum of a numpy/TF dtype name, e.g. ``float32``."""
    from tensorflow.python.framework import dtypes  # pylint: disable=import-outside-toplevel
    return dtypes.as_dtype(name).as_datatype_enum


def copy_attrs(src, dst, names: Iterable[str]) -> None:
    """Copies the listed attrs that ``src`` has onto ``dst``."""
    for key in names:
        if key in src.attr:
            dst.attr[key].CopyFrom(src.attr[key])


def set_string_list(node, key: str, values: Sequence[str]) -> None:
    """Sets a list(string) attr."""
    node.attr[key].list.Clear()
    node.attr[key].list.s.extend(v.encode("utf-8") for v in values)


def string_list(node, key: str) -> List[str]:
    """Reads a list(string) attr (empty when absent)."""
    if key not in node.attr:
        return []
    return [v.decode("utf-8") for v in node.attr[key].list.s]


def static_shapes(graph_def) -> Dict[str, Optional[Tuple[Optional[int], ...]]]:
    """Static output-0 shapes of every node, by TensorFlow shape inference.

    Returns ``{node name: tuple of dims (None = unknown) or None (unknown rank)}``;
    an empty dict when the graph does not import (e.g. it holds TF.js-only ops).
    """
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except (ValueError, TypeError, tf.errors.OpError):
        return {}
    shapes = {}
    for op in graph.get_operations():
        if not op.outputs:
            continue
        shape = op.outputs[0].shape
        shapes[op.name] = None if shape.rank is None else tuple(shape.as_list())
    return shapes


def attr_type(node, key: str = "T") -> int:
    """A type attr's DataType enum, 0 when absent (never inserts the key)."""
    return node.attr[key].type if key in node.attr else 0


def attr_s(node, key: str, default: bytes = b"") -> bytes:
    """A string attr, ``default`` when absent (never inserts the key)."""
    return node.attr[key].s if key in node.attr else default


def attr_b(node, key: str, default: bool = False) -> bool:
    """A bool attr, ``default`` when absent (never inserts the key)."""
    return node.attr[key].b if key in node.attr else default


def attr_f(node, key: str, default: float) -> float:
    """A float attr, ``default`` when absent (never inserts the key)."""
    return node.attr[key].f if key in node.attr else default
