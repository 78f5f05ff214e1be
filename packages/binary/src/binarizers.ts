import * as tf from '@tensorflow/tfjs-core';
import { binarySte, constantOf, ternaryCodes, ternarySte, type SteVariant } from './ste.js';

/**
 * How weights are binarized or ternarized (per output filter: the last axis of a Conv weight
 * [kh, kw, cin, cout] and of a Gemm weight [in, out]):
 * - `bnn`: sign(W), no scale (BNN);
 * - `xnor`: α·sign(W), α = mean|W| per output filter (XNOR-Net);
 * - `dorefa`: α·sign(W) with one α = mean|W| for the whole tensor (DoReFa's binary weights);
 * - `twn`: α·t(W), t ∈ {−1, 0, +1} with Δ = θ·mean|W| per filter, α = mean of |W| over |W| > Δ (TWN);
 * - `ternary`: t(W) with no scale (for hardware that cannot multiply).
 */
export type WeightMethod = 'bnn' | 'xnor' | 'dorefa' | 'twn' | 'ternary';

/** The weight methods, in the order of {@link WeightMethod}. */
export const WEIGHT_METHODS: readonly WeightMethod[] = ['bnn', 'xnor', 'dorefa', 'twn', 'ternary'];

/** Bits of a method's codes: 1 for {−1, +1}, 2 for {−1, 0, +1}. */
export function methodBits(method: WeightMethod): 1 | 2 {
  return method === 'twn' || method === 'ternary' ? 2 : 1;
}

/** Options of {@link weightParts}. */
export interface WeightBinarizerOptions {
  /** Remove each filter's mean before binarizing (default true). */
  readonly center?: boolean;
  /** The straight-through estimator of the sign (default `ste`). */
  readonly ste?: SteVariant;
  /** TWN's θ in Δ = θ·mean|W| (default 0.7), in (0, 1). */
  readonly ternaryThreshold?: number;
  /**
   * The ternary gap: a weight whose |W| lies within gap·Δ of Δ keeps its previous code (`previous`),
   * so update jitter around the threshold does not flip it back and forth. 0 (default) turns it off.
   */
  readonly ternaryGap?: number;
  /** The codes of the previous step (for `ternaryGap`). */
  readonly previous?: tf.Tensor;
}

/** A binarized weight as codes times scale. */
export interface WeightParts {
  /** Codes in {−1, +1} or {−1, 0, +1}, the weight's shape; the gradient is the STE's. */
  readonly codes: tf.Tensor;
  /** Scale per output filter ([cout]) or one for the tensor ([]). */
  readonly scale: tf.Tensor;
}

function filterAxes(rank: number): number[] {
  return [...Array(Math.max(rank - 1, 0)).keys()];
}

/**
 * Codes and scale of a weight (see {@link WeightMethod}); codes·scale is the binarized weight, and
 * gradients reach the weight through the STE and through the scale (XNOR-Net's
 * ∂α/∂W = sign(W)/n per filter). Call inside `tf.tidy`.
 */
export function weightParts(w: tf.Tensor, method: WeightMethod, options: WeightBinarizerOptions = {}): WeightParts {
  const axes = filterAxes(w.rank);
  const ste = options.ste ?? 'ste';
  const wc = (options.center ?? true) && axes.length > 0 ? tf.sub(w, tf.mean(w, axes, true)) : w;
  switch (method) {
    case 'bnn':
      return { codes: binarySte(wc, ste), scale: tf.scalar(1) };
    case 'xnor':
      return { codes: binarySte(wc, ste), scale: axes.length > 0 ? tf.mean(tf.abs(wc), axes) : tf.abs(wc) };
    case 'dorefa':
      return { codes: binarySte(wc, ste), scale: tf.mean(tf.abs(wc)) };
    case 'twn':
    case 'ternary': {
      const theta = options.ternaryThreshold ?? 0.7;
      const delta = constantOf((x) => tf.mul(tf.mean(tf.abs(x), axes, true), theta), wc);
      let codes = ternarySte(wc, delta, ste);
      const gap = options.ternaryGap ?? 0;
      if (gap > 0 && options.previous) {
        // Held codes differ from the fresh ones only as a constant: the STE gradient is unchanged.
        const shift = constantOf(
          (x, d, prev) => {
            const fresh = ternaryCodes(x, d);
            const band = tf.less(tf.abs(tf.sub(tf.abs(x), d)), tf.mul(d, gap));
            return tf.where(band, tf.sub(prev, fresh), tf.zerosLike(fresh));
          },
          wc,
          delta,
          options.previous,
        );
        codes = tf.add(codes, shift);
      }
      if (method === 'ternary') return { codes, scale: tf.scalar(1) };
      const mask = constantOf((c) => tf.abs(c), codes);
      const sum = axes.length > 0 ? tf.sum(tf.mul(tf.abs(wc), mask), axes) : tf.mul(tf.abs(wc), mask);
      const count = axes.length > 0 ? tf.sum(mask, axes) : mask;
      return { codes, scale: tf.div(sum, tf.maximum(count, 1)) };
    }
  }
}

/** The binarized weight codes·scale (see {@link weightParts}), differentiable through the STE. */
export function binarizeWeight(w: tf.Tensor, method: WeightMethod, options: WeightBinarizerOptions = {}): tf.Tensor {
  return tf.tidy(() => {
    const { codes, scale } = weightParts(w, method, options);
    return tf.mul(codes, scale);
  });
}
