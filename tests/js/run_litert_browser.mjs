/**
 * Runs .tflite models in LiteRT.js in a headless Chromium page: the browser side of
 * tests/litertjs_runner.py (run_jobs(..., where="chromium")).
 *
 * The page (served on 127.0.0.1 under a random token, with an import map for
 * @litertjs/core and @litertjs/wasm-utils) imports this module, which fetches jobs.json:
 *   {"jobs": [job, ...]}, each job as litert_jobs.mjs describes it plus
 *   "model": URL of the .tflite, "inputs"[i].url and "result": "job/<i>/".
 * Per job it POSTs each output's bytes to <result>output/<i> and the result object to
 * <result>result; then {"ok": true} (or the harness error) to done.
 */

import * as lrt from '@litertjs/core';

import {messageOf, runJob} from './litert_jobs.mjs';

async function post(url, body, type) {
  const response = await fetch(url, {method: 'POST', body, headers: {'Content-Type': type}});
  if (!response.ok) throw new Error(`POST ${url}: HTTP ${response.status}`);
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function main() {
  const spec = await (await fetch('jobs.json')).json();
  await lrt.loadLiteRt(new URL('litert/wasm/', location.href).href);
  const liteRtWasm = {relaxedSimd: await lrt.supportsFeature('relaxedSimd'),
                      threads: false};
  const io = {
    readModel: (job) => fetchBytes(job.model),
    readInput: (job, i) => fetchBytes(job.inputs[i].url),
  };
  for (const job of spec.jobs) {
    const {result, outputs} = await runJob(lrt, job, io);
    result.liteRtWasm = liteRtWasm;
    for (let i = 0; i < outputs.length; i++) {
      result.outputs[i].file = `output_${i}.bin`;
      await post(`${job.result}output/${i}`, outputs[i], 'application/octet-stream');
    }
    await post(`${job.result}result`, JSON.stringify(result), 'application/json');
  }
}

main().then(
    () => post('done', JSON.stringify({ok: true}), 'application/json'),
    (thrown) => post('done', JSON.stringify({
      ok: false, error: (thrown && thrown.stack) || messageOf(thrown)}), 'application/json'));
