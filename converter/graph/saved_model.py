"""Reads a TF2 SavedModel signature into a frozen GraphModel.

The signature's concrete function is frozen (variables become constants;
control flow lowered to Switch/Merge unless ``control_flow_v2``). Resources the
function captures (hash tables) stay as ``DT_RESOURCE`` inputs, and a second
frozen graph, the initializer, recreates and fills them; TF.js runs it at load
time and feeds its outputs to the inputs with the same ``resourceId``.

A signature that captures only variables goes through the lean loader (only
that function is loaded, variable values are read from the checkpoint one at a
time); one that captures other resources through ``tf.saved_model.load``. Both
freeze to the same graph.

TensorFlow is imported lazily here: only graph conversions pay for it.
"""

import collections
import gc
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from converter.errors import InvalidModelError, UsageError
from converter.graph.model import GraphModel, TensorInfo

DEFAULT_SIGNATURE = "serving_default"
HUB_DEFAULT_SIGNATURE = "default"


def parse_tags(tags: str) -> Optional[List[str]]:
    """``"serve,gpu"`` -> ``["serve", "gpu"]``; ``""`` -> ``None`` (load without tags)."""
    parsed = [t.strip() for t in tags.split(",") if t.strip()]
    return parsed or None


def _read_saved_model_proto(path: str):
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2
    pb = os.path.join(path, "saved_model.pb")
    if not os.path.isfile(pb):
        raise InvalidModelError("%s: no saved_model.pb; not a SavedModel directory" % path)
    proto = saved_model_pb2.SavedModel()
    with open(pb, "rb") as f:
        try:
            proto.ParseFromString(f.read())
        except DecodeError as e:
            raise InvalidModelError("%s: saved_model.pb does not parse (%s)" % (pb, e)) from None
    return proto


def _meta_graph(proto, path: str, tags: Optional[List[str]]):
    available = [sorted(m.meta_info_def.tags) for m in proto.meta_graphs]
    for meta in proto.meta_graphs:
        if tags is None or set(meta.meta_info_def.tags) == set(tags):
            return meta
    raise UsageError("%s: no MetaGraph with tags %s; available tag sets: %s (pass "
                     "--saved_model_tags, '' for none)" % (path, ",".join(tags or []), available))


def tensor_info(key: str, tensor, resource_id: Optional[int] = None) -> TensorInfo:
    """The TensorInfo of a graph tensor (a tf.Tensor of a function graph)."""
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(-1 if d is None else int(d) for d in shape)
    return TensorInfo(key=key, name=tensor.name, dtype=_dtype_name(tensor.dtype.as_datatype_enum),
                      shape=dims,
                      resource_id=None if resource_id is None else str(resource_id))


def _dtype_name(enum: int) -> str:
    from tensorflow.core.framework import types_pb2
    return types_pb2.DataType.Name(enum)


class _Frozen:
    """A frozen signature function: its GraphDef and its graph's input/output tensors."""

    def __init__(self, graph_def, inputs, outputs):
        self.graph_def = graph_def
        self.inputs = inputs
        self.outputs = outputs


# Protobuf cannot serialize a message of 2 GiB or more, and a frozen GraphDef is
# one message holding every weight (TensorFlow serializes it to optimize, import
# or save it).
PROTOBUF_LIMIT_BYTES = (1 << 31) - 1
# When the weights would pass that limit, variables of at least this many bytes
# are not frozen into Consts but deferred: they stay in the checkpoint until the
# writer streams them (see ``weights.DEFERRED_KEY``); smaller ones are frozen as usual.
DEFER_MIN_BYTES = 16 << 20


def _variable_bytes(variable) -> int:
    shape = variable.shape
    return shape.num_elements() * variable.dtype.size if shape.is_fully_defined() else 0


def _capture_names(func) -> Dict[int, str]:
    """``{id(variable): name of the Placeholder capturing it}`` (as the freezer names them)."""
    by_handle = {id(v.handle): v for v in func.graph.variables}
    names = {}
    for (value, placeholder) in func.graph.captures:
        variable = by_handle.get(id(value))
        if variable is not None:
            names[id(variable)] = placeholder.name.split(":")[0]
    return names


