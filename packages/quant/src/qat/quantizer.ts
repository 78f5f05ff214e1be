import * as tf from '@tensorflow/tfjs-core';
import type { Json } from '@tensorpress/core-tensor';
import { TensorpressError } from '@tensorpress/core-tensor';
import { fakeQuantize, type SteVariant } from '../fake-quantize.js';
import { integerRange, tensorRange, MIN_SCALE, type QuantSpec } from '../quant-params.js';
import { scaleFromTensor, type ScaleFrom } from '../internal/scale-from.js';

/** The integer grid a quantizer's output lies on (what strip() stores). */
export interface Grid {
  /** One value per channel (length 1 per tensor). */
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
  readonly range: readonly [number, number];
  readonly signed: boolean;
  /** Channel axis of a per-channel grid. */
  readonly axis?: number;
}

/** Statistics an activation quantizer is initialised from. */
export interface ActivationStats {
  readonly min: number;
  readonly max: number;
  /** Mean of |x| (LSQ's initial step). */
  readonly meanAbs: number;
  /** Values per example (LSQ's gradient scale). */
  readonly featuresPerExample: number;
}

/** One fake quantizer at one or more insertion points. */
export interface Quantizer {
  readonly id: string;
  readonly kind: 'weight' | 'activation';
  readonly bits: number;
  /** Quantized at run time from each batch's own range (DynamicQuantizeLinear); no stored grid. */
  readonly dynamic?: boolean;
  /** False until an activation quantizer has seen statistics (weights initialise on creation). */
  readonly initialized: boolean;
  /** Fake-quant forward (differentiable). */
  apply(x: tf.Tensor, training: boolean): tf.Tensor;
  /** Activation quantizers: set the range from calibration statistics. */
  initActivation(stats: ActivationStats): void;
  /** Learned parameters (scales, thresholds, clipping levels). */
  variables(): tf.Variable[];
  /**
   * An L2 decay `decay · v²` of one scalar variable that joins the compression loss (PACT's α);
   * none by default. The controller sums every quantizer's term in one vectorised op.
   */
  l2Decay?(): { readonly variable: tf.Variable; readonly decay: number };
  /** The grid of the current output; `x` is the weight (weights) and is unused for activations. */
  grid(x?: tf.Tensor): Grid;
  /** A short description for statistics, e.g. `symmetric signed per-channel 8 bit`. */
  describe(): Record<string, Json>;
  state(): Json;
  loadState(state: Json): void;
  dispose(): void;
}

/** Where and how a weight quantizer is made. */
export interface WeightSite {
  readonly id: string;
  readonly node: string;
  readonly op: string;
  /** The float weight at creation time. */
  readonly weight: tf.Tensor;
  readonly bits: number;
  readonly perChannel: boolean;
  /** Output-channel axis (Conv: 3, Gemm/MatMul: 1). */
  readonly axis: number;
}

/** Where and how an activation quantizer is made. */
export interface ActivationSite {
  readonly id: string;
  /** The values it quantizes (several for unified Add/Concat scales). */
  readonly values: readonly string[];
  readonly bits: number;
}

/** A variable from numbers, shaped to broadcast along `axis` of a rank-`rank` tensor. */
export function channelVariable(values: ArrayLike<number>, rank: number, axis: number | undefined, name: string): tf.Variable {
  const n = values.length;
  const shape = n === 1 || axis === undefined ? [] : Array.from({ length: rank }, (_, i) => (i === axis ? n : 1));
  return tf.tidy(() => tf.variable(tf.tensor(Float32Array.from(values), shape), true, name));
}

/** Float32 values of a small tensor (scales, thresholds). */
export function valuesOf(t: tf.Tensor): Float32Array {
  return Float32Array.from(t.dataSync());
}

/** Restores a variable from a JSON number array, checking its size. */
export function loadVariable(v: tf.Variable, state: Json, what: string): void {
  if (!Array.isArray(state) || state.length !== v.size || !state.every((x) => typeof x === 'number')) {
    throw new TensorpressError('STATE_INVALID', `${what}: expected ${v.size} numbers`);
  }
  tf.tidy(() => v.assign(tf.tensor(state as number[], v.shape)));
}

/**
 * Scalar constants a quantizer hands to fake quantization every step (zero points, DoReFa's 1/n),
 * made once and kept out of tidy scopes; the quantizer disposes them. Kept tensors also need no
 * copy in the gradient tape (see fusedFakeQuantize).
 */
export class Constants {
  private readonly made = new Map<number, tf.Tensor>();
  scalar(value: number): tf.Tensor {
    let t = this.made.get(value);
    if (!t || t.isDisposed) {
      t = tf.keep(tf.scalar(value));
      this.made.set(value, t);
    }
    return t;
  }
  dispose(): void {
    for (const t of this.made.values()) t.dispose();
    this.made.clear();
  }
}

/** Unique variable names across instances (tfjs registers variables globally by name). */
let serial = 0;
export function varName(id: string, what: string): string {
  return `tp_quant/${id}/${what}/${serial++}`;
}

