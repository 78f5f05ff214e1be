/**
 * The `config` fuzz target: seeded mutations of the example configs (fuzz/config-mutations.ts),
 * each parsed with every installed algorithm definition and, when accepted, dry-applied to the
 * residual CNN the way `tensorpress compress` does before training, then initialised on a few
 * examples and stripped (what a run does after training). Each case is classified:
 * accepted (and then no key of the input may be missing from the parsed config: nothing is
 * silently ignored), a typed error (a ConfigError with a JSON path), a typed error without a path,
 * or an untyped error. Crashes and hangs are the runner's to count (fuzz/run-config.ts).
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, TensorpressError, arrayDataset, checkCompression, compress, createBuilders, parsePipelineConfig, type AnyAlgorithmDefinition, type Dataset, type Graph, type PipelineConfig } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { algorithmHints, discoverAlgorithms } from '@tensorpress/cli';
import { keyPathsOf, type ConfigBase, type ConfigMutation, type MutationContext, type MutationKind, type Value } from './config-mutations.js';

/** Everything a case needs, built once per process. */
export interface ConfigFuzzContext {
  readonly definitions: readonly AnyAlgorithmDefinition[];
  readonly hints: Readonly<Record<string, string>>;
  readonly graph: Graph;
  /** A few examples shaped for `graph`, for range initialisation before strip(). */
  readonly data: Dataset;
  readonly bases: readonly ConfigBase[];
  readonly mutation: MutationContext;
}

/** How one case ended. */
export type CaseOutcome = 'accepted' | 'typedError' | 'pathlessError' | 'untypedError' | 'ignoredKey';

/** One classified case. */
export interface ConfigCaseResult {
  readonly index: number;
  readonly base: string;
  readonly kinds: readonly MutationKind[];
  readonly description: string;
  readonly outcome: CaseOutcome;
  /** Where it stopped: parsing, the dry apply on the graph, or initialize + strip; null when accepted. */
  readonly stage: 'parse' | 'graph' | 'strip' | null;
  /** The error code (typed errors) or constructor name (untyped ones). */
  readonly code?: string;
  readonly message?: string;
  /** Keys of the input missing from the parsed config (outcome `ignoredKey`). */
  readonly ignoredKeys?: readonly string[];
  readonly renamedKeys: readonly string[];
  /** Tensors left behind by the case (0 expected). */
  readonly leakedTensors: number;
  readonly ms: number;
}

/** A pipeline for each installed algorithm with every parameter written out (all keys at every level to misspell). */
function expandedBases(definitions: readonly AnyAlgorithmDefinition[]): ConfigBase[] {
  const training: { [k: string]: Value } = { epochs: 1, batchSize: 32, learningRate: 0.001, optimizer: 'adam' };
  const input: { [k: string]: Value } = { model: 'builtin:residualCnn', data: 'mnist' };
  const bases: ConfigBase[] = definitions.map((d) => ({
    name: `defaults:${d.algorithm}`,
    config: { input, training, compression: [{ algorithm: d.algorithm, version: d.version, params: d.schema.parse({}) as Value, ignoredScopes: [], targetScopes: [] }] },
  }));
  if (definitions.some((d) => d.algorithm === 'filter_pruning')) {
    const schedule = { type: 'exponential', initialLevel: 0.1, initSteps: 0, steps: 2, freezeEpoch: 3 };
    bases.push({
      name: 'schedule:filter_pruning',
      config: { input, training, compression: [{ algorithm: 'filter_pruning', version: 1, params: { ratio: 0.3, schedule }, ignoredScopes: ['{re}fc.*'], targetScopes: [] }] },
    });
  }
  return bases;
}

/**
 * Loads the installed definitions, the example configs of `examplesDir` (as written and with
 * every default made explicit) and the model the dry apply runs on. Every base must parse.
 */
