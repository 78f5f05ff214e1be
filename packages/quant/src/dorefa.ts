import * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, TensorpressError, z, type AlgorithmDefinition, type CompressionBuilder, type Json } from '@tensorpress/core-tensor';
import { quantDefinition } from './internal/definition.js';
import { fakeQuantize, roundSte } from './fake-quantize.js';
import { fusedDorefaAvailable, fusedDorefaWeights } from './internal/fused-dorefa.js';
import { qatBuilder } from './internal/qat.js';
import { Constants, signedFromStats, weightAbsMax, type ActivationStats, type Grid, type Quantizer } from './internal/quantizer.js';
import { SymmetricQuantizer, qatCommonSchema, qatSettings, type ScopeOptions } from './quantization.js';

/** `round(r · n) / n` with a straight-through round: DoReFa's quantize_k for r in [0, 1], n = 2^k − 1. */
export function quantizeK(r: tf.Tensor, levels: number): tf.Tensor {
  return tf.div(roundSte(tf.mul(r, levels)), levels);
}

/**
 * DoReFa-Net weights (Zhou et al., 2016): `w_t = tanh(w) / (2 max|tanh(w)|) + 1/2`,
 * `w_q = 2 · quantize_k(w_t) − 1` in [−1, 1], times a constant `c`. The paper relies on a following
 * BatchNormalization to restore the scale; `c = max|W|` of the weights it starts from (fixed, not
 * trained) keeps fine-tuning from a trained float model and layers without BN working, and is
 * the identity for BN layers up to that BN. Codes are the odd integers in [−(2^k − 1), 2^k − 1]
 * with scale c / (2^k − 1), so k ≤ 7 fits int8.
 */
export class DorefaWeightQuantizer implements Quantizer {
  readonly kind = 'weight';
  readonly initialized = true;
  private c: number;
  constructor(
    readonly id: string,
    readonly bits: number,
    w: tf.Tensor,
    scaleMode: 'max' | 'none',
    /** Use the fused kernels where the backend has them (default); false: the taped ops below. */
    private readonly fused = true,
  ) {
    if (bits > 7) {
      throw new TensorpressError('CONFIG_INVALID', `dorefa: node weight "${id}": ${bits}-bit DoReFa codes need ${bits + 1} bits; use bits <= 7`, { bits });
    }
    this.c = scaleMode === 'max' ? Math.max(...weightAbsMax(w, undefined)) : 1;
  }
  apply(w: tf.Tensor): tf.Tensor {
    const n = 2 ** this.bits - 1;
    const c = this.c;
    if (this.fused && fusedDorefaAvailable(w)) return fusedDorefaWeights(w, n, c);
    // One custom gradient instead of a dozen taped ops (each costs kernel calls forward and
    // backward, per weight, per step). Backward, with M = max|tanh w| and a straight-through
    // rounding, g = 2c·dy = dL/dw_t: dL/dt_j = g_j / 2M − [|t_j| = M]·sign(t_j)·Σ_i g_i t_i / 2M²
    // (the max's gradient goes to every maximal element, as tfjs' Max gradient does), times
    // dt/dw = 1 − t². The same gradient as differentiating the ops (test/methods.test.ts).
    const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [wi, save] = args as [tf.Tensor, tf.GradSaveFunc];
      const t = tf.tanh(wi);
      const m = tf.max(tf.abs(t));
      const wt = tf.add(tf.div(t, tf.mul(2, m)), 0.5);
      save([t, m]);
      return {
        value: tf.mul(tf.sub(tf.mul(2, quantizeK(wt, n)), 1), c),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
          const [ts, ms] = saved as [tf.Tensor, tf.Tensor];
          const g = tf.mul(dy, 2 * c);
          const twoM = tf.mul(2, ms);
          const atMax = tf.mul(tf.cast(tf.equal(tf.abs(ts), ms), 'float32'), tf.sign(ts));
          const through = tf.mul(atMax, tf.div(tf.sum(tf.mul(g, ts)), tf.mul(twoM, ms)));
          return tf.mul(tf.sub(tf.div(g, twoM), through), tf.sub(1, tf.square(ts)));
        },
      };
    });
    return (op as (x: tf.Tensor) => tf.Tensor)(w);
  }
  initActivation(): void {}
  variables(): tf.Variable[] {
    return [];
  }
  grid(): Grid {
    const n = 2 ** this.bits - 1;
    return { scale: Float32Array.of(this.c / n), zeroPoint: Int32Array.of(0), range: [-n, n], signed: true };
  }
  describe(): Record<string, Json> {
    return { bits: this.bits, mode: 'dorefa', signed: true, perChannel: false };
  }
  state(): Json {
    return { c: this.c };
  }
  loadState(state: Json): void {
    const c = (state as { c?: unknown } | null)?.c;
    if (typeof c !== 'number') throw new TensorpressError('STATE_INVALID', `quantizer ${this.id}: expected { c: number }`);
    this.c = c;
  }
  dispose(): void {}
}

