import { ConfigError, type Graph } from '@tensorpress/core-tensor';
import { weightLayers } from './layers.js';
import type { SensitivityResult } from './sensitivity.js';

/** One entry of a pruning plan: the data filter_pruning's `plan` option (and config `params.plan`) takes. */
export interface RatioPlanEntry {
  readonly node: string;
  readonly ratio: number;
}

/**
 * The largest ratio of one layer whose drop stays within `threshold`, interpolating linearly
 * between the measured levels (ratio 0 has drop 0), as PaddleSlim's `get_ratios_by_loss` does.
 */
export function ratioWithin(levels: readonly { level: number; drop: number }[], threshold: number): number {
  const pts = [{ level: 0, drop: 0 }, ...[...levels].filter((l) => l.level > 0).sort((a, b) => a.level - b.level)];
  let best = 0;
  for (let i = 1; i < pts.length; i++) {
    const a = pts[i - 1]!;
    const b = pts[i]!;
    if (b.drop <= threshold) {
      best = b.level;
      continue;
    }
    // The first level over the threshold: the crossing between the last one under it and this one.
    if (a.drop <= threshold && b.drop > a.drop) best = a.level + ((threshold - a.drop) / (b.drop - a.drop)) * (b.level - a.level);
    break;
  }
  return best;
}

/** Ops a filter cut passes through to the next layer (one data input, channels kept in place). */
const CHANNEL_PRESERVING = new Set(['BatchNormalization', 'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'HardSigmoid', 'HardSwish', 'MaxPool', 'AveragePool', 'Flatten', 'Dropout', 'Identity']);

/**
 * The FLOPs share that per-layer ratios remove, estimated from the layers' MACs: a layer that
 * keeps (1 − rᵢ) of its filters and reads a layer that keeps (1 − r_in) costs (1 − rᵢ)(1 − r_in)
 * of its MACs. The producer is followed through BN, activations, pooling and Flatten; an input
 * that comes through Add or Concat counts as uncut (the coupled channels are pruning's business,
 * so the estimate errs low there). filter_pruning with `flopsReduction` reaches a target exactly.
 */
export function estimateFlopsReduction(graph: Graph, ratios: ReadonlyMap<string, number>): number {
  const layers = weightLayers(graph);
  const byNode = new Set(layers.map((l) => l.node));
  const inputLayer = (node: string): string | undefined => {
    let value = graph.requireNode(node).inputs[0]!;
    for (;;) {
      const p = graph.producer(value);
      if (!p) return undefined;
      if (byNode.has(p.node.name)) return p.node.name;
      if (!CHANNEL_PRESERVING.has(p.node.op)) return undefined;
      value = p.node.inputs[0]!;
    }
  };
  let before = 0;
  let after = 0;
  for (const l of layers) {
    const src = inputLayer(l.node);
    before += l.macs;
    after += l.macs * (1 - (ratios.get(l.node) ?? 0)) * (1 - (src ? (ratios.get(src) ?? 0) : 0));
  }
  return before > 0 ? 1 - after / before : 0;
}

/** Result of {@link pruningPlan}. */
export interface PruningPlanResult {
  readonly plan: RatioPlanEntry[];
  /** The drop every layer is held under. */
  readonly threshold: number;
  readonly estimatedFlopsReduction: number;
}

/**
 * PaddleSlim's sensitivity pruning: the largest per-layer ratios that keep every layer's measured
 * drop under one threshold, the threshold found by bisection so that the estimated FLOPs reduction
 * reaches `flopsReduction`. A target beyond every layer's largest measured ratio is a
 * `TARGET_UNREACHABLE` error with the reachable reduction.
 */
export function pruningPlan(graph: Graph, analysis: SensitivityResult, options: { flopsReduction: number; layers?: readonly string[] }): PruningPlanResult {
  const target = options.flopsReduction;
  if (!(target > 0 && target < 1)) throw new ConfigError('$.flopsReduction', `must be in (0, 1), got ${target}`);
  if (analysis.method !== 'filter_pruning') {
    throw new ConfigError('$.method', `a pruning plan needs a filter_pruning analysis, this one is "${analysis.method}"`);
  }
  const rows = analysis.rows.filter((r) => options.layers === undefined || options.layers.includes(r.node));
  // A group row's ratio applies to every member (the FLOPs estimate needs each layer's).
  const ratiosAt = (t: number): Map<string, number> => new Map(rows.flatMap((r) => (r.members ?? [r.node]).map((n) => [n, ratioWithin(r.levels, t)] as const)));
  const maxDrop = Math.max(0, ...rows.flatMap((r) => r.levels.map((l) => l.drop)));
  const reachable = estimateFlopsReduction(graph, ratiosAt(Number.POSITIVE_INFINITY));
  if (reachable < target) {
    throw new ConfigError(
      '$.flopsReduction',
      `flopsReduction ${target} cannot be reached with the measured levels: every layer at its largest measured ratio removes about ${(reachable * 100).toFixed(1)}% of the FLOPs; measure larger ratios`,
      { target, reachable },
      'TARGET_UNREACHABLE',
    );
  }
  let lo = -1e-9;
  let hi = maxDrop + 1e-9;
  for (let i = 0; i < 50; i++) {
    const mid = (lo + hi) / 2;
    if (estimateFlopsReduction(graph, ratiosAt(mid)) >= target) hi = mid;
    else lo = mid;
  }
  const ratios = ratiosAt(hi);
  return {
    // One entry per row: filter_pruning applies a producer's ratio to its whole group.
    plan: rows.map((r) => ({ node: r.node, ratio: ratios.get(r.node)! })).filter((e) => e.ratio > 0).map((e) => ({ node: e.node, ratio: Math.min(0.9999, Math.ceil(e.ratio * 1e4) / 1e4) })),
    threshold: hi,
    estimatedFlopsReduction: estimateFlopsReduction(graph, ratios),
  };
}
