// Runs inside a fresh temporary npm project where only the packed tarballs of
// @tensorpress/core-tensor and @tensorpress/datasets (plus their tfjs peers) are installed.
// Plain Node ESM, no TypeScript loader: this is what a user gets from the registry.
// Adjust the API calls here when the public surface changes; keep it a short end-to-end run.
import * as core from '@tensorpress/core-tensor';
import * as datasets from '@tensorpress/datasets';

// Both packages must resolve to their built dist/, never to a source file.
for (const name of ['@tensorpress/core-tensor', '@tensorpress/datasets']) {
  const url = import.meta.resolve(name);
  console.log(`resolved ${name} -> ${new URL(url).pathname}`);
  if (!/\/node_modules\/@tensorpress\/[^/]+\/dist\/index\.js$/.test(new URL(url).pathname)) {
    throw new Error(`${name} resolved to ${url}, expected node_modules/${name}/dist/index.js`);
  }
}

/** The exports this smoke uses; a missing one is reported by name rather than as "not a function". */
const expected = {
  '@tensorpress/core-tensor': [core, ['useBackend', 'referenceModels', 'fit', 'evaluate']],
  '@tensorpress/datasets': [datasets, ['loadMnist']],
};
const missing = Object.entries(expected).flatMap(([pkg, [mod, names]]) =>
  names.filter((n) => !(n in mod)).map((n) => `${pkg}#${n}`),
);
if (missing.length > 0) throw new Error(`missing exports: ${missing.join(', ')}`);

const { useBackend, referenceModels, fit, evaluate } = core;
const { loadMnist } = datasets;
/** `range(n)` = [0, 1, ..., n-1]; core-tensor's own when it exports one. */
const range = core.range ?? ((n) => Array.from({ length: n }, (_, i) => i));

await useBackend('cpu');
const g = referenceModels.mlp({ inputShape: [28, 28, 1], numClasses: 10, seed: 1 });
const { train, test } = await loadMnist();
const { graph, history } = await fit(g, train.subset(range(512)), { epochs: 1, batchSize: 64, seed: 1 });
const r = await evaluate(graph, test.subset(range(256)), { batchSize: 128 });

console.log(`history: ${JSON.stringify(history)}`.slice(0, 400));
console.log(`smoke: mlp on 512 MNIST digits, 1 epoch -> test accuracy ${(r.accuracy * 100).toFixed(1)}% (loss ${r.loss.toFixed(4)}) on 256 digits`);
if (!(Number.isFinite(r.accuracy) && r.accuracy >= 0 && r.accuracy <= 1 && Number.isFinite(r.loss))) {
  throw new Error(`implausible evaluation result: ${JSON.stringify(r)}`);
}
