/**
 * Per-batch statistics read from a tensor with tensor ops and one small download each:
 * min/max (with the non-finite check every collector needs), moments, exact percentiles.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from '@tensorpress/core-tensor';

/** Min and max of one batch. */
export interface BatchExtrema {
  /** Number of elements. */
  size: number;
  min: number;
  max: number;
}

/**
 * Reads min and max of `x`, throwing `QUANT_NONFINITE` (naming `name`) when `x` holds NaN or ±Inf.
 * Returns null for an empty tensor.
 */
export function batchExtrema(x: tf.Tensor, name: string): BatchExtrema | null {
  if (x.size === 0) return null;
  const packed = tf.tidy(() => {
    const f = tf.cast(x, 'float32');
    const nan = tf.sum(tf.cast(tf.isNaN(f), 'float32'));
    const inf = tf.sum(tf.cast(tf.isInf(f), 'float32'));
    return tf.stack([tf.min(f), tf.max(f), nan, inf]);
  });
  const [min, max, nan, inf] = packed.dataSync();
  packed.dispose();
  if (nan! > 0 || inf! > 0) {
    const parts: string[] = [];
    if (nan! > 0) parts.push(`${nan} NaN`);
    if (inf! > 0) parts.push(`${inf} ±Inf`);
    throw new TensorpressError(
      'QUANT_NONFINITE',
      `calibration of "${name}": the batch holds ${parts.join(' and ')} value(s) out of ${x.size}; ` +
        'fix the model or the data upstream (a diverged layer, an unnormalised input) before calibrating',
      { name, nonFinite: nan! + inf!, nan: nan!, inf: inf!, size: x.size },
    );
  }
  return { size: x.size, min: min!, max: max! };
}

/** Mean and sum of squared deviations from it (M2) of one batch, as float32 tensor reductions. */
export function batchMoments(x: tf.Tensor): { n: number; mean: number; m2: number } {
  const packed = tf.tidy(() => {
    const f = tf.cast(x, 'float32');
    const mean = tf.mean(f);
    // Two-pass: deviations from the batch mean keep the sum of squares well conditioned.
    const m2 = tf.sum(tf.square(tf.sub(f, mean)));
    return tf.stack([mean, m2]);
  });
  const [mean, m2] = packed.dataSync();
  packed.dispose();
  return { n: x.size, mean: mean!, m2: m2! };
}

/**
 * Exact `q`-quantile (0..1) of the elements of `x` (of |x| when `abs`), with numpy's default
 * linear interpolation between order statistics. Uses top-k from the nearer end, so only the
 * needed tail is sorted.
 */
export function batchQuantile(x: tf.Tensor, q: number, abs: boolean): number {
  const n = x.size;
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(n - 1, lo + 1);
  const frac = pos - lo;
  const pair = tf.tidy(() => {
    let f = tf.reshape(tf.cast(x, 'float32'), [-1]);
    if (abs) f = tf.abs(f);
    if (q >= 0.5) {
      // Descending top-(n-lo): the ascending order statistic j sits at index n-1-j.
      const { values } = tf.topk(f, n - lo, true);
      return tf.reverse(tf.slice(values, [n - 1 - hi], [hi - lo + 1]));
    }
    const { values } = tf.topk(tf.neg(f), hi + 1, true);
    return tf.neg(tf.slice(values, [lo], [hi - lo + 1]));
  });
  const v = pair.dataSync();
  pair.dispose();
  const a = v[0]!;
  const b = v[v.length - 1]!;
  return a + frac * (b - a);
}
