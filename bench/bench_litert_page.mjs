/**
 * bench/bench_litert.py's page: one network as a TF.js graph model (wasm backend) and as a
 * .tflite in LiteRT.js (wasm), timed interleaved in this one page.
 *
 * Fetches bench.json:
 *   {"rounds", "warmup", "repeats", "graph": "models/graph/model.json",
 *    "tflite": "models/model.tflite", "input": "input.bin", "shape": [1, 224, 224, 3]}
 * Round r (r = -1 is discarded) runs both runtimes, TF.js first on even rounds and
 * LiteRT.js first on odd ones; each gets `warmup` untimed then `repeats` timed runs. A run
 * is an inference plus reading its output back (TF.js: execute + data(); LiteRT.js:
 * run + toTypedArray()), on one input tensor made once. POSTs each runtime's last output
 * to output/<runtime>, then {"ok", "times": {runtime: [[ms per run] per round]}, ...} to
 * done.
 */

import * as lrt from '@litertjs/core';

async function post(url, body, type) {
  const response = await fetch(url, {method: 'POST', body, headers: {'Content-Type': type}});
  if (!response.ok) throw new Error(`POST ${url}: HTTP ${response.status}`);
}

async function main() {
  const spec = await (await fetch('bench.json')).json();
  const input = new Float32Array(await (await fetch(spec.input)).arrayBuffer());

  tf.wasm.setWasmPaths(new URL('tfjs/', location.href).href);
  if (!(await tf.setBackend('wasm'))) throw new Error('TF.js wasm backend did not start');
  await tf.ready();
  const tfjsWasm = {simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
                    threads: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
                    tfjsVersion: tf.version.tfjs};
  const graph = await tf.loadGraphModel(spec.graph);
  const inputName = graph.inputs[0].name;
  const outputNames = graph.outputs.map((o) => o.name);
  const tfInput = tf.tensor(input, spec.shape, 'float32');
  const tensorsBefore = tf.memory().numTensors;  // the weights and the input

  await lrt.loadLiteRt(new URL('litert/wasm/', location.href).href);
  const liteRtWasm = {relaxedSimd: await lrt.supportsFeature('relaxedSimd'), threads: false};
  const compiled = await lrt.loadAndCompile(new URL(spec.tflite, location.href).href,
                                            {accelerator: 'wasm'});
  const lrtInput = new lrt.Tensor(new Float32Array(input), spec.shape);

  const runners = {
    tfjs: async () => {
      const y = graph.execute({[inputName]: tfInput}, outputNames);
      const out = Array.isArray(y) ? y[0] : y;
      const data = await out.data();
      tf.dispose(y);
      return data;
    },
    litert: async () => {
      const outputs = await compiled.run([lrtInput]);
      const data = new Float32Array(outputs[0].toTypedArray());
      for (const t of outputs) t.delete();
      return data;
    },
  };
  const times = {tfjs: [], litert: []};
  const last = {};
  for (let round = -1; round < spec.rounds; round++) {
    const order = round % 2 === 0 ? ['tfjs', 'litert'] : ['litert', 'tfjs'];
    for (const name of order) {
      for (let i = 0; i < spec.warmup; i++) await runners[name]();
      const ms = [];
      for (let i = 0; i < spec.repeats; i++) {
        const start = performance.now();
        last[name] = await runners[name]();
        ms.push(performance.now() - start);
      }
      if (round >= 0) times[name].push(ms);
    }
  }
  for (const name of Object.keys(last)) {
    await post(`output/${name}`, new Uint8Array(last[name].buffer), 'application/octet-stream');
  }
  const tensorsLeaked = tf.memory().numTensors - tensorsBefore;
  tfInput.dispose();
  lrtInput.delete();
  compiled.delete();
  graph.dispose();
  return {ok: true, times, tfjsWasm, liteRtWasm, tensorsLeaked,
          userAgent: navigator.userAgent, crossOriginIsolated: self.crossOriginIsolated,
          hardwareConcurrency: navigator.hardwareConcurrency};
}

main().then(
    (report) => post('done', JSON.stringify(report), 'application/json'),
    (thrown) => post('done', JSON.stringify({
      ok: false, error: (thrown && thrown.stack) || String(thrown)}), 'application/json'));
