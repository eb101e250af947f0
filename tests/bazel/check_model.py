"""Checks a tfjs_model's built output: check_model.py MODEL_DIR SUMMARY_JSON [CHECKS].

Always checked: model.json's weightsManifest against the files in MODEL_DIR
(every shard listed, no stray file, each group's bytes equal to its weights'
encoded size), and SUMMARY_JSON against MODEL_DIR (names, sizes and sha256 of
every file, shard count, byte totals, weight/group/quantization counts). For a
graph model also: one weight group; the Const nodes (graph, functions,
initializer) are exactly the weights, with their shapes and no payload left in
model.json; the signature names existing nodes; every fused op's bias is a
rank-1 weight (what TF.js's wasm backend requires).
CHECKS add exact expectations, see ``_parser``. Prints one line per failure and
exits 1 if any; stdlib only, so it runs on any python3.
"""

import argparse
import base64
import hashlib
import json
import math
import os
import re
import sys
from typing import Dict, List

_SHARD_NAME = re.compile(r"^group(\d+)-shard(\d+)of(\d+)\.bin$")
# Bytes per element of a weight in a shard, by dtype (quantized: the storage dtype).
_ELEMENT_BYTES = {"float32": 4, "int32": 4, "bool": 1, "uint8": 1, "uint16": 2, "float16": 2}


class Checker:
    def __init__(self):
        self.failures: List[str] = []
        self.count = 0

    def equal(self, what: str, want, got) -> None:
        self.count += 1
        if want != got:
            self.failures.append("%s: want %r, got %r" % (what, want, got))

    def true(self, what: str, ok: bool) -> None:
        self.count += 1
        if not ok:
            self.failures.append(what)


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _integrity(path: str) -> str:
    """The file's Subresource Integrity string, as a page's integrity= attribute takes it."""
    with open(path, "rb") as f:
        return "sha384-" + base64.b64encode(hashlib.sha384(f.read()).digest()).decode("ascii")


def _weights(doc: dict) -> List[dict]:
    return [w for g in doc["weightsManifest"] for w in g["weights"]]


def _encoded_size(weight: dict) -> int:
    dtype = weight.get("quantization", {}).get("dtype", weight["dtype"])
    return math.prod(weight["shape"]) * _ELEMENT_BYTES[dtype]


def check_manifest(c: Checker, model_dir: str, doc: dict) -> None:
    names = sorted(os.listdir(model_dir))
    listed = [p for g in doc["weightsManifest"] for p in g["paths"]]
    c.equal("files in the model directory", sorted(listed + ["model.json"]), names)
    for gi, group in enumerate(doc["weightsManifest"]):
        paths = group["paths"]
        for si, path in enumerate(paths):
            m = _SHARD_NAME.match(path)
            c.true("group %d: shard name %r is not group<G>-shard<I>of<N>.bin" % (gi + 1, path),
                   bool(m) and m.groups() == (str(gi + 1), str(si + 1), str(len(paths))))
        size = sum(os.path.getsize(os.path.join(model_dir, p)) for p in paths if p in names)
        c.equal("group %d: shard bytes = encoded size of its weights" % (gi + 1),
                sum(_encoded_size(w) for w in group["weights"]), size)


def check_summary(c: Checker, model_dir: str, doc: dict, summary: dict) -> None:
    files = [{"name": n, "size": os.path.getsize(os.path.join(model_dir, n)),
              "sha256": _sha256(os.path.join(model_dir, n)),
              "integrity": _integrity(os.path.join(model_dir, n))}
             for n in sorted(os.listdir(model_dir))]
    shards = [f for f in files if _SHARD_NAME.match(f["name"])]
    quantized: Dict[str, int] = {}
    for w in _weights(doc):
        if "quantization" in w:
            quantized[w["quantization"]["dtype"]] = quantized.get(w["quantization"]["dtype"], 0) + 1
    c.equal("summary files", files, summary.get("files"))
    c.equal("summary format", doc["format"], summary.get("format"))
    c.equal("summary shard_count", len(shards), summary.get("shard_count"))
    c.equal("summary weight_bytes", sum(f["size"] for f in shards), summary.get("weight_bytes"))
    c.equal("summary total_bytes", sum(f["size"] for f in files), summary.get("total_bytes"))
    c.equal("summary num_weights", len(_weights(doc)), summary.get("num_weights"))
    c.equal("summary num_groups", len(doc["weightsManifest"]), summary.get("num_groups"))
    c.equal("summary quantized_weights", quantized, summary.get("quantized_weights"))


