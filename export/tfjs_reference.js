// The reference our face-api conversions are checked against: one of face-api.js's nets, loaded from its own
// TensorFlow.js weights by its own code (npm @vladmandic/face-api, with @tensorflow/tfjs's pure-JS CPU backend),
// run on uint8 RGB images. Called by export/tfjs_reference.py; nothing here reaches the network.
//
//   node tfjs_reference.js NPM_DIR MODEL_DIR NET INPUT.bin SHAPES.json OUTPUT.json
//
// NET is a property of faceapi.nets (faceExpressionNet, faceLandmark68Net, faceRecognitionNet, ...); INPUT.bin holds
// the images back to back, HEIGHT x WIDTH x 3 bytes each (RGB, rows first), SHAPES.json their [[HEIGHT, WIDTH], ...];
// OUTPUT.json gets each image's `net.forward` output. An image of another size than the net's input goes through
// face-api's own NetInput.toBatchTensor (padded to a square, centred; tf.image.resizeBilinear).
'use strict';

const fs = require('fs');
const path = require('path');

async function main() {
  const [npmDir, modelDir, netName, inputFile, shapesFile, outputFile] = process.argv.slice(2);
  const faceapi = require(path.join(npmDir, 'node_modules', '@vladmandic', 'face-api', 'dist', 'face-api.node-wasm.js'));
  const { tf } = faceapi;
  await tf.setBackend('cpu');
  await tf.ready();
  const net = faceapi.nets[netName];
  if (!net) throw new Error(`face-api has no net ${netName}`);
  await net.loadFromDisk(modelDir);
  const shapes = JSON.parse(fs.readFileSync(shapesFile, 'utf8'));
  const bytes = fs.readFileSync(inputFile);
  const total = shapes.reduce((sum, [h, w]) => sum + h * w * 3, 0);
  if (bytes.length !== total) throw new Error(`${inputFile}: ${bytes.length} bytes, not the ${shapes.length} images`);
  const outputs = [];
  let offset = 0;
  for (const [height, width] of shapes) {
    const pixels = new Int32Array(bytes.subarray(offset, offset + height * width * 3));
    offset += height * width * 3;
    const image = tf.tensor3d(pixels, [height, width, 3], 'int32');
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
