import { nodePatternError } from '@tensorpress/core-tensor';
import { z } from 'zod';

/** A bit width: an integer from 2 to 8 (every method's weights and activations, and PTQ's). */
export const bitsSchema = z.number().int().min(2).max(8);

/** Symmetric (zero point 0) or asymmetric (learned or calibrated zero point) integer grids. */
export const quantModeSchema = z.enum(['symmetric', 'asymmetric']);

/**
 * Which ops' inputs share one quantizer: `add_concat` (NNCF's unified scales), `concat` (faster
 * in onnxruntime, whose QLinearAdd rescales: a ReLU output feeding a residual Add stays unsigned
 * and its ReLU fuses into the conv), `none`.
 */
export const unifiedScalesSchema = z.enum(['add_concat', 'concat', 'none']).default('add_concat');

/** Store biases as int32 at scale s_x·s_w in the stripped graph (what integer runtimes need); false keeps them float. */
export const quantizeBiasSchema = z.boolean().default(true);

/** Bits per layer (`[{ node, weightBits?, activationBits? }]`, later entries override earlier ones). */
export const planSchema = z
  .array(
    z
      .object({ node: z.string().min(1), weightBits: z.number().optional(), activationBits: z.number().optional() })
      .strict()
      .superRefine((e, ctx) => {
        const bad = nodePatternError(e.node);
        if (bad) ctx.addIssue({ code: 'custom', path: ['node'], message: bad });
        if (e.weightBits === undefined && e.activationBits === undefined) {
          ctx.addIssue({ code: 'custom', path: ['node'], message: `node "${e.node}": the entry sets neither weightBits nor activationBits, so it would change nothing` });
        }
        // Checked here rather than with bitsSchema on each field, so the message names the node.
        for (const key of ['weightBits', 'activationBits'] as const) {
          const v = e[key];
          if (v !== undefined && !bitsSchema.safeParse(v).success) {
            ctx.addIssue({ code: 'custom', path: [key], message: `node "${e.node}": ${key} must be an integer from 2 to 8, got ${v}` });
          }
        }
      }),
  )
  .default([]);

const rangeInitSchema = z
  .object({
    type: z.enum(['min_max', 'mean_min_max', 'threesigma', 'percentile', 'mean_percentile']).default('mean_min_max'),
    numInitSamples: z.number().int().positive().default(256),
    minPercentile: z.number().min(0).max(50).default(0.1),
    maxPercentile: z.number().min(50).max(100).default(99.9),
  })
  .strict();

/** Shared schema parts of the QAT methods (bits plan, range init, inputs, unified scales, bias). */
export const qatCommonSchema = {
  plan: planSchema,
  initializer: z.object({ range: rangeInitSchema.default(rangeInitSchema.parse({})) }).strict().default({ range: rangeInitSchema.parse({}) }),
  quantizeInputs: z.boolean().default(true),
  unifiedScales: unifiedScalesSchema,
  quantizeBias: quantizeBiasSchema,
};
