#!/usr/bin/env node
/**
 * Runs TF.js models from disk in one Node process: the parity tests' JS side.
 *
 * Usage: node run_models.js JOB_FILE
 *
 * JOB_FILE is JSON:
 *   {
 *     "wasmSimd": null | true | false,   // optional; null = let TF.js detect
 *     "jobs": [{
 *       "id": "mlp-cpu",                  // optional, echoed in the result
 *       "model": "/abs/path/model.json",
 *       "kind": "layers" | "graph",
 *       "backend": "cpu" | "wasm",
 *       "method": "predict" | "execute" | "executeAsync",
 *       "inputs": [{"name": "x"?, "shape": [2, 3], "dtype": "float32", "file": "/abs/x.bin"}],
 *       "outputNames": ["y"]?,             // execute/executeAsync output nodes
 *       "warmup": 0?, "repeats": 1?,       // timing runs (benchmarks)
 *       "outputs": "/abs/out/dir"          // receives result.json and output_<i>.bin
 *     }, ...]
 *   }
 *
 * Tensor files are raw little-endian element data: float32/int32 4 bytes, bool 1
 * byte; string tensors are, per element, a uint32 LE byte length then the bytes.
 *
 * Each job writes <outputs>/result.json:
 *   {"id", "ok", "error": null | {"stage", "message", "name", "stack"},
 *    "backendRequested", "backendUsed", "wasm": {"simd", "threads", "binary"} | null,
 *    "outputs": [{"name", "shape", "dtype", "file"}],
 *    "timing": {"backendMs", "loadMs", "warmupMs": [...], "runMs": [...]},
 *    "tensorsLeaked", "tfjsVersion"}
 * Error messages are recorded verbatim, so tests can assert on them. A failing
 * job does not stop the batch. The exit code is non-zero only for harness
 * errors: an unreadable or malformed job file, or an unwritable outputs dir
 * (exit 2), and uncaught internal failures (exit 3).
 */

'use strict';

const fs = require('fs');
const path = require('path');

const KINDS = {
  layers: ['predict', 'execute'],
  graph: ['predict', 'execute', 'executeAsync'],
};
const BACKENDS = ['cpu', 'wasm'];
const DTYPES = ['float32', 'int32', 'bool', 'string'];
const BYTES_PER_ELEMENT = {float32: 4, int32: 4, bool: 1};

/** A problem with the job file itself; aborts the whole batch. */
class HarnessError extends Error {}

/** A job failure, tagged with the stage it happened in. */
class JobError extends Error {
  constructor(stage, cause) {
    super(messageOf(cause));
    this.stage = stage;
    this.cause = cause;
  }
}

/** Text of anything thrown: Error objects, strings, Emscripten abort objects. */
function messageOf(thrown) {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (thrown != null && typeof thrown.message === 'string') return thrown.message;
  return JSON.stringify(thrown);
}

