"""HDF5 data stored outside the file is refused, so no local file's bytes reach a shard.

Each case rebuilds a Dense kernel of a real Keras 3 .h5 (and of the
model.weights.h5 inside a .keras) so that reading it would follow external
storage, a soft link, an external link or a virtual dataset onto a secret file
the test writes; every conversion path must refuse it naming the dataset.
"""

import os
import pathlib
import shutil
import zipfile

import h5py
import numpy as np
import pytest

from converter import api
from converter.errors import InvalidModelError

SECRET = b"TOP-SECRET-HOSTNAME-BYTES-0123456789abcdefghijklmnopqrstuvwxyz!!"  # 64 bytes


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    import keras
    root = tmp_path_factory.mktemp("foreign")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4, name="d")])
    model.save(root / "m.h5")
    model.save(root / "m.keras")
    (root / "secret.bin").write_bytes(SECRET)
    with h5py.File(root / "secret.h5", "w") as f:
        f["k"] = np.frombuffer(SECRET, np.float32).reshape(4, 4)
    return root


def _kernel_path(f: h5py.File) -> str:
    found = []
    f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset)
                 and o.shape == (4, 4) else None)
    return found[0]


def _rewire(path: pathlib.Path, kind: str, secret_dir: pathlib.Path) -> str:
    with h5py.File(path, "r+") as f:
        name = _kernel_path(f)
        parent, leaf = name.rsplit("/", 1)
        del f[name]
        group = f[parent]
        if kind == "external":
            group.create_dataset(leaf, shape=(4, 4), dtype="<f4",
                                 external=[(str(secret_dir / "secret.bin"), 0, 64)])
        elif kind == "soft":
            f["stash"] = np.zeros((4, 4), np.float32)
            group[leaf] = h5py.SoftLink("/stash")
        elif kind == "external_link":
            group[leaf] = h5py.ExternalLink(str(secret_dir / "secret.h5"), "/k")
        else:
            layout = h5py.VirtualLayout(shape=(4, 4), dtype="<f4")
            layout[:] = h5py.VirtualSource(str(secret_dir / "secret.h5"), "k", shape=(4, 4))
            group.create_virtual_dataset(leaf, layout)
    return name


KINDS = ["external", "soft", "external_link", "virtual"]
MESSAGES = {"external": "uses external storage", "soft": "is a soft link",
            "external_link": "is an external link", "virtual": "is a virtual dataset"}


def _no_secret_anywhere(root: pathlib.Path):
    for p in root.rglob("*"):
        if p.is_file() and p.name not in ("secret.bin", "secret.h5"):
            assert SECRET[:16] not in p.read_bytes(), p


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("output_format", ["tfjs_layers_model", "tfjs_graph_model"])
def test_h5_foreign_data_is_refused(base, tmp_path, kind, output_format):
    src = tmp_path / "m.h5"
    shutil.copy(base / "m.h5", src)
    name = _rewire(src, kind, base)
    with pytest.raises(InvalidModelError) as info:
        api.convert(str(src), str(tmp_path / "out"), output_format=output_format)
    message = str(info.value)
    assert message.startswith("%s: " % src) and MESSAGES[kind] in message, message
    assert (name in message) or kind in ("soft", "external_link") and name.rsplit("/", 1)[1] in message
    assert not (tmp_path / "out").exists()
    _no_secret_anywhere(tmp_path)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("output_format", ["tfjs_layers_model", "tfjs_graph_model"])
def test_keras_v3_foreign_data_is_refused(base, tmp_path, kind, output_format):
    with zipfile.ZipFile(base / "m.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    weights = tmp_path / "w.h5"
    weights.write_bytes(members["model.weights.h5"])
    _rewire(weights, kind, base)
    members["model.weights.h5"] = weights.read_bytes()
    os.unlink(weights)
    src = tmp_path / "m.keras"
    with zipfile.ZipFile(src, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(InvalidModelError) as info:
        api.convert(str(src), str(tmp_path / "out"), output_format=output_format)
    assert str(info.value).startswith(str(src)), str(info.value)
    assert MESSAGES[kind] in str(info.value)
    assert not (tmp_path / "out").exists()
    _no_secret_anywhere(tmp_path)


def test_plain_model_still_converts(base, tmp_path):
    api.convert(str(base / "m.h5"), str(tmp_path / "out"))
    assert (tmp_path / "out" / "model.json").is_file()
