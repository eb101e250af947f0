/**
 * Runs TF.js models in a browser page: the webgl side of converter/verify/browser.py.
 *
 * The page (served by browser.py on 127.0.0.1 under a random token) loads
 * tf.min.js and tf-backend-wasm.min.js, then this script, which fetches
 * jobs.json:
 *   {"wasmSimd": null | true | false,
 *    "jobs": [{"id", "model": "job/0/model/model.json", "kind": "layers" | "graph",
 *              "backend": "webgl" | "wasm" | "cpu", "method": "predict" | "execute" |
 *              "executeAsync", "inputs": [{"name"?, "shape", "dtype", "url"}],
 *              "outputNames"?, "warmup", "repeats", "result": "job/0/"}]}
 * Tensor bodies are the wire format of run_models.js (raw little-endian elements;
 * strings as uint32 LE length + bytes per element). Per job it POSTs each output to
 * <result>output/<i>, then result.json's object to <result>result; at the end it
 * POSTs {"ok": true} (or the harness error) to done; the page's inline handler reports
 * uncaught errors and scripts that failed to load the same way.
 */

'use strict';

const KINDS = {
  layers: ['predict', 'execute'],
  graph: ['predict', 'execute', 'executeAsync'],
};

class JobError extends Error {
  constructor(stage, cause) {
    super(messageOf(cause));
    this.stage = stage;
    this.cause = cause;
  }
}

function messageOf(thrown) {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (thrown != null && typeof thrown.message === 'string') return thrown.message;
  return JSON.stringify(thrown);
}

