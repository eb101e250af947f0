"""Reads a TF2 SavedModel signature into a frozen GraphModel.

The signature's concrete function is frozen (variables become constants;
control flow lowered to Switch/Merge unless ``control_flow_v2``). Resources the
function captures (hash tables) stay as ``DT_RESOURCE`` inputs, and a second
frozen graph, the initializer, recreates and fills them; TF.js runs it at load
time and feeds its outputs to the inputs with the same ``resourceId``.

TensorFlow is imported lazily here: only graph conversions pay for it.
"""

import os
from typing import List, Optional, Sequence, Tuple

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


def _freeze(func, control_flow_v2: bool, where: str):
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    try:
        return convert_variables_to_constants_v2(
            func, lower_control_flow=not control_flow_v2, aggressive_inlining=True)
    except (ValueError, TypeError) as e:
        raise InvalidModelError("%s: freezing variables to constants failed: %s" % (where, e)) from None


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
    import tensorflow as tf
    try:
        loaded = tf.saved_model.load(path, tags=tag_list)
    except (ValueError, OSError, tf.errors.OpError) as e:
        raise InvalidModelError("%s: TensorFlow cannot load this SavedModel: %s"
                                % (path, str(e).splitlines()[0] if str(e) else type(e).__name__)) from None
    if signature_name not in loaded.signatures:
        raise UsageError("%s: signature %r is in saved_model.pb but not loadable as a TF2 "
                         "function; available: %s" % (path, signature_name,
                                                      ", ".join(sorted(loaded.signatures))))
    func = loaded.signatures[signature_name]
    where = "%s (signature %s)" % (path, signature_name)
    return freeze_function(func, loaded, where, control_flow_v2, structured_outputs,
                           generated_by=meta.meta_info_def.tensorflow_version or None)


def freeze_function(func, root, where: str, control_flow_v2: bool, structured_outputs: bool,
                    generated_by: Optional[str] = None) -> GraphModel:
    """Freezes a signature-style concrete function (keyword inputs, dict outputs).

    ``root`` is the object the function was loaded from; its trackable resources
    are searched for the hash tables the function captures.
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

    frozen = _freeze(func, control_flow_v2, where)
    graph_def = frozen.graph.as_graph_def()
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
    return frozen.graph.as_graph_def(), outs