function validateJobFile(spec, jobFile) {
  const where = `job file ${jobFile}`;
  if (spec === null || typeof spec !== 'object' || !Array.isArray(spec.jobs)) {
    throw new HarnessError(`${where}: want an object with a "jobs" array`);
  }
  if (spec.wasmSimd != null && typeof spec.wasmSimd !== 'boolean') {
    throw new HarnessError(`${where}: "wasmSimd" must be null, true or false, got ${
        JSON.stringify(spec.wasmSimd)}`);
  }
  spec.jobs.forEach((job, index) => {
    const at = `${where}: jobs[${index}]`;
    for (const key of ['model', 'kind', 'backend', 'method', 'outputs']) {
      if (typeof job[key] !== 'string') {
        throw new HarnessError(`${at}: "${key}" must be a string, got ${
            JSON.stringify(job[key])}`);
      }
    }
    if (!(job.kind in KINDS)) {
      throw new HarnessError(`${at}: kind ${JSON.stringify(job.kind)}, want one of ${
          Object.keys(KINDS).join(', ')}`);
    }
    if (!BACKENDS.includes(job.backend)) {
      throw new HarnessError(`${at}: backend ${JSON.stringify(job.backend)}, want one of ${
          BACKENDS.join(', ')}`);
    }
    if (!KINDS[job.kind].includes(job.method)) {
      throw new HarnessError(`${at}: method ${JSON.stringify(job.method)} for a ${
          job.kind} model, want one of ${KINDS[job.kind].join(', ')}`);
    }
    if (!Array.isArray(job.inputs) || job.inputs.length === 0) {
      throw new HarnessError(`${at}: "inputs" must be a non-empty array`);
    }
    job.inputs.forEach((input, i) => {
      const inAt = `${at}.inputs[${i}]`;
      if (!Array.isArray(input.shape) ||
          !input.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new HarnessError(`${inAt}: "shape" must be a list of non-negative ints`);
      }
      if (!DTYPES.includes(input.dtype)) {
        throw new HarnessError(`${inAt}: dtype ${JSON.stringify(input.dtype)}, want one of ${
            DTYPES.join(', ')}`);
      }
      if (typeof input.file !== 'string') {
        throw new HarnessError(`${inAt}: "file" must be a string`);
      }
    });
    const named = job.inputs.filter((input) => input.name != null).length;
    if (named !== 0 && named !== job.inputs.length) {
      throw new HarnessError(`${at}: name all inputs or none (${named} of ${
          job.inputs.length} named)`);
    }
    if (job.outputNames != null &&
        !(Array.isArray(job.outputNames) &&
          job.outputNames.every((n) => typeof n === 'string'))) {
      throw new HarnessError(`${at}: "outputNames" must be a list of strings`);
    }
    if (job.kind === 'layers' && job.method === 'execute' && job.outputNames == null) {
      throw new HarnessError(`${at}: layers execute needs "outputNames"`);
    }
    for (const key of ['warmup', 'repeats']) {
      if (job[key] != null && !(Number.isInteger(job[key]) && job[key] >= 0)) {
        throw new HarnessError(`${at}: "${key}" must be a non-negative int`);
      }
    }
    if (job.repeats === 0) throw new HarnessError(`${at}: "repeats" must be >= 1`);
  });
}

/** A copy of a Node Buffer's bytes in a fresh, aligned ArrayBuffer. */
function toArrayBuffer(buffer) {
  return buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength);
}

/**
 * An IOHandler that reads model.json and its weight files from disk.
 *
 * The shards of each group are concatenated, and the groups follow one another
 * in manifest order, matching the flat weightSpecs list TF.js decodes.
 * Everything else in model.json (graph signature, modelInitializer,
 * userDefinedMetadata, ...) passes through getModelArtifactsForJSON.
 */
function fileHandler(tf, modelPath) {
  const dir = path.dirname(modelPath);
  return {
    load: async () => {
      const modelJSON = JSON.parse(fs.readFileSync(modelPath, 'utf8'));
      return tf.io.getModelArtifactsForJSON(modelJSON, async (manifest) => {
        const specs = [];
        const buffers = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            buffers.push(fs.readFileSync(path.join(dir, shard)));
          }
        }
        return [specs, toArrayBuffer(Buffer.concat(buffers))];
      });
    },
  };
}

function readInput(tf, input) {
  const bytes = fs.readFileSync(input.file);
  const size = input.shape.reduce((a, b) => a * b, 1);
  if (input.dtype === 'string') {
    const values = [];
    let offset = 0;
    for (let i = 0; i < size; i++) {
      if (offset + 4 > bytes.length) {
        throw new Error(`input file ${input.file}: string data ends after ${i} of ${
            size} elements`);
      }
      const length = bytes.readUInt32LE(offset);
      offset += 4;
      values.push(new Uint8Array(bytes.subarray(offset, offset + length)));
      offset += length;
    }
    if (offset !== bytes.length) {
      throw new Error(`input file ${input.file}: ${bytes.length - offset} trailing bytes`);
    }
    return tf.tensor(values, input.shape, 'string');
  }
  const want = size * BYTES_PER_ELEMENT[input.dtype];
  if (bytes.length !== want) {
    throw new Error(`input file ${input.file}: ${bytes.length} bytes, want ${want} for ${
        input.dtype} shape [${input.shape}]`);
  }
  const data = toArrayBuffer(bytes);
  const typed = input.dtype === 'float32' ? new Float32Array(data) :
      input.dtype === 'int32' ? new Int32Array(data) : new Uint8Array(data);
  return tf.tensor(typed, input.shape, input.dtype);
}

