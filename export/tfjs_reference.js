// The reference our face-api conversions are checked against: one of face-api.js's nets, loaded from its own
// TensorFlow.js weights by its own code (npm @vladmandic/face-api, with @tensorflow/tfjs's pure-JS CPU backend),
// run on uint8 RGB images. Called by export/tfjs_reference.py; nothing here reaches the network.
//
//   node tfjs_reference.js NPM_DIR MODEL_DIR NET INPUT.bin COUNT SIZE OUTPUT.json
//
// NET is a property of faceapi.nets (faceExpressionNet, faceLandmark68Net, faceRecognitionNet, ...); INPUT.bin holds
// COUNT images of SIZE x SIZE x 3 bytes (RGB, rows first); OUTPUT.json gets each image's `net.forward` output.
'use strict';

const fs = require('fs');
const path = require('path');

async function main() {
  const [npmDir, modelDir, netName, inputFile, count, size, outputFile] = process.argv.slice(2);
  const faceapi = require(path.join(npmDir, 'node_modules', '@vladmandic', 'face-api', 'dist', 'face-api.node-wasm.js'));
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const net = faceapi.nets[netName];
  if (!net) throw new Error(`face-api has no net ${netName}`);
  await net.loadFromDisk(modelDir);
  const n = Number(count);
  const side = Number(size);
  const bytes = fs.readFileSync(inputFile);
  if (bytes.length !== n * side * side * 3) throw new Error(`${inputFile}: ${bytes.length} bytes, not ${n} images`);
  const outputs = [];
  for (let i = 0; i < n; i += 1) {
    const pixels = new Int32Array(bytes.subarray(i * side * side * 3, (i + 1) * side * side * 3));
    const image = tf.tensor3d(pixels, [side, side, 3], 'int32');
    const result = await net.forward(image);
    outputs.push(Array.from(await result.data()));
    tf.dispose([image, result]);
  }
  fs.writeFileSync(outputFile, JSON.stringify({
    backend: tf.getBackend(), tfjs: tf.version_core, faceapi: faceapi.version, outputs,
  }));
}

main().catch((error) => {
  process.stderr.write(`${error.stack || error}\n`);
  process.exit(1);
});
