import { parseWithSchema, type AlgorithmDefinition, type CompressionBuilder, type EntryLocation } from '@tensorpress/core-tensor';
import { z } from 'zod';
import { tensorRange } from './quant-params.js';
import { AsymmetricQuantizer, SymmetricQuantizer } from './qat/affine-quantizers.js';
import { qatBuilder } from './qat/controller.js';
import { quantDefinition } from './qat/definition.js';
import { weightAbsMax } from './qat/quantizer.js';
import { bitsSchema, qatCommonSchema, quantModeSchema } from './qat/schema.js';
import { qatSettings, type ScopeOptions } from './qat/settings.js';

/** Parameters of the default `quantization` algorithm (NNCF-style trainable scales). */
export const quantizationSchema = z
  .object({
    /** `performance`: every quantizer symmetric; `mixed`: asymmetric activations. */
    preset: z.enum(['performance', 'mixed']).default('performance'),
    weights: z
      .object({
        bits: bitsSchema.default(8),
        mode: quantModeSchema.default('symmetric'),
        perChannel: z.boolean().default(true),
      })
      .strict()
      .default({ bits: 8, mode: 'symmetric', perChannel: true }),
    activations: z
      .object({
        bits: bitsSchema.default(8),
        mode: quantModeSchema.optional(),
        signed: z.boolean().optional(),
      })
      .strict()
      .default({ bits: 8 }),
    /** 7-bit weight range stored in 8 bits (avoids VPMADDUBSW saturation on CPUs without VNNI). */
    overflowFix: z.enum(['disable', 'enable', 'first_layer_only']).default('disable'),
    gradient: z.enum(['ste', 'clipped']).default('clipped'),
    ...qatCommonSchema,
  })
  .strict();

/** Validated parameters of the default `quantization` algorithm. */
export type QuantizationParams = z.output<typeof quantizationSchema>;
/** Parameters as written in a config (every field optional). */
export type QuantizationInput = z.input<typeof quantizationSchema>;

/**
 * The default quantization algorithm (NNCF's `quantization`): symmetric per-channel 8-bit weights
 * with learned thresholds, activations symmetric (`performance`) or asymmetric (`mixed`) with
 * learned ranges, ranges initialised from data, placement from the graph. `location` (set by the
 * definition's `create`) names the config entry in errors found on the graph.
 */
export function quantization(input: QuantizationInput = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  const p = parseWithSchema(quantizationSchema, input);
  const gradient = p.gradient;
  const actMode = p.activations.mode ?? (p.preset === 'mixed' ? 'asymmetric' : 'symmetric');
  let firstWeight = true;
  return qatBuilder({
    algorithm: 'quantization',
    settings: qatSettings(p, scopes, location),
    weight(site) {
      const overflow = p.overflowFix === 'enable' || (p.overflowFix === 'first_layer_only' && firstWeight);
      firstWeight = false;
      const wb = overflow && site.bits === 8 ? 7 : site.bits;
      const axis = site.perChannel ? site.axis : undefined;
      if (p.weights.mode === 'asymmetric') {
        const { min, max } = tensorRange(site.weight, axis);
        return new AsymmetricQuantizer(site.id, 'weight', { bits: wb, mode: 'asymmetric', signed: true, narrowRange: true }, gradient, {
          min,
          max,
          rank: site.weight.rank,
          axis,
        });
      }
      return new SymmetricQuantizer(site.id, 'weight', { bits: wb, mode: 'symmetric', signed: true, narrowRange: true }, gradient, {
        threshold: weightAbsMax(site.weight, axis),
        rank: site.weight.rank,
        axis,
      });
    },
    activation(site) {
      if (actMode === 'asymmetric') {
        return new AsymmetricQuantizer(site.id, 'activation', { bits: site.bits, mode: 'asymmetric', signed: false, narrowRange: false }, gradient, undefined);
      }
      return new SymmetricQuantizer(
        site.id,
        'activation',
        { bits: site.bits, mode: 'symmetric', signed: p.activations.signed ?? true, narrowRange: false },
        gradient,
        undefined,
        p.activations.signed,
      );
    },
  });
}

/** The `quantization` algorithm for pipeline configs. */
export const quantizationDefinition: AlgorithmDefinition<QuantizationParams> = quantDefinition('quantization', 'INT8 (2–8 bit) quantization-aware training with trainable scales (NNCF-style)', quantizationSchema, quantization);
