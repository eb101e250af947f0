"""A GraphModel as a TensorFlow SavedModel: the way back from a TF.js graph model.

Two steps:

1. ``to_tensorflow_ops`` rewrites the ops TF.js runs but TensorFlow does not
   have, or has with other semantics, into plain TensorFlow ops that compute
   what TF.js computes: ``_FusedConv2D`` / ``_FusedMatMul`` /
   ``FusedDepthwiseConv2dNative`` (TF.js fuses PReLU, which TensorFlow's fused
   kernels lack, and the last has no TensorFlow kernel) become the convolution or
   matmul followed by ``BiasAdd`` and the activation; ``Prelu`` becomes
   ``Relu(x) + alpha * Minimum(x, 0)`` (exact); ``DepthwiseConv2d`` is
   ``DepthwiseConv2dNative``.
   Any other op TensorFlow does not register is refused, naming the node.
2. ``write_saved_model`` imports the graph as the ``serving_default``
   function itself (a v1-style graph function: no nested call, no automatic
   control dependencies into lowered loops): weights of 256+ elements become
   variables, hash tables of the TF.js initializer become
   ``tf.lookup.StaticHashTable``s restored on load, constants used inside
   lowered loops enter their frames (TF.js ignores frames, TensorFlow does not),
   and the signature is keyed by the model's own input and output names. The
   directory is then made byte-reproducible (``canonicalize_saved_model``).

The SavedModel is also where ``tflite`` and ``onnx`` outputs of a graph model
start (their writers take a SavedModel directory).
"""

import re
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from converter.errors import InvalidModelError, UnsupportedOpError
from converter.graph.model import GraphModel

# Weights at least this large become variables; smaller constants (shapes,
# axes, scalars) stay constants so shape inference and converters see them.
VARIABLE_MIN_ELEMENTS = 256
_FLOAT_ENUMS = (1, 2, 19, 14)  # DT_FLOAT, DT_DOUBLE, DT_HALF, DT_BFLOAT16
_ACTIVATIONS = {"relu": "Relu", "relu6": "Relu6", "elu": "Elu", "sigmoid": "Sigmoid",
                "tanh": "Tanh", "selu": "Selu"}
# Name scope of the imported graph: the variable reads made before the import
# must not take the names of its nodes.
_SCOPE = "graph"


def _unique(name: str, taken: set) -> str:
    candidate, i = name, 1
    while candidate in taken:
        candidate = "%s_%d" % (name, i)
        i += 1
    taken.add(candidate)
    return candidate


