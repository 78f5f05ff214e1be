import { z } from 'zod';
import type { CompressionBuilder } from './compression.js';
import { ConfigError, jsonPath } from './errors.js';
import { describeIssue, pickIssue } from './internal/config-issues.js';
import { scanJson } from './internal/json-text.js';
import { scopeFilter } from './scopes.js';
import { stackingViolation, type StackingRule } from './stacking.js';
import { closestMatch } from './suggest.js';

/** The common part of every algorithm's entry in a pipeline config. */
export interface AlgorithmConfig<P = unknown> {
  /** Discriminant: the algorithm's name. */
  readonly algorithm: string;
  /** Version of the algorithm's config format. */
  readonly version: number;
  /** The algorithm's own typed parameters. */
  readonly params: P;
  readonly ignoredScopes: readonly string[];
  readonly targetScopes: readonly string[];
}

/**
 * Where a builder's settings came from: the JSON path of its config entry (`$.compression[1]`),
 * so the errors it raises once it sees the graph (a plan entry naming no node, nothing prunable,
 * an unreachable target) name the path. `createBuilders` passes it; a builder called directly
 * with its options has none, and reports paths from `$` (the options object).
 */
export interface EntryLocation {
  readonly path: string;
}

/** JSON paths of an entry's params and of the entry (its scopes): `$.compression[1].params` and `$.compression[1]`, or `$` for both without a location. */
export function entryPaths(location?: EntryLocation): { readonly params: string; readonly entry: string } {
  return location ? { params: `${location.path}.params`, entry: location.path } : { params: '$', entry: '$' };
}

/**
 * How a technique package makes an algorithm available to configs and the CLI: its name,
 * config version, parameter schema, stacking rule and a factory of builders. Nothing registers
 * itself on import: callers pass definitions explicitly.
 */
export interface AlgorithmDefinition<P = unknown> {
  readonly algorithm: string;
  /** Highest config version understood; older ones must still parse. */
  readonly version: number;
  /** The npm package that provides it, for "install X" hints. */
  readonly packageName: string;
  /** One-line description for `--help` and `inspect`. */
  readonly description: string;
  /** Schema of `params` (defaults applied by the schema); strict at every level: an unknown key is an error. */
  readonly schema: z.ZodType<P>;
  /** Which algorithms it may share a pipeline with, and in what order; its builders carry the same rule. None: it stacks with anything (once). */
  readonly stacking?: StackingRule;
  /** Makes a builder from a validated config; `location` names the entry for errors found on the graph. */
  create(config: AlgorithmConfig<P>, location?: EntryLocation): CompressionBuilder;
}

/**
 * A definition of any parameter type. `create` takes its parameters contravariantly, so a list of
 * definitions with different parameter types needs this erased form.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- variance erasure, see above
export type AnyAlgorithmDefinition = AlgorithmDefinition<any>;

/** A whole pipeline: the model and data it runs on, and the stacked algorithms. */
export interface PipelineConfig {
  readonly input?: { readonly model?: string; readonly data?: string };
  readonly training?: { readonly epochs?: number; readonly batchSize?: number; readonly learningRate?: number; readonly optimizer?: string };
  readonly compression: readonly AlgorithmConfig[];
}

/** Options of {@link parsePipelineConfig}. */
export interface ParsePipelineOptions {
  /**
   * Where an algorithm that is not among the definitions can be installed from (algorithm name to
   * npm package), for the "run npm i X" hint of the error. Core names no package above it: the
   * caller that knows the family (the CLI) passes its table.
   */
  readonly hints?: Readonly<Record<string, string>>;
}

/** Nesting no config needs (the deepest setting is 6 levels down); deeper input is refused before it is walked. */
const MAX_DEPTH = 32;

/** Bounds of `training`: beyond them a run is a typo or diverges (a learning rate of 1e308 trains to NaN). */
export const TRAINING_LIMITS = Object.freeze({ maxEpochs: 10_000, maxBatchSize: 65_536, maxLearningRate: 10 });

