import * as tf from '@tensorflow/tfjs-core';
import { Executor, compress, fit, referenceModels, useBackend, foldAllBatchNorms, type Dataset } from '@tensorpress/core-tensor';
import { loadMnist } from '@tensorpress/datasets';
import { quantization, lsq } from '@tensorpress/quant';
await useBackend('wasm');
const { train } = await loadMnist({ seed: 0 });
const g = referenceModels.residualCnn({ seed: 0 });
const which = process.argv[2] ?? 'int8';
const ctrl = compress(g, [which === 'lsq' ? lsq({ weights: { bits: 4 }, activations: { bits: 4 } }) : quantization()]);
await ctrl.initialize(train, { samples: 256 });
const fp = new Executor(g);
async function steps(ex: Executor, data: Dataset, n: number, controller?: typeof ctrl) {
  const sub = data.subset(Array.from({ length: 64 * n }, (_, i) => i));
  await fit(ex, sub, { epochs: 1, batchSize: 64, optimizer: { type: 'adam', learningRate: 1e-3 }, progress: false, ...(controller ? { controller } : {}) });
}
for (const [name, ex, c] of [['fp32', fp, undefined], ['qat', ctrl.model.executor, ctrl]] as const) {
  await steps(ex, train, 2, c);
  const t0 = performance.now();
  const p = await tf.profile(() => steps(ex, train, 4, c));
  const wall = performance.now() - t0;
  const by = new Map<string, [number, number]>();
  for (const k of p.kernels) {
    const ms = typeof k.kernelTimeMs === 'number' ? k.kernelTimeMs : 0;
    const e = by.get(k.name) ?? [0, 0];
    by.set(k.name, [e[0] + ms / 4, e[1] + 1 / 4]);
  }
  const tot = [...by.values()].reduce((s, v) => s + v[0], 0);
  console.log(`${name}: wall/step ${(wall / 4).toFixed(1)} ms (profiled), kernels ${tot.toFixed(1)} ms/step, ${p.kernels.length / 4} kernel calls/step`);
  for (const [k, v] of [...by.entries()].sort((a, b) => b[1][0] - a[1][0]).slice(0, 25)) console.log(`  ${k.padEnd(28)} ${v[0].toFixed(2).padStart(7)} ms  ${v[1].toFixed(0).padStart(5)} calls`);
}
