import type * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, arrayDataset, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { randomizeBnStats, seededArray } from '@tensorpress/test-utils';

/** conv1 3×3×`filters` + bn1 + relu1 → gap → flatten → fc (`classes` logits); input [N, 4, 4, 1]. Prefix names nodes. */
export function smallCnn(o: { filters: number; classes?: number; prefix?: string; seed?: number }): Graph {
  const p = o.prefix ?? '';
  const b = new GraphBuilder({ seed: o.seed ?? 1 });
  let h = b.input('input', [null, 4, 4, 1]);
  h = b.conv(h, { filters: o.filters, kernel: 3, padding: 'same', bias: false, name: `${p}conv1` });
  h = b.relu(b.batchNorm(h, { name: `${p}bn1` }), `${p}relu1`);
  h = b.flatten(b.globalAvgPool(h, `${p}gap`), `${p}flatten`);
  b.output(b.dense(h, o.classes ?? 3, { name: `${p}fc` }));
  return randomizeBnStats(b.build(), (o.seed ?? 1) + 10);
}

export const student = (): Graph => smallCnn({ filters: 3, seed: 1 });
export const teacher = (classes = 3): Graph => smallCnn({ filters: 5, classes, prefix: 't', seed: 2 });

/** `n` random 4×4×1 images with labels in [0, 3). */
export function randomData(n: number, seed = 3): Dataset {
  const y = Int32Array.from(seededArray(n, seed + 1, 0, 3), (v) => Math.floor(v));
  return arrayDataset({ x: seededArray(n * 16, seed), y, exampleShape: [4, 4, 1], numClasses: 3 });
}

/** The first batch of `n` examples of `d` (caller disposes). */
export function firstBatch(d: Dataset, n: number): { x: tf.Tensor; y: tf.Tensor1D } {
  const it = d.batches(n);
  const b = it.next().value!;
  it.return?.(undefined);
  return b;
}