/** Puts inputs in the form the method takes: one tensor, a list, or a name map. */
function packInputs(model, job, tensors) {
  if (job.inputs[0].name == null) return tensors.length === 1 ? tensors[0] : tensors;
  const byName = {};
  job.inputs.forEach((input, i) => { byName[input.name] = tensors[i]; });
  if (job.kind === 'layers' && job.method === 'predict') {
    // LayersModel.predict takes positional inputs; order them as the model does.
    const want = model.inputNames;
    const given = Object.keys(byName);
    const missing = want.filter((n) => !(n in byName));
    const extra = given.filter((n) => !want.includes(n));
    if (missing.length || extra.length) {
      throw new Error(`input names [${given}] do not match the model's inputs [${want}]`);
    }
    return want.map((n) => byName[n]);
  }
  return byName;
}

/** Flattens a method's result to [[name, tensor], ...]. */
function unpackOutputs(model, job, result) {
  if (result instanceof Array) {
    const names = job.outputNames || defaultOutputNames(model, job);
    return result.map((t, i) => [names && names.length === result.length ? names[i] : null, t]);
  }
  if (result != null && typeof result.dataSync === 'function') {
    const names = job.outputNames || defaultOutputNames(model, job);
    return [[names && names.length === 1 ? names[0] : null, result]];
  }
  return Object.keys(result).map((name) => [name, result[name]]);
}

function defaultOutputNames(model, job) {
  return job.kind === 'layers' ? model.outputNames : model.outputNodes;
}

function runMethod(model, job, inputs) {
  if (job.method === 'predict') return model.predict(inputs);
  const names = job.outputNames;
  if (job.method === 'execute') return model.execute(inputs, names);
  return model.executeAsync(inputs, names);
}

function disposeResult(tf, result) {
  if (result == null) return;
  if (result instanceof Array) {
    tf.dispose(result);
  } else if (typeof result.dispose === 'function') {
    result.dispose();
  } else {
    tf.dispose(Object.values(result));
  }
}

async function writeOutput(tensor, file) {
  let bytes;
  if (tensor.dtype === 'string') {
    const parts = [];
    for (const value of await tensor.bytes()) {
      const length = Buffer.alloc(4);
      length.writeUInt32LE(value.length, 0);
      parts.push(length, Buffer.from(value));
    }
    bytes = Buffer.concat(parts);
  } else {
    let data = await tensor.data();
    // Some TF.js 4.22 cpu kernels (e.g. the lowered-loop outputs of SSD
    // detectors) hand back an Int32Array for a float32 tensor; the values a
    // TF.js user reads are those numbers, so send them as the tensor's dtype.
    const Want = tensor.dtype === 'float32' ? Float32Array :
        tensor.dtype === 'int32' ? Int32Array : null;
    if (Want !== null && !(data instanceof Want)) data = Want.from(data);
    bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  }
  fs.writeFileSync(file, bytes);
}

/**
 * Switches to a backend, capturing TF.js's console warnings: setBackend reports
 * an initialization failure by warning and returning false, not by throwing.
 */
async function useBackend(tf, name) {
  const warnings = [];
  const originalWarn = console.warn;
  console.warn = (...args) => { warnings.push(args.map(messageOf).join(' ')); };
  let ok;
  try {
    ok = await tf.setBackend(name);
    await tf.ready();
  } finally {
    console.warn = originalWarn;
  }
  if (!ok || tf.getBackend() !== name) {
    throw new Error(`backend ${name} failed to initialize (active: ${tf.getBackend()})` +
        (warnings.length ? `: ${warnings.join(' | ')}` : ''));
  }
}

async function wasmInfo(tf) {
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
  const binary = simd && threads ? 'tfjs-backend-wasm-threaded-simd.wasm' :
      simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
  return {simd, threads, binary};
}

async function stage(name, fn) {
  try {
    return await fn();
  } catch (thrown) {
    throw new JobError(name, thrown);
  }
}

