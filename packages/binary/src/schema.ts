import { nodePatternError } from '@tensorpress/core-tensor';
import { z } from 'zod';

const steSchema = z.enum(['ste', 'saturate_ste', 'soft_ste', 'approx_sign']);

const weightsSchema = z
  .object({
    /** `none` keeps weights in FP32 (W32). */
    method: z.enum(['none', 'bnn', 'xnor', 'dorefa', 'twn', 'ternary']).default('xnor'),
    ste: steSchema.default('ste'),
    center: z.boolean().default(true),
    /** TWN's θ in Δ = θ·mean|W|, strictly between 0 and 1. */
    ternaryThreshold: z.number().default(0.7),
    /** Hold a weight's ternary code while |W| is within gap·Δ of Δ (0: off). */
    ternaryGap: z.number().min(0).max(1).default(0),
  })
  .strict()
  .superRefine((w, ctx) => {
    if (!(w.ternaryThreshold > 0 && w.ternaryThreshold < 1)) {
      ctx.addIssue({ code: 'custom', path: ['ternaryThreshold'], message: `the ternary threshold factor θ must lie in (0, 1), got ${w.ternaryThreshold}` });
    }
  });

const activationsSchema = z
  .object({
    /** `none` keeps activations in FP32 (A32). */
    method: z.enum(['none', 'binary', 'ternary']).default('binary'),
    ste: steSchema.default('saturate_ste'),
    /** Trainable scale and threshold: out = s·H(in − s·t). */
    learned: z.boolean().default(true),
    /** XNOR-Net's K: the layer's output times the box-filtered mean |A| over channels of its real-valued input. */
    scalingMap: z.boolean().default(false),
  })
  .strict();

const fullPrecisionSchema = z
  .object({
    /** Keep the first weighted layer (the one reading the graph input) in full precision. */
    first: z.boolean().default(true),
    /** Keep the last weighted layer (the one producing a graph output) in full precision. */
    last: z.boolean().default(true),
    /** More nodes kept in full precision (names or `{re}` patterns). */
    nodes: z.array(z.string()).default([]),
  })
  .strict()
  .superRefine((f, ctx) => {
    const seen = new Map<string, number>();
    f.nodes.forEach((n, i) => {
      const bad = nodePatternError(n);
      if (bad) ctx.addIssue({ code: 'custom', path: ['nodes', i], message: bad });
      const j = seen.get(n);
      if (j !== undefined) ctx.addIssue({ code: 'custom', path: ['nodes', i], message: `node "${n}" is named twice (also at nodes[${j}])` });
      else seen.set(n, i);
    });
  });

const scheduleSchema = z
  .object({
    /** `none`: everything binarized from the start; `staged`: FP32 → activations → weights → LR decay. */
    type: z.enum(['none', 'staged']).default('none'),
    /** What the stage boundaries count. */
    unit: z.enum(['epochs', 'steps']).default('epochs'),
    /** When activations start being binarized. */
    activationsAt: z.number().int().min(0).default(0),
    /** When weights start being binarized too. */
    weightsAt: z.number().int().min(0).default(1),
    /** When polynomial learning-rate decay starts (weight decay off from here, see README). */
    decayAt: z.number().int().min(0).default(2),
    /** Power of the polynomial decay. */
    power: z.number().positive().default(2),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.type !== 'staged') return;
    if (s.weightsAt < s.activationsAt) {
      ctx.addIssue({ code: 'custom', path: ['weightsAt'], message: `stages must not go back: weightsAt (${s.weightsAt}) is before activationsAt (${s.activationsAt})` });
    } else if (s.decayAt < s.weightsAt) {
      ctx.addIssue({ code: 'custom', path: ['decayAt'], message: `stages must not go back: decayAt (${s.decayAt}) is before weightsAt (${s.weightsAt})` });
    }
  });

/** Parameters of the `binarization` algorithm (config version 1). */
export const binarizationSchema = z
  .object({
    weights: weightsSchema.default(weightsSchema.parse({})),
    activations: activationsSchema.default(activationsSchema.parse({})),
    fullPrecision: fullPrecisionSchema.default(fullPrecisionSchema.parse({})),
    schedule: scheduleSchema.default(scheduleSchema.parse({})),
    /** BatchNormalization momentum for binary nets (ONNX convention: weight of the old value); unset keeps each node's. */
    bnMomentum: z.number().min(0).max(1).optional(),
  })
  .strict();

/** Validated parameters of `binarization` (defaults applied). */
export type BinarizationParams = z.output<typeof binarizationSchema>;
/** Parameters of `binarization` as written in a config (every field optional). */
export type BinarizationInput = z.input<typeof binarizationSchema>;
/** The staged schedule settings. */
export type StageSchedule = BinarizationParams['schedule'];
