import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  TensorpressError,
  parseWithSchema,
  type AlgorithmDefinition,
  type AlgorithmStatistics,
  type CompressionBuilder,
  type EntryLocation,
  type Json,
  type LayerStatistics,
  type Scopes,
} from '@tensorpress/core-tensor';
import { z } from 'zod';
import { SPARSIFIER_STACKING, maskBuilder, maskController, refusePruner, type MaskContext } from './internal/mask-builder.js';
import { nmMask } from './internal/selection.js';
import { sparsityTotals } from './internal/stats.js';
import type { Skip, WeightTarget } from './internal/targets.js';
import { SparsityScheduler, scheduleSchema } from './schedule.js';

const ALGORITHM = 'nm_sparsity';
const VERSION = 1;

/** The zod schema of {@link NmSparsityParams}. */
export const nmSparsitySchema = z
  .object({
    /** Weights kept in every group of `m` consecutive input channels. */
    n: z.number().int().positive().default(2),
    /** Group length along the input channels; must divide every sparsified layer's input channels. */
    m: z.number().int().min(2).default(4),
    /**
     * How the level 1 − n/m is reached: `constant` is one-shot; any other schedule (polynomial ...)
     * lowers the kept count per group from m to n as its level rises (kept = max(n, m − ⌊level·m⌋)).
     */
    schedule: scheduleSchema.default({ type: 'constant' }),
    /** Leave layers whose input channels are not a multiple of m dense (reported) instead of failing. */
    skipIndivisible: z.boolean().default(false),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.n >= v.m) ctx.addIssue({ code: 'custom', path: ['n'], message: `n (${v.n}) must be less than m (${v.m}): n of every m weights are kept` });
  });

/** Validated parameters of N:M sparsity (defaults applied). */
export type NmSparsityParams = z.output<typeof nmSparsitySchema>;
/** What {@link nmSparsity} accepts: every parameter optional, plus scopes. */
export interface NmSparsityOptions extends z.input<typeof nmSparsitySchema>, Scopes {}

/** Weights kept per group of m at a schedule level (the target level is 1 − n/m). */
export function nmKeptAt(level: number, n: number, m: number): number {
  return Math.max(n, m - Math.floor(level * m + 1e-9));
}

class NmController {
  readonly scheduler: SparsityScheduler;
  private kept: number;

  constructor(
    readonly params: NmSparsityParams,
    readonly ctx: MaskContext,
  ) {
    this.kept = params.m;
    this.scheduler = new SparsityScheduler(params.schedule, 1 - params.n / params.m, (l) => this.setLevel(l), () => ctx.masks.applyToWeights());
    this.scheduler.start();
  }

  setLevel(level: number): void {
    const { targets, masks, model } = this.ctx;
    this.kept = nmKeptAt(level, this.params.n, this.params.m);
    const vars = model.executor.variables();
    for (const t of targets) tf.tidy(() => masks.set(t.param, nmMask(vars.get(t.param)!, t.inAxis, this.kept, this.params.m)));
    masks.applyToWeights();
  }

  statistics(): AlgorithmStatistics {
    const { targets, masks, skipped } = this.ctx;
    const counted = masks.zeroCounts();
    const layers: LayerStatistics[] = targets.map((t) => {
      const z = counted.get(t.param)!;
      return { node: t.node, op: t.op, weight: t.param, weights: t.size, zeros: z, sparsity: z / t.size, pattern: `${this.kept}:${this.params.m}` };
    });
    return {
      algorithm: ALGORITHM,
      layers,
      total: {
        ...sparsityTotals(this.ctx.model.graph, targets, counted),
        pattern: `${this.kept}:${this.params.m}`,
        targetPattern: `${this.params.n}:${this.params.m}`,
        frozen: this.scheduler.frozen,
        epoch: this.scheduler.epoch,
      },
      skipped,
    };
  }