def plan_deferral(func, where: str, can_defer: bool) -> Dict[str, object]:
    """The variables to leave in the checkpoint: ``{capture Placeholder name: variable}``.

    Empty unless the frozen GraphDef would exceed ``PROTOBUF_LIMIT_BYTES``: its
    captured variables' bytes plus the graph's own (counted only when the
    variables come near the limit). Then the variables of ``DEFER_MIN_BYTES`` or
    more are deferred, if ``can_defer`` (their values come from a checkpoint).

    Raises:
      InvalidModelError: the GraphDef would still exceed the limit (naming
        ``where``, the sizes and the limit).
    """
    variables = list(func.variables)
    weights = sum(_variable_bytes(v) for v in variables)
    if weights <= PROTOBUF_LIMIT_BYTES // 2:
        return {}
    graph = func.graph.as_graph_def().ByteSize()
    if weights + graph <= PROTOBUF_LIMIT_BYTES:
        return {}
    deferred = {}
    if can_defer:
        names = _capture_names(func)
        deferred = {names[id(v)]: v for v in variables
                    if _variable_bytes(v) >= DEFER_MIN_BYTES and id(v) in names}
    kept = weights - sum(_variable_bytes(v) for v in deferred.values())
    if kept + graph > PROTOBUF_LIMIT_BYTES:
        why = ("its variables are not read from a SavedModel checkpoint (a Keras model or a "
               "SavedModel with other resources), so none can stay out of it"
               if not can_defer else "even without its variables of %d bytes or more"
               % DEFER_MIN_BYTES)
        raise InvalidModelError(
            "%s: a TF.js graph model is converted through one frozen GraphDef, which would "
            "hold %d bytes (%d of them the weights of %d variables), over protobuf's limit of "
            "%d bytes for one message (%s); convert to tfjs_layers_model instead (from Keras "
            "or TF.js layers sources; it streams weights of any size), or split the model"
            % (where, kept + graph, weights, len(variables), PROTOBUF_LIMIT_BYTES, why))
    return deferred


def _defer_in_graph(graph_def, deferred: Dict[str, object], checkpoint_key, prefix: str,
                    where: str) -> None:
    """Makes each deferred variable's reads a Placeholder of its value.

    Its first ``ReadVariableOp`` (reached through the Identity nodes passing the
    handle on) becomes a Placeholder of the value, the others Identity of it, so
    the graph is the frozen one with a Placeholder where the Const would be,
    recording where its value is (``weights.DEFERRED_KEY``).
    """
    from converter.graph import weights as graph_weights
    consumers: Dict[str, List[object]] = collections.defaultdict(list)
    for node in graph_def.node:
        for ref in node.input:
            consumers[ref.lstrip("^").split(":")[0]].append(node)
    in_functions = {ref.lstrip("^").split(":")[0] for f in graph_def.library.function
                    for n in f.node_def for ref in n.input}
    by_name = {n.name: n for n in graph_def.node}
    for name, variable in deferred.items():
        node = by_name.get(name)
        if node is None:
            continue  # not read by the signature at all
        # The handle reaches its reads through Identity nodes (inlined call arguments).
        handles, reads, others, stack = [node], [], [], [node]
        while stack:
            for reader in consumers[stack.pop().name]:
                if reader.op == "Identity":
                    handles.append(reader)
                    stack.append(reader)
                elif reader.op == "ReadVariableOp":
                    reads.append(reader)
                else:
                    others.append(reader)
        if node.op != "Placeholder" or others or any(h.name in in_functions for h in handles):
            raise InvalidModelError(
                "%s: variable %s (%d bytes) is used other than by reading its value (%s), so it "
                "cannot stay out of the frozen GraphDef, which would exceed protobuf's limit "
                "of %d bytes; convert to tfjs_layers_model instead, or split the model"
                % (where, variable.name, _variable_bytes(variable),
                   ", ".join(sorted({r.op for r in others})) or "a function", PROTOBUF_LIMIT_BYTES))
        key = checkpoint_key(variable)
        if key is None:
            raise InvalidModelError("%s: variable %s has no checkpoint value"
                                    % (where, variable.name))
        if not reads:
            continue
        # The first read becomes the Placeholder (so the weight is named after it, as a
        # frozen Const would be), other reads Identity of it; the handle nodes are left
        # for pruning.
        dtype = variable.dtype.as_datatype_enum
        first = reads[0]
        graph_weights.make_deferred_placeholder(first, dtype, [int(d) for d in variable.shape],
                                                prefix, key)
        for reader in reads[1:]:
            reader.op = "Identity"
            del reader.input[:]
            reader.input.append(first.name)
            reader.ClearField("attr")
            reader.attr["T"].type = dtype


