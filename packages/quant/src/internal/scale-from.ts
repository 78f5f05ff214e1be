/**
 * How a learned quantizer's scale comes from its trained parameter `v` (elementwise): NNCF's
 * thresholds and ranges and LSQ's steps (`abs`), PACT's clipping level (`div`), TQT's log2
 * threshold (`pow2`). Fake quantization takes the parameter and the rule, so the fused kernels
 * compute the scale and hand back the parameter's gradient themselves (no separate taped ops per
 * quantizer and step); the tensor-op path uses {@link scaleFromTensor}. The number forms below
 * give the same float32 values as the tensor forms.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MIN_SCALE } from '../quant-params.js';

export type ScaleFrom =
  /** `max(|v| / divisor, MIN_SCALE)`; `∂s/∂v = sign(v) / divisor` where the floor is not active. */
  | { readonly kind: 'abs'; readonly divisor: number }
  /** `v / divisor`. */
  | { readonly kind: 'div'; readonly divisor: number }
  /** `2^(ceil(v) − shift)` with a straight-through ceil: `∂s/∂v = s · ln 2`. */
  | { readonly kind: 'pow2'; readonly shift: number };

/** The rule's constant (divisor or shift), as the fused kernels take it in their attributes. */
export function scaleFromArg(from: ScaleFrom): number {
  return from.kind === 'pow2' ? from.shift : from.divisor;
}

/** The scale of parameter value `v` (float32 arithmetic, as the tensor form). */
export function scaleFromValue(v: number, kind: ScaleFrom['kind'], arg: number): number {
  switch (kind) {
    case 'abs':
      return Math.max(Math.fround(Math.abs(v) / arg), MIN_SCALE);
    case 'div':
      return Math.fround(v / arg);
    case 'pow2':
      return 2 ** (Math.ceil(v) - arg);
  }
}

/** `∂L/∂v` from `∂L/∂s` at parameter `v` with scale `s`. */
export function scaleFromGradient(ds: number, v: number, s: number, kind: ScaleFrom['kind'], arg: number): number {
  switch (kind) {
    case 'abs':
      return Math.fround(Math.abs(v) / arg) >= MIN_SCALE ? (ds * Math.sign(v)) / arg : 0;
    case 'div':
      return ds / arg;
    case 'pow2':
      return ds * s * Math.LN2;
  }
}

/**
 * The scale as a taped tensor, each rule one custom gradient (or one op) rather than three taped
 * ops: fewer kernel calls per quantizer and step.
 */
export function scaleFromTensor(v: tf.Tensor, from: ScaleFrom): tf.Tensor {
  if (from.kind === 'div') return tf.div(v, from.divisor);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [vi, save] = args as [tf.Tensor, tf.GradSaveFunc];
    if (from.kind === 'pow2') {
      const scale = tf.pow(tf.scalar(2), tf.sub(tf.ceil(vi), from.shift));
      save([scale]);
      return { value: scale, gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.mul(dy, tf.mul(saved[0]!, Math.LN2)) };
    }
    const scaled = tf.div(tf.abs(vi), from.divisor);
    save([vi, scaled]);
    return {
      value: tf.maximum(scaled, MIN_SCALE),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [vs, ss] = saved as [tf.Tensor, tf.Tensor];
        return tf.mul(tf.mul(dy, tf.sign(vs)), tf.div(tf.cast(tf.greaterEqual(ss, MIN_SCALE), 'float32'), from.divisor));
      },
    };
  });
  return (op as (t: tf.Tensor) => tf.Tensor)(v);
}
