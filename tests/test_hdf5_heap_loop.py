"""A corrupt HDF5 global heap that spins libhdf5 forever is refused before it is read.

Found by the fuzz tier (tests/fuzz): in a Keras .h5, the free-space object of
the global heap holding the vlen string attributes shortened to 257 bytes, with
a zero-sized object after it. libhdf5 1.14 then loops forever (holding the GIL)
on the first attribute read, so without the check the converter hangs.
"""

import io
import os
import struct
import subprocess
import sys

import h5py
import numpy as np
import pytest

from converter.errors import InvalidModelError
from converter.readers import hdf5_heaps

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _heap(data: bytes):
    """``(collection offset, free-space object offset)`` of the first global heap."""
    at = data.index(b"GCOL")
    size = struct.unpack_from("<Q", data, at + 8)[0]
    p = at + 16
    while True:
        index, _, _, object_size = struct.unpack_from("<HHIQ", data, p)
        if index == 0:
            return at, p, size
        p += 16 + ((object_size + 7) & ~7)


@pytest.fixture(scope="module")
def good_h5(tmp_path_factory):
    path = tmp_path_factory.mktemp("heap") / "m.h5"
    with h5py.File(path, "w") as f:
        f.attrs["backend"] = "tensorflow"
        f.attrs["keras_version"] = "3.15.1"
        f.attrs["model_config"] = '{"class_name": "Sequential"}'
    return path


def _spinning(good: bytes) -> bytes:
    at, free, size = _heap(good)
    data = bytearray(good)
    struct.pack_into("<Q", data, free + 8, 257)  # free space "ends" early ...
    data[free + 257:free + 257 + 16] = bytes(16)  # ... at a zero-sized free-space object
    return bytes(data)


def test_spinning_heap_is_refused_in_one_line(good_h5, tmp_path):
    bad = tmp_path / "spin.h5"
    bad.write_bytes(_spinning(good_h5.read_bytes()))
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.json").write_text("previous")
    # A regression would hang: the timeout turns it into a failure.
    proc = subprocess.run([sys.executable, "-m", "converter", str(bad), str(out),
                           "--input_format=keras", "--output_format=tfjs_layers_model"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    at, free, _ = _heap(good_h5.read_bytes())
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "%s: corrupt HDF5 global heap at byte %d (object 0 at byte %d has size 0, which does "
        "not advance); libhdf5 would loop on it forever" % (bad, at, free + 257)), proc.stderr
    assert (out / "model.json").read_text() == "previous"


def test_object_past_the_collection_end_is_refused(good_h5):
    data = bytearray(good_h5.read_bytes())
    at, free, size = _heap(bytes(data))
    struct.pack_into("<Q", data, free + 8, size)  # one object header too long
    with pytest.raises(InvalidModelError, match="runs past the collection's end"):
        hdf5_heaps.check_global_heaps(io.BytesIO(bytes(data)), "x.h5")


def test_valid_heaps_pass_and_signatures_in_weights_are_not_heaps(good_h5, tmp_path):
    hdf5_heaps.check_global_heaps(io.BytesIO(good_h5.read_bytes()), "m.h5")
    # Weight bytes that spell a collection header (signature, version 1) but whose
    # size does not fit the file are not taken for one.
    words = np.frombuffer(b"GCOL\x01\x00\x00\x00" + b"\xff" * 8 + b"\x00" * 16, np.float32)
    path = tmp_path / "w.h5"
    with h5py.File(path, "w") as f:
        f["w"] = np.tile(words, 64)
    hdf5_heaps.check_global_heaps(io.BytesIO(path.read_bytes()), "w.h5")


def test_signature_across_read_chunks_is_found(monkeypatch):
    monkeypatch.setattr(hdf5_heaps, "_CHUNK", 8)
    data = b"x" * 6 + b"GCOL" + b"y" * 9 + b"GCOL" + b"GCOL"
    assert list(hdf5_heaps._signatures(io.BytesIO(data), 0, len(data))) == [6, 19, 23]