def _freeze(func, control_flow_v2: bool, where: str,
            read_variable: Optional[Callable[[object], Optional[np.ndarray]]] = None) -> _Frozen:
    """Freezes ``func``'s variables into Const nodes of a GraphDef.

    TensorFlow's ``convert_variables_to_constants_v2`` ends by importing the
    frozen GraphDef into a new ConcreteFunction, which we would only turn back
    into a GraphDef: on MobileNetV2 that import is most of the freezing time, and
    on ResNet50 it holds two more copies of the weights (the imported graph and
    the function registered in the eager context). So the GraphDef is taken
    before that step; the inputs are the function's inputs that were not
    captured variables, the outputs its outputs (the names the frozen function
    would have).

    ``read_variable(variable)`` supplies a variable's value (None: read the
    variable itself); the lean loader's variables hold none. When it also says
    where the values are (its ``checkpoint`` attribute: prefix and key of a
    variable) and the weights would not fit one protobuf message, the large
    variables are deferred (``plan_deferral``): left out of the GraphDef as
    Placeholders that the writer fills from the checkpoint (``weights``).
    """
    # pylint: disable=protected-access
    from tensorflow.python.framework import convert_to_constants as c2c

    checkpoint = getattr(read_variable, "checkpoint", None)
    deferred = plan_deferral(func, where, checkpoint is not None)

    class ConverterData(c2c._FunctionConverterDataInEager):
        def _eval(self, tensor):
            value = read_variable(tensor) if read_variable is not None else None
            return super()._eval(tensor) if value is None else value

    try:
        data = ConverterData(
            func=func, lower_control_flow=not control_flow_v2, aggressive_inlining=True,
            variable_names_denylist=set(deferred) or None)
        graph_def, converted = c2c._replace_variables_by_constants(converter_data=data)
    except (ValueError, TypeError) as e:
        raise InvalidModelError("%s: freezing variables to constants failed: %s"
                                % (where, e)) from None
    del data  # its numpy copies of the variables
    if deferred:
        prefix, checkpoint_key = checkpoint
        _defer_in_graph(graph_def, deferred, checkpoint_key, prefix, where)
    captures = func.graph.internal_captures
    converted_ids = {id(captures[i]) for i in converted}
    inputs = [t for t in func.inputs if id(t) not in converted_ids
              and t.name.split(":")[0] not in deferred]
    return _Frozen(graph_def, inputs, list(func.outputs))


def read_saved_model(path: str, signature_name: Optional[str] = None, tags: str = "serve",
                     control_flow_v2: bool = False, structured_outputs: bool = False,
                     default_signature: str = DEFAULT_SIGNATURE) -> GraphModel:
    """Loads and freezes one signature of the SavedModel at ``path``.

    Args:
      path: SavedModel directory.
      signature_name: signature key; ``None`` means ``default_signature``.
      tags: comma-separated MetaGraph tags; ``""`` loads without tags.
      control_flow_v2: keep While/If (and the function library) instead of lowering.
      structured_outputs: write ``structuredOutputKeys`` (the sorted output keys).
      default_signature: the signature used when ``signature_name`` is None.

    Returns:
      The frozen GraphModel.

    Raises:
      InvalidModelError: not a readable SavedModel, or freezing failed.
      UsageError: the tags or signature do not exist.
    """
    signature_name = signature_name or default_signature
    tag_list = parse_tags(tags)
    proto = _read_saved_model_proto(path)
    meta = _meta_graph(proto, path, tag_list)
    if signature_name not in meta.signature_def:
        # __saved_model_init_op is TensorFlow's initializer hook, not a callable signature.
        available = sorted(k for k in meta.signature_def if not k.startswith("__"))
        raise UsageError("%s: signature %r does not exist; available signatures: %s (pass "
                         "--signature_name)" % (path, signature_name,
                                                ", ".join(available) or "none"))
    where = "%s (signature %s)" % (path, signature_name)
    generated_by = meta.meta_info_def.tensorflow_version or None
    plan = _lean_plan(proto, meta, signature_name)
    del proto, meta
    if plan is not None:
        func, read_variable, objects = _load_lean(path, tag_list, plan)
        model = freeze_function(func, None, where, control_flow_v2, structured_outputs,
                                generated_by=generated_by, read_variable=read_variable)
        del func, read_variable, objects
    else:
        func, loaded = _load_full(path, tag_list, signature_name)
        model = freeze_function(func, loaded, where, control_flow_v2, structured_outputs,
                                generated_by=generated_by)
        del func, loaded
    # The loaded objects are full of reference cycles: collect them now, so their
    # memory is free for the steps that follow.
    gc.collect()
    return model


