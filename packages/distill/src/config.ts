import { z } from 'zod';
import type { DistillationLossKind } from './losses.js';

/** The config name of the algorithm. */
export const ALGORITHM = 'knowledge_distillation';
/** Version of its config format. */
export const VERSION = 1;

/** One hint: the student node whose output is pulled towards a teacher node's output. */
export interface HintParams {
  /** Node of the student (its first output, as its consumers see it). */
  readonly student: string;
  /** Node of the teacher (its first output). Default: the same name as `student`. */
  readonly teacher?: string;
  /** Weight of this hint's loss. */
  readonly weight: number;
}

/** Where a self-distilling student's teacher comes from. */
export type SelfDistillationParams =
  /** The student's weights at the end of epoch `epoch` (1-based count of finished epochs) teach it from then on. */
  | { readonly mode: 'snapshot'; readonly epoch: number }
  /** An exponential moving average of the student's weights (updated after every step) teaches it. */
  | { readonly mode: 'ema'; readonly decay: number };

/** Validated parameters of `knowledge_distillation` (defaults applied). */
export interface KnowledgeDistillationParams {
  /**
   * The teacher model: a model spec the CLI loads (`builtin:residualCnn`, a `.onnx` file, a
   * tfjs-layers `model.json`, a tensorpress graph `.json`). Absent: the pipeline's own FP32
   * original (the graph `compress` was given), unless `selfDistillation` is set.
   */
  readonly teacher?: string;
  /** Softmax temperature T of the `kl` loss; the loss is scaled by T². */
  readonly temperature: number;
  /** Weight α of the distillation term; the hard-label cross-entropy keeps 1 − α. */
  readonly alpha: number;
  /** `kl`: soft-label KL divergence; `mse`: squared difference of the logits. */
  readonly loss: DistillationLossKind;
  /** Feature (hint) distillation between named nodes, with a learned 1×1 adapter where channels differ. */
  readonly hints: readonly HintParams[];
  /** The student teaches itself: a snapshot of its weights, or their moving average. */
  readonly selfDistillation?: SelfDistillationParams;
}

/** The zod schema of {@link KnowledgeDistillationParams}. */
export const knowledgeDistillationSchema: z.ZodType<KnowledgeDistillationParams> = z
  .object({
    teacher: z.string().min(1).optional(),
    temperature: z.number().gt(0).max(1000).default(4),
    alpha: z.number().min(0).max(1).default(0.9),
    loss: z.enum(['kl', 'mse']).default('kl'),
    hints: z
      .array(
        z
          .object({
            student: z.string().min(1),
            teacher: z.string().min(1).optional(),
            weight: z.number().nonnegative().default(1),
          })
          .strict(),
      )
      .default([]),
    selfDistillation: z
      .discriminatedUnion('mode', [
        z.object({ mode: z.literal('snapshot'), epoch: z.number().int().positive().default(1) }).strict(),
        z.object({ mode: z.literal('ema'), decay: z.number().gt(0).lt(1).default(0.99) }).strict(),
      ])
      .optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.teacher !== undefined && v.selfDistillation !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['teacher'], message: 'a self-distilling student is its own teacher: give either teacher or selfDistillation, not both' });
    }
  });
