"""ONNX (``.onnx``) files, written by tf2onnx from a SavedModel signature.

tf2onnx (1.17, on TensorFlow 2.21 and the locked protobuf) freezes the
signature and converts it; this module adds what it lacks:

* the opset: ``DEFAULT_OPSET`` (17: every ONNX Runtime since 1.11, ONNX Runtime
  Web included) unless ``onnx_opset`` asks for another in
  ``MIN_OPSET``..``MAX_OPSET`` (what tf2onnx 1.17 can emit);
* refusals: tf2onnx leaves an op it cannot convert in the graph as a TensorFlow
  op (no runtime can load that); every such node is listed in one
  ``UnsupportedOpError`` instead; so is every node holding a dtype tf2onnx has
  no ONNX type for (quantized types; bfloat16, which it writes as float16);
* byte-reproducible files: the conversion runs in a fresh process with
  TensorFlow's uid counter aligned (converter/writers/isolated.py), and
  ``normalize`` names every internal node, value and constant by position
  (tf2onnx's process-wide counter, tensorflow-onnx#1789, and the survivor
  names of merged nodes, which follow hash-map order, vary from run to run),
  sorts hash-table maps and clears doc strings;
* models over 2 GB (``EXTERNAL_DATA_THRESHOLD``), or any model when
  ``onnx_external_data`` asks (a build that declares the file; false refuses
  a model over 2 GB instead): converted with tf2onnx's
  large-model mode (with ``numpy.product``, which it still calls, aliased for
  the run), the tensors of over 1024 elements written beside the model as
  ``<output>.data`` (ONNX external data, one file, 64-byte aligned), which ONNX
  Runtime loads from the same directory;
* ONNX Runtime's needs: ``Loop`` bodies whose iteration-count input tf2onnx
  left without a shape get the scalar shape ONNX defines;
* atomic output (converter.output.atomic_file) for the ``.onnx`` and its data file.
"""

import contextlib
import os
from typing import Dict, List, Optional, Tuple

from converter import request as rq
from converter.errors import ConversionError, UnsupportedOpError, UsageError
from converter.output import atomic_file
from converter.tf_logs import native_stderr_silenced
from converter.writers.tflite import (SIGNATURE_KEY, Check, load_signature, refuse_dtypes,
                                      saved_model_bytes, tag_list)

DEFAULT_OPSET = 17
MIN_OPSET = 9
MAX_OPSET = 18
# protobuf cannot serialize a message of 2 GiB or more; keep a margin for the graph.
EXTERNAL_DATA_THRESHOLD = 2 ** 31 - 64 * 2 ** 20
EXTERNAL_DATA_SUFFIX = ".data"
GRAPH_NAME = "tfjs_rules"
_MAX_LISTED = 20


def opset_of(request: rq.ConversionRequest) -> int:
    """The opset a request asks for (``DEFAULT_OPSET`` when none).

    Raises:
      UsageError: outside ``MIN_OPSET``..``MAX_OPSET``.
    """
    opset = DEFAULT_OPSET if request.onnx_opset is None else request.onnx_opset
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UsageError("--onnx_opset %d is outside what tf2onnx 1.17 writes (%d..%d; "
                         "default %d)" % (opset, MIN_OPSET, MAX_OPSET, DEFAULT_OPSET))
    return opset


def onnx_has_type(dtype) -> bool:
    """tf2onnx maps this TensorFlow DataType to an ONNX tensor type of the same values.

    Not bfloat16: tf2onnx 1.17 writes it as float16, whose range ends at 65504.
    """
    from tensorflow.core.framework import types_pb2
    from tf2onnx.tf_utils import TF_TO_ONNX_DTYPE
    return dtype in TF_TO_ONNX_DTYPE and dtype != types_pb2.DT_BFLOAT16


@contextlib.contextmanager
def _numpy_product_alias():
    """``numpy.product`` for tf2onnx 1.17's large-model path while it runs.

    tf2onnx 1.17 sizes external tensors with ``np.product``, which numpy 2
    removed (``np.prod`` is the same function); the alias is undone afterwards.
    """
    import numpy as np
    if hasattr(np, "product"):
        yield
        return
    np.product = np.prod
    try:
        yield
    finally:
        del np.product


