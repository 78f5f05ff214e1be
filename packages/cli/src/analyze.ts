import path from 'node:path';
import { ConfigError, graphStatistics, removeStaleTempFiles, type Dataset } from '@tensorpress/core-tensor';
import {
  frontierChart,
  hawqV2,
  pruningPlan,
  sensitivity,
  sensitivityChart,
  weightLayers,
  type HawqBudget,
  type HawqResult,
  type PruningPlanResult,
  type SensitivityResult,
} from '@tensorpress/mixed-precision';
import { evalInputs, type RunEvalOptions } from './eval.js';
import { pruningGroups } from '@tensorpress/pruning';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { throwIfAborted } from './internal/abort.js';
import { PLAN_FORMAT, type PlanFile } from './internal/plan-file.js';
import { checkOutputDir, commitOutputs } from './output-dir.js';

/** What `tensorpress analyze --method` accepts. */
export const ANALYZE_METHODS = ['quantization', 'filter_pruning', 'sparsity', 'binarization', 'hawq'] as const;
export type AnalyzeMethod = (typeof ANALYZE_METHODS)[number];

const DEFAULT_LEVELS: Readonly<Record<Exclude<AnalyzeMethod, 'hawq'>, readonly number[]>> = {
  quantization: [2, 3, 4, 6, 8],
  filter_pruning: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
  sparsity: [0.5, 0.75, 0.9, 0.95],
  binarization: [1, 2],
};

/** Options of {@link runAnalyze} (`tensorpress analyze`): the model and data as `eval` takes them, plus the analysis. */
export interface RunAnalyzeOptions extends RunEvalOptions {
  method: AnalyzeMethod;
  /** Levels of a sensitivity analysis (bits, ratios, sparsity levels, 1/2 for binary/ternary); HAWQ: candidate bits. */
  levels?: readonly number[];
  /** Held-out training examples of a sensitivity analysis, calibration examples of HAWQ. Defaults 1000 / 256. */
  samples?: number;
  /** filter_pruning: also write the plan that removes this FLOPs share. */
  flopsReduction?: number;
  /** HAWQ's budget. Default: the BOPs of uniform W4A8. */
  budget?: HawqBudget;
  out: string;
  force?: boolean;
}

/** What {@link runAnalyze} found and wrote. */
export interface RunAnalyzeResult {
  readonly method: AnalyzeMethod;
  readonly outDir: string;
  readonly files: readonly string[];
  readonly sensitivity?: SensitivityResult;
  readonly hawq?: Omit<HawqResult, 'frontier'> & { frontierPoints: number };
  readonly pruningPlan?: PruningPlanResult;
  /** filter_pruning: the layers filter_pruning (default options) cannot prune, and why. */
  readonly unprunable?: readonly { node: string; reason: string }[];
  /** The plan written to plan.json, if any. */
  readonly plan?: PlanFile;
}

function lastExamples(data: Dataset, n: number): Dataset {
  const k = Math.min(n, data.size);
  return data.subset(Array.from({ length: k }, (_, i) => data.size - k + i));
}

function asUsage(e: unknown): unknown {
  return e instanceof ConfigError ? new CliError(EXIT_CODES.usage, e.code, e.message, { cause: e }) : e;
}

/**
 * `tensorpress analyze`: per-layer sensitivity of a model to one method (the drop with only that
 * layer compressed at each level, on held-out training examples), or HAWQ-v2's bit allocation.
 * Writes analysis.json, an SVG chart and, when a plan results, plan.json for `compress --plan`.
 */