function elapsedMs(start) {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

async function runJob(tf, job) {
  const result = {
    id: job.id == null ? null : job.id,
    ok: false,
    error: null,
    backendRequested: job.backend,
    backendUsed: null,
    wasm: null,
    outputs: [],
    timing: {backendMs: null, loadMs: null, warmupMs: [], runMs: []},
    tensorsLeaked: null,
    tfjsVersion: tf.version.tfjs,
  };
  let model = null;
  let inputs = [];
  const tensorsBefore = {count: null};
  try {
    let start = process.hrtime.bigint();
    await stage('backend', () => useBackend(tf, job.backend));
    result.timing.backendMs = elapsedMs(start);
    result.backendUsed = tf.getBackend();
    if (job.backend === 'wasm') result.wasm = await wasmInfo(tf);
    tensorsBefore.count = tf.memory().numTensors;

    start = process.hrtime.bigint();
    model = await stage('load', () => {
      const handler = fileHandler(tf, job.model);
      return job.kind === 'layers' ? tf.loadLayersModel(handler) : tf.loadGraphModel(handler);
    });
    result.timing.loadMs = elapsedMs(start);

    await stage('inputs', () => {
      for (const input of job.inputs) inputs.push(readInput(tf, input));
    });
    const packed = await stage('inputs', () => packInputs(model, job, inputs));

    for (let i = 0; i < (job.warmup || 0); i++) {
      start = process.hrtime.bigint();
      const warm = await stage('run', () => runMethod(model, job, packed));
      await stage('run', () =>
          Promise.all(unpackOutputs(model, job, warm).map(([, t]) => t.data())));
      result.timing.warmupMs.push(elapsedMs(start));
      disposeResult(tf, warm);
    }
    let outputs = null;
    for (let i = 0; i < (job.repeats || 1); i++) {
      disposeResult(tf, outputs);
      start = process.hrtime.bigint();
      outputs = await stage('run', () => runMethod(model, job, packed));
      // Reading the data forces the (possibly asynchronous) computation.
      await stage('run', () =>
          Promise.all(unpackOutputs(model, job, outputs).map(([, t]) => t.data())));
      result.timing.runMs.push(elapsedMs(start));
    }
    const flat = unpackOutputs(model, job, outputs);
    for (let i = 0; i < flat.length; i++) {
      const [name, tensor] = flat[i];
      const file = `output_${i}.bin`;
      await writeOutput(tensor, path.join(job.outputs, file));
      result.outputs.push({name, shape: tensor.shape, dtype: tensor.dtype, file});
    }
    disposeResult(tf, outputs);
    result.ok = true;
  } catch (thrown) {
    if (!(thrown instanceof JobError)) throw thrown;
    result.error = {
      stage: thrown.stage,
      message: thrown.message,
      name: thrown.cause instanceof Error ? thrown.cause.name : typeof thrown.cause,
      stack: thrown.cause instanceof Error ? String(thrown.cause.stack) : null,
    };
  } finally {
    tf.dispose(inputs);
    if (model != null) model.dispose();
  }
  if (tensorsBefore.count != null && tf.getBackend() === job.backend) {
    result.tensorsLeaked = tf.memory().numTensors - tensorsBefore.count;
  }
  return result;
}

function writeResult(job, result) {
  fs.writeFileSync(path.join(job.outputs, 'result.json'), JSON.stringify(result, null, 1));
}

async function main(argv) {
  if (argv.length !== 1) {
    throw new HarnessError('usage: node run_models.js JOB_FILE');
  }
  const jobFile = argv[0];
  let spec;
  try {
    spec = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
  } catch (thrown) {
    throw new HarnessError(`cannot read job file ${jobFile}: ${messageOf(thrown)}`);
  }
  validateJobFile(spec, jobFile);
  for (const job of spec.jobs) {
    try {
      fs.mkdirSync(job.outputs, {recursive: true});
    } catch (thrown) {
      throw new HarnessError(`cannot create outputs dir ${job.outputs}: ${messageOf(thrown)}`);
    }
  }

  const tf = require('@tensorflow/tfjs');
  const wasm = require('@tensorflow/tfjs-backend-wasm');
  // Node has no page to resolve .wasm URLs against: point the backend at the
  // binaries in its own dist/ directory, which Emscripten reads with fs in Node.
  wasm.setWasmPaths(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + path.sep);
  if (spec.wasmSimd != null) tf.env().set('WASM_HAS_SIMD_SUPPORT', spec.wasmSimd);

  let failed = 0;
  for (const job of spec.jobs) {
    const result = await runJob(tf, job);
    writeResult(job, result);
    if (!result.ok) failed++;
    process.stderr.write(`[run_models] ${job.id || job.model} on ${job.backend}: ${
        result.ok ? 'ok' : `FAILED at ${result.error.stage}: ${result.error.message}`}\n`);
  }
  process.stderr.write(`[run_models] ${spec.jobs.length - failed} ok, ${failed} failed\n`);
}

main(process.argv.slice(2)).then(
    () => { process.exitCode = 0; },
    (thrown) => {
      const harness = thrown instanceof HarnessError;
      process.stderr.write(`[run_models] harness error: ${
          harness ? thrown.message : (thrown && thrown.stack) || messageOf(thrown)}\n`);
      process.exitCode = harness ? 2 : 3;
    });