def convert_saved_model(saved_model_dir: str, request: rq.ConversionRequest,
                        where: Optional[str] = None, large_model: Optional[bool] = None):
    """``(normalized ModelProto, {tensor location: bytes} or None)`` of a SavedModel signature.

    Raises:
      UnsupportedOpError: a node has no ONNX equivalent at the opset.
      ConversionError: tf2onnx fails otherwise.
    """
    import tensorflow as tf
    from tf2onnx import convert, tf_loader
    where = where or request.input_path
    opset = opset_of(request)
    signature = request.signature_name or SIGNATURE_KEY
    tags = ",".join(tag_list(request.saved_model_tags) or [])
    if large_model is None:
        large_model = saved_model_bytes(saved_model_dir) > EXTERNAL_DATA_THRESHOLD
    _, func = load_signature(saved_model_dir, signature, request.saved_model_tags, where)
    refuse_dtypes(func, onnx_has_type, "ONNX", where)
    shim = _numpy_product_alias() if large_model else contextlib.nullcontext()
    try:
        with native_stderr_silenced(), shim:
            graph_def, inputs, outputs, tables, renames = tf_loader.from_saved_model(
                saved_model_dir, None, None, tag=tags, signatures=[signature],
                large_model=large_model, return_initialized_tables=True,
                return_tensors_to_rename=True)
            model, storage = convert._convert_common(  # pylint: disable=protected-access
                graph_def, name=GRAPH_NAME, continue_on_error=True, opset=opset,
                input_names=inputs, output_names=outputs, tensors_to_rename=renames,
                initialized_tables=tables, large_model=large_model)
    except (ValueError, TypeError, KeyError, RuntimeError, tf.errors.OpError) as e:
        raise ConversionError("%s: tf2onnx cannot convert this model: %s"
                              % (where, _first_line(e))) from None
    _refuse_unconverted(model, opset, where)
    data = dict(storage.name_to_tensor_data) if large_model and storage is not None else None
    return normalize(model), data


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _refuse_unconverted(model, opset: int, where: str) -> None:
    """Raises naming every node whose op ONNX does not define (tf2onnx left TF ops in place)."""
    import onnx
    versions = {o.domain or "": o.version for o in model.opset_import}
    bad: List[Tuple[str, str]] = []
    for node in _all_nodes(model.graph):
        domain = node.domain or ""
        if not onnx.defs.has(node.op_type, versions.get(domain, opset), domain):
            bad.append((node.op_type, node.name))
    if bad:
        listed = ", ".join("%s (node %s)" % p for p in bad[:_MAX_LISTED])
        raise UnsupportedOpError(
            "%s: cannot convert to ONNX opset %d: %d op(s) have no ONNX equivalent in tf2onnx "
            "1.17: %s%s" % (where, opset, len(bad), listed, ", ..." if len(bad) > _MAX_LISTED
                            else ""))


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def normalize(model):
    """``model`` with every run-dependent name and text made canonical (in place).

    tf2onnx's names are not a function of the model: it numbers the nodes it
    adds from a process-wide counter (``Conv__354``, tensorflow-onnx#1789), and
    when TensorFlow or tf2onnx merge equal nodes or constants, the survivor's
    name depends on hash-map order, which is seeded per process. So every name
    the graph's users do not see is replaced by one derived from its position:
    nodes ``tfjs_rules/<op>_<k>`` in graph order (subgraphs included), their
    outputs ``<node>:<i>``, subgraph inputs ``<node>/<attr>/in_<i>``,
    initializers ``tfjs_rules/const_<k>`` in order of first use, and unknown
    dimensions ``unk__<k>`` in order of appearance. The graph's own inputs and
    outputs keep their names (the signature's keys, which callers feed and
    fetch). Doc strings are cleared, the graph named ``GRAPH_NAME``,
    CategoryMapper tables sorted, and ``Loop`` bodies get the scalar shapes ONNX
    defines for their iteration-count and condition inputs where tf2onnx left
    them unknown (ONNX Runtime refuses to run such a loop).
    """
    graph = model.graph
    kept = {v.name for v in graph.input} | {v.name for v in graph.output}
    _rename_initializers(graph, kept)
    names: Dict[str, str] = {}
    _name_nodes(graph, kept, names, [0])
    dims: Dict[str, str] = {}

    def dim_name(name: str) -> str:
        if name not in dims:
            dims[name] = "unk__%d" % len(dims)
        return dims[name]

    _rename_graph(graph, lambda n: names.get(n, n), dim_name)
    _sort_category_maps(graph)
    model.ClearField("doc_string")
    graph.ClearField("doc_string")
    graph.name = GRAPH_NAME
    return model


