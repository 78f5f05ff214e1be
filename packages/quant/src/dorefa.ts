import type * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, TensorpressError, type AlgorithmDefinition, type CompressionBuilder, type EntryLocation, type Json } from '@tensorpress/core-tensor';
import { z } from 'zod';
import { fakeQuantize } from './fake-quantize.js';
import { qatBuilder } from './qat/controller.js';
import { quantDefinition } from './qat/definition.js';
import { dorefaWeightQuantizer, dorefaWeightsSchema } from './qat/dorefa-weight.js';
import { Constants, signedFromStats, type ActivationStats, type Grid, type Quantizer } from './qat/quantizer.js';
import { bitsSchema, qatCommonSchema } from './qat/schema.js';
import { qatSettings, type ScopeOptions } from './qat/settings.js';

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

/** Parameters of `dorefa`. */
export const dorefaSchema = z
  .object({
    weights: dorefaWeightsSchema,
    activations: z.object({ bits: bitsSchema.default(4), signed: z.boolean().optional() }).strict().default({ bits: 4 }),
    ...qatCommonSchema,
  })
  .strict();
/** Validated `dorefa` parameters. */
export type DorefaParams = z.output<typeof dorefaSchema>;

/**
 * DoReFa-Net quantization-aware training. Layers planned at 8 bits use the default symmetric INT8
 * weight quantizer (`weights.perChannel` applies to those), since 8-bit DoReFa codes do not fit int8.
 */
export function dorefa(input: z.input<typeof dorefaSchema> = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  const p = parseWithSchema(dorefaSchema, input);
  return qatBuilder({
    algorithm: 'dorefa',
    settings: qatSettings(p, scopes, location),
    weight: (site) => dorefaWeightQuantizer(site, p.weights.scale),
    activation: (site) => new DorefaActivationQuantizer(site.id, site.bits, p.activations.signed),
  });
}

/** The `dorefa` algorithm for pipeline configs. */
export const dorefaDefinition: AlgorithmDefinition<DorefaParams> = quantDefinition('dorefa', 'DoReFa-Net: tanh-normalised k-bit weights, clipped k-bit activations', dorefaSchema, dorefa);