/**
 * An affine quantizer whose scale is derived from learnable parameters (NNCF's trainable
 * quantizers, LSQ, TQT): subclasses say how `scale` and `zeroPoint` come from their variables.
 */
export abstract class AffineQuantizer implements Quantizer {
  abstract readonly kind: 'weight' | 'activation';
  initialized = false;
  protected spec: QuantSpec;
  protected rank = 4;
  protected axis: number | undefined;
  private readonly constants = new Constants();

  constructor(
    readonly id: string,
    spec: QuantSpec,
    protected readonly gradient: SteVariant,
  ) {
    this.spec = spec;
  }

  get bits(): number {
    return this.spec.bits;
  }

  protected get range(): [number, number] {
    return integerRange(this.spec);
  }

  /** The learned parameter the scale comes from, and the rule. */
  protected abstract scaleParam(): { param: tf.Tensor; from: ScaleFrom };
  /** The zero point for `scale` (asymmetric quantizers); undefined: 0. */
  protected zeroPointFor(_scale: tf.Tensor): tf.Tensor | undefined {
    return undefined;
  }
  protected gradScale(_x: tf.Tensor): number {
    return 1;
  }

  /** Scale and zero point tensors (inside the caller's tidy / gradient tape). */
  protected scaleAndZero(): { scale: tf.Tensor; zeroPoint: tf.Tensor } {
    const { param, from } = this.scaleParam();
    const scale = scaleFromTensor(param, from);
    return { scale, zeroPoint: this.zeroPointFor(scale) ?? tf.zerosLike(scale) };
  }

  apply(x: tf.Tensor): tf.Tensor {
    const options = {
      range: this.range,
      gradient: this.gradient,
      gradScale: this.gradScale(x),
      learnZeroPoint: this.spec.mode === 'asymmetric',
      zeroPointIsZero: this.spec.mode === 'symmetric',
    };
    if (this.spec.mode === 'symmetric') {
      // The parameter goes to fake quantization with its rule: the fused kernels derive the scale.
      const { param, from } = this.scaleParam();
      return fakeQuantize(x, param, this.constants.scalar(0), { ...options, scaleFrom: from });
    }
    const { scale, zeroPoint } = this.scaleAndZero();
    return fakeQuantize(x, scale, zeroPoint, options);
  }

  abstract initActivation(stats: ActivationStats): void;
  abstract variables(): tf.Variable[];

  grid(): Grid {
    const [s, z] = tf.tidy(() => {
      const { scale, zeroPoint } = this.scaleAndZero();
      return [tf.reshape(scale, [-1]), tf.reshape(tf.round(zeroPoint), [-1])];
    });
    const scale = valuesOf(s);
    const zeroPoint = Int32Array.from(z.dataSync());
    s.dispose();
    z.dispose();
    return { scale, zeroPoint, range: this.range, signed: this.spec.signed, ...(scale.length > 1 && this.axis !== undefined ? { axis: this.axis } : {}) };
  }

  describe(): Record<string, Json> {
    return { bits: this.spec.bits, mode: this.spec.mode, signed: this.spec.signed, perChannel: this.axis !== undefined };
  }

  state(): Json {
    return { spec: { ...this.spec }, initialized: this.initialized, vars: this.variables().map((v) => Array.from(v.dataSync())) };
  }

  loadState(state: Json): void {
    const s = state as { spec?: QuantSpec; initialized?: boolean; vars?: Json[] } | null;
    if (!s || typeof s !== 'object' || !Array.isArray(s.vars)) throw new TensorpressError('STATE_INVALID', `quantizer ${this.id}: malformed state`);
    if (s.spec) this.spec = { ...s.spec };
    const vars = this.variables();
    if (s.vars.length !== vars.length) throw new TensorpressError('STATE_INVALID', `quantizer ${this.id}: expected ${vars.length} variables`);
    vars.forEach((v, i) => loadVariable(v, s.vars![i]!, `quantizer ${this.id}`));
    this.initialized = s.initialized ?? true;
  }

  dispose(): void {
    this.constants.dispose();
    for (const v of this.variables()) v.dispose();
  }
}

/** Per-channel (or per-tensor) max |w| of a weight, as numbers. */
export function weightAbsMax(w: tf.Tensor, axis: number | undefined): Float32Array {
  const { min, max } = tensorRange(w, axis);
  return Float32Array.from(min, (m, i) => Math.max(-m, max[i]!, MIN_SCALE));
}

/** Signedness an activation quantizer takes from statistics unless forced. */
export function signedFromStats(stats: ActivationStats, forced: boolean | undefined): boolean {
  return forced ?? stats.min < 0;
}

/** The clipping threshold a symmetric quantizer takes from statistics: max |x| (signed) or max x. */
export function thresholdFromStats(stats: ActivationStats, signed: boolean): number {
  return Math.max(signed ? Math.max(-stats.min, stats.max) : stats.max, MIN_SCALE);
}