def _load_error(path: str, e: Exception) -> InvalidModelError:
    return InvalidModelError("%s: TensorFlow cannot load this SavedModel: %s"
                             % (path, str(e).splitlines()[0] if str(e) else type(e).__name__))


def _load_full(path: str, tag_list: Optional[List[str]], signature_name: str):
    """``tf.saved_model.load``: every object, variables restored; ``(function, root)``."""
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(path, tags=tag_list)
    except (ValueError, OSError, tf.errors.OpError) as e:
        raise _load_error(path, e) from None
    if signature_name not in loaded.signatures:
        raise UsageError("%s: signature %r is in saved_model.pb but not loadable as a TF2 "
                         "function; available: %s" % (path, signature_name,
                                                      ", ".join(sorted(loaded.signatures))))
    return loaded.signatures[signature_name], loaded


# -- the lean loader -----------------------------------------------------------------
#
# ``tf.saved_model.load`` recreates every object and function of the SavedModel
# and restores every variable into TensorFlow tensors, and we then take one
# signature. A Keras 3 export tracks its weights twice (``variables`` and
# ``_all_variables``), so twice the weights are restored, and with oneDNN (on by
# default on x86) TensorFlow's allocator keeps that memory after the tensors are
# freed (ResNet50: 170 MB). So when the signature captures only variables and
# saved constants, only the signature function and those nodes are loaded, the
# checkpoint is not restored, and freezing reads each variable's value straight
# from the checkpoint, one at a time (ResNet50: 0.6 s and 110 MB of peak RSS less
# than the full load). The loader is also given a saved_model.pb whose function
# library holds only what the signature calls (MobileNetV2: 0.5 s less). A
# signature capturing any other resource (hash tables, assets) needs its
# initializers: it takes the full load.

_LEAN_CAPTURE_KINDS = frozenset({"variable", "constant"})


class _LeanPlan:
    """What the lean loader loads: the signature function and the nodes it captures.

    Attributes:
      object_graph: the SavedObjectGraph.
      function_id, captured_ids: node ids of the signature function and its captures.
      paths: ``root.child...`` path of every node (how ``load_partial`` names nodes).
      saved_model: a serialized SavedModel holding only this MetaGraph, its library
        cut down to the functions the signature calls (see ``_signature_saved_model``).
    """

    def __init__(self, object_graph, function_id: int, captured_ids: List[int],
                 paths: Dict[int, str], saved_model: bytes):
        self.object_graph = object_graph
        self.function_id = function_id
        self.captured_ids = captured_ids
        self.paths = paths
        self.saved_model = saved_model


def _object_paths(object_graph) -> Dict[int, str]:
    """The first ``root.child.grandchild`` path of every node, breadth first."""
    paths = {0: "root"}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        for child in object_graph.nodes[node_id].children:
            if child.node_id not in paths:
                paths[child.node_id] = "%s.%s" % (paths[node_id], child.local_name)
                queue.append(child.node_id)
    return paths


def _child(object_graph, node_id: int, name: str) -> Optional[int]:
    for child in object_graph.nodes[node_id].children:
        if child.local_name == name:
            return child.node_id
    return None


