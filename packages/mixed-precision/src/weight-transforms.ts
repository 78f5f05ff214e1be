import * as tf from '@tensorflow/tfjs-core';

/** A weight reshaped to rows of filters: [outputChannels, fanIn] (output channels are the last axis). */
function filterRows(w: tf.Tensor): tf.Tensor2D {
  return tf.transpose(tf.reshape(w, [-1, w.shape[w.rank - 1]!])) as tf.Tensor2D;
}

/** Inverse of {@link filterRows}. */
function fromRows(rows: tf.Tensor2D, shape: readonly number[]): tf.Tensor {
  return tf.reshape(tf.transpose(rows), [...shape]);
}

/**
 * Symmetric per-output-channel quantization of a weight at `bits` (signed narrow range
 * [−(2^(b−1)−1), 2^(b−1)−1], scale = max|w| / (2^(b−1)−1)), returned dequantized: Q_b(W) of HAWQ's
 * Ω = Tr̄ · ‖Q_b(W) − W‖², the same quantizer as quant's default weight fake-quant.
 */
export function quantizeWeight(w: tf.Tensor, bits: number): tf.Tensor {
  return tf.tidy(() => {
    const rows = filterRows(w);
    const qmax = 2 ** (bits - 1) - 1;
    const scale = tf.div(tf.maximum(tf.max(tf.abs(rows), 1, true), 1e-12), qmax);
    const q = tf.clipByValue(tf.round(tf.div(rows, scale)), -qmax, qmax);
    return fromRows(tf.mul(q, scale) as tf.Tensor2D, w.shape);
  });
}

/** ‖Q_b(W) − W‖² of {@link quantizeWeight}. */
export function quantizationError(w: tf.Tensor, bits: number): number {
  const t = tf.tidy(() => tf.sum(tf.square(tf.sub(quantizeWeight(w, bits), w))));
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
}

/** Magnitude sparsity inside one layer: the `level` share of smallest |w| set to zero (ties: lower index kept). */
export function sparsifyWeight(w: tf.Tensor, level: number): tf.Tensor {
  return tf.tidy(() => {
    const flat = tf.reshape(w, [-1]);
    const n = flat.size;
    const zeroed = Math.floor(level * n + 1e-9);
    if (zeroed <= 0) return tf.clone(w);
    const { indices } = tf.topk(tf.neg(tf.abs(flat)), zeroed);
    const mask = tf.sub(1, tf.scatterND(tf.reshape(indices, [-1, 1]), tf.ones([zeroed]), [n]));
    return tf.reshape(tf.mul(flat, mask), w.shape);
  });
}

/**
 * The filters (output channels) a layer keeps when the `ratio` share with the lowest L1 norm is
 * pruned (at least one kept), as a 0/1 mask over output channels.
 */
export function filterMask(w: tf.Tensor, ratio: number): tf.Tensor1D {
  return tf.tidy(() => {
    const c = w.shape[w.rank - 1]!;
    const pruned = Math.min(c - 1, Math.floor(ratio * c + 1e-9));
    if (pruned <= 0) return tf.ones([c]) as tf.Tensor1D;
    const { indices } = tf.topk(tf.neg(tf.sum(tf.abs(filterRows(w)), 1)), pruned);
    return tf.sub(1, tf.scatterND(tf.reshape(indices, [-1, 1]), tf.ones([pruned]), [c])) as tf.Tensor1D;
  });
}

/**
 * Binary or ternary weights with per-filter scales: `binary` is XNOR-Net's α·sign(W), α = mean|W|
 * per filter (sign(0) = +1); `ternary` is TWN's Δ = 0.7·mean|W|, α = mean of |W| over |W| > Δ.
 */
export function binarizeWeight(w: tf.Tensor, kind: 'binary' | 'ternary'): tf.Tensor {
  return tf.tidy(() => {
    const rows = filterRows(w);
    const abs = tf.abs(rows);
    const mean = tf.mean(abs, 1, true);
    if (kind === 'binary') {
      const sign = tf.sub(tf.mul(tf.cast(tf.greaterEqual(rows, 0), 'float32'), 2), 1);
      return fromRows(tf.mul(sign, mean) as tf.Tensor2D, w.shape);
    }
    const delta = tf.mul(mean, 0.7);
    const keep = tf.cast(tf.greater(abs, delta), 'float32');
    const alpha = tf.div(tf.sum(tf.mul(abs, keep), 1, true), tf.maximum(tf.sum(keep, 1, true), 1));
    return fromRows(tf.mul(tf.mul(tf.sign(rows), keep), alpha) as tf.Tensor2D, w.shape);
  });
}
