/**
 * Runs one .tflite job in LiteRT.js (@litertjs/core): the part of the runner shared by
 * Node (run_litert.mjs) and headless Chromium (run_litert_browser.mjs).
 *
 * A job (JSON, built by tests/litertjs_runner.py):
 *   {"id", "accelerator": "wasm", "warmup": 0, "repeats": 1,
 *    "inputs": [{"name"?, "shape", "dtype": "float32" | "int32" | "uint8", ...}]}
 * plus whatever the entry point needs to find the model and input bytes (`io` below).
 * Input and output bytes are raw little-endian elements, as in converter/verify/js.
 *
 * The result:
 *   {"id", "ok", "error": null | {"stage", "message", "name"},
 *    "inputDetails": [{"name", "index", "dtype", "shape"}], "outputDetails": [...],
 *    "outputs": [{"name", "shape", "dtype"}], "timing": {"loadMs", "warmupMs", "runMs"},
 *    "liteRtWasm": {"relaxedSimd", "threads"}}
 * Stages: load (fetch + compile), inputs (bytes -> Tensors), run, outputs. A failed job
 * does not stop a batch. LiteRT.js's own error text is kept verbatim at the start of the
 * message; when an input has a dynamic (-1) dimension, which LiteRT.js cannot feed, the
 * message goes on to say so and how to convert a fixed shape instead (one line).
 */

const DTYPES = {float32: Float32Array, int32: Int32Array, uint8: Uint8Array};

export class JobError extends Error {
  constructor(stage, cause) {
    super(messageOf(cause));
    this.stage = stage;
    this.cause = cause;
  }
}

export function messageOf(thrown) {
  if (thrown instanceof Error) return thrown.message;
  if (typeof thrown === 'string') return thrown;
  if (thrown != null && typeof thrown.message === 'string') return thrown.message;
  return JSON.stringify(thrown);
}

function oneLine(text) {
  return String(text).replace(/\s*\n\s*/g, '; ').trim();
}

function describeTensors(details) {
  return details.map((d) => ({name: d.name, index: d.index, dtype: d.dtype,
                               shape: Array.from(d.shape)}));
}

/** The sentence added to an error when a model input has a dynamic dimension. */
function dynamicShapeHint(inputDetails) {
  const dynamic = inputDetails.filter((d) => d.shape.some((n) => n < 0));
  if (!dynamic.length) return '';
  const names = dynamic.map((d) => `'${d.name}' [${d.shape.join(', ')}]`).join(', ');
  return ` (model input ${names} has a dynamic dimension: LiteRT.js only accepts ` +
      `buffers of a model's exact input shape, so convert the model with fixed input ` +
      `shapes, e.g. python -m converter SRC OUT.tflite --output_format=tflite ` +
      `--tflite_batch_size=1)`;
}

async function stage(name, fn) {
  try {
    return await fn();
  } catch (thrown) {
    throw new JobError(name, thrown);
  }
}

function makeTensor(lrt, input, bytes) {
  const Typed = DTYPES[input.dtype];
  if (Typed == null) {
    throw new Error(`input ${input.name ?? ''} dtype ${input.dtype}: LiteRT.js takes ` +
                    `${Object.keys(DTYPES).join(', ')}`);
  }
  const size = input.shape.reduce((a, b) => a * b, 1);
  if (bytes.byteLength !== size * Typed.BYTES_PER_ELEMENT) {
    throw new Error(`input ${input.name ?? ''}: ${bytes.byteLength} bytes, want ${
        size * Typed.BYTES_PER_ELEMENT} for ${input.dtype} [${input.shape}]`);
  }
  const copy = new Uint8Array(bytes);  // aligned, owned
  return new lrt.Tensor(new Typed(copy.buffer, 0, size), input.shape);
}

function feed(job, tensors) {
  if (job.inputs.length && job.inputs[0].name != null) {
    const byName = {};
    job.inputs.forEach((input, i) => { byName[input.name] = tensors[i]; });
    return byName;
  }
  return tensors;
}

function outputList(model, outputs) {
  if (Array.isArray(outputs)) return outputs;
  return model.getOutputDetails().map((d) => outputs[d.name]);
}

function deleteAll(tensors) {
  for (const t of tensors) if (t != null && !t.deleted) t.delete();
}

/**
 * Runs `job`; never throws for a job failure.
 *
 * @param lrt the @litertjs/core module, after loadLiteRt().
 * @param job the job.
 * @param io {readModel(job) -> Promise<Uint8Array>, readInput(job, i) -> Promise<Uint8Array>}
 * @return {result, outputs: [Uint8Array]}
 */
export async function runJob(lrt, job, io) {
  const result = {
    id: job.id, ok: false, error: null, inputDetails: null, outputDetails: null,
    outputs: [], timing: {loadMs: null, warmupMs: [], runMs: []},
  };
  const outputBytes = [];
  let model = null;
  const inputs = [];
  try {
    let start = performance.now();
    model = await stage('load', async () =>
        lrt.loadAndCompile(await io.readModel(job), {accelerator: job.accelerator || 'wasm'}));
    result.timing.loadMs = performance.now() - start;
    result.inputDetails = describeTensors(model.getInputDetails());
    result.outputDetails = describeTensors(model.getOutputDetails());

    await stage('inputs', async () => {
      for (let i = 0; i < job.inputs.length; i++) {
        inputs.push(makeTensor(lrt, job.inputs[i], await io.readInput(job, i)));
      }
    });
    const fed = feed(job, inputs);
    const runOnce = async () => {
      let outputs;
      try {
        outputs = outputList(model, await model.run(fed));
      } catch (thrown) {
        throw new JobError('run', new Error(
            oneLine(messageOf(thrown)) + dynamicShapeHint(result.inputDetails)));
      }
      // Reading the values is part of an inference, as TF.js's data() is in its runners.
      return outputs.map((t) => [t, t.toTypedArray()]);
    };
    for (let i = 0; i < (job.warmup || 0); i++) {
      start = performance.now();
      const warm = await runOnce();
      result.timing.warmupMs.push(performance.now() - start);
      deleteAll(warm.map(([t]) => t));
    }
    let last = null;
    for (let i = 0; i < Math.max(1, job.repeats || 1); i++) {
      if (last) deleteAll(last.map(([t]) => t));
      start = performance.now();
      last = await runOnce();
      result.timing.runMs.push(performance.now() - start);
    }
    await stage('outputs', async () => {
      const details = model.getOutputDetails();
      last.forEach(([tensor, data], i) => {
        result.outputs.push({name: details[i] ? details[i].name : null,
                             shape: Array.from(tensor.type.layout.dimensions),
                             dtype: tensor.type.dtype});
        outputBytes.push(new Uint8Array(data.buffer.slice(
            data.byteOffset, data.byteOffset + data.byteLength)));
      });
      deleteAll(last.map(([t]) => t));
    });
    result.ok = true;
  } catch (thrown) {
    const error = thrown instanceof JobError ? thrown : new JobError('run', thrown);
    result.error = {
      stage: error.stage,
      message: oneLine(error.message),
      name: error.cause instanceof Error ? error.cause.name : typeof error.cause,
    };
  } finally {
    deleteAll(inputs);
    if (model != null) model.delete();
  }
  return {result, outputs: outputBytes};
}