class _Rewriter:
    """Rewrites the nodes of one graph (a GraphDef or a FunctionDef's node_def list)."""

    def __init__(self, nodes, where: str):
        self.nodes = nodes
        self.where = where
        self.taken = {n.name for n in nodes}
        self.out: List[Any] = []

    def _new(self, like, name: str, op: str, inputs: Sequence[str], attrs: Dict[str, Any],
             keep_name: bool = False):
        from tensorflow.core.framework import node_def_pb2
        node = node_def_pb2.NodeDef()
        node.name = name if keep_name else _unique(name, self.taken)
        node.op = op
        node.device = like.device
        node.input.extend(inputs)
        for key, value in attrs.items():
            node.attr[key].CopyFrom(value)
        self.out.append(node)
        return node.name

    def _type_attr(self, node):
        # TF.js's own Prelu nodes carry no T: TF.js computes them in float32.
        from tensorflow.core.framework import attr_value_pb2
        if "T" in node.attr:
            return {"T": node.attr["T"]}
        return {"T": attr_value_pb2.AttrValue(type=1)}

    def _activation(self, node, x: str, act: str, args: List[str], name: str, last: bool) -> str:
        from tensorflow.core.framework import attr_value_pb2
        key = act.lower()
        if key in _ACTIVATIONS:
            return self._new(node, name, _ACTIVATIONS[key], [x], self._type_attr(node), last)
        if key == "leakyrelu":
            attrs = self._type_attr(node)
            alpha = node.attr["leakyrelu_alpha"].f if "leakyrelu_alpha" in node.attr else 0.2
            attrs["alpha"] = attr_value_pb2.AttrValue(f=alpha)
            return self._new(node, name, "LeakyRelu", [x], attrs, last)
        if key == "prelu":
            if not args:
                raise UnsupportedOpError("%s: node %r (%s) fuses Prelu without its alpha input"
                                         % (self.where, node.name, node.op))
            return self._prelu(node, x, args.pop(0), name, last)
        raise UnsupportedOpError("%s: node %r (%s) fuses %r, which TF.js does not compute; "
                                 "want BiasAdd and one of Relu, Relu6, Elu, LeakyRelu, Prelu, "
                                 "Sigmoid, Tanh" % (self.where, node.name, node.op, act))

    def _prelu(self, node, x: str, alpha: str, name: str, last: bool) -> str:
        # x < 0 ? alpha * x : x, exactly: Relu(x) + alpha * Minimum(x, 0). (Not
        # Keras's Relu(x) - alpha * Relu(-x): Grappler turns Neg+Relu into
        # _UnaryOpsComposition, which TF.js lacks, on the way back.)
        from tensorflow.core.framework import attr_value_pb2
        from tensorflow.python.framework import tensor_util
        t = self._type_attr(node)
        zero = self._new(node, name + "/zero", "Const", [], {
            "dtype": attr_value_pb2.AttrValue(type=t["T"].type),
            "value": attr_value_pb2.AttrValue(tensor=tensor_util.make_tensor_proto(
                0, dtype=t["T"].type, shape=[]))})
        pos = self._new(node, name + "/relu", "Relu", [x], t)
        neg = self._new(node, name + "/min", "Minimum", [x, zero], t)
        scaled = self._new(node, name + "/mul", "Mul", [alpha, neg], t)
        return self._new(node, name, "AddV2", [pos, scaled], t, last)

    def _unfuse(self, node, base_op: str, base_attrs: Tuple[str, ...]) -> None:
        data = [i for i in node.input if not i.startswith("^")]
        control = [i for i in node.input if i.startswith("^")]
        fused = [op.decode() if isinstance(op, bytes) else op
                 for op in node.attr["fused_ops"].list.s] if "fused_ops" in node.attr else []
        n_base = 2
        args = data[n_base:]
        steps = [op for op in fused]
        attrs = {k: node.attr[k] for k in base_attrs if k in node.attr}
        if not steps:
            self._new(node, node.name, base_op, data[:n_base] + control, attrs, keep_name=True)
            return
        x = self._new(node, node.name + "/" + base_op, base_op, data[:n_base] + control, attrs)
        for i, op in enumerate(steps):
            last = i == len(steps) - 1
            name = node.name if last else "%s/%s" % (node.name, op)
            if op.lower() == "biasadd":
                if not args:
                    raise UnsupportedOpError("%s: node %r (%s) fuses BiasAdd without a bias "
                                             "input" % (self.where, node.name, node.op))
                b_attrs = self._type_attr(node)
                if "data_format" in node.attr and base_op != "MatMul":
                    b_attrs["data_format"] = node.attr["data_format"]
                x = self._new(node, name, "BiasAdd", [x, args.pop(0)], b_attrs, last)
            elif op.lower() in ("fusedbatchnorm", "fusedbatchnormv3"):
                raise UnsupportedOpError(
                    "%s: node %r (%s) fuses %s, which TF.js refuses to run (\"FusedConv2d and "
                    "DepthwiseConv2d with BatchNorm is not supported\")"
                    % (self.where, node.name, node.op, op))
            else:
                x = self._activation(node, x, op, args, name, last)

    def rewrite(self) -> bool:
        changed = False
        from tensorflow.python.framework import op_def_registry
        for node in self.nodes:
            if node.op == "_FusedConv2D":
                self._unfuse(node, "Conv2D", ("T", "strides", "padding", "explicit_paddings",
                                              "data_format", "dilations", "use_cudnn_on_gpu"))
            elif node.op == "FusedDepthwiseConv2dNative":
                self._unfuse(node, "DepthwiseConv2dNative", ("T", "strides", "padding",
                                                             "explicit_paddings", "data_format",
                                                             "dilations"))
            elif node.op == "_FusedMatMul":
                self._unfuse(node, "MatMul", ("T", "transpose_a", "transpose_b"))
            elif node.op == "Prelu":
                data = [i for i in node.input if not i.startswith("^")]
                control = [i for i in node.input if i.startswith("^")]
                if len(data) != 2:
                    raise InvalidModelError("%s: node %r (Prelu) has %d inputs; want x and alpha"
                                            % (self.where, node.name, len(data)))
                self._prelu_node(node, data, control)
            elif node.op == "DepthwiseConv2d":
                copy = self._copy(node)
                copy.op = "DepthwiseConv2dNative"
            else:
                if op_def_registry.get(node.op) is None:
                    raise UnsupportedOpError(
                        "%s: node %r has op %s, which TF.js runs but TensorFlow has no op for; "
                        "it cannot be converted to TensorFlow" % (self.where, node.name, node.op))
                self._copy(node)
                continue
            changed = True
        return changed

    def _prelu_node(self, node, data, control) -> None:
        # Control inputs go on the first op so they still run before the value.
        first = len(self.out)
        self._prelu(node, data[0], data[1], node.name, True)
        self.out[first].input.extend(control)

    def _copy(self, node):
        from tensorflow.core.framework import node_def_pb2
        copy = node_def_pb2.NodeDef()
        copy.CopyFrom(node)
        self.out.append(copy)
        return copy


