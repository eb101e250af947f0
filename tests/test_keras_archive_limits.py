""".keras archives: bombs are refused within bounded memory, corrupt members by their CRC."""

import pathlib
import subprocess
import sys
import zipfile

import pytest

from converter import api
from converter.errors import InvalidModelError

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    import keras
    root = tmp_path_factory.mktemp("archives")
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, name="d")]).save(root / "m.keras")
    with zipfile.ZipFile(root / "m.keras") as z:
        members = {i.filename: (z.read(i.filename), i.compress_type) for i in z.infolist()}
    return root, members


def _bomb(path, members, size):
    """config.json of ``size`` spaces, deflated (about 1 MB per GiB), streamed in."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, (data, kind) in members.items():
            if name == "config.json":
                with z.open(name, "w", force_zip64=True) as f:
                    chunk = b" " * (1 << 20)
                    for _ in range(size >> 20):
                        f.write(chunk)
                    f.write(data)
            else:
                z.writestr(name, data)
    return path


@pytest.mark.parametrize("output_format", ["tfjs_layers_model", "tfjs_graph_model"])
def test_config_bomb_is_refused_in_bounded_memory(archive, tmp_path, output_format):
    root, members = archive
    bomb = _bomb(tmp_path / "bomb.keras", members, 1 << 30)
    assert bomb.stat().st_size < 3 << 20
    # VmHWM, not ru_maxrss: the latter keeps the forking pytest process's peak across exec.
    script = ("import sys; from converter import cli; code = cli.main(sys.argv[1:]); "
              "print([l.split()[1] for l in open('/proc/self/status') if "
              "l.startswith('VmHWM')][0]); sys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script, "--output_format=" + output_format,
                           str(bomb), str(tmp_path / "out")], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 1, proc.stderr
    err = proc.stderr.strip().splitlines()[-1]
    assert err.startswith("tfjs_converter: error: %s: member config.json declares %d bytes, "
                          "over the %d-byte limit" % (bomb, (1 << 30) + len(members["config.json"][0]),
                                                       32 << 20)), err
    peak_mb = int(proc.stdout.strip()) / 1024
    # The graph path imports TensorFlow (about 550 MB) before reading the archive.
    bound = 300 if output_format == "tfjs_layers_model" else 900
    assert peak_mb < bound, peak_mb
    assert not (tmp_path / "out").exists()


def test_bit_flip_in_stored_weights_fails_the_crc(archive, tmp_path):
    root, members = archive
    data = bytearray(members["model.weights.h5"][0])  # flip one bit in the middle
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "flip.keras"
    with zipfile.ZipFile(bad, "w") as z:
        for name, (member, kind) in members.items():
            info = zipfile.ZipInfo(name)
            z.writestr(info, member, compress_type=zipfile.ZIP_STORED)
    # Patch the bytes in place after the CRC was written, as a disk error would.
    raw = bytearray(bad.read_bytes())
    at = raw.index(members["model.weights.h5"][0])
    raw[at:at + len(data)] = data
    bad.write_bytes(bytes(raw))
    for output_format in ("tfjs_layers_model", "tfjs_graph_model"):
        with pytest.raises(InvalidModelError, match=r"flip.keras: member model.weights.h5 fails "
                           r"its CRC-32 check \(stored [0-9a-f]{8}, computed [0-9a-f]{8}\)"):
            api.convert(str(bad), str(tmp_path / "out"), output_format=output_format)


def test_bit_flip_in_deflated_member_is_corrupt(archive, tmp_path):
    root, members = archive
    bad = tmp_path / "deflated.keras"
    with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, (member, kind) in members.items():
            z.writestr(name, member)
    raw = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as z:
        info = z.getinfo("model.weights.h5")
    raw[info.header_offset + 30 + len("model.weights.h5") + info.compress_size // 2] ^= 0x01
    bad.write_bytes(bytes(raw))
    with pytest.raises(InvalidModelError, match=r"deflated.keras: member model.weights.h5 is "
                       r"corrupt"):
        api.convert(str(bad), str(tmp_path / "out"))


def test_weights_expansion_is_bounded(archive, tmp_path):
    root, members = archive
    giant = tmp_path / "giant.keras"
    with zipfile.ZipFile(giant, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, (member, kind) in members.items():
            z.writestr(name, member if name != "model.weights.h5" else b"\0" * (64 << 20))
    with pytest.raises(InvalidModelError, match=r"giant.keras: member model.weights.h5 declares "
                       r"67108864 bytes, over the \d+-byte limit"):
        api.convert(str(giant), str(tmp_path / "out"))
