import type { AlgorithmDefinition, CompressionBuilder } from '@tensorpress/core-tensor';
import type { z } from 'zod';
import type { ScopeOptions } from './settings.js';

/** The pipeline-config definition of one of this package's algorithms (config version 1). */
export function quantDefinition<S extends z.ZodType>(
  algorithm: string,
  description: string,
  schema: S,
  make: (params: z.input<S>, scopes: ScopeOptions) => CompressionBuilder,
): AlgorithmDefinition<z.output<S>> {
  return {
    algorithm,
    version: 1,
    packageName: '@tensorpress/quant',
    description,
    schema: schema as unknown as z.ZodType<z.output<S>>,
    // Validated params are also valid input (defaults already applied).
    create: (config) => make(config.params as z.input<S>, config),
  };
}
