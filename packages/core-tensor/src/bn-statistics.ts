import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from './errors.js';
import type { Dataset } from './data.js';
import type { Executor } from './executor.js';

/**
 * The per-channel mean and (biased) variance of every BatchNormalization's input over up to
 * `samples` examples, with the model in train mode (each BN normalises with its batch statistics,
 * hooks active) and its running statistics left alone: what AdaBN-style re-estimation writes back.
 * Sums are taken on the backend per batch and accumulated in float64. Keyed by BN node name.
 */
export function batchNormInputStatistics(
  executor: Executor,
  data: Dataset,
  options: { samples?: number; batchSize?: number } = {},
): Map<string, { mean: Float32Array; variance: Float32Array }> {
  const samples = options.samples ?? 2048;
  const bns = executor.graph.nodes.filter((n) => n.op === 'BatchNormalization');
  const inputs = [...new Set(bns.map((n) => n.inputs[0]!))];
  const sums = new Map<string, { s: Float64Array; s2: Float64Array; n: number }>();
  let seen = 0;
  if (inputs.length > 0) {
    for (const b of data.batches(options.batchSize ?? 256)) {
      const outs = executor.run(b.x, { outputs: inputs, training: true, updateStats: false });
      inputs.forEach((v, i) => {
        const t = outs[i]!;
        const c = t.shape[t.rank - 1]!;
        const both = tf.tidy(() => {
          const r = tf.reshape(t, [-1, c]);
          return tf.stack([tf.sum(r, 0), tf.sum(tf.square(r), 0)]);
        });
        const d = both.dataSync();
        both.dispose();
        const acc = sums.get(v) ?? { s: new Float64Array(c), s2: new Float64Array(c), n: 0 };
        for (let k = 0; k < c; k++) {
          acc.s[k] = acc.s[k]! + d[k]!;
          acc.s2[k] = acc.s2[k]! + d[c + k]!;
        }
        acc.n += t.size / c;
        sums.set(v, acc);
      });
      seen += b.x.shape[0]!;
      tf.dispose([...new Set([...outs, b.x, b.y])]);
      if (seen >= samples) break;
    }
    if (seen === 0) throw new TensorpressError('DATA_INVALID', 'batch-norm statistics: the dataset yielded no examples');
  }
  const out = new Map<string, { mean: Float32Array; variance: Float32Array }>();
  for (const bn of bns) {
    const { s, s2, n } = sums.get(bn.inputs[0]!)!;
    const mean = Float32Array.from(s, (x) => x / n);
    out.set(bn.name, { mean, variance: Float32Array.from(s2, (x, k) => Math.max(x / n - mean[k]! ** 2, 0)) });
  }
  return out;
}
