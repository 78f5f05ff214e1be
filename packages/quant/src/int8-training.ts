import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, parseWithSchema, type CompressionBuilder, type EntryLocation, type Json } from '@tensorpress/core-tensor';
import { z } from 'zod';
import { SymmetricQuantizer, int8WeightQuantizer } from './qat/affine-quantizers.js';
import { qatBuilder } from './qat/controller.js';
import { quantDefinition } from './qat/definition.js';
import type { ActivationStats, Grid, Quantizer } from './qat/quantizer.js';
import { bitsSchema, qatCommonSchema } from './qat/schema.js';
import { qatSettings, type ScopeOptions } from './qat/settings.js';

/**
 * INT8 training with quantized gradients (Zhao et al. 2021, "Distribution Adaptive INT8
 * Quantization for Training CNNs", AAAI). Forward: QAT INT8 (per-channel symmetric weights,
 * symmetric activations, the `quantization` algorithm's quantizers). Backward: at every activation
 * quantization site a custom gradient quantizes the incoming activation gradient to INT8 before it
 * propagates, with one scale per channel (Gradient Vectorized Quantization) and the clipping value
 * per channel that minimises the magnitude-weighted quantization error (Magnitude-aware Clipping),
 * or per tensor at max |g| (the baseline).
 */

/** How the activation gradients are quantized. */
export const gradientQuantSchema = z
  .object({
    bits: bitsSchema.default(8),
    /** `channel`: one scale per channel (the last axis, NHWC), the paper's vectorized quantization; `tensor`: one per tensor. */
    granularity: z.enum(['channel', 'tensor']).default('channel'),
    /** `magnitude_aware`: the clipping value minimising Σ|g|·(g − Q(g))²; `max`: clip at max |g| (no clipping). */
    clipping: z.enum(['magnitude_aware', 'max']).default('magnitude_aware'),
  })
  .strict();

/** Parameters of `int8_training`. */
export const int8TrainingSchema = z
  .object({
    weights: z.object({ bits: bitsSchema.default(8), perChannel: z.boolean().default(true) }).strict().default({ bits: 8, perChannel: true }),
    activations: z.object({ bits: bitsSchema.default(8) }).strict().default({ bits: 8 }),
    gradients: gradientQuantSchema.default({ bits: 8, granularity: 'channel', clipping: 'magnitude_aware' }),
    ...qatCommonSchema,
  })
  .strict();

/** Validated `int8_training` parameters. */
export type Int8TrainingParams = z.output<typeof int8TrainingSchema>;
/** `int8_training` parameters as written in a config. */
export type Int8TrainingInput = z.input<typeof int8TrainingSchema>;
/** Gradient quantization options. */
export type GradientQuantOptions = z.output<typeof gradientQuantSchema>;

/** The two distribution families of the paper's clipping solution. */
export type GradientFamily = 'gaussian' | 'laplace';

const SQRT2 = Math.SQRT2;
const INV_SQRT_2PI = 1 / Math.sqrt(2 * Math.PI);

/** erfc(x) for x ≥ 0 (Numerical Recipes' Chebyshev fit, relative error < 1.2e-7). */
function erfc(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r =
    t *
    Math.exp(
      -z * z -
        1.26551223 +
        t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))),
    );
  return x >= 0 ? r : 2 - r;
}

/**
 * The expected magnitude-weighted quantization error E(c) = E[|g|·(g − Q_c(g))²] of a unit-scale
 * distribution clipped at ±c on a symmetric b-bit grid (step Δ = c / (2^(b−1) − 1)): the clipped
 * tails contribute 2∫_c^∞ g(g − c)² p(g) dg, the inside |g|·Δ²/12 (uniform rounding error).
 * - Gaussian (σ = 1): tails 4(φ(c) − c·Q(c)), inside 2(φ(0) − φ(c))·Δ²/12;
 * - Laplace (scale λ = 1, p = e^−|g| / 2): tails 2e^−c(3 + c), inside (1 − e^−c(1 + c))·Δ²/12.
 * A distribution of scale σ (or λ) has E(σc) = σ³E(c), so the optimum scales with σ (λ).
 */
