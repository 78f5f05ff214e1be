import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  PRIORITY,
  TensorpressError,
  checkScopeNames,
  defineController,
  entryPaths,
  graphStatistics,
  parseWithSchema,
  scopeFilter,
  type AlgorithmDefinition,
  type AlgorithmStatistics,
  type CompressedModel,
  type CompressionBuilder,
  type EntryLocation,
  type Graph,
  type Json,
  type LayerStatistics,
  type Scopes,
  type StackingRule,
  type StripContext,
} from '@tensorpress/core-tensor';
import { z } from 'zod';
import { BN_CRITERIA, fpgmImportance, l1Importance, l2Importance, slimImportance, type PruningCriterion } from './criteria.js';
import { pruningGroups, type PrunableOp, type PruningGroup, type PruningGroupsResult, type PruningMode } from './groups.js';
import { cutAll, cutTotals } from './internal/cut.js';
import { maskSites } from './internal/masks.js';
import { PruningScheduler, type PruningScheduleConfig } from './schedule.js';
import { keepHighest, selectFilters, type GroupScores, type SelectionOptions } from './selection.js';

const ALGORITHM = 'filter_pruning';
const VERSION = 1;
/** The highest ratio tried when searching a FLOPs target (every group at its minimum). */
const MAX_RATIO = 0.9999;
/**
 * One pruner per pipeline (two would each cut channels the other's masks and kept-channel lists
 * still count); it runs before any sparsifier or quantizer (those declare it in their `after`).
 */
const STACKING: StackingRule = Object.freeze({ group: 'pruner', groupAction: 'remove filters' });

/** Validated parameters of filter pruning (defaults applied). */
export interface FilterPruningParams {
  readonly criterion: PruningCriterion;
  /** Pruning level: fraction of filters pruned (OptSlim: share of Σγ² pruned), in [0, 1). */
  readonly ratio?: number;
  /** Instead of `ratio`: the fraction of FLOPs to remove, in (0, 1); the ratio that reaches it is searched. */
  readonly flopsReduction?: number;
  readonly ranking: 'layer' | 'global';
  readonly mode: PruningMode;
  readonly multipleOf: number;
  readonly pruneFirstConv: boolean;
  readonly pruneDownsampleConvs: boolean;
  readonly operations: readonly PrunableOp[];
  readonly schedule?: PruningScheduleConfig;
  /** Slim / OptSlim: weight of the L1 penalty on γ added as compression loss until masks freeze. */
  readonly slimPenalty: number;
  /**
   * A ratio per layer (e.g. from mixed-precision's sensitivity analysis): each named producer's
   * group prunes that share of its filters (the mean when a group's producers are named with
   * different ratios), unnamed groups keep all. With `flopsReduction` the plan's ratios are scaled
   * together until the target is reached; the schedule scales them from 0 to the plan.
   */
  readonly plan?: readonly { readonly node: string; readonly ratio: number }[];
}

/** What {@link filterPruning} accepts: every parameter optional, plus scopes. */
export interface FilterPruningOptions extends Partial<FilterPruningParams>, Scopes {}

const level = z.number().min(0).lt(1);

