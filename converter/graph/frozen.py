"""Reads a frozen GraphDef (.pb) with ``--output_node_names`` into a GraphModel.

The signature's outputs are the named nodes' first outputs; its inputs are the
Placeholders those outputs depend on, keyed by node name.
"""

from typing import Optional

from converter.errors import InvalidModelError, UsageError
from converter.graph.model import GraphModel


def read_frozen_model(path: str, output_node_names: Optional[str]) -> GraphModel:
    """Loads the frozen graph at ``path``.

    Raises:
      UsageError: ``output_node_names`` is missing or names no node.
      InvalidModelError: the file is not a GraphDef TensorFlow can import.
    """
    names = [n.strip() for n in (output_node_names or "").split(",") if n.strip()]
    if not names:
        raise UsageError("--input_format tf_frozen_model needs --output_node_names "
                         "(comma-separated output nodes of %s)" % path)
    import tensorflow as tf
    from converter.graph.saved_model import tensor_info
    from converter.graph import prune
    from google.protobuf.message import DecodeError
    graph_def = tf.compat.v1.GraphDef()
    try:
        with open(path, "rb") as f:
            graph_def.ParseFromString(f.read())
    except OSError as e:
        raise InvalidModelError("%s: cannot read: %s" % (path, e.strerror)) from None
    except DecodeError as e:
        raise InvalidModelError("%s: not a binary GraphDef (%s)" % (path, e)) from None
    nodes = {n.name: n for n in graph_def.node}
    missing = [n for n in names if n.split(":")[0] not in nodes]
    if missing:
        raise UsageError("%s: --output_node_names %s name no node of the graph"
                         % (path, ", ".join(missing)))
    graph = tf.Graph()
    with graph.as_default():
        try:
            tf.graph_util.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as e:
            raise InvalidModelError("%s: TensorFlow cannot import this GraphDef: %s"
                                    % (path, str(e).splitlines()[0])) from None
    outputs = []
    for name in names:
        tensor_name = name if ":" in name else name + ":0"
        outputs.append(tensor_info(name.split(":")[0], graph.get_tensor_by_name(tensor_name)))
    # Placeholders the outputs depend on become the signature inputs.
    needed, stack = set(), [o.node for o in outputs]
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        stack.extend(prune.input_node(i) for i in nodes[name].input)
    inputs = [tensor_info(n.name, graph.get_tensor_by_name(n.name + ":0"))
              for n in graph_def.node if n.op == "Placeholder" and n.name in needed]
    return GraphModel(graph_def=graph_def, inputs=tuple(sorted(inputs, key=lambda i: i.key)),
                      outputs=tuple(outputs), generated_by=tf.__version__, source=path)