def _signature_saved_model(proto, meta, function_name: str) -> bytes:
    """``proto`` with only ``meta``, whose library keeps what ``function_name`` calls.

    TensorFlow's loader turns every function of the library into a Python graph,
    whatever it loads; a Keras 3 export's library is mostly its checkpoint save
    and restore functions (3 of the 4 thousand nodes of MobileNetV2's), which the
    lean loader never runs.
    """
    from tensorflow.core.protobuf import saved_model_pb2
    from converter.graph.prune import delete_where, used_functions
    out = saved_model_pb2.SavedModel()
    out.saved_model_schema_version = proto.saved_model_schema_version
    trimmed = out.meta_graphs.add()
    trimmed.CopyFrom(meta)
    library = trimmed.graph_def.library
    roots = {function_name} | {g.gradient_func for g in library.registered_gradients}
    while True:
        used = used_functions(library, roots)
        more = {g.gradient_func for g in library.gradient if g.function_name in used} - used
        if not more:
            break
        roots |= more
    delete_where(library.function, lambda f: f.signature.name not in used)
    delete_where(library.gradient, lambda g: g.function_name not in used)
    # The loader sets up the captures of every concrete function the object graph
    # lists: list only those kept.
    concrete = trimmed.object_graph_def.concrete_functions
    for name in [n for n in concrete if n not in used]:
        del concrete[name]
    return out.SerializeToString()


def _lean_plan(proto, meta, signature_name: str) -> Optional[_LeanPlan]:
    """The lean loader's plan, or None when the signature needs the full load."""
    graph = meta.object_graph_def
    if not graph.nodes:
        return None  # a TF1 SavedModel
    signatures = _child(graph, 0, "signatures")
    function_id = None if signatures is None else _child(graph, signatures, signature_name)
    if function_id is None:
        return None
    node = graph.nodes[function_id]
    if node.WhichOneof("kind") != "bare_concrete_function" or node.dependencies:
        return None
    function_name = node.bare_concrete_function.concrete_function_name
    function = graph.concrete_functions.get(function_name)
    if function is None:
        return None
    captured = list(function.bound_inputs)
    for node_id in captured:
        captured_node = graph.nodes[node_id]
        if (captured_node.WhichOneof("kind") not in _LEAN_CAPTURE_KINDS
                or captured_node.dependencies
                or captured_node.variable.experimental_distributed_variable_components):
            return None
    return _LeanPlan(graph, function_id, captured, _object_paths(graph),
                     _signature_saved_model(proto, meta, function_name))


def _load_lean(path: str, tag_list: Optional[List[str]], plan: _LeanPlan):
    """Loads the plan's nodes without restoring the variables.

    Returns:
      ``(signature function, read_variable, loaded objects)``: ``read_variable(v)``
      is the checkpoint value of a captured variable ``v``, None for anything
      else. The function holds its variables weakly: keep the objects alive
      while it is used.
    """
    import tensorflow as tf
    from tensorflow.python.saved_model import load as tf_load
    paths = [plan.paths[plan.function_id]] + [plan.paths[i] for i in plan.captured_ids]
    # The loader reads saved_model.pb from a directory: give it the trimmed one. It
    # reads nothing else there (no checkpoint restore, no assets).
    with tempfile.TemporaryDirectory(prefix="tfjs_signature_") as tmp:
        with open(os.path.join(tmp, "saved_model.pb"), "wb") as f:
            f.write(plan.saved_model)
        try:
            loaded = tf_load.load_partial(
                tmp, paths, tags=tag_list,
                options=tf.saved_model.LoadOptions(experimental_skip_checkpoint=True))
        except (ValueError, OSError, tf.errors.OpError) as e:
            raise _load_error(path, e) from None
    func = loaded[plan.paths[plan.function_id]]
    variable_ids = [i for i in plan.captured_ids
                    if plan.object_graph.nodes[i].WhichOneof("kind") == "variable"]
    if not variable_ids:
        return func, None, loaded
    reader, keys = _checkpoint_keys(path, plan, variable_ids)
    by_object = {id(loaded[plan.paths[i]]): keys[i] for i in variable_ids}

    def read_variable(variable) -> Optional[np.ndarray]:
        key = by_object.get(id(variable))
        if key is None:
            return None
        # A copy: get_tensor's array shares a TensorFlow buffer, and with oneDNN freed
        # buffers stay in TensorFlow's pool. Copied one at a time, the pool holds only
        # the largest variable.
        return np.array(reader.get_tensor(key), copy=True)
    # Where a variable's value is, for variables too large to freeze (``_freeze``).
    read_variable.checkpoint = (prefix_of(path), lambda v: by_object.get(id(v)))
    return func, read_variable, loaded