const entrySchema = z
  .object({
    algorithm: z.string().min(1),
    version: z.number().int().positive().optional(),
    params: z.unknown().optional(),
    ignoredScopes: z.array(z.string()).optional(),
    targetScopes: z.array(z.string()).optional(),
  })
  .strict();

const pipelineSchema = z
  .object({
    input: z.object({ model: z.string().optional(), data: z.string().optional() }).strict().optional(),
    training: z
      .object({
        epochs: z.number().int().nonnegative().max(TRAINING_LIMITS.maxEpochs).optional(),
        batchSize: z.number().int().positive().max(TRAINING_LIMITS.maxBatchSize).optional(),
        learningRate: z.number().positive().max(TRAINING_LIMITS.maxLearningRate).optional(),
        optimizer: z.enum(['sgd', 'momentum', 'adam']).optional(),
      })
      .strict()
      .optional(),
    compression: z.union([entrySchema, z.array(entrySchema)]),
  })
  .strict();

/**
 * Throws a {@link ConfigError} for the most telling issue of a failed zod parse, with the JSON path.
 * Given the schema and the input, an unknown key gets a "did you mean" among the keys allowed there.
 */
export function throwZodError(error: z.ZodError, prefix: ReadonlyArray<string | number> = [], schema?: z.ZodType, input?: unknown): never {
  const issue = pickIssue(error.issues);
  // The described path is relative to the schema; the prefix places it in the whole config.
  const d = describeIssue(issue, schema, input);
  throw new ConfigError(jsonPath([...prefix, ...d.path]), d.message, { issues: error.issues.length });
}

/** Validates a value against a zod schema, throwing a {@link ConfigError} with the JSON path. */
export function parseWithSchema<T>(schema: z.ZodType<T>, value: unknown, prefix: ReadonlyArray<string | number> = []): T {
  const r = schema.safeParse(value);
  if (!r.success) throwZodError(r.error, prefix, schema, value);
  return r.data;
}

function unknownAlgorithm(name: string, path: string, known: readonly string[], hints: Readonly<Record<string, string>>): ConfigError {
  const pkg = Object.hasOwn(hints, name) ? hints[name] : undefined;
  if (pkg) return new ConfigError(path, `unknown algorithm "${name}"; it is provided by ${pkg}: run \`npm i ${pkg}\``, { algorithm: name, package: pkg });
  const near = closestMatch(name, [...known, ...Object.keys(hints)]);
  const nearPkg = near !== undefined && !known.includes(near) ? hints[near] : undefined;
  const hint = near === undefined ? '' : `; did you mean "${near}"${nearPkg ? ` (provided by ${nearPkg})` : ''}?`;
  return new ConfigError(path, `unknown algorithm "${name}"${hint}; known algorithms: ${[...known].sort().join(', ') || '(none installed)'}`, {
    algorithm: name,
    ...(near !== undefined ? { suggestion: near } : {}),
  });
}

/** A value nested deeper than {@link MAX_DEPTH} (or holding a cycle, which is infinitely deep), found without recursion. */
function tooDeep(value: unknown): ConfigError | undefined {
  const todo: { v: unknown; path: (string | number)[] }[] = [{ v: value, path: [] }];
  while (todo.length > 0) {
    const { v, path } = todo.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (path.length >= MAX_DEPTH) return new ConfigError(jsonPath(path), `nested deeper than ${MAX_DEPTH} levels; no config needs that`);
    // Only containers are queued: a long array of numbers or strings costs no paths.
    const children: [string | number, unknown][] = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    for (const [k, x] of children) if (typeof x === 'object' && x !== null) todo.push({ v: x, path: [...path, k] });
  }
  return undefined;
}