/** The zod schema of {@link FilterPruningParams}. */
export const filterPruningSchema: z.ZodType<FilterPruningParams> = z
  .object({
    criterion: z.enum(['l1', 'l2', 'fpgm', 'slim', 'opt_slim']).default('l1'),
    ratio: level.optional(),
    flopsReduction: z.number().gt(0).lt(1).optional(),
    ranking: z.enum(['layer', 'global']).default('layer'),
    mode: z.enum(['normal', 'regular', 'group']).default('normal'),
    multipleOf: z.number().int().positive().default(8),
    pruneFirstConv: z.boolean().default(false),
    pruneDownsampleConvs: z.boolean().default(false),
    operations: z.array(z.enum(['Conv', 'Gemm', 'ConvTranspose'])).min(1).default(['Conv', 'Gemm', 'ConvTranspose']),
    schedule: z
      .object({
        type: z.enum(['one_shot', 'exponential', 'baseline']).optional(),
        initialLevel: level.optional(),
        initSteps: z.number().int().nonnegative().optional(),
        steps: z.number().int().positive().optional(),
        freezeEpoch: z.number().int().nonnegative().optional(),
      })
      .strict()
      .optional(),
    slimPenalty: z.number().nonnegative().default(1e-4),
    plan: z.array(z.object({ node: z.string().min(1), ratio: level }).strict()).min(1).optional(),
  })
  .strict()
  .superRefine((v, ctx) => {
    if (v.ratio !== undefined && v.flopsReduction !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['flopsReduction'], message: 'give either ratio or flopsReduction, not both' });
    }
    if (v.plan !== undefined && v.ratio !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['ratio'], message: 'a plan sets the ratio of each layer: give plan (optionally with flopsReduction), not ratio' });
    }
    if (v.plan !== undefined && v.ranking === 'global') {
      ctx.addIssue({ code: 'custom', path: ['ranking'], message: 'a per-layer plan needs ranking "layer" (global ranking decides the ratios itself)' });
    }
    const seen = new Map<string, number>();
    v.plan?.forEach((e, i) => {
      if (seen.has(e.node)) ctx.addIssue({ code: 'custom', path: ['plan', i, 'node'], message: `node "${e.node}" is already planned at plan[${seen.get(e.node)}]` });
      seen.set(e.node, i);
    });
  });

/** Per-group runtime of one compress() call. */
interface Runtime {
  readonly masks: Map<string, tf.Variable>;
  /** Gather indices of mask sites that are not the identity (-1 mapped to the appended 1). */
  readonly indices: Map<string, tf.Tensor1D>;
  analysis?: PruningGroupsResult;
}

function maskOf(rt: Runtime, groupId: string, siteKey: string, x: tf.Tensor): tf.Tensor {
  const m = rt.masks.get(groupId);
  if (!m) return x;
  const idx = rt.indices.get(siteKey);
  if (!idx) return tf.mul(x, m);
  return tf.mul(x, tf.gather(tf.concat([m, tf.ones([1])]), idx));
}

function describeUnprunable(analysis: PruningGroupsResult): string {
  return analysis.nodes.map((n) => `"${n.node}" (${n.op}): ${n.reason ?? 'prunable'}`).join('; ');
}

class FilterPruningController {
  readonly prunable: PruningGroup[];
  readonly keep = new Map<string, number[]>();
  readonly scheduler: PruningScheduler;
  private readonly flopsBefore: number;
  private readonly paramsBefore: number;
  private currentLevel = 0;

  constructor(
    readonly params: FilterPruningParams,
    readonly analysis: PruningGroupsResult,
    readonly model: CompressedModel,
    readonly rt: Runtime,
    private readonly paramsPath: string,
  ) {
    this.prunable = analysis.groups.filter((g) => g.prunable);
    const t = graphStatistics(model.graph).total;
    this.flopsBefore = t.flops;
    this.paramsBefore = t.params;
    for (const g of this.prunable) this.keep.set(g.id, Array.from({ length: g.channels }, (_, i) => i));
    this.planRatios = params.plan ? this.resolvePlan(params.plan) : undefined;
    const planMax = this.planRatios ? Math.max(0, ...this.planRatios.values()) : 0;
    const target = params.flopsReduction ?? params.ratio ?? (this.planRatios ? planMax : 0.5);
    if (params.flopsReduction !== undefined) this.checkReachable(params.flopsReduction);
    this.scheduler = new PruningScheduler(params.schedule ?? {}, target, (lvl) => this.setLevel(lvl));
    this.setLevel(this.scheduler.level);
  }

  /** Group id → planned ratio (the mean over the group's named producers). */
  private readonly planRatios: Map<string, number> | undefined;

