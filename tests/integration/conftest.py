"""Fixtures of the Bazel integration tier: throwaway checkouts with their own Bazel servers.

Tests here run `bazel` as a subprocess and are marked ``bazel`` (deselect them
with ``-m "not bazel"``). A module asks ``checkouts`` for as many checkouts as
it needs; they live for the module, so the tests of a module share their
servers and outputs, and every server is shut down (with its persistent
workers) when the module ends, whatever happened.
"""

import pathlib
import shutil
import sys
from typing import Dict

import pytest

_HERE = str(pathlib.Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import bazel_harness  # noqa: E402  (needs the path above)


class Checkouts:
    """Copies of this working tree at distinct paths, each with its own Bazel.

    All copies come from one snapshot taken when the module starts, so they
    hold the same bytes even while someone edits the working tree meanwhile.
    """

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.snapshot = bazel_harness.make_checkout(root / "snapshot")
        self._made: Dict[str, bazel_harness.Bazel] = {}

    def __getitem__(self, name: str) -> bazel_harness.Bazel:
        """The checkout ``name`` (made on first use) at ``<module tmp>/<name>/src``."""
        if name not in self._made:
            dest = self.root / name / "src"
            shutil.copytree(self.snapshot, dest, symlinks=True)
            self._made[name] = bazel_harness.Bazel(dest)
        return self._made[name]

    def shutdown_all(self) -> None:
        failures = []
        for bazel in self._made.values():
            try:
                bazel.shutdown()
            except Exception as e:  # noqa: BLE001  (stop the others first, then report)
                failures.append(e)
        if failures:
            raise failures[0]


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory):
    """Checkouts for one test module; their Bazel servers stop when the module ends."""
    if shutil.which("bazel") is None:
        pytest.fail("bazel is not on PATH; run tools/setup.sh (apt-get install bazel-bootstrap)")
    made = Checkouts(tmp_path_factory.mktemp("checkouts"))
    try:
        yield made
    finally:
        made.shutdown_all()
