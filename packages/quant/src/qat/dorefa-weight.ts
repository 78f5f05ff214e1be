import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, type Json } from '@tensorpress/core-tensor';
import { z } from 'zod';
import { roundSte } from '../fake-quantize.js';
import { fusedDorefaAvailable, fusedDorefaWeights } from '../internal/fused-dorefa.js';
import { int8WeightQuantizer } from './affine-quantizers.js';
import { weightAbsMax, type Grid, type Quantizer, type WeightSite } from './quantizer.js';
import { bitsSchema } from './schema.js';

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

/** The `weights` parameters of DoReFa-style weights (DoReFa and PACT): bits, the constant `c` and per-channel 8-bit layers. */
export const dorefaWeightsSchema = z
  .object({ bits: bitsSchema.default(4), scale: z.enum(['max', 'none']).default('max'), perChannel: z.boolean().default(true) })
  .strict()
  .default({ bits: 4, scale: 'max', perChannel: true });

/**
 * The weight quantizer of DoReFa and PACT at one site: DoReFa codes below 8 bits; layers planned at
 * 8 bits get the default symmetric INT8 quantizer, since 8-bit DoReFa codes do not fit int8.
 */
export function dorefaWeightQuantizer(site: WeightSite, scale: 'max' | 'none'): Quantizer {
  return site.bits >= 8 ? int8WeightQuantizer(site) : new DorefaWeightQuantizer(site.id, site.bits, site.weight, scale);
}