/** Entry paths of the configs {@link parsePipelineConfig} returned, for {@link createBuilders} (single-object form: `$.compression`). */
const entryPathsOf = new WeakMap<PipelineConfig, readonly string[]>();

/**
 * Validates a pipeline config (an object or JSON text) against the shared schema, each
 * algorithm's own parameter schema and the algorithms' stacking rules. Unknown keys are errors
 * at every level; a key written twice in JSON text is one too. Errors name the JSON path, e.g.
 * `$.compression[1].params.ratio: Too big: expected number to be <1, got 1.5` or
 * `$.compression[0].parms: unknown key "parms"; did you mean "params"?`.
 */
export function parsePipelineConfig(
  input: unknown,
  definitions: readonly AnyAlgorithmDefinition[],
  options: ParsePipelineOptions = {},
): PipelineConfig {
  let value = input;
  if (typeof input === 'string') {
    try {
      value = JSON.parse(input);
    } catch (e) {
      throw new ConfigError('$', `not valid JSON: ${(e as Error).message}`);
    }
    const problem = scanJson(input, MAX_DEPTH);
    if (problem?.path) throw new ConfigError(jsonPath(problem.path), problem.what);
  } else {
    const problem = tooDeep(input);
    if (problem) throw problem;
  }
  const base = parseWithSchema(pipelineSchema, value);
  const list = Array.isArray(base.compression);
  const entries = Array.isArray(base.compression) ? base.compression : [base.compression];
  const byName = new Map(definitions.map((d) => [d.algorithm, d]));
  const prefixOf = (i: number): (string | number)[] => (list ? ['compression', i] : ['compression']);
  const hints = options.hints ?? {};
  const compression = entries.map((e, i): AlgorithmConfig => {
    const prefix = prefixOf(i);
    const def = byName.get(e.algorithm);
    if (!def) throw unknownAlgorithm(e.algorithm, jsonPath([...prefix, 'algorithm']), [...byName.keys()], hints);
    const version = e.version ?? def.version;
    if (version > def.version) {
      throw new ConfigError(
        jsonPath([...prefix, 'version']),
        `version ${version} of "${e.algorithm}" is newer than the installed ${def.packageName} understands (${def.version}); upgrade it`,
      );
    }
    const params = parseWithSchema(def.schema, e.params ?? {}, [...prefix, 'params']);
    const scopes = { ignoredScopes: e.ignoredScopes ?? [], targetScopes: e.targetScopes ?? [] };
    scopeFilter(scopes, jsonPath(prefix));
    return { algorithm: e.algorithm, version, params, ...scopes };
  });
  const where = (i: number): string => jsonPath(prefixOf(i));
  const violation = stackingViolation(
    compression.map((c) => ({ algorithm: c.algorithm, stacking: byName.get(c.algorithm)!.stacking })),
    where,
  );
  if (violation) {
    throw new ConfigError(`${where(violation.index)}.algorithm`, violation.message, { stacking: violation.kind, other: where(violation.other) });
  }
  const config: PipelineConfig = { ...(base.input ? { input: base.input } : {}), ...(base.training ? { training: base.training } : {}), compression };
  entryPathsOf.set(config, compression.map((_, i) => where(i)));
  return config;
}

/**
 * Makes the builders of a validated pipeline config; each learns the JSON path of its entry
 * (see {@link EntryLocation}) for the errors it can only find on the graph.
 */
export function createBuilders(config: PipelineConfig, definitions: readonly AnyAlgorithmDefinition[]): CompressionBuilder[] {
  const byName = new Map(definitions.map((d) => [d.algorithm, d]));
  const paths = entryPathsOf.get(config);
  return config.compression.map((c, i) => {
    const def = byName.get(c.algorithm);
    if (!def) throw unknownAlgorithm(c.algorithm, `$.compression[${i}].algorithm`, [...byName.keys()], {});
    return def.create(c, { path: paths?.[i] ?? `$.compression[${i}]` });
  });
}