export async function configFuzzContext(examplesDir: string): Promise<ConfigFuzzContext> {
  const { definitions } = await discoverAlgorithms();
  const hints = algorithmHints();
  const bases: ConfigBase[] = [];
  for (const f of (await readdir(examplesDir)).filter((x) => x.endsWith('.json')).sort()) {
    const config = JSON.parse(await readFile(path.join(examplesDir, f), 'utf8')) as { [k: string]: Value };
    bases.push({ name: f, config });
    bases.push({ name: `${f} (parsed)`, config: JSON.parse(JSON.stringify(parsePipelineConfig(config, definitions, { hints }))) as { [k: string]: Value } });
  }
  bases.push(...expandedBases(definitions));
  for (const b of bases) parsePipelineConfig(b.config, definitions, { hints });
  const graph = referenceModels.residualCnn({ seed: 0 });
  const n = 8;
  const x = Float32Array.from({ length: n * 28 * 28 }, (_, i) => ((i * 7919) % 97) / 97);
  const data = arrayDataset({ x, y: Int32Array.from({ length: n }, (_, i) => i % 10), exampleShape: [28, 28, 1], numClasses: 10 });
  return { definitions, hints, graph, data, bases, mutation: { algorithms: definitions.map((d) => d.algorithm), nodeNames: graph.nodes.map((n) => n.name) } };
}

function pathOf(parts: readonly (string | number)[]): string {
  return '$' + parts.map((s) => (typeof s === 'number' ? `[${s}]` : `.${JSON.stringify(s)}`)).join('');
}

/** Every key path of a JSON value (iterative: a mutated input may be deep). */
function keyPaths(value: unknown): Set<string> {
  const out = new Set<string>();
  const todo: { v: unknown; p: (string | number)[] }[] = [{ v: value, p: [] }];
  while (todo.length) {
    const { v, p } = todo.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    const kids: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of kids) {
      const q = [...p, k];
      if (typeof k === 'string') out.add(pathOf(q));
      todo.push({ v: x, p: q });
    }
  }
  return out;
}

/**
 * Keys of the input that the parsed config does not hold: each one a setting the user wrote and
 * tensorpress ignored. The single-object form of `compression` is compared as a one-entry list.
 */
export function ignoredKeys(input: unknown, parsed: PipelineConfig): string[] {
  const raw = (typeof input === 'string' ? JSON.parse(input) : input) as Record<string, unknown>;
  const normal = raw.compression !== undefined && !Array.isArray(raw.compression) ? { ...raw, compression: [raw.compression] } : raw;
  const have = keyPaths(JSON.parse(JSON.stringify(parsed)));
  return [...keyPaths(normal)].filter((k) => !have.has(k)).sort();
}

function classify(e: unknown): { outcome: CaseOutcome; code: string; message: string } {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof ConfigError && e.path.startsWith('$')) return { outcome: 'typedError', code: e.code, message };
  if (e instanceof TensorpressError) return { outcome: 'pathlessError', code: e.code, message };
  return { outcome: 'untypedError', code: e instanceof Error ? e.constructor.name : typeof e, message };
}

/**
 * Parses one mutated config, checks nothing was ignored, dry-applies it, then (if that passed)
 * initialises and strips it on a few examples, and says how it ended.
 */
export async function runConfigCase(ctx: ConfigFuzzContext, m: ConfigMutation): Promise<ConfigCaseResult> {
  const before = tf.memory().numTensors;
  const t0 = performance.now();
  const common = { index: m.index, base: m.base, kinds: m.kinds, description: m.description, renamedKeys: m.renamedKeys };
  const done = (r: Omit<ConfigCaseResult, keyof typeof common | 'ms' | 'leakedTensors'>): ConfigCaseResult => ({
    ...common,
    ...r,
    leakedTensors: tf.memory().numTensors - before,
    ms: performance.now() - t0,
  });
  let parsed: PipelineConfig;
  try {
    parsed = parsePipelineConfig(m.input, ctx.definitions, { hints: ctx.hints });
  } catch (e) {
    return done({ stage: 'parse', ...classify(e) });
  }
  const ignored = ignoredKeys(m.input, parsed);
  if (ignored.length) return done({ outcome: 'ignoredKey', stage: 'parse', ignoredKeys: ignored.slice(0, 10) });
  try {
    checkCompression(ctx.graph, createBuilders(parsed, ctx.definitions));
  } catch (e) {
    return done({ stage: 'graph', ...classify(e) });
  }
  // What the dry apply let through must also survive the rest of a run's pipeline (training
  // aside): range initialisation on a few examples and strip(), where two stacked quantizers
  // once threw a bare TypeError.
  try {
    const ctrl = compress(ctx.graph, createBuilders(parsed, ctx.definitions));
    try {
      await ctrl.initialize(ctx.data, { samples: ctx.data.size, batchSize: ctx.data.size });
      ctrl.strip();
    } finally {
      ctrl.dispose();
    }
  } catch (e) {
    return done({ stage: 'strip', ...classify(e) });
  }
  return done({ outcome: 'accepted', stage: null });
}