  private resolvePlan(plan: NonNullable<FilterPruningParams['plan']>): Map<string, number> {
    const sums = new Map<string, { sum: number; n: number }>();
    plan.forEach((e, i) => {
      const g = this.prunable.find((x) => x.producers.includes(e.node));
      if (!g) {
        const n = this.analysis.nodes.find((x) => x.node === e.node);
        const why = n ? `it is not prunable: ${n.reason ?? 'not a producer of a prunable group'}` : `no Conv or Gemm of the graph has that name (${this.analysis.nodes.map((x) => x.node).join(', ')})`;
        throw new ConfigError(`${this.paramsPath}.plan[${i}].node`, `filter_pruning: plan names "${e.node}", but ${why}`);
      }
      const s = sums.get(g.id) ?? { sum: 0, n: 0 };
      sums.set(g.id, { sum: s.sum + e.ratio, n: s.n + 1 });
    });
    return new Map([...sums].map(([id, s]) => [id, s.sum / s.n]));
  }

  /**
   * The ratio at pruning level `x`: one number, or with a plan each group's planned ratio scaled
   * by x / (largest planned ratio), so x = that largest ratio applies the plan as written.
   */
  private ratioAt(x: number): number | ((id: string) => number) {
    const plan = this.planRatios;
    if (!plan) return x;
    const max = Math.max(1e-12, ...plan.values());
    return (id) => Math.min(MAX_RATIO, ((plan.get(id) ?? 0) * x) / max);
  }

  private get selection(): SelectionOptions {
    const p = this.params;
    return { mode: p.mode, multipleOf: p.multipleOf, ranking: p.ranking, rule: p.criterion === 'opt_slim' ? 'energy' : 'fraction' };
  }

  /** Importance of every channel of every prunable group (per producer divided by its RMS, then averaged). */
  scores(): GroupScores[] {
    const ex = this.model.executor;
    const graph = this.model.graph;
    const bn = BN_CRITERIA.has(this.params.criterion);
    const fn = { l1: l1Importance, l2: l2Importance, fpgm: fpgmImportance }[this.params.criterion as 'l1' | 'l2' | 'fpgm'];
    return this.prunable.map((g) => {
      const t = tf.tidy(() => {
        const per = g.producers.map((p, i) => {
          const n = graph.node(p)!;
          // A ConvTranspose weight [kh, kw, cout, cin] holds its filters on axis 2: put them last.
          const w = () => (n.op === 'ConvTranspose' ? tf.transpose(ex.paramValue(n.inputs[1]!), [0, 1, 3, 2]) : ex.paramValue(n.inputs[1]!));
          const s = bn ? slimImportance(ex.paramValue(graph.node(g.batchNorms[i]!)!.inputs[1]!)) : fn(w());
          const rms = tf.sqrt(tf.mean(tf.square(s)));
          return tf.div(s, tf.maximum(rms, 1e-12));
        });
        return tf.div(tf.addN(per), per.length);
      });
      const scores = t.dataSync() as Float32Array;
      t.dispose();
      return { id: g.id, blocks: g.blocks, scores };
    });
  }

  private reductionAt(scores: GroupScores[], ratio: number): { keep: Map<string, number[]>; reduction: number } {
    const keep = selectFilters(scores, this.ratioAt(ratio), this.selection);
    const t = cutTotals(this.model.graph, this.prunable, keep);
    return { keep, reduction: 1 - t.flops / this.flopsBefore };
  }

  private checkReachable(target: number): void {
    const best = this.reductionAt(this.scores(), MAX_RATIO).reduction;
    if (best < target) {
      throw new ConfigError(
        `${this.paramsPath}.flopsReduction`,
        `filter_pruning: flopsReduction ${target} cannot be reached: pruning every prunable group down to its minimum removes ` +
          `${(best * 100).toFixed(1)}% of the FLOPs. Allow more groups (pruneFirstConv, pruneDownsampleConvs, mode, ignoredScopes) ` +
          `or lower the target. Groups: ${describeUnprunable(this.analysis)}`,
        { target, reachable: best },
        'TARGET_UNREACHABLE',
      );
    }
  }