/**
 * DoReFa-Net activations: `quantize_k(clip(x, 0, 1))` (unsigned); a signed input (seen in the range
 * statistics, or forced) uses `clip(x, −1, 1)` on the symmetric grid of 2^(k−1) − 1 steps per side.
 * The gradient is the clip's (1 inside, 0 outside) times a straight-through round.
 */
export class DorefaActivationQuantizer implements Quantizer {
  readonly kind = 'activation';
  initialized = false;
  private signed = false;
  private readonly constants = new Constants();
  constructor(
    readonly id: string,
    readonly bits: number,
    private readonly forcedSigned?: boolean,
  ) {}
  private get levels(): number {
    return this.signed ? 2 ** (this.bits - 1) - 1 : 2 ** this.bits - 1;
  }
  apply(x: tf.Tensor): tf.Tensor {
    // quantize_k(clip(x, 0, 1)) is fake quantization with scale 1/n on codes [0, n] ([−n, n]
    // signed), untrained, with the clip's gradient: one fused kernel on wasm and cpu.
    const n = this.levels;
    return fakeQuantize(x, this.constants.scalar(1 / n), this.constants.scalar(0), { range: this.signed ? [-n, n] : [0, n], gradient: 'clipped', learnable: false, zeroPointIsZero: true });
  }
  initActivation(stats: ActivationStats): void {
    this.signed = signedFromStats(stats, this.forcedSigned);
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [];
  }
  grid(): Grid {
    const n = this.levels;
    return { scale: Float32Array.of(1 / n), zeroPoint: Int32Array.of(0), range: this.signed ? [-n, n] : [0, n], signed: this.signed };
  }
  describe(): Record<string, Json> {
    return { bits: this.bits, mode: 'dorefa', signed: this.signed };
  }
  state(): Json {
    return { signed: this.signed, initialized: this.initialized };
  }
  loadState(state: Json): void {
    const s = state as { signed?: unknown; initialized?: unknown } | null;
    if (typeof s?.signed !== 'boolean') throw new TensorpressError('STATE_INVALID', `quantizer ${this.id}: expected { signed: boolean }`);
    this.signed = s.signed;
    this.initialized = s.initialized !== false;
  }
  dispose(): void {
    this.constants.dispose();
  }
}

/** An 8-bit weight under a low-bit method: the default symmetric per-channel INT8 quantizer (papers keep first/last layers at 8 bits). */
export function int8WeightQuantizer(site: { id: string; weight: tf.Tensor; bits: number; perChannel: boolean; axis: number }): Quantizer {
  const axis = site.perChannel ? site.axis : undefined;
  return new SymmetricQuantizer(site.id, 'weight', { bits: site.bits, mode: 'symmetric', signed: true, narrowRange: true }, 'clipped', {
    threshold: weightAbsMax(site.weight, axis),
    rank: site.weight.rank,
    axis,
  });
}

const bits = z.number().int().min(2).max(8);

/** Parameters of `dorefa`. */
export const dorefaSchema = z
  .object({
    weights: z
      .object({ bits: bits.default(4), scale: z.enum(['max', 'none']).default('max'), perChannel: z.boolean().default(true) })
      .strict()
      .default({ bits: 4, scale: 'max', perChannel: true }),
    activations: z.object({ bits: bits.default(4), signed: z.boolean().optional() }).strict().default({ bits: 4 }),
    ...qatCommonSchema,
  })
  .strict();
/** Validated `dorefa` parameters. */
export type DorefaParams = z.output<typeof dorefaSchema>;

/**
 * DoReFa-Net quantization-aware training. Layers planned at 8 bits use the default symmetric INT8
 * weight quantizer (`weights.perChannel` applies to those), since 8-bit DoReFa codes do not fit int8.
 */
export function dorefa(input: z.input<typeof dorefaSchema> = {}, scopes: ScopeOptions = {}): CompressionBuilder {
  const p = parseWithSchema(dorefaSchema, input);
  return qatBuilder({
    algorithm: 'dorefa',
    settings: qatSettings(p, { weightBits: p.weights.bits, activationBits: p.activations.bits, perChannel: p.weights.perChannel }, scopes),
    weight: (site) => (site.bits >= 8 ? int8WeightQuantizer(site) : new DorefaWeightQuantizer(site.id, site.bits, site.weight, p.weights.scale)),
    activation: (site) => new DorefaActivationQuantizer(site.id, site.bits, p.activations.signed),
  });
}

/** The `dorefa` algorithm for pipeline configs. */
export const dorefaDefinition: AlgorithmDefinition<DorefaParams> = quantDefinition('dorefa', 'DoReFa-Net: tanh-normalised k-bit weights, clipped k-bit activations', dorefaSchema, dorefa);