async function post(url, body, type) {
  const response = await fetch(url, {method: 'POST', body, headers: {'Content-Type': type}});
  if (!response.ok) throw new Error(`POST ${url}: HTTP ${response.status}`);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function readInput(input) {
  const bytes = await fetchBytes(input.url);
  const size = input.shape.reduce((a, b) => a * b, 1);
  if (input.dtype === 'string') {
    const view = new DataView(bytes.buffer);
    const values = [];
    let offset = 0;
    for (let i = 0; i < size; i++) {
      const length = view.getUint32(offset, true);
      offset += 4;
      values.push(bytes.slice(offset, offset + length));
      offset += length;
    }
    return tf.tensor(values, input.shape, 'string');
  }
  const width = input.dtype === 'bool' ? 1 : 4;
  if (bytes.length !== size * width) {
    throw new Error(`input ${input.url}: ${bytes.length} bytes, want ${size * width} for ${
        input.dtype} shape [${input.shape}]`);
  }
  const data = bytes.buffer;
  const typed = input.dtype === 'float32' ? new Float32Array(data) :
      input.dtype === 'int32' ? new Int32Array(data) : new Uint8Array(data);
  return tf.tensor(typed, input.shape, input.dtype);
}

function packInputs(model, job, tensors) {
  if (job.inputs[0].name == null) return tensors.length === 1 ? tensors[0] : tensors;
  const byName = {};
  job.inputs.forEach((input, i) => { byName[input.name] = tensors[i]; });
  if (job.kind === 'layers' && job.method === 'predict') {
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

function defaultOutputNames(model, job) {
  return job.kind === 'layers' ? model.outputNames : model.outputNodes;
}

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

function runMethod(model, job, inputs) {
  if (job.method === 'predict') return model.predict(inputs);
  if (job.method === 'execute') return model.execute(inputs, job.outputNames);
  return model.executeAsync(inputs, job.outputNames);
}

function disposeResult(result) {
  if (result == null) return;
  if (result instanceof Array) {
    tf.dispose(result);
  } else if (typeof result.dispose === 'function') {
    result.dispose();
  } else {
    tf.dispose(Object.values(result));
  }
}

async function outputBytes(tensor) {
  if (tensor.dtype !== 'string') {
    const data = await tensor.data();
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  const values = await tensor.bytes();
  const total = values.reduce((n, v) => n + 4 + v.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let offset = 0;
  for (const value of values) {
    view.setUint32(offset, value.length, true);
    out.set(value, offset + 4);
    offset += 4 + value.length;
  }
  return out;
}

async function useBackend(name) {
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

async function backendInfo(name) {
  if (name === 'wasm') {
    const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
    const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
    const binary = simd && threads ? 'tfjs-backend-wasm-threaded-simd.wasm' :
        simd ? 'tfjs-backend-wasm-simd.wasm' : 'tfjs-backend-wasm.wasm';
    return {wasm: {simd, threads, binary}};
  }
  if (name === 'webgl') {
    const gl = tf.backend().gpgpu.gl;
    const debug = gl.getExtension('WEBGL_debug_renderer_info');
    return {webgl: {
      version: tf.env().get('WEBGL_VERSION'),
      float32: tf.env().get('WEBGL_RENDER_FLOAT32_ENABLED'),
      renderer: debug ? gl.getParameter(debug.UNMASKED_RENDERER_WEBGL) :
          gl.getParameter(gl.RENDERER),
    }};
  }
  return {};
}

async function stage(name, fn) {
  try {
    return await fn();
  } catch (thrown) {
    throw new JobError(name, thrown);
  }
}

async function runJob(job) {
  const result = {
    id: job.id, ok: false, error: null, backendRequested: job.backend, backendUsed: null,
    wasm: null, webgl: null, outputs: [],
    timing: {backendMs: null, loadMs: null, warmupMs: [], runMs: []},
    tensorsLeaked: null, tfjsVersion: tf.version.tfjs,
  };
  let model = null;
  const inputs = [];
  let tensorsBefore = null;
  try {
    if (!(KINDS[job.kind] || []).includes(job.method)) {
      throw new JobError('load', new Error(`method ${job.method} for a ${job.kind} model`));
    }
    let start = performance.now();
    await stage('backend', () => useBackend(job.backend));
    result.timing.backendMs = performance.now() - start;
    result.backendUsed = tf.getBackend();
    Object.assign(result, await stage('backend', () => backendInfo(job.backend)));
    tensorsBefore = tf.memory().numTensors;

    start = performance.now();
    model = await stage('load', () =>
        job.kind === 'layers' ? tf.loadLayersModel(job.model) : tf.loadGraphModel(job.model));
    result.timing.loadMs = performance.now() - start;

    await stage('inputs', async () => {
      for (const input of job.inputs) inputs.push(await readInput(input));
    });
    const packed = await stage('inputs', () => packInputs(model, job, inputs));

    for (let i = 0; i < job.warmup; i++) {
      start = performance.now();
      const warm = await stage('run', () => runMethod(model, job, packed));
      await stage('run', () =>
          Promise.all(unpackOutputs(model, job, warm).map(([, t]) => t.data())));
      result.timing.warmupMs.push(performance.now() - start);
      disposeResult(warm);
    }
    let outputs = null;
    for (let i = 0; i < job.repeats; i++) {
      disposeResult(outputs);
      start = performance.now();
      outputs = await stage('run', () => runMethod(model, job, packed));
      await stage('run', () =>
          Promise.all(unpackOutputs(model, job, outputs).map(([, t]) => t.data())));
      result.timing.runMs.push(performance.now() - start);
    }
    const flat = unpackOutputs(model, job, outputs);
    for (let i = 0; i < flat.length; i++) {
      const [name, tensor] = flat[i];
      const file = `output_${i}.bin`;
      await post(`${job.result}output/${i}`, await outputBytes(tensor),
                 'application/octet-stream');
      result.outputs.push({name, shape: tensor.shape, dtype: tensor.dtype, file});
    }
    disposeResult(outputs);
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
  if (tensorsBefore != null && tf.getBackend() === job.backend) {
    result.tensorsLeaked = tf.memory().numTensors - tensorsBefore;
  }
  return result;
}

async function main() {
  const spec = await (await fetch('jobs.json')).json();
  if (typeof tf === 'undefined' || typeof tf.wasm === 'undefined') {
    throw new Error('tf.min.js or tf-backend-wasm.min.js did not load');
  }
  // The .wasm binaries are served next to tf-backend-wasm.min.js.
  tf.wasm.setWasmPaths(new URL('tfjs/', location.href).href);
  if (spec.wasmSimd != null) tf.env().set('WASM_HAS_SIMD_SUPPORT', spec.wasmSimd);
  for (const job of spec.jobs) {
    const result = await runJob(job);
    await post(`${job.result}result`, JSON.stringify(result), 'application/json');
  }
}

main().then(
    () => post('done', JSON.stringify({ok: true}), 'application/json'),
    (thrown) => post('done', JSON.stringify({
      ok: false, error: (thrown && thrown.stack) || messageOf(thrown)}), 'application/json'));