def _name_nodes(graph, kept, names: Dict[str, str], counter: List[int]) -> None:
    """Assigns positional names to ``graph``'s nodes (in place) and their outputs (in ``names``)."""
    for node in graph.node:
        node.name = "%s/%s_%d" % (GRAPH_NAME, node.op_type, counter[0])
        counter[0] += 1
        for i, output in enumerate(node.output):
            if output and output not in kept:
                names[output] = "%s:%d" % (node.name, i)
        for attr in node.attribute:
            subgraphs = ([attr.g] if attr.HasField("g") else []) + list(attr.graphs)
            for j, sub in enumerate(subgraphs):
                prefix = "%s/%s%s" % (node.name, attr.name, "_%d" % j if attr.graphs else "")
                for k, value in enumerate(sub.input):
                    names[value.name] = "%s/in_%d" % (prefix, k)
                if node.op_type == "Loop" and attr.name == "body":
                    _scalar_loop_inputs(sub)
                _name_nodes(sub, kept, names, counter)


INITIALIZER_PREFIX = GRAPH_NAME + "/const_"


def _rename_initializers(graph, kept) -> None:
    """Names the initializers ``tfjs_rules/const_<k>`` in order of first use, and sorts them.

    tf2onnx merges equal constants and keeps the name of whichever it met first,
    which varies from process to process (two int64 zeros: ``Maximum/y`` one
    run, ``add/y`` the next).
    """
    from converter.errors import ConversionError
    names = {t.name for t in graph.initializer if t.name not in kept}
    if not names:
        return
    order: Dict[str, str] = {}
    for node in _all_nodes(graph):
        for name in node.input:
            if name in names and name not in order:
                order[name] = "%s%d" % (INITIALIZER_PREFIX, len(order))
    for name in sorted(names - set(order)):
        order[name] = "%s%d" % (INITIALIZER_PREFIX, len(order))
    taken = {v.name for v in graph.value_info} | {o for n in _all_nodes(graph) for o in n.output}
    clash = sorted(taken & set(order.values()))
    if clash:
        raise ConversionError("ONNX graph already has a value named %s; cannot name its "
                              "constants canonically" % clash[0])
    for tensor in graph.initializer:
        tensor.name = order.get(tensor.name, tensor.name)
    for node in _all_nodes(graph):
        for i, name in enumerate(node.input):
            node.input[i] = order.get(name, name)
    for value in graph.value_info:
        value.name = order.get(value.name, value.name)
    ordered = sorted(graph.initializer, key=lambda t: _initializer_rank(t.name))
    copies = [type(t)() for t in ordered]
    for copy, tensor in zip(copies, ordered):
        copy.CopyFrom(tensor)
    del graph.initializer[:]
    graph.initializer.extend(copies)


def _initializer_rank(name: str):
    if name.startswith(INITIALIZER_PREFIX) and name[len(INITIALIZER_PREFIX):].isdigit():
        return (0, int(name[len(INITIALIZER_PREFIX):]), "")
    return (1, 0, name)


def _sort_category_maps(graph) -> None:
    """Sorts each CategoryMapper's (string, int) pairs by string.

    A TensorFlow hash table exports its entries in its hash map's order, which
    is seeded per process; the mapping is the same in any order.
    """
    for node in _all_nodes(graph):
        if node.op_type != "CategoryMapper":
            continue
        attrs = {a.name: a for a in node.attribute}
        strings, ints = attrs.get("cats_strings"), attrs.get("cats_int64s")
        if strings is None or ints is None or len(strings.strings) != len(ints.ints):
            continue
        pairs = sorted(zip(list(strings.strings), list(ints.ints)))
        del strings.strings[:]
        del ints.ints[:]
        strings.strings.extend(p[0] for p in pairs)
        ints.ints.extend(p[1] for p in pairs)


def _rename_value(value, rename, dim_name) -> None:
    value.name = rename(value.name)
    value.ClearField("doc_string")
    if value.type.WhichOneof("value") == "tensor_type" and \
            value.type.tensor_type.HasField("shape"):
        for dim in value.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = dim_name(dim.dim_param)


def _scalar_loop_inputs(body) -> None:
    """Gives a Loop body's iteration-count and condition inputs their scalar shape."""
    for value in list(body.input)[:2]:
        if value.type.WhichOneof("value") == "tensor_type" and not \
                value.type.tensor_type.HasField("shape"):
            value.type.tensor_type.shape.SetInParent()


def _rename_graph(graph, rename, dim_name) -> None:
    for value in graph.input:
        _rename_value(value, rename, dim_name)
    for node in graph.node:
        # Unset, not "": tf2onnx sets an empty domain on some nodes some runs,
        # and a set empty string is serialized (proto2 field presence).
        node.ClearField("doc_string")
        if not node.domain:
            node.ClearField("domain")
        for i, name in enumerate(node.input):
            node.input[i] = rename(name)
        for i, name in enumerate(node.output):
            node.output[i] = rename(name)
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_graph(attr.g, rename, dim_name)
            for sub in attr.graphs:
                _rename_graph(sub, rename, dim_name)
    for value in graph.value_info:
        _rename_value(value, rename, dim_name)
    for value in graph.output:
        _rename_value(value, rename, dim_name)