  /**
   * Regular and group modes round every group's count to whole steps (N channels, or one per block),
   * so the ratio search can overshoot a FLOPs target by a lot (one step of a 16-channel layer is half
   * of it). This gives steps back, greedily: each round restores, in the group whose next step has
   * the highest mean normalised score, the channels that step adds, as long as the target still holds.
   */
  private giveBack(scores: GroupScores[], keep: Map<string, number[]>, target: number): Map<string, number[]> {
    const out = new Map(keep);
    const stepOf = (g: GroupScores): number => (g.blocks > 1 ? g.blocks : this.params.mode === 'regular' ? this.params.multipleOf : 1);
    for (;;) {
      let pick: { id: string; keep: number[]; score: number } | undefined;
      for (const g of scores) {
        const cur = out.get(g.id)!;
        if (cur.length >= g.scores.length) continue;
        const next = keepHighest(g.scores, Math.min(g.scores.length, cur.length + stepOf(g)), g.blocks);
        const added = next.filter((c) => !cur.includes(c));
        const score = added.reduce((a, c) => a + g.scores[c]!, 0) / added.length;
        if (pick !== undefined && score <= pick.score) continue;
        const trial = new Map(out).set(g.id, next);
        if (1 - cutTotals(this.model.graph, this.prunable, trial).flops / this.flopsBefore >= target) pick = { id: g.id, keep: next, score };
      }
      if (pick === undefined) return out;
      out.set(pick.id, pick.keep);
    }
  }

  /** Recomputes the masks at a pruning level from the current weights. */
  setLevel(lvl: number): void {
    this.currentLevel = lvl;
    let keep: Map<string, number[]>;
    if (lvl <= 0) {
      keep = new Map(this.prunable.map((g) => [g.id, Array.from({ length: g.channels }, (_, i) => i)]));
    } else if (this.params.flopsReduction !== undefined) {
      const scores = this.scores();
      let lo = 0;
      let hi = MAX_RATIO;
      let best = this.reductionAt(scores, hi);
      for (let i = 0; i < 24; i++) {
        const mid = (lo + hi) / 2;
        const r = this.reductionAt(scores, mid);
        if (r.reduction >= lvl) {
          hi = mid;
          best = r;
        } else lo = mid;
      }
      keep = this.params.mode === 'normal' ? best.keep : this.giveBack(scores, best.keep, lvl);
    } else {
      keep = selectFilters(this.scores(), this.ratioAt(lvl), this.selection);
    }
    this.setKeep(keep);
  }

  setKeep(keep: ReadonlyMap<string, readonly number[]>): void {
    for (const g of this.prunable) {
      const k = keep.get(g.id)!;
      this.keep.set(g.id, [...k]);
      const data = new Float32Array(g.channels);
      for (const c of k) data[c] = 1;
      tf.tidy(() => this.rt.masks.get(g.id)!.assign(tf.tensor1d(data)));
    }
  }

  loss(): tf.Scalar {
    const p = this.params;
    if (!BN_CRITERIA.has(p.criterion) || p.slimPenalty === 0 || this.scheduler.frozen) return tf.scalar(0);
    const ex = this.model.executor;
    const gammas = this.prunable.flatMap((g) => g.batchNorms.map((b) => this.model.graph.node(b!)!.inputs[1]!));
    return tf.tidy(() => tf.mul(p.slimPenalty, tf.addN(gammas.map((name) => tf.sum(tf.abs(ex.paramValue(name)))))) as tf.Scalar);
  }

