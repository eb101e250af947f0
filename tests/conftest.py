"""Shared pytest fixtures: the session's zoo cache and bad-input fixtures.

Markers (``slow``, ``fuzz``) are declared once, in pytest.ini.

Zoo models are built once per session, lazily, under a session temp dir. Keras 3
(``keras``) and Keras 2 (``tf_keras``) models are built in this process: both
import side by side on top of one TensorFlow.
"""

import pathlib
import sys
from typing import Dict, Tuple

import pytest

# Test helper modules (zoo, tolerances, tfjs_node) import as top-level modules
# whether pytest runs with rootdir-relative or package-less collection.
_TESTS_DIR = str(pathlib.Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)

import test_cli  # noqa: E402  (needs the path above)
import zoo  # noqa: E402


class ZooCache:
    """Builds each (zoo model, Keras version) once and remembers its exports.

    Attributes:
      root: directory holding the saved model files.
    """

    def __init__(self, root: pathlib.Path):
        self.root = root
        self._models: Dict[Tuple[str, int], object] = {}
        self._exports: Dict[Tuple[str, int], Dict[str, zoo.ExportedModel]] = {}

    def model(self, name: str, version: int):
        """The live Keras model (for reference predictions with other weights)."""
        key = (name, version)
        if key not in self._models:
            self._models[key] = zoo.build_model(name, version)
        return self._models[key]

    def export(self, name: str, source_format: str) -> zoo.ExportedModel:
        """Model ``name`` saved as ``source_format``, with inputs and Keras outputs."""
        version = zoo.SOURCE_FORMATS[source_format][0]
        key = (name, version)
        if key not in self._exports:
            self._exports[key] = zoo.export_models(self.model(name, version), name, version,
                                                   self.root / ("keras%d" % version))
        return self._exports[key][source_format]


@pytest.fixture(scope="session")
def zoo_cache(tmp_path_factory) -> ZooCache:
    """The session's ZooCache (models saved under a session temp dir)."""
    return ZooCache(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def good_h5(tmp_path_factory):
    """A good Keras 2 ``.h5`` (one Dense layer), for tests that corrupt a copy of it."""
    return test_cli.save_dense_h5(tmp_path_factory.mktemp("good") / "model.h5")


@pytest.fixture
def previous(tmp_path):
    """An earlier conversion's output and its digest: a refused run leaves both as they were."""
    out = tmp_path / "out"
    src = test_cli.make_layers_model(tmp_path / "prev_src")
    assert test_cli.run(src, out, "--output_format=tfjs_layers_model")[0] == 0
    return out, test_cli.tree_digest(out)