def _external_data(model, data: Dict[str, bytes], location: str) -> bytes:
    """Points every external tensor of ``model`` into one blob; returns the blob."""
    from onnx import TensorProto
    chunks: List[bytes] = []
    offset = 0
    for tensor in _all_tensors(model.graph):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        raw = data[entries["location"]]
        pad = (-offset) % 64  # aligned, as onnx's own writer does for mmap
        chunks.append(b"\0" * pad)
        offset += pad
        del tensor.external_data[:]
        for key, value in (("location", location), ("offset", str(offset)),
                           ("length", str(len(raw)))):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        chunks.append(raw)
        offset += len(raw)
    return b"".join(chunks)


def _all_tensors(graph):
    for tensor in graph.initializer:
        yield tensor
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            if attr.HasField("g"):
                yield from _all_tensors(attr.g)


def write_onnx(saved_model_dir: str, output_path: str, request: rq.ConversionRequest,
               check: Optional[Check] = None, where: Optional[str] = None) -> str:
    """Writes the ``.onnx`` of a SavedModel to ``output_path`` (atomically).

    Args:
      saved_model_dir: the SavedModel (the input, or a temporary export of it).
      output_path: the ``.onnx`` file; with external data (over 2 GB, or
        ``request.onnx_external_data``), also ``<output_path>.data``.
      request: the conversion request (``onnx_opset``, ``onnx_external_data``,
        ``signature_name``, ``saved_model_tags`` apply).
      check: runs on the written temporary ``.onnx`` (``--verify``); raising
        keeps the previous output.
      where: what messages call the source (default ``request.input_path``).

    Returns:
      What ``check`` returned ("" without one).

    Raises:
      ConversionError: over 2 GB with ``onnx_external_data`` false.
    """
    from converter.writers import isolated
    where = where or request.input_path
    opset_of(request)  # a usage error before anything is converted
    size = saved_model_bytes(saved_model_dir)
    large_model = request.onnx_external_data
    if large_model is None:
        large_model = size > EXTERNAL_DATA_THRESHOLD
    elif not large_model and size > EXTERNAL_DATA_THRESHOLD:
        raise ConversionError(
            "%s: cannot convert to ONNX without external data: the model's graph and weights "
            "take %d bytes, one ONNX protobuf holds under 2 GiB; allow external data "
            "(--onnx_external_data, or external_data = True on onnx_model)" % (where, size))
    data_path = output_path + EXTERNAL_DATA_SUFFIX
    # In a fresh process: TensorFlow's function-name counters reach tf2onnx's
    # names and node order (see converter/writers/isolated.py).
    model_bytes, blob = isolated.call("converter.writers.onnx", "convert_to_bytes",
                                      saved_model_dir, request, where,
                                      large_model, os.path.basename(data_path))
    summary = ""
    if blob is None and not request.onnx_external_data:
        with atomic_file(output_path) as tmp:
            with open(tmp, "wb") as f:
                f.write(model_bytes)
            if check is not None:
                summary = check(tmp)
        _remove_stale(data_path)
        return summary
    with atomic_file(output_path) as tmp:
        # The data file is moved in first (inner block), then the model. Asked for
        # and no tensor over tf2onnx's 1024-element inline limit: an empty data file, so
        # the outputs a build declared all exist.
        with atomic_file(data_path) as tmp_data:
            with open(tmp_data, "wb") as f:
                f.write(blob or b"")
            with open(tmp, "wb") as f:
                f.write(model_bytes)
            if check is not None:
                summary = check(tmp)
    return summary


def convert_to_bytes(saved_model_dir: str, request: rq.ConversionRequest, where: str,
                     large_model: bool, data_location: str) -> Tuple[bytes, Optional[bytes]]:
    """``(serialized model, external data or None)``; external tensors point at ``data_location``.

    Runs where the conversion runs (a fresh process, see write_onnx).
    """
    model, data = convert_saved_model(saved_model_dir, request, where, large_model)
    blob = None
    if data is not None and any(True for _ in _external_tensors(model)):
        blob = _external_data(model, data, data_location)
    return model.SerializeToString(), blob


def _external_tensors(model):
    from onnx import TensorProto
    return (t for t in _all_tensors(model.graph) if t.data_location == TensorProto.EXTERNAL)


def _remove_stale(data_path: str) -> None:
    """Removes the external data a previous, larger conversion left beside the output."""
    if os.path.isfile(data_path) and not os.path.islink(data_path):
        os.remove(data_path)