def _frames(nodes) -> Dict[str, Tuple[str, ...]]:
    """The while-loop frame stack of each node of a lowered (v1) control-flow graph."""
    by_name = {n.name: n for n in nodes}
    frames: Dict[str, Tuple[str, ...]] = {}

    def data_inputs(node):
        return [i.split(":")[0] for i in node.input if not i.startswith("^")]

    pending = list(nodes)
    while pending:
        left = []
        for node in pending:
            inputs = data_inputs(node)
            if node.op == "Merge":
                inputs = [i for i in inputs if by_name.get(i) is None
                          or by_name[i].op != "NextIteration"] or inputs
            known = [frames[i] for i in inputs if i in frames]
            if not inputs:
                controls = [i[1:].split(":")[0] for i in node.input if i.startswith("^")]
                known = [frames[c] for c in controls if c in frames]
                if controls and not known:
                    left.append(node)
                    continue
                frames[node.name] = known[0] if known else ()
                continue
            if not known:
                left.append(node)
                continue
            base = max(known, key=len)
            if node.op == "Enter":
                frame = node.attr["frame_name"].s.decode()
                frames[node.name] = frames.get(inputs[0], base) + (frame,)
            elif node.op == "Exit":
                frames[node.name] = base[:-1]
            else:
                frames[node.name] = base
        if len(left) == len(pending):
            for node in left:  # inputs missing from the graph: TF reports them on import
                frames[node.name] = ()
            break
        pending = left
    return frames


def _constants_into_frames(graph_def) -> None:
    """Feeds constants used inside a lowered loop through constant ``Enter`` nodes.

    TensorFlow's lowered loops take a loop-invariant value into the loop frame
    with ``Enter(is_constant=True)`` (or anchor a body constant on the frame
    with a control input); a plain constant is outside every frame and
    TensorFlow refuses "inputs from different frames". TF.js ignores frames and
    the forward converter drops control inputs, so each constant used inside
    frames gets one chain of constant Enters per frame stack it is used in.
    """
    nodes = list(graph_def.node)
    if not any(n.op == "Enter" for n in nodes):
        return
    from tensorflow.core.framework import node_def_pb2
    frames = _frames(nodes)
    by_name = {n.name: n for n in nodes}
    for node in nodes:  # a NextIteration belongs to the frame of the Merge it feeds
        if node.op == "Merge":
            for ref in node.input:
                src = by_name.get(ref.lstrip("^").split(":")[0])
                if src is not None and src.op == "NextIteration":
                    frames[src.name] = frames.get(node.name, ())
    enters = {n.attr["frame_name"].s.decode(): n for n in nodes if n.op == "Enter"}
    taken = set(by_name)
    chains: Dict[Tuple[str, Tuple[str, ...]], str] = {}
    added = []
    for node in nodes:
        frame = frames.get(node.name, ())
        if not frame or node.op == "Enter":
            continue
        for index, ref in enumerate(node.input):
            name = ref.split(":")[0]
            const = by_name.get(name)
            if ref.startswith("^") or const is None or const.op != "Const" or const.input \
                    or frames.get(name, ()):
                continue
            key = (name, frame)
            if key not in chains:
                value = name
                for depth, frame_name in enumerate(frame):
                    enter = node_def_pb2.NodeDef()
                    enter.name = _unique("%s/enter_%d" % (name, depth), taken)
                    enter.op = "Enter"
                    enter.input.append(value)
                    enter.attr["T"].type = const.attr["dtype"].type
                    enter.attr["frame_name"].s = frame_name.encode()
                    enter.attr["is_constant"].b = True
                    like = enters.get(frame_name)
                    enter.attr["parallel_iterations"].i = (
                        like.attr["parallel_iterations"].i if like is not None
                        and "parallel_iterations" in like.attr else 10)
                    added.append(enter)
                    value = enter.name
                chains[key] = value
            node.input[index] = chains[key] + ref[len(name):]
    graph_def.node.extend(added)


