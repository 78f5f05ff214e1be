import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { paretoFrontier, pickWithin, type Choice } from './allocate.js';
import { hessianTraces, type HutchinsonOptions, type HutchinsonResult } from './hutchinson.js';
import { weightLayers, type WeightLayer } from './layers.js';
import { quantizationError } from './weight-transforms.js';

/** One entry of a bits plan: the data quant's QAT `plan` option (and config `params.plan`) takes. */
export interface BitsPlanEntry {
  readonly node: string;
  readonly weightBits?: number;
  readonly activationBits?: number;
}

/**
 * What the plan must fit: `bops` (Σ MACs × weight bits × activation bits per example), `bytes`
 * (the planned weights' storage), `averageBits` (parameter-weighted mean weight bits), or
 * `compressionRatio` (HAWQ-v2's "INT8 complexity / mixed complexity", complexity = Σ MACs × bits).
 */
export type HawqBudget =
  | { readonly type: 'bops'; readonly value: number }
  | { readonly type: 'bytes'; readonly value: number }
  | { readonly type: 'averageBits'; readonly value: number }
  | { readonly type: 'compressionRatio'; readonly value: number };

/** Options of {@link hawqV2}. */
export interface HawqOptions {
  readonly budget: HawqBudget;
  /** Candidate weight bit widths, each an integer from 2 to 8. Default [2, 4, 8]. */
  readonly bits?: readonly number[];
  /**
   * `strict` (default): activations stay at `activationBits`; `liberal`: a layer's input
   * activations take its weight bits (W4A4-style plans), which is what the BOPs then count.
   */
  readonly activationMode?: 'strict' | 'liberal';
  /** Activation bits in strict mode. Default 8. */
  readonly activationBits?: number;
  /** Options of the trace estimate, or traces computed before (reused as they are). */
  readonly hutchinson?: HutchinsonOptions;
  readonly traces?: HutchinsonResult;
  /** Layers kept at 8 bits whatever the budget (e.g. the first and last). Default none. */
  readonly fixed8?: readonly string[];
}

/** Ω of one layer at one bit width. */
export interface LayerSensitivity {
  readonly node: string;
  readonly trace: number;
  readonly stdError: number;
  readonly params: number;
  readonly macs: number;
  /** Ω_i(b) = Tr̄_i · ‖Q_b(W_i) − W_i‖², by bits. */
  readonly omega: Readonly<Record<number, number>>;
}

/** Result of {@link hawqV2}. */
export interface HawqResult {
  readonly plan: BitsPlanEntry[];
  readonly layers: readonly LayerSensitivity[];
  /** The exact frontier: budget cost → least total Ω, with each point's bits per layer. */
  readonly frontier: readonly { cost: number; sensitivity: number; bits: readonly number[] }[];
  readonly chosen: { cost: number; sensitivity: number; budget: number; budgetType: HawqBudget['type'] };
  readonly traces: HutchinsonResult;
  readonly warnings: readonly string[];
}

/** Validates candidate bit widths (integers 2–8, no repeats). */
export function checkBits(bits: readonly number[], path = '$.bits'): number[] {
  if (bits.length === 0) throw new ConfigError(path, 'give at least one candidate bit width');
  bits.forEach((b, i) => {
    if (!(Number.isInteger(b) && b >= 2 && b <= 8)) throw new ConfigError(`${path}[${i}]`, `bit widths must be integers from 2 to 8, got ${b}`);
  });
  if (new Set(bits).size !== bits.length) throw new ConfigError(path, `bit widths repeat: [${bits.join(', ')}]`);
  return [...bits].sort((a, b) => a - b);
}

/** Cost of one layer at `bits` in the budget's unit, and the budget's value in that unit. */
function costModel(budget: HawqBudget, layers: readonly WeightLayer[], abits: (w: number) => number): { cost: (l: WeightLayer, b: number) => number; limit: number; unit: string } {
  const v = budget.value;
  if (!(v > 0 && Number.isFinite(v))) throw new ConfigError('$.budget.value', `must be a positive number, got ${v}`);
  switch (budget.type) {
    case 'bops':
      return { cost: (l, b) => l.macs * b * abits(b), limit: v, unit: ' BOPs' };
    case 'bytes':
      return { cost: (l, b) => (l.params * b) / 8, limit: v, unit: ' bytes' };
    case 'averageBits':
      return { cost: (l, b) => l.params * b, limit: v * layers.reduce((a, l) => a + l.params, 0), unit: ' bit·params' };
    case 'compressionRatio':
      return { cost: (l, b) => l.macs * b, limit: layers.reduce((a, l) => a + l.macs * 8, 0) / v, unit: ' MAC·bits' };
    default:
      throw new ConfigError('$.budget.type', `unknown budget type "${(budget as { type: string }).type}" (bops, bytes, averageBits, compressionRatio)`);
  }
}

