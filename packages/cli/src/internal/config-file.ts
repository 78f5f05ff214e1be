import * as fs from 'node:fs/promises';
import { ConfigError, parsePipelineConfig, type AnyAlgorithmDefinition, type PipelineConfig } from '@tensorpress/core-tensor';
import { algorithmHints } from '../discover.js';
import { CliError, EXIT_CODES } from '../exit-codes.js';

const MAX_CONFIG_BYTES = 1024 * 1024;

/** Reads and validates a pipeline config file; errors name the file and the JSON path. */
export async function readPipelineConfig(file: string, definitions: readonly AnyAlgorithmDefinition[]): Promise<PipelineConfig> {
  const st = await fs.stat(file).catch(() => null);
  if (!st) throw new CliError(EXIT_CODES.usage, 'CONFIG_MISSING', `config file ${file} does not exist`);
  if (!st.isFile()) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `config ${file} is not a file`);
  if (st.size > MAX_CONFIG_BYTES) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `config ${file} has ${st.size} bytes, over the limit of ${MAX_CONFIG_BYTES}`);
  const text = await fs.readFile(file, 'utf8');
  try {
    return parsePipelineConfig(text, definitions, { hints: algorithmHints() });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(EXIT_CODES.usage, e.code, `${file}: ${e.message}`, { cause: e });
    throw e;
  }
}