/** The `config` row of bench/results/fuzz.json. */
export interface ConfigFuzzRow {
  readonly target: 'config';
  readonly seed: number;
  readonly mutations: number;
  readonly accepted: number;
  readonly typedErrors: number;
  /** Typed (TensorpressError) but without a JSON path: counted apart, 0 expected. */
  readonly pathlessErrors: number;
  readonly untypedErrors: number;
  readonly crashes: number;
  readonly hangs: number;
  /** Accepted configs with a key the parsed config does not hold. */
  readonly ignoredKeys: number;
  readonly leaks: number;
  readonly typedByCode: Readonly<Record<string, number>>;
  /** Typed errors found on the graph (dry apply) rather than when parsing. */
  readonly graphErrors: number;
  /** Errors of any kind that only initialize + strip found (the dry apply should catch what it can). */
  readonly stripErrors: number;
  readonly byKind: Readonly<Record<string, number>>;
  /** Distinct key paths of the bases that a key typo renamed, of all there are. */
  readonly keyPathsMisspelt: number;
  readonly keyPathsTotal: number;
  readonly models: readonly string[];
  readonly bases: number;
  readonly maxCaseMs: number;
  /** The slowest case, to replay (`--only`). */
  readonly slowestCase: string;
  readonly seconds: number;
}

/** Counts a run's results (plus the runner's crash and hang counts) into the fuzz.json row. */
export function configFuzzRow(
  ctx: Pick<ConfigFuzzContext, 'bases'>,
  results: readonly ConfigCaseResult[],
  extra: { seed: number; crashes: number; hangs: number; seconds: number },
): ConfigFuzzRow {
  const count = (o: CaseOutcome): number => results.filter((r) => r.outcome === o).length;
  const tally = (keys: readonly string[]): Record<string, number> => {
    const t: Record<string, number> = {};
    for (const k of keys) t[k] = (t[k] ?? 0) + 1;
    return Object.fromEntries(Object.entries(t).sort(([a], [b]) => a.localeCompare(b)));
  };
  const allKeys = new Set(keyPathsOf(ctx.bases).keys());
  const slowest = results.reduce<ConfigCaseResult | undefined>((a, r) => (a === undefined || r.ms > a.ms ? r : a), undefined);
  const misspelt = new Set(results.flatMap((r) => r.renamedKeys).filter((k) => allKeys.has(k)));
  return {
    target: 'config',
    seed: extra.seed,
    mutations: results.length + extra.crashes + extra.hangs,
    accepted: count('accepted'),
    typedErrors: count('typedError'),
    pathlessErrors: count('pathlessError'),
    untypedErrors: count('untypedError'),
    crashes: extra.crashes,
    hangs: extra.hangs,
    ignoredKeys: count('ignoredKey'),
    leaks: results.filter((r) => r.leakedTensors !== 0).length,
    typedByCode: tally(results.filter((r) => r.outcome === 'typedError').map((r) => r.code!)),
    graphErrors: results.filter((r) => r.outcome === 'typedError' && r.stage === 'graph').length,
    stripErrors: results.filter((r) => r.stage === 'strip').length,
    byKind: tally(results.flatMap((r) => r.kinds)),
    keyPathsMisspelt: misspelt.size,
    keyPathsTotal: allKeys.size,
    models: ['residualCnn'],
    bases: ctx.bases.length,
    maxCaseMs: Math.round(slowest?.ms ?? 0),
    slowestCase: slowest ? `#${slowest.index} ${slowest.description}` : '',
    seconds: Math.round(extra.seconds * 10) / 10,
  };
}
