import * as tf from '@tensorflow/tfjs-core';

/** How a weight's importance is measured: |w|, or |w| / ‖W‖₂ of its layer (NNCF's `normed_abs`). */
export type Importance = 'abs' | 'normalized_abs';

/** Importance of every element of a weight, flattened. */
export function importanceOf(w: tf.Tensor, kind: Importance): tf.Tensor1D {
  return tf.tidy(() => {
    const a = tf.abs(tf.reshape(w, [-1])) as tf.Tensor1D;
    if (kind === 'abs') return a;
    const norm = tf.sqrt(tf.sum(tf.square(a)));
    return tf.div(a, tf.maximum(norm, 1e-12));
  });
}

/**
 * How many of `n` weights a layer zeroes at `level`: round(level·n), but never all of them (a layer
 * keeps at least one weight). `reached` is false when that floor stopped it short of the level.
 */
export function zeroCount(n: number, level: number): { zeros: number; reached: boolean } {
  const want = Math.round(level * n);
  const zeros = Math.min(want, n - 1);
  return { zeros: Math.max(0, zeros), reached: zeros >= want };
}

/** A 0/1 mask of length n keeping the `keep` largest scores (ties: the lower index). */
function keepTop(scores: tf.Tensor1D, keep: number): tf.Tensor1D {
  return tf.tidy(() => {
    const n = scores.shape[0];
    if (keep >= n) return tf.ones([n]) as tf.Tensor1D;
    const { indices } = tf.topk(scores, keep);
    return tf.scatterND(tf.reshape(indices, [-1, 1]), tf.ones([keep]), [n]) as tf.Tensor1D;
  });
}

/** Per layer: each weight's own threshold at `level`. Returns flat masks and each layer's zero count. */
export function layerMasks(scores: readonly tf.Tensor1D[], level: number): { masks: tf.Tensor1D[]; zeros: number[]; reached: boolean[] } {
  const masks: tf.Tensor1D[] = [];
  const zeros: number[] = [];
  const reached: boolean[] = [];
  for (const s of scores) {
    const c = zeroCount(s.shape[0], level);
    masks.push(keepTop(s, s.shape[0] - c.zeros));
    zeros.push(c.zeros);
    reached.push(c.reached);
  }
  return { masks, zeros, reached };
}

/**
 * One threshold over every layer: the round(level·N) lowest scores of all N weights are zeroed. A
 * layer that would lose every weight keeps its highest one.
 */
export function globalMasks(scores: readonly tf.Tensor1D[], level: number): { masks: tf.Tensor1D[]; zeros: number[] } {
  const sizes = scores.map((s) => s.shape[0]);
  const total = sizes.reduce((a, b) => a + b, 0);
  const { zeros } = zeroCount(total, level);
  const flat = tf.tidy(() => keepTop(tf.concat(scores as tf.Tensor1D[]), total - zeros));
  const parts = tf.split(flat, sizes) as tf.Tensor1D[];
  flat.dispose();
  const out = { masks: [] as tf.Tensor1D[], zeros: [] as number[] };
  parts.forEach((p, i) => {
    const kept = tf.tidy(() => tf.sum(p).dataSync()[0]!);
    if (kept === 0) {
      p.dispose();
      out.masks.push(keepTop(scores[i]!, 1));
      out.zeros.push(sizes[i]! - 1);
    } else {
      out.masks.push(p);
      out.zeros.push(sizes[i]! - Math.round(kept));
    }
  });
  return out;
}

/**
 * The N:M mask of a weight: along `inAxis`, every group of `m` consecutive input channels keeps its
 * `keep` largest |w| (ties: the lower channel). The channel count must be a multiple of `m`.
 */
export function nmMask(w: tf.Tensor, inAxis: number, keep: number, m: number): tf.Tensor {
  return tf.tidy(() => {
    const rank = w.rank;
    const perm = [...Array.from({ length: rank }, (_, i) => i).filter((i) => i !== inAxis), inAxis];
    const t = tf.transpose(w, perm);
    const groups = tf.reshape(tf.abs(t), [-1, m]) as tf.Tensor2D;
    const mask =
      keep >= m ? tf.onesLike(groups) : tf.cast(tf.sum(tf.oneHot(tf.topk(groups, keep).indices as tf.Tensor2D, m), 1), 'float32');
    const back = tf.reshape(mask, t.shape);
    const inverse = perm.map((_, i) => perm.indexOf(i));
    return tf.transpose(back, inverse);
  });
}
