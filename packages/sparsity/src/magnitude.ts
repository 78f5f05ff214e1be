import * as tf from '@tensorflow/tfjs-core';
import {
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
import { SPARSIFIER_STACKING, maskBuilder, maskController, type MaskContext } from './internal/mask-builder.js';
import { globalMasks, importanceOf, layerMasks, zeroCount, type Importance } from './internal/selection.js';
import { sparsityTotals } from './internal/stats.js';
import { SparsityScheduler, levelSchema, scheduleSchema } from './schedule.js';

const ALGORITHM = 'magnitude_sparsity';
const VERSION = 1;

/** The zod schema of {@link MagnitudeSparsityParams}. */
export const magnitudeSparsitySchema = z
  .object({
    /** Target sparsity: the fraction of weights zeroed, in [0, 1). */
    level: levelSchema.default(0.5),
    /** NNCF's default: |w| / ‖W‖₂ of the layer. */
    importance: z.enum(['abs', 'normalized_abs']).default('normalized_abs'),
    /** `global` (NNCF's default): one threshold over every weight; `layer`: every layer at the level. */
    ranking: z.enum(['layer', 'global']).default('global'),
    schedule: scheduleSchema.default({ type: 'polynomial', initialLevel: 0, beginEpoch: 0, targetEpoch: 1, power: 3, perStep: false, updateEvery: 1 }),
  })
  .strict();

/** Validated parameters of magnitude sparsity (defaults applied). */
export type MagnitudeSparsityParams = z.output<typeof magnitudeSparsitySchema>;
/** What {@link magnitudeSparsity} accepts: every parameter optional, plus scopes. */
export interface MagnitudeSparsityOptions extends z.input<typeof magnitudeSparsitySchema>, Scopes {}

class MagnitudeController {
  readonly scheduler: SparsityScheduler;
  private current = 0;
  private reached: boolean[];

  constructor(
    readonly params: MagnitudeSparsityParams,
    readonly ctx: MaskContext,
  ) {
    this.reached = ctx.targets.map(() => true);
    this.scheduler = new SparsityScheduler(params.schedule, params.level, (l) => this.setLevel(l), () => ctx.masks.applyToWeights());
    // Applies the level in force at the start (a constant schedule's masks are final from here).
    this.scheduler.start();
  }

  /** Recomputes every mask at `level` from the current weights and zeroes the masked weights. */
  setLevel(level: number): void {
    const { targets, masks, model } = this.ctx;
    this.current = level;
    const vars = model.executor.variables();
    const scores = targets.map((t) => importanceOf(vars.get(t.param)!, this.params.importance as Importance));
    try {
      if (this.params.ranking === 'global') {
        const r = globalMasks(scores, level);
        r.masks.forEach((m, i) => {
          tf.tidy(() => masks.set(targets[i]!.param, tf.reshape(m, targets[i]!.shape as number[])));
          m.dispose();
        });
        this.reached = targets.map(() => true);
      } else {
        const r = layerMasks(scores, level);
        r.masks.forEach((m, i) => {
          tf.tidy(() => masks.set(targets[i]!.param, tf.reshape(m, targets[i]!.shape as number[])));
          m.dispose();
        });
        this.reached = r.reached;
      }
    } finally {
      tf.dispose(scores);
    }
    masks.applyToWeights();
  }

  statistics(): AlgorithmStatistics {
    const { targets, masks, skipped } = this.ctx;
    const counted = masks.zeroCounts();
    const perLayer = this.params.ranking === 'layer';
    const layers: LayerStatistics[] = targets.map((t, i) => {
      const z = counted.get(t.param)!;
      const row: Record<string, Json> = { node: t.node, op: t.op, weight: t.param, weights: t.size, zeros: z, sparsity: z / t.size };
      if (perLayer) {
        row['targetLevel'] = this.current;
        row['reached'] = this.reached[i]!;
      }
      return row as LayerStatistics;
    });
    const unreached = perLayer
      ? targets
          .map((t, i) => ({ t, i }))
          .filter(({ i }) => !this.reached[i])
          .map(({ t }) => ({
            node: t.node,
            reason: `cannot reach level ${this.current}: ${t.size} weights, at most ${t.size - 1} zeroed (${(((t.size - 1) / t.size) * 100).toFixed(1)}%); a layer keeps one weight`,
          }))
      : [];
    return {
      algorithm: ALGORITHM,
      layers,
      total: {
        ...sparsityTotals(this.ctx.model.graph, targets, counted),
        level: this.current,
        targetLevel: this.params.level,
        importance: this.params.importance,
        ranking: this.params.ranking,
        frozen: this.scheduler.frozen,
        epoch: this.scheduler.epoch,
        unreachedLayers: unreached.length,
      },
      skipped: [...skipped, ...unreached],
    };
  }

  state(): Json {
    return { version: VERSION, level: this.current, scheduler: this.scheduler.state(), masks: this.ctx.masks.encode() };
  }

  loadState(state: Json): void {
    const s = state as { level?: unknown; scheduler?: unknown; masks?: unknown } | null;
    if (!s || typeof s !== 'object' || typeof s.scheduler !== 'object' || s.scheduler === null) {
      throw new TensorpressError('STATE_INVALID', `${ALGORITHM} state: expected { level, scheduler, masks }`);
    }
    this.ctx.masks.decode(s.masks, `${ALGORITHM} state $.masks`);
    this.scheduler.loadState(s.scheduler as Record<string, unknown>);
    this.current = typeof s.level === 'number' ? s.level : this.scheduler.level;
    this.reached = this.ctx.targets.map((t) => zeroCount(t.size, this.current).reached);
  }
}

function createBuilder(params: MagnitudeSparsityParams, scopes: Scopes, location?: EntryLocation): CompressionBuilder {
  return maskBuilder(
    ALGORITHM,
    scopes,
    location,
    (_g, targets, skipped) => ({ targets, skipped }),
    (ctx) => {
      const c = new MagnitudeController(params, ctx);
      return maskController(ALGORITHM, c, ctx);
    },
  );
}

/**
 * Magnitude sparsity (unstructured): the weights of lowest importance are masked to zero, at a
 * level that follows a schedule, and stay zero through the optimiser. Options are validated at
 * once: a level outside [0, 1) is a `ConfigError` naming `$.level`.
 */
export function magnitudeSparsity(options: MagnitudeSparsityOptions = {}): CompressionBuilder {
  const { ignoredScopes, targetScopes, ...rest } = options;
  const params = parseWithSchema(magnitudeSparsitySchema, rest);
  return createBuilder(params, { ignoredScopes: ignoredScopes ?? [], targetScopes: targetScopes ?? [] });
}

/** The `magnitude_sparsity` algorithm for pipeline configs. */
export const magnitudeSparsityDefinition: AlgorithmDefinition<MagnitudeSparsityParams> = {
  algorithm: ALGORITHM,
  version: VERSION,
  packageName: '@tensorpress/sparsity',
  description: 'Magnitude sparsity (|w| or normalised |w|, per layer or global) with polynomial/exponential/multistep/adaptive/constant schedules',
  schema: magnitudeSparsitySchema as unknown as z.ZodType<MagnitudeSparsityParams>,
  stacking: SPARSIFIER_STACKING,
  create: (config, location) => createBuilder(config.params, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};