export function magnitudeAwareError(family: GradientFamily, c: number, bits = 8): number {
  const d = c / (2 ** (bits - 1) - 1);
  const r = (d * d) / 12;
  if (family === 'gaussian') {
    const phi = INV_SQRT_2PI * Math.exp(-0.5 * c * c);
    const q = 0.5 * erfc(c / SQRT2);
    return 4 * (phi - c * q) + 2 * (INV_SQRT_2PI - phi) * r;
  }
  const e = Math.exp(-c);
  return 2 * e * (3 + c) + (1 - e * (1 + c)) * r;
}

const optimalCache = new Map<string, number>();

/**
 * The clipping value c* of a unit-scale distribution that minimises {@link magnitudeAwareError}
 * (golden-section search; E is unimodal in c: the tail term falls, the rounding term grows as c²).
 * For 8 bits c* ≈ 4.0σ (Gaussian) and ≈ 10.1λ (Laplace).
 */
export function optimalClip(family: GradientFamily, bits = 8): number {
  const key = `${family}:${bits}`;
  const hit = optimalCache.get(key);
  if (hit !== undefined) return hit;
  let lo = 1e-3;
  let hi = 64;
  const g = (Math.sqrt(5) - 1) / 2;
  let a = hi - g * (hi - lo);
  let b = lo + g * (hi - lo);
  let fa = magnitudeAwareError(family, a, bits);
  let fb = magnitudeAwareError(family, b, bits);
  for (let i = 0; i < 200 && hi - lo > 1e-10; i++) {
    if (fa < fb) {
      hi = b;
      b = a;
      fb = fa;
      a = hi - g * (hi - lo);
      fa = magnitudeAwareError(family, a, bits);
    } else {
      lo = a;
      a = b;
      fa = fb;
      b = lo + g * (hi - lo);
      fb = magnitudeAwareError(family, b, bits);
    }
  }
  const c = (lo + hi) / 2;
  optimalCache.set(key, c);
  return c;
}

/** Quantizes `g` symmetrically at clipping value `c` (broadcastable) on a b-bit grid. Inside a tidy. */
function quantizeAt(g: tf.Tensor, c: tf.Tensor, bits: number): tf.Tensor {
  const qmax = 2 ** (bits - 1) - 1;
  const step = tf.div(c, qmax);
  return tf.mul(tf.clipByValue(tf.round(tf.div(g, step)), -qmax, qmax), step);
}

/** Axes reduced for one statistic per channel (the last axis) or per tensor. */
function reduceAxes(g: tf.Tensor, granularity: 'channel' | 'tensor'): number[] {
  const all = Array.from({ length: g.rank }, (_, i) => i);
  return granularity === 'channel' && g.rank >= 2 ? all.slice(0, -1) : all;
}

const TINY = 1e-30;

/**
 * The clipping values of a gradient: per channel (last axis) or per tensor, shaped to broadcast.
 * `magnitude_aware`: the Gaussian solution σ·c*_G (σ² = mean g²) and the Laplace one λ·c*_L
 * (λ = mean |g|, the maximum-likelihood scale), each at most max |g|; per channel, the one of these
 * two and max |g| with the smallest magnitude-weighted error on the channel's own values. `max`: max |g|.
 */
export function gradientClipping(g: tf.Tensor, options: Pick<GradientQuantOptions, 'bits' | 'granularity' | 'clipping'>): tf.Tensor {
  return tf.tidy(() => {
    const axes = reduceAxes(g, options.granularity);
    const abs = tf.abs(g);
    const maxAbs = tf.maximum(tf.max(abs, axes, true), TINY);
    if (options.clipping === 'max') return maxAbs;
    const sigma = tf.sqrt(tf.mean(tf.square(g), axes, true));
    const lambda = tf.mean(abs, axes, true);
    const cG = tf.maximum(tf.minimum(tf.mul(sigma, optimalClip('gaussian', options.bits)), maxAbs), TINY);
    const cL = tf.maximum(tf.minimum(tf.mul(lambda, optimalClip('laplace', options.bits)), maxAbs), TINY);
    const err = (c: tf.Tensor) => tf.sum(tf.mul(abs, tf.square(tf.sub(g, quantizeAt(g, c, options.bits)))), axes, true);
    // max |g| stays a candidate: a channel far from both families (a heavy scale mixture) is never clipped worse than not at all.
    const [eG, eL, eM] = [err(cG), err(cL), err(maxAbs)];
    const cGL = tf.where(tf.lessEqual(eG, eL), cG, cL);
    return tf.where(tf.lessEqual(tf.minimum(eG, eL), eM), cGL, maxAbs);
  });
}

