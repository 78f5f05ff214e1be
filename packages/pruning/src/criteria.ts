import * as tf from '@tensorflow/tfjs-core';

/** Filter importance criteria. */
export type PruningCriterion = 'l1' | 'l2' | 'fpgm' | 'slim' | 'opt_slim';

/** The criteria that read the γ of the BatchNormalization after a producer. */
export const BN_CRITERIA: ReadonlySet<PruningCriterion> = new Set(['slim', 'opt_slim']);

/** A weight as `[filters, elements]`: Conv `[kh, kw, cin/group, cout]` and Gemm `[in, out]` both keep filters last. */
function filterRows(weight: tf.Tensor): tf.Tensor2D {
  const out = weight.shape[weight.rank - 1]!;
  return tf.transpose(tf.reshape(weight, [-1, out])) as tf.Tensor2D;
}

/** L1 norm of every filter (output channel, last axis) of a Conv or Gemm weight: `Σ|w|`. */
export function l1Importance(weight: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.abs(filterRows(weight)), 1) as tf.Tensor1D);
}

/** L2 norm of every filter (output channel, last axis) of a Conv or Gemm weight: `√Σw²`. */
export function l2Importance(weight: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.sqrt(tf.sum(tf.square(filterRows(weight)), 1)) as tf.Tensor1D);
}

/**
 * FPGM (filter pruning via geometric median): a filter's summed Euclidean distance to every other
 * filter of its layer. Filters close to the geometric median (the smallest sums) are the most
 * replaceable, so the sum is the importance.
 */
export function fpgmImportance(weight: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const f = filterRows(weight);
    const sq = tf.sum(tf.square(f), 1, true);
    // ‖a−b‖² = ‖a‖² + ‖b‖² − 2a·b; rounding can make it slightly negative, hence the clamp.
    const d2 = tf.sub(tf.add(sq, tf.transpose(sq)), tf.mul(2, tf.matMul(f, f, false, true)));
    return tf.sum(tf.sqrt(tf.relu(d2)), 1) as tf.Tensor1D;
  });
}

/** Network slimming: the magnitude `|γ|` of the BatchNormalization scale after the producer. */
export function slimImportance(gamma: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => tf.abs(tf.reshape(gamma, [-1])) as tf.Tensor1D);
}

/**
 * PaddleSlim's optimal threshold (OptSlim): sort the scores ascending, accumulate their squares and
 * cut where the cumulative share of `Σs²` first passes `ratio`; every score before the cut is
 * pruned. Returns how many are pruned (so the pruned filters hold at most `ratio` of the energy).
 */
export function optSlimPrunedCount(scores: ArrayLike<number>, ratio: number): number {
  const s = Array.from(scores, Math.abs).sort((a, b) => a - b);
  const total = s.reduce((acc, v) => acc + v * v, 0);
  if (total === 0) return 0;
  let acc = 0;
  for (let i = 0; i < s.length; i++) {
    acc += s[i]! * s[i]!;
    if (acc / total > ratio) return i;
  }
  return s.length;
}
