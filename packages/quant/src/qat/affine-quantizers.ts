import * as tf from '@tensorflow/tfjs-core';
import { roundSte, type SteVariant } from '../fake-quantize.js';
import type { ScaleFrom } from '../internal/scale-from.js';
import { MIN_SCALE, integerRange, type QuantSpec } from '../quant-params.js';
import {
  AffineQuantizer,
  channelVariable,
  signedFromStats,
  thresholdFromStats,
  varName,
  weightAbsMax,
  type ActivationStats,
  type Quantizer,
  type WeightSite,
} from './quantizer.js';

/** Symmetric quantizer with a learned threshold `t` (NNCF's SymmetricQuantizer): scale = |t| / qmax. */
export class SymmetricQuantizer extends AffineQuantizer {
  private t: tf.Variable;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    gradient: SteVariant,
    init: { threshold: ArrayLike<number>; rank: number; axis: number | undefined } | undefined,
    private readonly forcedSigned?: boolean,
  ) {
    super(id, spec, gradient);
    this.rank = init?.rank ?? 4;
    this.axis = init && init.threshold.length > 1 ? init.axis : undefined;
    this.t = channelVariable(init?.threshold ?? [1], this.rank, this.axis, varName(id, 't'));
    this.initialized = init !== undefined;
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    return { param: this.t, from: { kind: 'abs', divisor: integerRange(this.spec)[1] } };
  }
  initActivation(stats: ActivationStats): void {
    const signed = signedFromStats(stats, this.forcedSigned);
    this.spec = { ...this.spec, signed };
    const t = thresholdFromStats(stats, signed);
    tf.tidy(() => this.t.assign(tf.scalar(t)));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.t];
  }
}

/**
 * Asymmetric quantizer with learned `low` and `range` (NNCF's AsymmetricQuantizer): scale =
 * |range| / (qmax − qmin), zero point = round(qmin − low / scale) with a straight-through gradient.
 */
export class AsymmetricQuantizer extends AffineQuantizer {
  private low: tf.Variable;
  private width: tf.Variable;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    gradient: SteVariant,
    init: { min: ArrayLike<number>; max: ArrayLike<number>; rank: number; axis: number | undefined } | undefined,
  ) {
    super(id, spec, gradient);
    this.rank = init?.rank ?? 4;
    this.axis = init && init.min.length > 1 ? init.axis : undefined;
    const lo = Array.from(init?.min ?? [0], (m) => Math.min(m, 0));
    const wd = Array.from(init?.max ?? [1], (m, i) => Math.max(Math.max(m, 0) - lo[i]!, MIN_SCALE));
    this.low = channelVariable(lo, this.rank, this.axis, varName(id, 'low'));
    this.width = channelVariable(wd, this.rank, this.axis, varName(id, 'range'));
    this.initialized = init !== undefined;
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    const [qmin, qmax] = integerRange(this.spec);
    return { param: this.width, from: { kind: 'abs', divisor: qmax - qmin } };
  }
  protected override zeroPointFor(scale: tf.Tensor): tf.Tensor {
    const [qmin, qmax] = integerRange(this.spec);
    return tf.clipByValue(roundSte(tf.sub(qmin, tf.div(this.low, scale))), qmin, qmax);
  }
  initActivation(stats: ActivationStats): void {
    const lo = Math.min(stats.min, 0);
    tf.tidy(() => this.low.assign(tf.scalar(lo)));
    tf.tidy(() => this.width.assign(tf.scalar(Math.max(Math.max(stats.max, 0) - lo, MIN_SCALE))));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.low, this.width];
  }
}

/** An 8-bit weight under a low-bit method: the default symmetric per-channel INT8 quantizer (papers keep first/last layers at 8 bits). */
export function int8WeightQuantizer(site: Pick<WeightSite, 'id' | 'weight' | 'bits' | 'perChannel' | 'axis'>): Quantizer {
  const axis = site.perChannel ? site.axis : undefined;
  return new SymmetricQuantizer(site.id, 'weight', { bits: site.bits, mode: 'symmetric', signed: true, narrowRange: true }, 'clipped', {
    threshold: weightAbsMax(site.weight, axis),
    rank: site.weight.rank,
    axis,
  });
}
