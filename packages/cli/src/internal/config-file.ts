import * as fs from 'node:fs/promises';
import {
  ConfigError,
  checkCompression,
  parsePipelineConfig,
  type AnyAlgorithmDefinition,
  type CompressionBuilder,
  type Graph,
  type PipelineConfig,
} from '@tensorpress/core-tensor';
import { algorithmHints } from '../discover.js';
import { CliError, EXIT_CODES } from '../exit-codes.js';

const MAX_CONFIG_BYTES = 1024 * 1024;

/** A {@link ConfigError} as the CLI reports it: exit code 2, the config file before the JSON path. Anything else is returned as is. */
export function inConfigFile(file: string | undefined, e: unknown): unknown {
  if (!(e instanceof ConfigError)) return e;
  return new CliError(EXIT_CODES.usage, e.code, file === undefined ? e.message : `${file}: ${e.message}`, { cause: e });
}

/**
 * Reads and validates a pipeline config file; errors name the file and the JSON path. `transform`
 * rewrites the text before validation (`compress --plan` puts a plan into its entries).
 */
export async function readPipelineConfig(file: string, definitions: readonly AnyAlgorithmDefinition[], transform?: (text: string) => string): Promise<PipelineConfig> {
  const st = await fs.stat(file).catch(() => null);
  if (!st) throw new CliError(EXIT_CODES.usage, 'CONFIG_MISSING', `config file ${file} does not exist`);
  if (!st.isFile()) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `config ${file} is not a file`);
  if (st.size > MAX_CONFIG_BYTES) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `config ${file} has ${st.size} bytes, over the limit of ${MAX_CONFIG_BYTES}`);
  const raw = await fs.readFile(file, 'utf8');
  const text = transform ? transform(raw) : raw;
  try {
    return parsePipelineConfig(text, definitions, { hints: algorithmHints() });
  } catch (e) {
    throw inConfigFile(file, e);
  }
}

/**
 * The dry apply: applies fresh builders of the pipeline to the model's graph (untrained weights
 * will do: only its structure matters) and frees the result, so that every error the config
 * decides on this graph (a plan entry or scope naming no node, nothing prunable, an unreachable
 * FLOPs target) stops the run before any training, naming the config file and JSON path.
 */
export function dryApply(graph: Graph, builders: () => CompressionBuilder[], file: string | undefined): void {
  try {
    checkCompression(graph, builders());
  } catch (e) {
    throw inConfigFile(file, e);
  }
}
