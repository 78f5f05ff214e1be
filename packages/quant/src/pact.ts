import * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, TensorpressError, type AlgorithmDefinition, type CompressionBuilder, type EntryLocation, type Json } from '@tensorpress/core-tensor';
import { z } from 'zod';
import { fakeQuantize } from './fake-quantize.js';
import { MIN_SCALE } from './quant-params.js';
import { qatBuilder } from './qat/controller.js';
import { quantDefinition } from './qat/definition.js';
import { dorefaWeightQuantizer, dorefaWeightsSchema } from './qat/dorefa-weight.js';
import { Constants, loadVariable, signedFromStats, thresholdFromStats, varName, type ActivationStats, type Grid, type Quantizer } from './qat/quantizer.js';
import { bitsSchema, qatCommonSchema } from './qat/schema.js';
import { qatSettings, type ScopeOptions } from './qat/settings.js';

/**
 * PACT activation quantization (Choi et al., 2018): `y = clip(x, 0, α)`, quantized to k bits on
 * [0, α] (step α / (2^k − 1)), α learned per layer. Gradients as in the paper (straight-through
 * rounding): `∂y/∂x = 1` for 0 ≤ x < α else 0; `∂y/∂α = 1` for x ≥ α else 0. Computed as fake
 * quantization with scale α / n, the bound is tested on x / s against n in float32, so at x = ±α
 * exactly (x / s within an ulp of n) either side can be taken; the output is the same. A signed input (from
 * statistics, or forced) is clipped to [−α, α] with 2^(k−1) − 1 steps per side and
 * `∂y/∂α = sign(x)` where |x| ≥ α. The L2 decay `λ·α²` is the compression loss.
 */
export class PactQuantizer implements Quantizer {
  readonly kind = 'activation';
  initialized = false;
  private signed = false;
  private readonly alpha: tf.Variable;
  private readonly constants = new Constants();
  constructor(
    readonly id: string,
    readonly bits: number,
    private readonly options: { alphaInit: number | 'range'; decay: number; signed?: boolean },
  ) {
    this.alpha = tf.tidy(() => tf.variable(tf.scalar(typeof options.alphaInit === 'number' ? options.alphaInit : 1), true, varName(id, 'alpha')));
  }
  private get levels(): number {
    return this.signed ? 2 ** (this.bits - 1) - 1 : 2 ** this.bits - 1;
  }
  apply(x: tf.Tensor): tf.Tensor {
    // clip(x, lo, α) on the grid of step α / n is fake quantization with scale α / n and codes
    // clamped to [0, n] (or [−n, n]); its scale gradient outside the range is the code bound, so
    // ∂y/∂α = (n or −n) / n = 1 or sign(x) there, and PACT's straight-through rounding makes it 0
    // inside. One fused kernel on wasm and cpu.
    const n = this.levels;
    return fakeQuantize(x, this.alpha, this.constants.scalar(0), {
      range: this.signed ? [-n, n] : [0, n],
      gradient: 'clipped',
      scaleGradient: 'pact',
      zeroPointIsZero: true,
      scaleFrom: { kind: 'div', divisor: n },
    });
  }
  initActivation(stats: ActivationStats): void {
    this.signed = signedFromStats(stats, this.options.signed);
    if (this.options.alphaInit === 'range') {
      tf.tidy(() => this.alpha.assign(tf.scalar(thresholdFromStats(stats, this.signed))));
    }
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.alpha];
  }
  l2Decay(): { variable: tf.Variable; decay: number } {
    return { variable: this.alpha, decay: this.options.decay };
  }
  grid(): Grid {
    const n = this.levels;
    const a = Math.abs(this.alpha.dataSync()[0]!);
    return { scale: Float32Array.of(Math.max(a / n, MIN_SCALE)), zeroPoint: Int32Array.of(0), range: this.signed ? [-n, n] : [0, n], signed: this.signed };
  }
  describe(): Record<string, Json> {
    return { bits: this.bits, mode: 'pact', signed: this.signed, alpha: this.alpha.dataSync()[0]! };
  }
  state(): Json {
    return { signed: this.signed, initialized: this.initialized, alpha: [this.alpha.dataSync()[0]!] };
  }
  loadState(state: Json): void {
    const s = state as { signed?: unknown; initialized?: unknown; alpha?: Json } | null;
    if (typeof s?.signed !== 'boolean') throw new TensorpressError('STATE_INVALID', `quantizer ${this.id}: expected { signed, alpha }`);
    this.signed = s.signed;
    loadVariable(this.alpha, s.alpha ?? null, `quantizer ${this.id}`);
    this.initialized = s.initialized !== false;
  }
  dispose(): void {
    this.constants.dispose();
    this.alpha.dispose();
  }
}

/** Parameters of `pact`. */
export const pactSchema = z
  .object({
    weights: dorefaWeightsSchema,
    activations: z
      .object({
        bits: bitsSchema.default(4),
        /** Initial α: a number (the paper uses 10) or `range` (the range-init statistics). */
        alphaInit: z.union([z.number().positive(), z.literal('range')]).default('range'),
        /** L2 decay λ of α (the loss adds λ·α² per quantizer). */
        alphaDecay: z.number().nonnegative().default(2e-4),
        signed: z.boolean().optional(),
      })
      .strict()
      .default({ bits: 4, alphaInit: 'range', alphaDecay: 2e-4 }),
    ...qatCommonSchema,
  })
  .strict();
/** Validated `pact` parameters. */
export type PactParams = z.output<typeof pactSchema>;

/** PACT quantization-aware training: learned activation clipping, DoReFa weights (as in the paper). */
export function pact(input: z.input<typeof pactSchema> = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  const p = parseWithSchema(pactSchema, input);
  return qatBuilder({
    algorithm: 'pact',
    settings: qatSettings(p, scopes, location),
    weight: (site) => dorefaWeightQuantizer(site, p.weights.scale),
    activation: (site) =>
      new PactQuantizer(site.id, site.bits, {
        alphaInit: p.activations.alphaInit,
        decay: p.activations.alphaDecay,
        ...(p.activations.signed !== undefined ? { signed: p.activations.signed } : {}),
      }),
  });
}

/** The `pact` algorithm for pipeline configs. */
export const pactDefinition: AlgorithmDefinition<PactParams> = quantDefinition('pact', 'PACT: learned activation clipping level α, DoReFa weights', pactSchema, pact);
