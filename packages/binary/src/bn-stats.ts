import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, type Dataset, type Executor } from '@tensorpress/core-tensor';

/** Options of {@link reestimateBatchNorm}. */
export interface ReestimateOptions {
  /** Examples to draw statistics from (default 2,048). */
  readonly samples?: number;
  /** Batch size of the statistics passes (default 256). */
  readonly batchSize?: number;
}

/**
 * Re-estimates the running mean and variance of every BatchNormalization from the binarized model
 * (AdaBN): binarizing weights and activations changes every conv's output scale, and running
 * statistics updated with momentum over a short fine-tune still mix in the FP32 ones. The model is
 * run in train mode (each BN normalises with its batch statistics, as in training, hooks active) and
 * each BN's input mean and (biased, as train mode normalises with) variance over up to `samples`
 * examples replace its running statistics. Returns the number of BN nodes updated.
 */
export function reestimateBatchNorm(executor: Executor, data: Dataset, options: ReestimateOptions = {}): number {
  const samples = options.samples ?? 2048;
  const batchSize = options.batchSize ?? 256;
  const bns = executor.graph.nodes.filter((n) => n.op === 'BatchNormalization');
  if (bns.length === 0) return 0;
  const inputs = [...new Set(bns.map((n) => n.inputs[0]!))];
  const sum = new Map<string, Float64Array>();
  const sq = new Map<string, Float64Array>();
  const count = new Map<string, number>();
  let seen = 0;
  for (const b of data.batches(batchSize)) {
    const outs = executor.run(b.x, { outputs: inputs, training: true, updateStats: false });
    inputs.forEach((v, i) => {
      const t = outs[i]!;
      const c = t.shape[t.rank - 1]!;
      const [m, m2] = tf.tidy(() => {
        const r = tf.reshape(t, [-1, c]);
        return [tf.sum(r, 0), tf.sum(tf.square(r), 0)];
      });
      const a = sum.get(v) ?? new Float64Array(c);
      const a2 = sq.get(v) ?? new Float64Array(c);
      (m!.dataSync() as Float32Array).forEach((x, k) => (a[k] = a[k]! + x));
      (m2!.dataSync() as Float32Array).forEach((x, k) => (a2[k] = a2[k]! + x));
      sum.set(v, a);
      sq.set(v, a2);
      count.set(v, (count.get(v) ?? 0) + t.size / c);
      tf.dispose([m!, m2!]);
    });
    seen += b.x.shape[0]!;
    tf.dispose([...new Set([...outs, b.x, b.y])]);
    if (seen >= samples) break;
  }
  if (seen === 0) throw new TensorpressError('DATA_INVALID', 'reestimateBatchNorm: the dataset yielded no examples');
  const vars = executor.variables();
  for (const bn of bns) {
    const v = bn.inputs[0]!;
    const n = count.get(v)!;
    const mean = Array.from(sum.get(v)!, (s) => s / n);
    const variance = Array.from(sq.get(v)!, (s, k) => Math.max(s / n - mean[k]! ** 2, 0));
    for (const [port, values] of [[3, mean], [4, variance]] as const) {
      const variable = vars.get(bn.inputs[port]!);
      if (!variable) throw new TensorpressError('STATE_INVALID', `reestimateBatchNorm: "${bn.name}" reads "${bn.inputs[port]!}", which is not a float parameter`, { node: bn.name });
      const t = tf.tensor1d(values);
      variable.assign(t);
      t.dispose();
    }
  }
  return bns.length;
}