def check_shard_size(c: Checker, doc: dict, sizes: Dict[str, int], shard_size: int) -> None:
    for gi, group in enumerate(doc["weightsManifest"]):
        got = [sizes.get(p, -1) for p in group["paths"]]
        total = sum(_encoded_size(w) for w in group["weights"])
        c.equal("group %d: shard count for %d bytes" % (gi + 1, total),
                math.ceil(total / shard_size), len(got))
        c.true("group %d: shards %s are not full %d-byte shards then one of at most %d bytes"
               % (gi + 1, got, shard_size, shard_size),
               all(s == shard_size for s in got[:-1]) and (not got or 0 < got[-1] <= shard_size))


# Fused ops of a graph model: inputs are (x, filter or matrix, *args); args[0] is
# the bias when fused_ops starts with BiasAdd.
_FUSED_OPS = ("_FusedConv2D", "_FusedMatMul", "FusedDepthwiseConv2dNative")
# Keys of a Const's TensorProto that hold values (protobuf JSON names).
_PAYLOAD_KEYS = ("tensorContent", "floatVal", "doubleVal", "intVal", "int64Val", "boolVal",
                 "stringVal", "halfVal", "scomplexVal", "dcomplexVal", "uint32Val", "uint64Val")


def _graph_nodes(doc: dict) -> List[dict]:
    """Every NodeDef of a graph model: main graph, its functions, the initializer."""
    topology = doc.get("modelTopology") or {}
    nodes = list(topology.get("node", []))
    for func in topology.get("library", {}).get("function", []):
        nodes += func.get("nodeDef", [])
    nodes += (doc.get("modelInitializer") or {}).get("node", [])
    return nodes


def _tensor_shape(shape: dict) -> List[int]:
    return [int(d.get("size", 0)) for d in shape.get("dim", [])]


def _strings(attr: dict) -> List[str]:
    """A list(string) attr's values (protobuf JSON holds bytes as base64)."""
    return [base64.b64decode(v).decode("utf-8") for v in attr.get("list", {}).get("s", [])]


def check_graph(c: Checker, doc: dict) -> None:
    """The invariants every graph model we write must hold (see the module doc)."""
    c.equal("graph model: number of weight groups", 1, len(doc["weightsManifest"]))
    weights = {w["name"]: w for w in _weights(doc)}
    nodes = _graph_nodes(doc)
    consts = {n["name"]: n for n in nodes if n.get("op") == "Const"}
    c.equal("graph model: Const nodes = weights", sorted(weights), sorted(consts))
    for name in sorted(set(consts) & set(weights)):
        tensor = consts[name].get("attr", {}).get("value", {}).get("tensor", {})
        c.equal("Const %s: shape in the topology = manifest shape" % name,
                weights[name]["shape"], _tensor_shape(tensor.get("tensorShape", {})))
        left = sorted(k for k in _PAYLOAD_KEYS if k in tensor)
        c.true("Const %s: payload %s left in model.json" % (name, left), not left)
    names = {n["name"] for n in doc["modelTopology"].get("node", [])}
    for side in ("inputs", "outputs"):
        for key, info in sorted(doc.get("signature", {}).get(side, {}).items()):
            node = info["name"].split(":")[0]
            c.true("signature %s %r names node %s, which the graph lacks" % (side, key, node),
                   node in names)
    for node in nodes:
        if node.get("op") not in _FUSED_OPS:
            continue
        attrs = node.get("attr", {})
        fused = _strings(attrs.get("fused_ops", {}))
        data = [i for i in node.get("input", []) if not i.startswith("^")]
        c.true("%s %s: fused_ops %s do not start with BiasAdd" % (node["op"], node["name"], fused),
               bool(fused) and fused[0] == "BiasAdd")
        bias = data[2].split(":")[0] if len(data) > 2 else None
        shape = weights[bias]["shape"] if bias in weights else None
        c.true("%s %s: bias %s has shape %s, want a rank-1 weight" % (
            node["op"], node["name"], bias, shape), shape is not None and len(shape) == 1)


def _signature_text(entries: dict) -> str:
    """``key=DTYPE[d,...];...`` of a signature side, sorted by key (``[?]``: unknown rank)."""
    out = []
    for key, info in sorted(entries.items()):
        shape = info.get("tensorShape", {})
        dims = "?" if shape.get("unknownRank") else ",".join(map(str, _tensor_shape(shape)))
        out.append("%s=%s[%s]" % (key, info.get("dtype"), dims))
    return ";".join(out)


def _op_counts(doc: dict) -> Dict[str, int]:
    counts: Dict[str, int] = {}
    for node in _graph_nodes(doc):
        counts[node.get("op")] = counts.get(node.get("op"), 0) + 1
    return counts