  state(): Json {
    return { version: VERSION, kept: this.kept, scheduler: this.scheduler.state(), masks: this.ctx.masks.encode() };
  }

  loadState(state: Json): void {
    const s = state as { kept?: unknown; scheduler?: unknown; masks?: unknown } | null;
    if (!s || typeof s !== 'object' || typeof s.scheduler !== 'object' || s.scheduler === null) {
      throw new TensorpressError('STATE_INVALID', `${ALGORITHM} state: expected { kept, scheduler, masks }`);
    }
    this.ctx.masks.decode(s.masks, `${ALGORITHM} state $.masks`);
    this.scheduler.loadState(s.scheduler as Record<string, unknown>);
    this.kept = typeof s.kept === 'number' ? s.kept : this.params.m;
  }
}

function checkChannels(params: NmSparsityParams, targets: WeightTarget[], skipped: Skip[], paramsPath: string): { targets: WeightTarget[]; skipped: Skip[] } {
  const ok: WeightTarget[] = [];
  const out = [...skipped];
  for (const t of targets) {
    if (t.inChannels % params.m === 0) {
      ok.push(t);
      continue;
    }
    const why = `${t.inChannels} input channel${t.inChannels === 1 ? '' : 's'}${t.depthwise ? ' per group (depthwise)' : ''}, not a multiple of m = ${params.m}`;
    if (!params.skipIndivisible) {
      throw new ConfigError(
        `${paramsPath}.m`,
        `${ALGORITHM}: "${t.node}" (${t.op}) has ${why}; choose an m that divides it, leave the node out with ignoredScopes, or set skipIndivisible`,
        { node: t.node, inChannels: t.inChannels, m: params.m },
      );
    }
    out.push({ node: t.node, reason: `left dense: ${why}` });
  }
  if (ok.length === 0) {
    throw new ConfigError(`${paramsPath}.m`, `${ALGORITHM}: no layer has a multiple of m = ${params.m} input channels`, { m: params.m }, 'NOTHING_PRUNABLE');
  }
  return { targets: ok, skipped: out };
}

function createBuilder(params: NmSparsityParams, scopes: Scopes, location?: EntryLocation): CompressionBuilder {
  return maskBuilder(
    ALGORITHM,
    scopes,
    location,
    (_g, targets, skipped, paramsPath) => checkChannels(params, targets, skipped, paramsPath),
    (ctx) => {
      refusePruner(
        ctx.model,
        ALGORITHM,
        ctx.entryPath,
        'filter pruning removes input channels after the n:m groups are chosen, so the stripped weights would not keep n of every m; strip the pruned model first, then apply nm_sparsity to it',
      );
      const c = new NmController(params, ctx);
      return maskController(ALGORITHM, c, ctx);
    },
  );
}

/**
 * N:M structured sparsity (2:4 by default): in every group of m consecutive input channels of a
 * Conv/Gemm/MatMul weight, the n of largest |w| are kept. `n >= m` is a `ConfigError` at `$.n`; a
 * layer whose input channels m does not divide is one at `$.m` (naming the node) on `compress`.
 */
export function nmSparsity(options: NmSparsityOptions = {}): CompressionBuilder {
  const { ignoredScopes, targetScopes, ...rest } = options;
  const params = parseWithSchema(nmSparsitySchema, rest);
  return createBuilder(params, { ignoredScopes: ignoredScopes ?? [], targetScopes: targetScopes ?? [] });
}

/** The `nm_sparsity` algorithm for pipeline configs. */
export const nmSparsityDefinition: AlgorithmDefinition<NmSparsityParams> = {
  algorithm: ALGORITHM,
  version: VERSION,
  packageName: '@tensorpress/sparsity',
  description: 'N:M structured sparsity (2:4 ...) along input channels, one-shot or gradual',
  schema: nmSparsitySchema as unknown as z.ZodType<NmSparsityParams>,
  stacking: SPARSIFIER_STACKING,
  create: (config, location) => createBuilder(config.params, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};
