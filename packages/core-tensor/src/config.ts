import { z } from 'zod';
import type { CompressionBuilder } from './compression.js';
import { ConfigError, jsonPath } from './errors.js';
import { scopeFilter } from './scopes.js';

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
 * How a technique package makes an algorithm available to configs and the CLI: its name,
 * config version, parameter schema and a factory of builders. Nothing registers itself on import:
 * callers pass definitions explicitly.
 */
export interface AlgorithmDefinition<P = unknown> {
  readonly algorithm: string;
  /** Highest config version understood; older ones must still parse. */
  readonly version: number;
  /** The npm package that provides it, for "install X" hints. */
  readonly packageName: string;
  /** One-line description for `--help` and `inspect`. */
  readonly description: string;
  /** Schema of `params` (defaults applied by the schema). */
  readonly schema: z.ZodType<P>;
  /** Makes a builder from a validated config. */
  create(config: AlgorithmConfig<P>): CompressionBuilder;
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

const entrySchema = z.object({
  algorithm: z.string().min(1),
  version: z.number().int().positive().optional(),
  params: z.unknown().optional(),
  ignoredScopes: z.array(z.string()).optional(),
  targetScopes: z.array(z.string()).optional(),
});

const pipelineSchema = z
  .object({
    input: z.object({ model: z.string().optional(), data: z.string().optional() }).strict().optional(),
    training: z
      .object({
        epochs: z.number().int().nonnegative().optional(),
        batchSize: z.number().int().positive().optional(),
        learningRate: z.number().positive().optional(),
        optimizer: z.enum(['sgd', 'momentum', 'adam']).optional(),
      })
      .strict()
      .optional(),
    compression: z.union([entrySchema, z.array(entrySchema)]),
  })
  .strict();

/** Throws a {@link ConfigError} for the first issue of a failed zod parse, with the JSON path. */
export function throwZodError(error: z.ZodError, prefix: ReadonlyArray<string | number> = []): never {
  const issue = error.issues[0]!;
  const path = jsonPath([...prefix, ...(issue.path as (string | number)[])]);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  throw new ConfigError(path, message, { issues: error.issues.length });
}

/** Validates a value against a zod schema, throwing a {@link ConfigError} with the JSON path. */
export function parseWithSchema<T>(schema: z.ZodType<T>, value: unknown, prefix: ReadonlyArray<string | number> = []): T {
  const r = schema.safeParse(value);
  if (!r.success) throwZodError(r.error, prefix);
  return r.data;
}

/**
 * Validates a pipeline config (an object or JSON text) against the shared schema and each
 * algorithm's own parameter schema. Errors name the JSON path, e.g.
 * `$.compression[1].params.ratio: Too big: expected number to be <1`.
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
  }
  const base = parseWithSchema(pipelineSchema, value);
  const entries = Array.isArray(base.compression) ? base.compression : [base.compression];
  const byName = new Map(definitions.map((d) => [d.algorithm, d]));
  const prefixOf = (i: number): (string | number)[] => (Array.isArray(base.compression) ? ['compression', i] : ['compression']);
  const compression = entries.map((e, i): AlgorithmConfig => {
    const prefix = prefixOf(i);
    const def = byName.get(e.algorithm);
    if (!def) {
      const pkg = options.hints?.[e.algorithm];
      const hint = pkg
        ? `it is provided by ${pkg}: run \`npm i ${pkg}\``
        : `known algorithms: ${[...byName.keys()].sort().join(', ') || '(none installed)'}`;
      throw new ConfigError(jsonPath([...prefix, 'algorithm']), `unknown algorithm "${e.algorithm}"; ${hint}`, {
        algorithm: e.algorithm,
        ...(pkg ? { package: pkg } : {}),
      });
    }
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
  return { ...(base.input ? { input: base.input } : {}), ...(base.training ? { training: base.training } : {}), compression };
}

/** Makes the builders of a validated pipeline config. */
export function createBuilders(config: PipelineConfig, definitions: readonly AnyAlgorithmDefinition[]): CompressionBuilder[] {
  const byName = new Map(definitions.map((d) => [d.algorithm, d]));
  return config.compression.map((c) => byName.get(c.algorithm)!.create(c));
}
