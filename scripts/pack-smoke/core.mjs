// pack-smoke job "core": core-tensor and datasets alone (plus their tfjs peers) train a small model.
// Adjust the API calls here when the public surface changes; keep it a short end-to-end run.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as datasets from '@tensorpress/datasets';
import { checkExports, checkResolution, expect, range } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'fit', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/datasets': [datasets, ['loadMnist']],
});

const { useBackend, fit, evaluate } = core;
const { referenceModels } = models;
const { loadMnist } = datasets;

await useBackend('cpu');
const g = referenceModels.mlp({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
const { train, test } = await loadMnist();
const { graph, history } = await fit(g, train.subset(range(512)), { epochs: 1, batchSize: 64, seed: 1 });
const r = await evaluate(graph, test.subset(range(256)), { batchSize: 128 });

console.log(`history: ${JSON.stringify(history)}`.slice(0, 400));
console.log(`smoke: mlp on 512 MNIST digits, 1 epoch -> test accuracy ${(r.accuracy * 100).toFixed(1)}% (loss ${r.loss.toFixed(4)}) on 256 digits`);
expect(Number.isFinite(r.accuracy) && r.accuracy >= 0 && r.accuracy <= 1 && Number.isFinite(r.loss), `implausible evaluation result: ${JSON.stringify(r)}`);