_VALID_NODE_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$")


def _valid_function_node_names(func) -> None:
    """Renames function nodes TensorFlow refuses (TF.js names function constants
    ``<function>/<const>``, and function names start with ``__inference``)."""
    taken = {n.name for n in func.node_def}
    renames = {}
    for node in func.node_def:
        if _VALID_NODE_NAME.match(node.name):
            continue
        fixed = re.sub(r"[^A-Za-z0-9_.\\/>-]", "_", node.name).lstrip("_/>-") or "node"
        renames[node.name] = _unique(fixed, taken)
    if not renames:
        return

    def rename(ref: str) -> str:
        control = ref.startswith("^")
        body = ref[1:] if control else ref
        head, sep, rest = body.partition(":")
        return ("^" if control else "") + renames.get(head, head) + sep + rest

    for node in func.node_def:
        node.name = renames.get(node.name, node.name)
        node.input[:] = [rename(r) for r in node.input]
    for key in list(func.ret):
        func.ret[key] = rename(func.ret[key])
    for key in list(func.control_ret):
        func.control_ret[key] = rename(func.control_ret[key])


def _drop_control_inputs_from_placeholders(graph_def) -> None:
    """Removes every ``^placeholder`` control input of the graph.

    Converters of the 1.x era kept the control edges TensorFlow's function
    inlining adds (``Func/StatefulPartitionedCall/input/_263``, a Const, after
    ``^input``). A Placeholder computes nothing, so the edge orders nothing; but
    importing the graph with the Placeholder's tensor mapped to the signature's
    argument leaves the control edge on the imported, unfed Placeholder, and
    TensorFlow cannot prune the signature out of that graph (UnliftableError).
    """
    placeholders = {"^" + n.name for n in graph_def.node if n.op == "Placeholder"}
    for node in graph_def.node:
        if any(ref in placeholders for ref in node.input):
            kept = [ref for ref in node.input if ref not in placeholders]
            del node.input[:]
            node.input.extend(kept)


def to_tensorflow_ops(model: GraphModel) -> GraphModel:
    """Rewrites the TF.js-only ops of every graph and function into TensorFlow ops.

    Raises:
      UnsupportedOpError: an op with no TensorFlow counterpart (one line, naming
        the node and op).
    """
    where = model.source or "model"
    graph_def = model.graph_def
    rewriter = _Rewriter(list(graph_def.node), where)
    if rewriter.rewrite():
        del graph_def.node[:]
        graph_def.node.extend(rewriter.out)
    _drop_control_inputs_from_placeholders(graph_def)
    _constants_into_frames(graph_def)
    for func in graph_def.library.function:
        rewriter = _Rewriter(list(func.node_def), "%s: function %s" % (where, func.signature.name))
        if rewriter.rewrite():
            del func.node_def[:]
            func.node_def.extend(rewriter.out)
        _valid_function_node_names(func)
    if model.initializer is not None:
        rewriter = _Rewriter(list(model.initializer.node), where + ": modelInitializer")
        rewriter.rewrite()
    return model


def signature_key(key: str) -> str:
    """The SavedModel input name of signature key ``key``.

    TensorFlow names signature inputs by Python-identifier-like argument names,
    so other characters become ``_`` (``input:0`` -> ``input_0``,
    ``tower_0/images`` -> ``tower_0_images``).
    """
    fixed = re.sub(r"[^A-Za-z0-9_]", "_", key)
    return fixed if re.match(r"^[A-Za-z_]", fixed) else "x" + fixed


def _tensor_name(ref: str) -> str:
    return ref if ":" in ref else ref + ":0"


