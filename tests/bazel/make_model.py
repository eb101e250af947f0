"""Writes small Keras models for the rule tests: make_model.py OUT KIND.

KIND: ``mlp`` or ``mlp_<seed>`` (Dense 8->16 relu, Dense 16->4; 4 float32
weights, 848 bytes), or ``broken`` (not a model). The format follows OUT's
extension: ``.h5`` (Keras HDF5) or ``.keras`` (Keras 3 archive). Seeded, and
the archive's timestamps and object ids are fixed, so the same KIND gives the
same bytes on every run: generated sources keep conversion cache keys stable.
"""

import json
import os
import sys
import zipfile

# A fixed time for the .keras archive: its entries and metadata.json's
# date_saved otherwise carry the time of the run.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_FIXED_DATE_SAVED = "1980-01-01@00:00:00"


def _renumber_shared_objects(node, ids):
    """Replaces config.json's shared_object_id values (Python id()s, so memory
    addresses) by their order of first appearance; equal ids stay equal."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "shared_object_id":
                node[key] = ids.setdefault(value, len(ids))
            else:
                _renumber_shared_objects(value, ids)
    elif isinstance(node, list):
        for value in node:
            _renumber_shared_objects(value, ids)


def _normalize_keras_archive(path: str) -> None:
    """Rewrites a .keras zip with fixed timestamps and object ids, entries in order."""
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info.filename)) for info in src.infolist()]
    tmp = path + ".tmp"
    with zipfile.ZipFile(tmp, "w") as dst:
        for info, data in entries:
            if info.filename == "metadata.json":
                meta = json.loads(data)
                meta["date_saved"] = _FIXED_DATE_SAVED
                data = json.dumps(meta).encode("utf-8")
            elif info.filename == "config.json":
                config = json.loads(data)
                _renumber_shared_objects(config, {})
                data = json.dumps(config).encode("utf-8")
            fixed = zipfile.ZipInfo(info.filename, date_time=_FIXED_ZIP_TIME)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, data)
    os.replace(tmp, path)


def main(out: str, kind: str) -> None:
    if kind == "broken":
        with open(out, "wb") as f:
            f.write(b"this is not a model\n")
        return
    name, _, seed = kind.partition("_")
    if name != "mlp" or (seed and not seed.isdigit()):
        raise SystemExit("make_model.py: KIND got %r, want mlp, mlp_<seed> or broken" % kind)
    if not out.endswith((".h5", ".keras")):
        raise SystemExit("make_model.py: OUT got %r, want a .h5 or .keras path" % out)
    import keras
    keras.utils.set_random_seed(int(seed or 0))
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(4)], name=kind)
    model.save(out)
    if out.endswith(".keras"):
        _normalize_keras_archive(out)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: make_model.py OUT KIND")
    main(*sys.argv[1:])
