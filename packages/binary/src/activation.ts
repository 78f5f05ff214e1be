import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, type Json } from '@tensorpress/core-tensor';
import { binarySte, ternarySte, type SteVariant } from './ste.js';

/** Binary (sign) or ternary ({−1, 0, +1}, dead zone |u| ≤ ½) activations. */
export type ActivationMethod = 'binary' | 'ternary';

/** Options of an {@link ActivationBinarizer}. */
export interface ActivationBinarizerOptions {
  readonly method: ActivationMethod;
  readonly ste: SteVariant;
  /**
   * Trainable scale s and per-channel threshold t: out = s·H(in − s·t). False: out = H(in) (a plain
   * sign, right only for inputs centred on 0, e.g. a BatchNormalization output).
   */
  readonly learned: boolean;
}

const DEAD_ZONE = 0.5;

/**
 * One binarized activation (the input of one or more Conv/Gemm nodes): H(in) or, learned,
 * s·H(in − s·t) with a scalar scale s and a threshold t per channel (the last axis). H is sign
 * (sign(0) = +1) for `binary` and, for `ternary`, the codes of u/s against ½. Learned parameters
 * start from data ({@link observe} then {@link finishInit}): t at each channel's mean, s at the mean
 * absolute deviation from it, so the first binarization splits every channel at its mean.
 */
export class ActivationBinarizer {
  readonly scale: tf.Variable | undefined;
  readonly threshold: tf.Variable | undefined;
  initialized: boolean;
  private sums: { mean: Float64Array; mad: number; batches: number } | undefined;

  constructor(
    readonly id: string,
    readonly channels: number,
    readonly options: ActivationBinarizerOptions,
  ) {
    this.initialized = !options.learned;
    if (options.learned) {
      const [s, t] = [tf.scalar(1), tf.zeros([channels])];
      this.scale = tf.variable(s, true);
      this.threshold = tf.variable(t, true);
      tf.dispose([s, t]);
    }
  }

  /** The binarized activation (differentiable: the STE for the input, autodiff for s and t). */
  apply(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { method, ste } = this.options;
      if (!this.scale || !this.threshold) return method === 'binary' ? binarySte(x, ste) : ternarySte(x, tf.scalar(DEAD_ZONE), ste);
      const s = this.scale;
      const u = tf.sub(x, tf.mul(s, this.threshold));
      const h = method === 'binary' ? binarySte(u, ste) : ternarySte(tf.div(u, s), tf.scalar(DEAD_ZONE), ste);
      return tf.mul(s, h);
    });
  }

  /** Accumulates initialisation statistics of one batch of the input. */
  observe(x: tf.Tensor): void {
    const [mean, mad] = tf.tidy(() => {
      const axes = [...Array(x.rank - 1).keys()];
      const m = tf.mean(x, axes);
      return [m, tf.mean(tf.abs(tf.sub(x, m)))];
    });
    const md = mean!.dataSync();
    const d = mad!.dataSync()[0]!;
    tf.dispose([mean!, mad!]);
    this.sums ??= { mean: new Float64Array(this.channels), mad: 0, batches: 0 };
    for (let c = 0; c < this.channels; c++) this.sums.mean[c] = this.sums.mean[c]! + md[c]!;
    this.sums.mad += d;
    this.sums.batches++;
  }

  /** Sets s and t from the observed statistics. */
  finishInit(): void {
    if (!this.scale || !this.threshold) return;
    const st = this.sums;
    if (!st) throw new TensorpressError('STATE_INVALID', `binarization: activation "${this.id}" saw no data to initialise its scale and threshold`);
    const s = Math.max(st.mad / st.batches, 1e-3);
    this.set(s, Array.from(st.mean, (m) => m / st.batches / s));
    this.sums = undefined;
    this.initialized = true;
  }

  /** Sets s and t (learned binarizers only). */
  set(scale: number, threshold: ArrayLike<number>): void {
    if (!this.scale || !this.threshold) return;
    const [s, t] = [tf.scalar(scale), tf.tensor1d(Array.from(threshold))];
    this.scale.assign(s);
    this.threshold.assign(t);
    tf.dispose([s, t]);
  }

  /** Current s and t (undefined when not learned). */
  values(): { scale: number; threshold: Float32Array } | undefined {
    if (!this.scale || !this.threshold) return undefined;
    return { scale: this.scale.dataSync()[0]!, threshold: Float32Array.from(this.threshold.dataSync()) };
  }

  variables(): tf.Variable[] {
    return this.scale && this.threshold ? [this.scale, this.threshold] : [];
  }

  state(): Json {
    const v = this.values();
    return { initialized: this.initialized, ...(v ? { scale: v.scale, threshold: Array.from(v.threshold) } : {}) };
  }

  loadState(state: Json): void {
    const s = state as { initialized?: unknown; scale?: unknown; threshold?: unknown } | null;
    if (!s || typeof s !== 'object' || typeof s.initialized !== 'boolean') {
      throw new TensorpressError('STATE_INVALID', `binarization: activation "${this.id}": expected { initialized, scale?, threshold? }`);
    }
    if (this.scale && this.threshold && s.initialized) {
      if (typeof s.scale !== 'number' || !Array.isArray(s.threshold) || s.threshold.length !== this.channels) {
        throw new TensorpressError('STATE_INVALID', `binarization: activation "${this.id}": expected a scale and ${this.channels} thresholds`);
      }
      this.set(s.scale, s.threshold as number[]);
    }
    this.initialized = s.initialized;
  }

  dispose(): void {
    this.scale?.dispose();
    this.threshold?.dispose();
  }
}
