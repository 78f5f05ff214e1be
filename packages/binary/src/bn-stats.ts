import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, batchNormInputStatistics, type Dataset, type Executor } from '@tensorpress/core-tensor';

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
  const stats = batchNormInputStatistics(executor, data, options);
  const vars = executor.variables();
  for (const bn of executor.graph.nodes.filter((n) => n.op === 'BatchNormalization')) {
    const { mean, variance } = stats.get(bn.name)!;
    for (const [port, values] of [[3, mean], [4, variance]] as const) {
      const variable = vars.get(bn.inputs[port]!);
      if (!variable) throw new TensorpressError('STATE_INVALID', `reestimateBatchNorm: "${bn.name}" reads "${bn.inputs[port]!}", which is not a float parameter`, { node: bn.name });
      const t = tf.tensor1d(values);
      variable.assign(t);
      t.dispose();
    }
  }
  return stats.size;
}