export async function runAnalyze(options: RunAnalyzeOptions): Promise<RunAnalyzeResult> {
  const log = options.log ?? (() => undefined);
  if (!(ANALYZE_METHODS as readonly string[]).includes(options.method)) {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `--method: unknown method "${options.method}" (${ANALYZE_METHODS.join(', ')})`);
  }
  if (options.flopsReduction !== undefined && options.method !== 'filter_pruning') {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', '--flops-reduction makes a pruning plan: it needs --method filter_pruning');
  }
  if (options.budget !== undefined && options.method !== 'hawq') {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', '--budget is the bit budget of --method hawq');
  }
  const outDir = path.resolve(options.out);
  await removeStaleTempFiles(outDir);
  await checkOutputDir(outDir, options.force ?? false);
  const { data, model } = await evalInputs(options);
  const graph = model.graph;
  const files: { name: string; data: string }[] = [];
  let result: RunAnalyzeResult;
  try {
    if (options.method === 'hawq') {
      const layers = weightLayers(graph);
      const budget = options.budget ?? { type: 'bops', value: layers.reduce((a, l) => a + l.macs * 4 * 8, 0) };
      const calibration = lastExamples(data.train, options.samples ?? 256);
      log(`HAWQ-v2: Hessian traces on ${calibration.size} training examples, bits ${(options.levels ?? [2, 4, 8]).join('/')}, ${budget.type} budget ${budget.value}`);
      const r = hawqV2(graph, calibration, { budget, ...(options.levels ? { bits: options.levels } : {}), hutchinson: { samples: calibration.size } });
      for (const w of r.warnings) log(`warning: ${w}`);
      const plan: PlanFile = { format: PLAN_FORMAT, version: 1, kind: 'bits', source: `hawq-v2 (${budget.type} ≤ ${budget.value})`, plan: r.plan };
      const { frontier, ...rest } = r;
      files.push({ name: 'frontier.svg', data: frontierChart(frontier, r.chosen, budget.type) });
      files.push({ name: 'plan.json', data: `${JSON.stringify(plan, null, 2)}\n` });
      files.push({ name: 'analysis.json', data: `${JSON.stringify({ model: options.model, data: data.name, method: 'hawq', ...r }, null, 2)}\n` });
      result = { method: 'hawq', outDir, files: [], hawq: { ...rest, frontierPoints: frontier.length }, plan };
    } else {
      const levels = options.levels ?? DEFAULT_LEVELS[options.method];
      const heldOut = lastExamples(data.train, options.samples ?? 1000);
      log(`${options.method} sensitivity on ${heldOut.size} held-out training examples, levels ${levels.join(', ')}`);
      // filter_pruning: producers coupled through an Add lose the same channels, so they are
      // analysed as filter_pruning's groups (default options: the first conv is left alone).
      const pg = options.method === 'filter_pruning' ? pruningGroups(graph) : undefined;
      const groups = pg?.groups.filter((g) => g.prunable).map((g) => g.producers);
      const unprunable = pg?.nodes.filter((n) => !n.prunable).map((n) => ({ node: n.node, reason: n.reason ?? 'not prunable' }));
      const s = sensitivity(graph, heldOut, options.method, levels, { samples: heldOut.size, ...(groups ? { groups } : {}) });
      files.push({ name: 'sensitivity.svg', data: sensitivityChart(s) });
      let pp: PruningPlanResult | undefined;
      let plan: PlanFile | undefined;
      if (options.flopsReduction !== undefined) {
        pp = pruningPlan(graph, s, { flopsReduction: options.flopsReduction });
        plan = { format: PLAN_FORMAT, version: 1, kind: 'ratios', source: `sensitivity pruning (flopsReduction ${options.flopsReduction})`, flopsReduction: options.flopsReduction, plan: pp.plan };
        files.push({ name: 'plan.json', data: `${JSON.stringify(plan, null, 2)}\n` });
      }
      files.push({ name: 'analysis.json', data: `${JSON.stringify({ model: options.model, data: data.name, ...s, ...(unprunable ? { unprunable } : {}), ...(pp ? { pruningPlan: pp } : {}) }, null, 2)}\n` });
      result = { method: options.method, outDir, files: [], sensitivity: s, ...(unprunable ? { unprunable } : {}), ...(pp ? { pruningPlan: pp } : {}), ...(plan ? { plan } : {}) };
    }
  } catch (e) {
    throw asUsage(e);
  }
  throwIfAborted(options.signal);
  const written = await commitOutputs(outDir, files);
  log(`model: ${graphStatistics(graph).total.params.toLocaleString('en-US')} params`);
  return { ...result, files: written };
}

/** The table `tensorpress analyze` prints: one row per layer, one column per level (drop in points or loss). */
export function formatAnalysis(r: RunAnalyzeResult): string {
  const pad = (s: string, n: number): string => s.padStart(n);
  if (r.hawq) {
    const lines = ['layer'.padEnd(16) + pad('trace', 12) + pad('± s.e.', 11) + pad('bits', 6)];
    for (const l of r.hawq.layers) {
      const bits = r.hawq.plan.find((e) => e.node === l.node);
      lines.push(l.node.padEnd(16) + pad(l.trace.toExponential(3), 12) + pad(l.stdError.toExponential(2), 11) + pad(String(bits?.weightBits ?? ''), 6));
    }
    lines.push(`Hutchinson: ${r.hawq.traces.iterations} iterations${r.hawq.traces.converged ? '' : ' (not converged)'}; plan cost ${r.hawq.chosen.cost} of ${r.hawq.chosen.budget} (${r.hawq.chosen.budgetType})`);
    return lines.join('\n');
  }
  const s = r.sensitivity!;
  const scale = s.metric === 'accuracy' ? 100 : 1;
  const lines = [`${s.method}: ${s.metric === 'accuracy' ? 'accuracy drop (points)' : 'loss increase'} with one layer compressed; baseline ${(s.baseline * scale).toFixed(2)}`];
  lines.push('layer'.padEnd(16) + s.levels.map((l) => pad(String(l), 8)).join(''));
  for (const row of s.rows) lines.push(row.node.padEnd(16) + row.levels.map((l) => pad((l.drop * scale).toFixed(2), 8)).join(''));
  for (const k of s.skipped) lines.push(`skipped: ${k.node} (${k.reason})`);
  for (const k of r.unprunable ?? []) lines.push(`not prunable: ${k.node} (${k.reason})`);
  if (r.pruningPlan) {
    lines.push(`plan (estimated FLOPs reduction ${(r.pruningPlan.estimatedFlopsReduction * 100).toFixed(1)}%, threshold ${(r.pruningPlan.threshold * scale).toFixed(2)}): ${r.pruningPlan.plan.map((e) => `${e.node} ${e.ratio}`).join(', ')}`);
  }
  return lines.join('\n');
}