def _table_of(model: GraphModel, resource_id: str, where: str):
    """``(key_dtype, value_dtype, keys, values)`` of the hash table an initializer
    output creates."""
    from tensorflow.python.framework import tensor_util
    init = model.initializer
    output = next((o for o in model.initializer_outputs if o.resource_id == resource_id), None)
    if init is None or output is None:
        raise InvalidModelError("%s: resource input %s has no initializer output with resourceId %s"
                                % (where, resource_id, resource_id))
    nodes = {n.name: n for n in init.node}

    def resolve(ref: str):
        node = nodes.get(ref.lstrip("^").split(":")[0])
        while node is not None and node.op == "Identity":
            node = nodes.get(node.input[0].split(":")[0])
        return node

    table = resolve(output.name)
    if table is None or table.op not in ("HashTableV2", "HashTable"):
        raise UnsupportedOpError("%s: initializer output %s is %s; only hash tables "
                                 "(HashTableV2 + LookupTableImportV2) convert to a SavedModel"
                                 % (where, output.name, table.op if table else "missing"))
    imports = [n for n in init.node if n.op in ("LookupTableImportV2", "LookupTableImport")
               and resolve(n.input[0]) is table]
    if len(imports) != 1:
        raise UnsupportedOpError("%s: hash table %s is filled by %d LookupTableImportV2 nodes; "
                                 "want exactly 1" % (where, table.name, len(imports)))
    arrays = []
    for ref in imports[0].input[1:3]:
        const = resolve(ref)
        if const is None or const.op != "Const":
            raise UnsupportedOpError("%s: hash table %s is filled from %s, not a constant"
                                     % (where, table.name, ref))
        arrays.append(tensor_util.MakeNdarray(const.attr["value"].tensor))
    return table.attr["key_dtype"].type, table.attr["value_dtype"].type, arrays[0], arrays[1]


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _zero(dtype):
    import tensorflow as tf
    return "" if dtype == tf.string else tf.zeros([], dtype)


def write_saved_model(model: GraphModel, directory: str) -> None:
    """Writes ``model`` as a SavedModel into ``directory`` (which may exist, empty).

    The ``serving_default`` signature takes the model's non-resource inputs,
    keyed by their signature keys (made valid TensorFlow names: ``input:0``
    becomes ``input_0``), and returns a dict keyed by the output keys.

    Raises:
      UnsupportedOpError: an op or initializer TensorFlow cannot run.
      InvalidModelError: TensorFlow cannot import the graph.
    """
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util
    from tensorflow.python.ops.op_selector import UnliftableError
    where = model.source or "model"
    model = to_tensorflow_ops(model)
    graph_def = model.graph_def

    variables: Dict[str, tf.Variable] = {}
    for node in graph_def.node:
        if node.op != "Const":
            continue
        proto = node.attr["value"].tensor
        count = int(np.prod([d.size for d in proto.tensor_shape.dim], dtype=np.int64))
        # A constant with (control) inputs sits in a loop frame: a variable read
        # would take it out of the frame.
        if proto.dtype in _FLOAT_ENUMS and count >= VARIABLE_MIN_ELEMENTS and not node.input:
            value = tensor_util.MakeNdarray(proto)
            variables[node.name] = tf.Variable(value, trainable=False,
                                               name=node.name.replace(":", "_"))
            # The import maps this node to the variable; keep a 1-element stub.
            proto.CopyFrom(tensor_util.make_tensor_proto(np.zeros([], value.dtype), proto.dtype))

    tables = {}
    for info in model.inputs:
        if info.resource_id is not None:
            key_dtype, value_dtype, keys, values = _table_of(model, info.resource_id, where)
            kd, vd = tf.as_dtype(key_dtype), tf.as_dtype(value_dtype)
            tables[info.name] = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(keys, kd), tf.constant(values, vd)),
                _zero(vd))
    feeds = [i for i in model.inputs if i.resource_id is None]
    keys = [signature_key(i.key) for i in feeds]
    if len(set(keys)) != len(keys):
        raise InvalidModelError("%s: input keys %s collide as TensorFlow names %s"
                                % (where, [i.key for i in feeds], keys))

    out_keys = [o.key for o in model.outputs]
    specs = []
    for info, key in zip(feeds, keys):
        shape = None if info.shape is None else [None if d < 0 else d for d in info.shape]
        specs.append(tf.TensorSpec(shape, tf.as_dtype(_dtype_enum(info.dtype)), name=key))

    class _Model(tf.Module):
        pass

    root = _Model()
    root.weights = list(variables.values())
    root.tables = list(tables.values())

    # The graph is imported straight into the signature's function (no nested
    # function call: TensorFlow cannot inline a called function holding lowered
    # (v1) control flow, so freezing the SavedModel again would keep the call),
    # and into a v1-style graph: tf.function's automatic control dependencies
    # would tie variable reads and stateful ops into lowered loop frames.
    def serve(*args):
        input_map = {_tensor_name(name): v.read_value() for name, v in variables.items()}
        for name, table in tables.items():
            input_map[_tensor_name(name)] = tf.identity(table.resource_handle)
        for info, arg in zip(feeds, args):
            input_map[_tensor_name(info.name)] = arg
        results = tf.compat.v1.import_graph_def(
            graph_def, input_map=input_map, name=_SCOPE,
            return_elements=[_tensor_name(o.name) for o in model.outputs])
        return {k: tf.identity(v) for k, v in zip(out_keys, results)}

    try:
        wrapped = tf.compat.v1.wrap_function(serve, specs)
        # prune gives the function its keyword signature (the placeholders' names).
        concrete = wrapped.prune(
            feeds=list(wrapped.graph.inputs[:len(specs)]),
            fetches={k: wrapped.graph.get_tensor_by_name(t.name)
                     for k, t in wrapped.structured_outputs.items()})
    except (ValueError, TypeError, KeyError, tf.errors.OpError, UnliftableError) as e:
        raise InvalidModelError("%s: TensorFlow cannot import the graph: %s"
                                % (where, _first_line(e))) from None
    root.serve = concrete
    try:
        tf.saved_model.save(root, directory, signatures={"serving_default": concrete})
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise InvalidModelError("%s: TensorFlow cannot save the graph as a SavedModel: %s"
                                % (where, e)) from None
    canonicalize_saved_model(directory)


