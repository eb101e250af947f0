/**
 * Runs .tflite models in LiteRT.js (@litertjs/core, wasm) in one Node process.
 *
 * Usage: node run_litert.mjs NODE_MODULES JOB_FILE
 *
 * JOB_FILE is JSON: {"jobs": [job, ...]}, each job as litert_jobs.mjs
 * describes it plus "model": "/abs/model.tflite", "inputs"[i].file: "/abs/input.bin" and
 * "outputs": "/abs/dir", which receives result.json and output_<i>.bin.
 *
 * LiteRT.js is written for browsers and workers: its loader runs the emscripten script
 * with importScripts() and reads the factory from `self`. Here importScripts evaluates the
 * script as the CommonJS code emscripten emits for Node (require, __dirname), so the
 * module reads its .wasm from disk. LiteRT's own log lines (INFO/WARNING) go to
 * stdout/stderr; results only go to files. Exit code 2: bad job file; 3: LiteRT.js did
 * not load.
 */

import fs from 'node:fs';
import {createRequire} from 'node:module';
import path from 'node:path';
import {fileURLToPath, pathToFileURL} from 'node:url';

import {runJob} from './litert_jobs.mjs';

function installWorkerShims() {
  globalThis.self = globalThis;
  globalThis.importScripts = (url) => {
    const file = String(url).startsWith('file:') ? fileURLToPath(url) : String(url);
    const source = fs.readFileSync(file, 'utf8');
    // eslint-disable-next-line no-new-func
    const evaluate = new Function('require', '__dirname', '__filename',
                                  `${source}\n;globalThis.ModuleFactory = ModuleFactory;`);
    evaluate(createRequire(file), path.dirname(file), file);
  };
}

async function main() {
  const [nodeModules, jobFile] = process.argv.slice(2);
  let spec;
  try {
    spec = JSON.parse(fs.readFileSync(jobFile, 'utf8'));
    if (!Array.isArray(spec.jobs)) throw new Error('no "jobs" list');
  } catch (error) {
    console.error(`run_litert.mjs: cannot read job file ${jobFile}: ${error.message}`);
    process.exit(2);
  }
  installWorkerShims();
  const core = path.join(nodeModules, '@litertjs', 'core');
  let lrt;
  let liteRtWasm;
  try {
    lrt = await import(pathToFileURL(path.join(core, 'dist', 'index.js')).href);
    await lrt.loadLiteRt(path.join(core, 'wasm') + path.sep);
    liteRtWasm = {relaxedSimd: await lrt.supportsFeature('relaxedSimd'),
                  threads: false};
  } catch (error) {
    console.error(`run_litert.mjs: LiteRT.js did not load from ${core}: ${
        (error && error.stack) || error}`);
    process.exit(3);
  }
  const io = {
    readModel: async (job) => new Uint8Array(fs.readFileSync(job.model)),
    readInput: async (job, i) => new Uint8Array(fs.readFileSync(job.inputs[i].file)),
  };
  for (const job of spec.jobs) {
    const {result, outputs} = await runJob(lrt, job, io);
    result.liteRtWasm = liteRtWasm;
    fs.mkdirSync(job.outputs, {recursive: true});
    outputs.forEach((bytes, i) => {
      result.outputs[i].file = `output_${i}.bin`;
      fs.writeFileSync(path.join(job.outputs, `output_${i}.bin`), bytes);
    });
    fs.writeFileSync(path.join(job.outputs, 'result.json'), JSON.stringify(result));
  }
}

main().then(() => process.exit(0), (error) => {
  console.error(`run_litert.mjs: ${(error && error.stack) || error}`);
  process.exit(3);
});