/** Quantizes a gradient to `bits` with its clipping values (fake-quantized: the float values of the integer grid). */
export function quantizeGradient(g: tf.Tensor, options: Pick<GradientQuantOptions, 'bits' | 'granularity' | 'clipping'>): tf.Tensor {
  return tf.tidy(() => quantizeAt(g, gradientClipping(g, options), options.bits));
}

/** Identity forward; the incoming gradient is quantized before it propagates. */
export function gradientQuantizer(options: GradientQuantOptions): (x: tf.Tensor) => tf.Tensor {
  return tf.customGrad((x, save) => {
    void save;
    return { value: tf.clone(x as tf.Tensor), gradFunc: (dy: tf.Tensor) => quantizeGradient(dy, options) };
  }) as (x: tf.Tensor) => tf.Tensor;
}

/** An activation quantizer whose output's gradient is quantized in training (QAT forward unchanged). */
class GradientQuantizedActivation implements Quantizer {
  readonly kind = 'activation' as const;
  private readonly qGrad: (x: tf.Tensor) => tf.Tensor;
  constructor(
    private readonly inner: Quantizer,
    private readonly options: GradientQuantOptions,
  ) {
    this.qGrad = gradientQuantizer(options);
  }
  get id(): string {
    return this.inner.id;
  }
  get bits(): number {
    return this.inner.bits;
  }
  get initialized(): boolean {
    return this.inner.initialized;
  }
  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    const y = this.inner.apply(x, training);
    return training ? this.qGrad(y) : y;
  }
  initActivation(stats: ActivationStats): void {
    this.inner.initActivation(stats);
  }
  variables(): tf.Variable[] {
    return this.inner.variables();
  }
  grid(x?: tf.Tensor): Grid {
    return this.inner.grid(x);
  }
  describe(): Record<string, Json> {
    return { ...this.inner.describe(), gradientBits: this.options.bits, gradientGranularity: this.options.granularity, gradientClipping: this.options.clipping };
  }
  state(): Json {
    return this.inner.state();
  }
  loadState(state: Json): void {
    this.inner.loadState(state);
  }
  dispose(): void {
    this.inner.dispose();
  }
}

/**
 * INT8 training: QAT INT8 forward (symmetric per-channel weights, symmetric activations with
 * learned thresholds, ranges from data), INT8 activation gradients backward. From scratch or as
 * fine-tuning with the core `fit` loop.
 */
export function int8Training(input: Int8TrainingInput = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  const p = parseWithSchema(int8TrainingSchema, input);
  if (p.gradients.bits < 2) throw new TensorpressError('INPUT_INVALID', 'int8_training: gradient bits must be ≥ 2');
  return qatBuilder({
    algorithm: 'int8_training',
    settings: qatSettings(p, scopes, location),
    weight: (site) => int8WeightQuantizer(site),
    activation: (site) =>
      new GradientQuantizedActivation(
        new SymmetricQuantizer(site.id, 'activation', { bits: site.bits, mode: 'symmetric', signed: true, narrowRange: false }, 'clipped', undefined),
        p.gradients,
      ),
  });
}

/** The `int8_training` algorithm for pipeline configs. */
export const int8TrainingDefinition = quantDefinition(
  'int8_training',
  'INT8 training: QAT INT8 forward, activation gradients quantized to INT8 per channel with magnitude-aware clipping (Zhao et al. 2021)',
  int8TrainingSchema,
  int8Training,
);