def _pairs(text: str, sep: str) -> List[List[str]]:
    return [item.split(sep, 1) for item in text.split(",") if item]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model_dir")
    p.add_argument("summary")
    p.add_argument("--source", help="the summary's source label")
    p.add_argument("--format", default="layers-model", help="model.json's format")
    p.add_argument("--shard_size", type=int, help="weight_shard_size_bytes of the model")
    p.add_argument("--shards", help="exact shard files: name:size,name:size,...")
    p.add_argument("--groups", help="exact weight names per group: a,b;c,d")
    p.add_argument("--quantized", default="",
                   help="exact quantization: weight=dtype,...; '*=dtype' for every weight; "
                        "unlisted weights must not be quantized")
    p.add_argument("--metadata", default="",
                   help="exact userDefinedMetadata: key=path.json,...; empty: none")
    p.add_argument("--same_files_as", help="a directory whose files these must equal byte for byte")
    p.add_argument("--same_shards_as", help="a model directory whose shard files these must equal")
    p.add_argument("--inputs", help="exact graph signature inputs: key=DT_FLOAT[-1,8];...")
    p.add_argument("--outputs", help="exact graph signature outputs: key=DT_FLOAT[-1,4];...")
    p.add_argument("--ops", default="",
                   help="exact node counts of these ops in a graph model: op=count,... "
                        "(0: absent)")
    return p


def main(argv: List[str]) -> int:
    args = _parser().parse_args(argv)
    c = Checker()
    with open(os.path.join(args.model_dir, "model.json"), "rb") as f:
        doc = json.loads(f.read())
    with open(args.summary, "rb") as f:
        summary = json.loads(f.read())
    names = os.listdir(args.model_dir)
    sizes = {n: os.path.getsize(os.path.join(args.model_dir, n)) for n in names}

    c.equal("model.json format", args.format, doc.get("format"))
    check_manifest(c, args.model_dir, doc)
    check_summary(c, args.model_dir, doc, summary)
    if doc.get("format") == "graph-model":
        check_graph(c, doc)
    for side in ("inputs", "outputs"):
        want_text = getattr(args, side)
        if want_text is not None:
            c.equal("signature %s" % side, want_text,
                    _signature_text(doc.get("signature", {}).get(side, {})))
    counts = _op_counts(doc) if args.ops else {}
    for op, count in _pairs(args.ops, "="):
        c.equal("number of %s nodes" % op, int(count), counts.get(op, 0))
    if args.source is not None:
        c.equal("summary source", args.source, summary.get("source"))
    if args.shard_size is not None:
        check_shard_size(c, doc, sizes, args.shard_size)
    if args.shards is not None:
        want = {name: int(size) for name, size in _pairs(args.shards, ":")}
        shards = {n: s for n, s in sizes.items() if n != "model.json"}
        c.equal("shard files and sizes", want, shards)
    if args.groups is not None:
        want_groups = [g.split(",") for g in args.groups.split(";")]
        c.equal("weight groups", want_groups,
                [[w["name"] for w in g["weights"]] for g in doc["weightsManifest"]])
    quantized = {w["name"]: w["quantization"]["dtype"]
                 for w in _weights(doc) if "quantization" in w}
    want_q = dict(_pairs(args.quantized, "="))
    if "*" in want_q:
        want_q = {w["name"]: want_q["*"] for w in _weights(doc)}
    c.equal("quantized weights", want_q, quantized)
    for w in _weights(doc):
        if "quantization" in w:
            q = w["quantization"]
            c.equal("%s: original_dtype" % w["name"], "float32", q.get("original_dtype"))
            if q["dtype"] in ("uint8", "uint16"):
                c.true("%s: affine %s quantization needs min and scale, got %r"
                       % (w["name"], q["dtype"], q), "min" in q and "scale" in q)
    want_meta = {}
    for key, path in _pairs(args.metadata, "="):
        with open(path, "rb") as f:
            want_meta[key] = json.loads(f.read())
    c.equal("userDefinedMetadata", want_meta, doc.get("userDefinedMetadata", {}))
    if args.same_files_as is not None:
        other = args.same_files_as
        c.equal("file names as in %s" % other, sorted(os.listdir(other)), sorted(sizes))
        for name in sorted(set(sizes) & set(os.listdir(other))):
            c.equal("sha256 of %s as in %s" % (name, other), _sha256(os.path.join(other, name)),
                    _sha256(os.path.join(args.model_dir, name)))
    if args.same_shards_as is not None:
        other = args.same_shards_as
        theirs = {n: _sha256(os.path.join(other, n))
                  for n in os.listdir(other) if _SHARD_NAME.match(n)}
        ours = {n: _sha256(os.path.join(args.model_dir, n)) for n in sizes if _SHARD_NAME.match(n)}
        c.equal("shard files (sha256) as in %s" % other, theirs, ours)

    for failure in c.failures:
        print("FAIL %s: %s" % (args.model_dir, failure))
    print("%s: %d checks, %d failed" % (args.model_dir, c.count, len(c.failures)))
    return 1 if c.failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