_TRACE_COUNTER = re.compile(r"_\d+(?=_|$)")


def _repeated(field) -> bool:
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return field.label == field.LABEL_REPEATED


def _replace_strings(message, names: Dict[str, str]) -> None:
    """Replaces, everywhere in a protobuf message, strings (and map keys) that are keys of
    ``names``; node inputs ``name:port`` too."""
    from google.protobuf.descriptor import FieldDescriptor

    def fixed(value: str) -> str:
        if value in names:
            return names[value]
        head, sep, rest = value.lstrip("^").partition(":")
        if sep and head in names:
            return value[:len(value) - len(value.lstrip("^"))] + names[head] + sep + rest
        return value

    for field, value in message.ListFields():
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            items = list(value.items())
            for key, _ in items:
                del value[key]
            for key, item in items:
                key = fixed(key) if isinstance(key, str) else key
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    _replace_strings(item, names)
                    value[key].CopyFrom(item)
                else:
                    value[key] = fixed(item) if isinstance(item, str) else item
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            if _repeated(field):
                for item in value:
                    _replace_strings(item, names)
            else:
                _replace_strings(value, names)
        elif field.type == FieldDescriptor.TYPE_STRING:
            if _repeated(field):
                value[:] = [fixed(v) for v in value]
            else:
                setattr(message, field.name, fixed(value))


def canonicalize_saved_model(directory: str) -> None:
    """Makes ``saved_model.pb`` and ``fingerprint.pb`` byte-reproducible.

    TensorFlow names traced functions with a process-wide counter
    (``__inference_serve_10144``), so the same model saved first or fifth in a
    persistent worker would differ; functions are renamed by their order of
    creation (the counter's order), debug info dropped, and the fingerprint
    recomputed from the renamed files, with its random ``uuid`` replaced by a
    number derived from the fingerprint's content hashes.
    """
    import hashlib
    import os
    from tensorflow.core.protobuf import fingerprint_pb2, saved_model_pb2
    from tensorflow.python.saved_model.pywrap_saved_model import fingerprinting
    path = os.path.join(directory, "saved_model.pb")
    saved = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        saved.ParseFromString(f.read())
    functions = [fn.signature.name for meta in saved.meta_graphs
                 for fn in meta.graph_def.library.function]

    def counters(name: str):
        return [int(m.group()[1:]) for m in _TRACE_COUNTER.finditer(name)]

    names, taken = {}, set()
    for i, name in enumerate(sorted(functions, key=lambda n: (counters(n), n))):
        base = _TRACE_COUNTER.sub("", name)
        names[name] = _unique("%s_%d" % (base, i), taken)
    _replace_strings(saved, names)
    for meta in saved.meta_graphs:
        meta.graph_def.library.function.sort(key=lambda fn: fn.signature.name)
        # Captured resources get their tensor's process-wide id as their name.
        for fn in meta.graph_def.library.function:
            for index in sorted(fn.arg_attr):
                attr = fn.arg_attr[index].attr
                if "_user_specified_name" in attr and attr["_user_specified_name"].s.isdigit():
                    attr["_user_specified_name"].s = b"capture_%d" % index
    with open(path, "wb") as f:
        f.write(saved.SerializeToString(deterministic=True))
    debug = os.path.join(directory, "debug", "saved_model_debug_info.pb")
    if os.path.exists(debug):
        os.remove(debug)
        os.rmdir(os.path.dirname(debug))
    fingerprint_path = os.path.join(directory, "fingerprint.pb")
    if not os.path.exists(fingerprint_path):
        return
    fingerprint = fingerprint_pb2.FingerprintDef()
    fingerprint.ParseFromString(fingerprinting.CreateFingerprintDef(directory))
    fingerprint.uuid = ""
    digest = hashlib.sha256(fingerprint.SerializeToString(deterministic=True)).digest()
    fingerprint.uuid = str(int.from_bytes(digest[:16], "big"))
    with open(fingerprint_path, "wb") as f:
        f.write(fingerprint.SerializeToString(deterministic=True))