/**
 * HAWQ-v2: the average Hessian trace of every weight layer (Hutchinson), the sensitivity
 * Ω_i(b) = Tr̄_i · ‖Q_b(W_i) − W_i‖² of each candidate bit width, and the exact least-Ω allocation
 * within the budget from the Pareto frontier. Returns the plan as quant `plan` entries.
 */
export function hawqV2(graph: Graph, data: Dataset, options: HawqOptions): HawqResult {
  const bits = checkBits(options.bits ?? [2, 4, 8]);
  const mode = options.activationMode ?? 'strict';
  const aStrict = options.activationBits ?? 8;
  if (!(Number.isInteger(aStrict) && aStrict >= 2 && aStrict <= 8)) throw new ConfigError('$.activationBits', `must be an integer from 2 to 8, got ${aStrict}`);
  const abits = (w: number): number => (mode === 'liberal' ? w : aStrict);
  const layers = weightLayers(graph);
  const fixed = new Set(options.fixed8 ?? []);
  (options.fixed8 ?? []).forEach((n, i) => {
    if (!layers.some((l) => l.node === n)) throw new ConfigError(`$.fixed8[${i}]`, `"${n}" is not a weight layer (${layers.map((l) => l.node).join(', ')})`);
  });
  const traces = options.traces ?? hessianTraces(graph, data, { ...options.hutchinson, layers: layers.map((l) => l.node) });
  const { cost, limit, unit } = costModel(options.budget, layers, abits);
  const warnings = [...traces.warnings];
  const sens: LayerSensitivity[] = layers.map((l) => {
    const t = traces.layers.find((x) => x.node === l.node);
    if (!t) throw new ConfigError('$.traces', `the traces given have no entry for layer "${l.node}"`);
    const w = graph.param(l.weight)!;
    const wt = tf.tensor(w.data as Float32Array, [...w.shape]);
    const omega: Record<number, number> = {};
    for (const b of bits) omega[b] = Math.max(0, t.trace) * quantizationError(wt, b);
    wt.dispose();
    return { node: l.node, trace: t.trace, stdError: t.stdError, params: l.params, macs: l.macs, omega };
  });
  const choices: Choice[][] = layers.map((l, i) => {
    const cands = fixed.has(l.node) ? [8] : bits;
    return cands.map((b) => ({ value: b, cost: cost(l, b), sensitivity: sens[i]!.omega[b] ?? 0 }));
  });
  const front = paretoFrontier(choices);
  const best = pickWithin(front, limit, `$.budget.value`, unit);
  const bitsOf = (picks: readonly number[]): number[] => picks.map((p, i) => choices[i]![p]!.value);
  const chosenBits = bitsOf(best.picks);
  const plan: BitsPlanEntry[] = layers.map((l, i) => ({ node: l.node, weightBits: chosenBits[i]!, ...(mode === 'liberal' ? { activationBits: chosenBits[i]! } : {}) }));
  return {
    plan,
    layers: sens,
    frontier: front.map((p) => ({ cost: p.cost, sensitivity: p.sensitivity, bits: bitsOf(p.picks) })),
    chosen: { cost: best.cost, sensitivity: best.sensitivity, budget: limit, budgetType: options.budget.type },
    traces,
    warnings,
  };
}

/** Cost of a given plan in a budget's unit (to compare uniform or random plans with HAWQ's). */
export function planCost(graph: Graph, plan: readonly BitsPlanEntry[], budget: HawqBudget, options: Pick<HawqOptions, 'activationMode' | 'activationBits'> = {}): { cost: number; limit: number } {
  const layers = weightLayers(graph);
  const mode = options.activationMode ?? 'strict';
  const abits = (w: number): number => (mode === 'liberal' ? w : (options.activationBits ?? 8));
  const { cost, limit } = costModel(budget, layers, abits);
  let total = 0;
  for (const l of layers) {
    const b = plan.find((e) => e.node === l.node)?.weightBits;
    if (b === undefined) throw new ConfigError('$.plan', `the plan has no weightBits for layer "${l.node}"`);
    total += cost(l, b);
  }
  return { cost: total, limit };
}