def prefix_of(path: str) -> str:
    """The variables checkpoint prefix of the SavedModel at ``path``."""
    return os.path.join(path, "variables", "variables")


def _checkpoint_keys(path: str, plan: _LeanPlan, variable_ids: Sequence[int]):
    """``(checkpoint reader, {variable node id: checkpoint key})``, shapes checked.

    The checkpoint's object graph is matched to the SavedModel's by child names
    from the root, as TensorFlow's restore matches them.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import trackable_object_graph_pb2
    prefix = prefix_of(path)
    try:
        reader = tf.train.load_checkpoint(prefix)
        ckpt_graph = trackable_object_graph_pb2.TrackableObjectGraph()
        ckpt_graph.ParseFromString(reader.get_tensor("_CHECKPOINTABLE_OBJECT_GRAPH"))
    except (ValueError, tf.errors.OpError) as e:
        raise InvalidModelError("%s: cannot read the variables checkpoint %s: %s"
                                % (path, prefix, str(e).splitlines()[0])) from None
    saved = plan.object_graph
    match = {0: 0}
    queue = collections.deque([0])
    while queue:
        node_id = queue.popleft()
        ckpt_children = {c.local_name: c.node_id
                         for c in ckpt_graph.nodes[match[node_id]].children}
        for child in saved.nodes[node_id].children:
            if child.node_id not in match and child.local_name in ckpt_children:
                match[child.node_id] = ckpt_children[child.local_name]
                queue.append(child.node_id)
    shapes = reader.get_variable_to_shape_map()
    keys = {}
    for node_id in variable_ids:
        variable = saved.nodes[node_id].variable
        found = ([a.checkpoint_key for a in ckpt_graph.nodes[match[node_id]].attributes
                  if a.name == "VARIABLE_VALUE"] if node_id in match else [])
        want = [d.size for d in variable.shape.dim]
        if len(found) != 1 or found[0] not in shapes or list(shapes[found[0]]) != want:
            raise InvalidModelError(
                "%s: variable %s (%s) has no value of shape %s in the checkpoint %s"
                % (path, variable.name, plan.paths[node_id], want, prefix))
        keys[node_id] = found[0]
    return reader, keys


def freeze_function(func, root, where: str, control_flow_v2: bool, structured_outputs: bool,
                    generated_by: Optional[str] = None,
                    read_variable: Optional[Callable[[object], Optional[np.ndarray]]] = None
                    ) -> GraphModel:
    """Freezes a signature-style concrete function (keyword inputs, dict outputs).

    ``root`` is the object the function was loaded from; its trackable resources
    are searched for the hash tables the function captures. ``read_variable``
    supplies the values of variables that hold none (see ``_freeze``).
    """
    import tensorflow as tf
    input_specs = tf.nest.flatten(func.structured_input_signature, expand_composites=True)
    num_user = len(input_specs)
    user_keys = _input_keys(func)
    outputs = func.structured_outputs
    if isinstance(outputs, dict):
        out_keys = sorted(outputs)
        flat_outputs = [outputs[k] for k in out_keys]
        nested = any(not isinstance(v, tf.Tensor) and not isinstance(v, tf.TensorSpec)
                     for v in flat_outputs)
    else:
        flat = tf.nest.flatten(outputs, expand_composites=True)
        out_keys = ["output_%d" % i for i in range(len(flat))]
        nested = True
    if structured_outputs and (not isinstance(outputs, dict) or nested):
        raise UsageError("%s: --use_structured_outputs_names needs a signature whose outputs are "
                         "a flat dict of tensors; got %r" % (where, type(outputs).__name__))

    frozen = _freeze(func, control_flow_v2, where, read_variable)
    graph_def = frozen.graph_def
    frozen_inputs = {t.name: t for t in frozen.inputs}

    # Captured resources that survived freezing (hash tables): resource inputs.
    captured = {func.inputs[num_user + i].name: c
                for i, c in enumerate(func.captured_inputs)}
    inputs, resources = [], []
    for key, placeholder in zip(user_keys, func.inputs[:num_user]):
        if placeholder.name in frozen_inputs:
            inputs.append(tensor_info(key, frozen_inputs[placeholder.name]))
    for name, tensor in frozen_inputs.items():
        if tensor.dtype == tf.resource:
            if name not in captured:
                raise InvalidModelError("%s: resource input %s is not a captured resource"
                                        % (where, name))
            resources.append((name, captured[name]))
            inputs.append(tensor_info(name.split(":")[0], tensor, resource_id=len(resources) - 1))
    out_infos = tuple(tensor_info(k, t) for k, t in zip(out_keys, frozen.outputs))

    initializer, init_outputs = None, ()
    if resources:
        initializer, init_outputs = _build_initializer(root, resources, control_flow_v2, where)
    return GraphModel(
        graph_def=graph_def, inputs=tuple(sorted(inputs, key=lambda i: i.key)), outputs=out_infos,
        initializer=initializer, initializer_outputs=init_outputs,
        structured_output_keys=list(out_keys) if structured_outputs else None,
        generated_by=generated_by or tf.__version__, source=where)


def _input_keys(func) -> List[str]:
    """Signature keys of the function's user inputs, in flattened order."""
    import tensorflow as tf
    args, kwargs = func.structured_input_signature
    keys = []
    for i, spec in enumerate(tf.nest.flatten(args, expand_composites=True)):
        keys.append(getattr(spec, "name", None) or "input_%d" % i)
    for key in sorted(kwargs):
        for j, _ in enumerate(tf.nest.flatten(kwargs[key], expand_composites=True)):
            keys.append(key if j == 0 else "%s_%d" % (key, j))
    return keys