  statistics(): AlgorithmStatistics {
    const after = graphStatistics(cutAll(this.model.graph, this.prunable, this.keep)).total;
    const byId = new Map(this.analysis.groups.map((g) => [g.id, g]));
    const layers: LayerStatistics[] = this.analysis.nodes.map((n) => {
      const g = n.group === null ? undefined : byId.get(n.group);
      const kept = g?.prunable ? (n.channels * this.keep.get(g.id)!.length) / g.channels : n.channels;
      return {
        node: n.node,
        op: n.op,
        group: n.group,
        role: n.role,
        prunable: n.prunable,
        ...(n.reason ? { reason: n.reason } : {}),
        keptFilters: kept,
        totalFilters: n.channels,
      };
    });
    const kept = this.prunable.reduce((a, g) => a + this.keep.get(g.id)!.length, 0);
    const total = this.prunable.reduce((a, g) => a + g.channels, 0);
    return {
      algorithm: ALGORITHM,
      layers,
      total: {
        criterion: this.params.criterion,
        level: this.currentLevel,
        frozen: this.scheduler.frozen,
        groups: this.analysis.groups.length,
        prunableGroups: this.prunable.length,
        prunedGroups: this.prunable.filter((g) => this.keep.get(g.id)!.length < g.channels).length,
        filtersKept: kept,
        filtersTotal: total,
        paramsBefore: this.paramsBefore,
        paramsAfter: after.params,
        flopsBefore: this.flopsBefore,
        flopsAfter: after.flops,
        flopsReduction: 1 - after.flops / this.flopsBefore,
      },
      skipped: this.analysis.nodes.filter((n) => !n.prunable).map((n) => ({ node: n.node, reason: n.reason! })),
    };
  }

  state(): Json {
    return {
      version: VERSION,
      epoch: this.scheduler.epoch,
      level: this.currentLevel,
      keep: Object.fromEntries(this.prunable.map((g) => [g.id, [...this.keep.get(g.id)!]])),
    };
  }

  loadState(state: Json): void {
    const s = state as { epoch?: unknown; level?: unknown; keep?: Record<string, unknown> } | null;
    if (!s || typeof s !== 'object' || typeof s.keep !== 'object' || s.keep === null) {
      throw new TensorpressError('STATE_INVALID', 'filter_pruning state: expected { epoch, level, keep: { group: [channels] } }');
    }
    const keep = new Map<string, number[]>();
    for (const g of this.prunable) {
      const k = s.keep[g.id];
      const ok = Array.isArray(k) && k.length > 0 && k.every((c, i) => Number.isInteger(c) && c >= 0 && c < g.channels && (i === 0 || c > (k[i - 1] as number)));
      if (!ok) throw new TensorpressError('STATE_INVALID', `filter_pruning state: $.keep["${g.id}"] must list kept channels of [0, ${g.channels}), ascending`);
      keep.set(g.id, k as number[]);
    }
    this.setKeep(keep);
    this.scheduler.epoch = Number(s.epoch ?? 0);
    this.currentLevel = Number(s.level ?? 0);
  }

  strip(graph: Graph, ctx?: StripContext): Graph {
    if (ctx) {
      // Tell later strips (per-channel quantizers) which output channels survive.
      for (const group of this.prunable) {
        const k = this.keep.get(group.id);
        if (!k || k.length >= group.channels) continue;
        for (const node of [...group.producers, ...group.followers]) ctx.keptChannels.set(node, k);
      }
    }
    return cutAll(graph, this.prunable, this.keep);
  }

  dispose(): void {
    for (const m of this.rt.masks.values()) m.dispose();
    for (const t of this.rt.indices.values()) t.dispose();
    this.rt.masks.clear();
    this.rt.indices.clear();
  }
}

