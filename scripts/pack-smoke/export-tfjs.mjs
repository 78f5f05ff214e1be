// pack-smoke job "export-tfjs": export-tfjs with core-tensor: write model.json + shards in float32
// and uint8, load them with tf.loadLayersModel, compare with the graph, and read them back.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as tfjs from '@tensorpress/export-tfjs';
import { checkExports, checkResolution, expect } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'runGraph']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/export-tfjs': [tfjs, ['writeTfjsModel', 'readTfjsArtifacts', 'readTfjsModel']],
});

await core.useBackend('cpu');
const graph = models.referenceModels.plainCnn({ seed: 0 });
const x = tf.randomUniform([2, 28, 28, 1], 0, 1, 'float32', 1);
const [want] = core.runGraph(graph, x);
for (const weights of ['float32', 'uint8']) {
  const dir = `out-${weights}`;
  await tfjs.writeTfjsModel(dir, graph, { weights });
  const model = await tfl.loadLayersModel(tf.io.fromMemory(await tfjs.readTfjsArtifacts(dir)));
  const got = model.predict(x);
  const diff = tf.max(tf.abs(tf.sub(got, want))).dataSync()[0];
  console.log(`smoke: plainCnn as tfjs-layers (${weights} weights): max |loadLayersModel - graph| ${diff.toExponential(2)}`);
  if (weights === 'float32') expect(diff <= 1e-4, `float32 parity ${diff}`);
  const back = await tfjs.readTfjsModel(dir);
  expect(back.params.length === graph.params.length, `read back ${back.params.length} params, wrote ${graph.params.length}`);
}
