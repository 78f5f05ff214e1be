import type { AlgorithmDefinition, CompressionBuilder, EntryLocation, StackingRule } from '@tensorpress/core-tensor';
import type { z } from 'zod';
import type { ScopeOptions } from './settings.js';

/**
 * How every algorithm of this package stacks: one quantizer per pipeline (each turns the float
 * weights into integer codes, so a second would find none left to quantize), listed after any
 * pruner or sparsifier (DESIGN §3: quantization comes last at a shared point and in strip()).
 */
export const QUANTIZER_STACKING: StackingRule = Object.freeze({ group: 'quantizer', groupAction: 'quantize weights', after: Object.freeze(['pruner', 'sparsifier']) });

/** The pipeline-config definition of one of this package's algorithms (config version 1). */
export function quantDefinition<S extends z.ZodType>(
  algorithm: string,
  description: string,
  schema: S,
  make: (params: z.input<S>, scopes: ScopeOptions, location?: EntryLocation) => CompressionBuilder,
): AlgorithmDefinition<z.output<S>> {
  return {
    algorithm,
    version: 1,
    packageName: '@tensorpress/quant',
    description,
    schema: schema as unknown as z.ZodType<z.output<S>>,
    stacking: QUANTIZER_STACKING,
    // Validated params are also valid input (defaults already applied).
    create: (config, location) => make(config.params as z.input<S>, config, location),
  };
}