function createBuilder(params: FilterPruningParams, scopes: Scopes, location?: EntryLocation): CompressionBuilder {
  const paths = entryPaths(location);
  // Validates the scopes now (a bad regular expression is a config error, not a late surprise).
  scopeFilter(scopes, paths.entry);
  let rt: Runtime = { masks: new Map(), indices: new Map() };
  const groupOptions = {
    ...scopes,
    pruneFirstConv: params.pruneFirstConv,
    pruneDownsampleConvs: params.pruneDownsampleConvs,
    operations: params.operations,
    mode: params.mode,
    multipleOf: params.multipleOf,
    requireBatchNorm: BN_CRITERIA.has(params.criterion),
  };
  const sites = new Map<string, { group: PruningGroup; index: readonly number[] | null }>();
  return {
    algorithm: ALGORITHM,
    priority: PRIORITY.pruning,
    stacking: STACKING,
    register(graph, layout) {
      rt = { masks: new Map(), indices: new Map() };
      sites.clear();
      checkScopeNames(scopes, graph.nodes.map((n) => n.name), paths.entry);
      const analysis = pruningGroups(graph, groupOptions);
      rt.analysis = analysis;
      if (!analysis.groups.some((g) => g.prunable)) {
        throw new ConfigError(
          paths.entry,
          `filter_pruning: nothing in the graph can be pruned: ${describeUnprunable(analysis)}`,
          { nodes: analysis.nodes.map((n) => ({ node: n.node, reason: n.reason ?? '' })) },
          'NOTHING_PRUNABLE',
        );
      }
      const local = rt;
      for (const g of analysis.groups.filter((x) => x.prunable)) {
        for (const site of maskSites(graph, g)) {
          const key = `${g.id}@${site.node}`;
          sites.set(key, { group: g, index: site.index });
          layout.addHook({ type: 'post', node: site.node, output: 0 }, (x) => maskOf(local, g.id, key, x), {
            algorithm: ALGORITHM,
            priority: PRIORITY.pruning,
            id: key,
          });
        }
      }
    },
    build(model) {
      const analysis = rt.analysis!;
      try {
        for (const g of analysis.groups) {
          if (!g.prunable) continue;
          const ones = tf.ones([g.channels]);
          rt.masks.set(g.id, tf.variable(ones, false));
          ones.dispose();
        }
        for (const [key, s] of sites) {
          if (s.index) rt.indices.set(key, tf.tensor1d(s.index.map((c) => (c < 0 ? s.group.channels : c)), 'int32'));
        }
        const c = new FilterPruningController(params, analysis, model, rt, paths.params);
        return defineController(ALGORITHM, {
          scheduler: c.scheduler,
          loss: () => c.loss(),
          statistics: () => c.statistics(),
          state: () => c.state(),
          loadState: (s) => c.loadState(s),
          strip: (g, ctx) => c.strip(g, ctx),
          dispose: () => c.dispose(),
        });
      } catch (e) {
        for (const m of rt.masks.values()) m.dispose();
        for (const t of rt.indices.values()) t.dispose();
        rt.masks.clear();
        rt.indices.clear();
        throw e;
      }
    },
  };
}

/**
 * Filter pruning that physically removes channels: a builder for `compress`. Options are validated
 * at once: a ratio outside [0, 1) is a `ConfigError` naming `$.ratio`.
 */
export function filterPruning(options: FilterPruningOptions = {}): CompressionBuilder {
  const { ignoredScopes, targetScopes, ...rest } = options;
  const params = parseWithSchema(filterPruningSchema, rest);
  return createBuilder(params, { ignoredScopes: ignoredScopes ?? [], targetScopes: targetScopes ?? [] });
}

/** The `filter_pruning` algorithm for pipeline configs (`parsePipelineConfig` / `createBuilders`). */
export const filterPruningDefinition: AlgorithmDefinition<FilterPruningParams> = {
  algorithm: ALGORITHM,
  version: VERSION,
  packageName: '@tensorpress/pruning',
  description: 'Filter pruning (L1, L2, FPGM, Slim, OptSlim) with pruning groups and physical channel removal',
  schema: filterPruningSchema,
  stacking: STACKING,
  create: (config, location) => createBuilder(config.params, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};
