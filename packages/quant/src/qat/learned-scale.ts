import type * as tf from '@tensorflow/tfjs-core';
import type { CompressionBuilder, EntryLocation } from '@tensorpress/core-tensor';
import { z } from 'zod';
import type { QuantSpec } from '../quant-params.js';
import { qatBuilder } from './controller.js';
import type { Quantizer } from './quantizer.js';
import { bitsSchema, qatCommonSchema } from './schema.js';
import { qatSettings, type ScopeOptions } from './settings.js';

/** Parameters of a learned-scale method (TQT, LSQ): weight and activation bits, per-channel weights, forced signedness. */
export function learnedScaleSchema(defaultBits: number) {
  return z
    .object({
      weights: z
        .object({ bits: bitsSchema.default(defaultBits), perChannel: z.boolean().default(false) })
        .strict()
        .default({ bits: defaultBits, perChannel: false }),
      activations: z.object({ bits: bitsSchema.default(defaultBits), signed: z.boolean().optional() }).strict().default({ bits: defaultBits }),
      ...qatCommonSchema,
    })
    .strict();
}

/** Validated parameters of a learned-scale method. */
export type LearnedScaleParams = z.output<ReturnType<typeof learnedScaleSchema>>;

/** A learned-scale quantizer class: weights initialise from the weight, activations from statistics. */
export type LearnedScaleQuantizer = new (
  id: string,
  kind: 'weight' | 'activation',
  spec: QuantSpec,
  weight?: { w: tf.Tensor; axis: number | undefined },
  forcedSigned?: boolean,
) => Quantizer;

/** The builder of a learned-scale method: symmetric narrow signed weights, symmetric activations signed by their data. */
export function learnedScaleBuilder(
  algorithm: string,
  Q: LearnedScaleQuantizer,
  p: LearnedScaleParams,
  scopes: ScopeOptions,
  location?: EntryLocation,
): CompressionBuilder {
  return qatBuilder({
    algorithm,
    settings: qatSettings(p, scopes, location),
    weight: (site) =>
      new Q(site.id, 'weight', { bits: site.bits, mode: 'symmetric', signed: true, narrowRange: true }, { w: site.weight, axis: site.perChannel ? site.axis : undefined }),
    activation: (site) =>
      new Q(site.id, 'activation', { bits: site.bits, mode: 'symmetric', signed: p.activations.signed ?? false, narrowRange: false }, undefined, p.activations.signed),
  });
}