def _dtype_enum(name: str) -> int:
    from tensorflow.core.framework import types_pb2
    return types_pb2.DataType.Value(name)


def write_keras_saved_model(model, directory: str, where: str) -> None:
    """Writes a layers model as a SavedModel exported from its Keras 3 model.

    The Keras writer builds the ``keras.Model`` in memory
    (``writers.keras.build_keras_model``), which TensorFlow then saves with a ``serving_default``
    signature keyed by the model's input layer names and returning a dict keyed
    by its output names (the output layers' names when Keras has none;
    ``output_<i>`` when repeated). Keras 3 writes no ``keras_metadata.pb``, so the directory
    reads back as a ``tf_saved_model``.

    Args:
      model: a LayersModel with float weights.
      directory: the (empty) output directory.
      where: the input path, for messages.

    Raises:
      InvalidModelError: Keras cannot rebuild the model, or TensorFlow cannot save it.
    """
    import tensorflow as tf
    from converter.errors import UnsupportedLayerError
    from converter.graph.keras import input_layer_name
    from converter.readers.tfjs_topology import prefixed
    from converter.writers.keras import build_keras_model
    import keras
    # Layers and models without a name in the topology (a Keras 2.2 Sequential
    # has none) get one from Keras's process-wide counters, which end up in the
    # SavedModel's function signatures: start them afresh, so a persistent
    # worker writes the same bytes for the same model every time.
    keras.backend.clear_session()
    try:
        keras_model = build_keras_model(model)
    except (InvalidModelError, UnsupportedLayerError) as e:
        # The Keras writer's messages name the layer, not the file.
        raise type(e)(prefixed(str(e), where)) from None
    inputs = list(keras_model.inputs)
    in_keys = _unique_keys([input_layer_name(t) for t in inputs], "input")
    out_names = list(getattr(keras_model, "output_names", None) or [])
    flat_outputs = tf.nest.flatten(keras_model.outputs)
    if len(out_names) != len(flat_outputs):
        # Keras 3 Sequential models have no output_names: name by the layer.
        out_names = [input_layer_name(t) for t in flat_outputs]
    out_keys = _unique_keys(out_names, "output")
    specs = [tf.TensorSpec(t.shape, t.dtype, name=signature_key(k))
             for k, t in zip(in_keys, inputs)]

    @tf.function(input_signature=specs, autograph=False)
    def serve(*args):
        outputs = keras_model(list(args) if len(args) > 1 else args[0], training=False)
        return {k: tf.identity(o) for k, o in zip(out_keys, tf.nest.flatten(outputs))}

    try:
        tf.saved_model.save(keras_model, directory,
                            signatures={"serving_default": serve.get_concrete_function()})
    except (ValueError, TypeError, tf.errors.OpError) as e:
        raise InvalidModelError("%s: TensorFlow cannot save the Keras model as a SavedModel: %s"
                                % (where, e)) from None
    canonicalize_saved_model(directory)


def _unique_keys(names, fallback: str) -> List[str]:
    keys: List[str] = []
    for i, name in enumerate(names):
        keys.append(name if name and name not in keys else "%s_%d" % (fallback, i))
    return keys