def _trackable_resources(root) -> List[object]:
    from tensorflow.python.checkpoint import trackable_view
    from tensorflow.python.trackable.resource import CapturableResource
    return [o for o in trackable_view.TrackableView(root).descendants()
            if isinstance(o, CapturableResource)]


def _build_initializer(root, resources: Sequence[Tuple[str, object]], control_flow_v2: bool,
                       where: str):
    """A frozen graph that recreates each captured resource and runs its initializer.

    Returns:
      ``(GraphDef, initializer output TensorInfos)``; output i carries resource id i.
    """
    import tensorflow as tf
    owners = {}
    for obj in _trackable_resources(root):
        handle = obj.resource_handle
        owners[id(handle)] = obj
    plan = []
    for name, handle in resources:
        owner = owners.get(id(handle))
        if owner is None:
            raise InvalidModelError(
                "%s: input %s is a resource (e.g. a hash table) that no trackable object of the "
                "SavedModel owns, so its initializer cannot be recreated" % (where, name))
        plan.append((owner, handle))

    def init():
        handles = []
        for owner, old_handle in plan:
            new_handle = owner._create_resource()  # pylint: disable=protected-access
            init_fn = owner._initialize  # pylint: disable=protected-access
            concrete = (init_fn.get_concrete_function() if hasattr(init_fn, "get_concrete_function")
                        else init_fn)
            caps = [new_handle if c is old_handle else c for c in concrete.captured_inputs]
            graph = tf.compat.v1.get_default_graph()
            before = len(graph.get_operations())
            concrete._call_flat([], caps)  # pylint: disable=protected-access
            # The call may return nothing: depend on the ops it added instead.
            with tf.control_dependencies(graph.get_operations()[before:]):
                handles.append(tf.identity(new_handle))
        return handles

    concrete = tf.function(init, autograph=False).get_concrete_function()
    frozen = _freeze(concrete, control_flow_v2, where + " initializer")
    outs = tuple(tensor_info(t.name.split(":")[0], t, resource_id=i)
                 for i, t in enumerate(frozen.outputs))
    return frozen.graph_def, outs
