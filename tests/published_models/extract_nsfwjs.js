// Writes nsfwjs's bundled models as plain TF.js model directories:
//   node extract_nsfwjs.js NSFWJS_MODELS_DIR OUT_DIR NAME...
// nsfwjs 4.x ships each model.json and weight shard as a UMD module
// (<file>.min.js): the model.json's object, and each shard's bytes as base64.
"use strict";
const fs = require("fs");
const path = require("path");

const [modelsDir, outDir, ...names] = process.argv.slice(2);
if (!modelsDir || !outDir || names.length === 0) {
  console.error("usage: node extract_nsfwjs.js NSFWJS_MODELS_DIR OUT_DIR NAME...");
  process.exit(2);
}
for (const name of names) {
  const source = path.resolve(modelsDir, name);
  const loaded = require(path.join(source, "model.min.js"));
  const doc = loaded.default || loaded;
  const dest = path.join(outDir, name);
  fs.mkdirSync(dest, { recursive: true });
  fs.writeFileSync(path.join(dest, "model.json"), JSON.stringify(doc));
  for (const group of doc.weightsManifest) {
    for (const shard of group.paths) {
      if (path.basename(shard) !== shard) throw new Error(`${name}: shard path ${shard}`);
      const base64 = require(path.join(source, shard + ".min.js"));
      fs.writeFileSync(path.join(dest, shard), Buffer.from(base64, "base64"));
    }
  }
}
