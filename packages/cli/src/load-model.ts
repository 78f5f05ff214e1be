import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GRAPH_FORMAT, fit, readGraph, writeGraph, type Graph, type ProgressMode } from '@tensorpress/core-tensor';
import { referenceModels, type ReferenceModelName } from '@tensorpress/models';
import { readOnnx } from '@tensorpress/export-onnx';
import { readTfjsModel } from '@tensorpress/export-tfjs';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { abortable, throwIfAborted } from './internal/abort.js';
import { terminalProgress } from './internal/progress-bar.js';
import type { LoadedData } from './load-data.js';

/** The 3-epoch FP32 recipes of the training bench (Adam, cosine decay, seed 0), by dataset. */
export const FP32_RECIPES: Readonly<Record<'mnist' | 'fashion-mnist', { batchSize: number; learningRate: number }>> = Object.freeze({
  mnist: { batchSize: 32, learningRate: 2e-3 },
  'fashion-mnist': { batchSize: 64, learningRate: 4e-3 },
});

/** Names accepted after `builtin:`. */
export const BUILTIN_MODELS = Object.freeze(Object.keys(referenceModels)) as readonly ReferenceModelName[];

/** Largest model.json accepted (read before parsing). */
const MAX_JSON_BYTES = 64 * 1024 * 1024;

/** A loaded model and where it came from. */
export interface LoadedModel {
  readonly graph: Graph;
  /** What the user passed. */
  readonly source: string;
  readonly kind: 'builtin' | 'tfjs-layers' | 'tensorpress-graph' | 'onnx';
  /** Builtin models: the cached trained weights used or written, if any. */
  readonly cacheFile?: string;
  /** Builtin models: seconds spent training now (undefined when the cache had them or training was off). */
  readonly trainSeconds?: number;
  /** Builtin models: false when returned untrained (no data given). */
  readonly trained: boolean;
  /** Problems of the file that did not stop it loading (ONNX: NaN weights, quantization scales that are not finite and positive). */
  readonly warnings?: readonly string[];
}

/** Options of {@link loadModel}. */
export interface LoadModelOptions {
  /** Data a builtin model is shaped for and trained on; without it a builtin model is returned untrained for MNIST shapes. */
  data?: LoadedData;
  /** FP32 epochs of a builtin model. Default 3. */
  fp32Epochs?: number;
  /** Where trained builtin weights are cached; `false` disables the cache. Default {@link defaultCacheDir}. */
  cacheDir?: string | false;
  progress?: ProgressMode;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** `$TENSORPRESS_CACHE`, else `node_modules/.cache/tensorpress` in the working folder when node_modules exists, else `~/.cache/tensorpress`. */
export async function defaultCacheDir(): Promise<string> {
  const env = process.env['TENSORPRESS_CACHE'];
  if (env) return path.resolve(env);
  const nm = path.resolve('node_modules');
  const st = await fs.stat(nm).catch(() => null);
  if (st?.isDirectory()) return path.join(nm, '.cache', 'tensorpress');
  return path.join(process.env['XDG_CACHE_HOME'] || path.join(os.homedir(), '.cache'), 'tensorpress');
}

function inputError(code: string, message: string): CliError {
  return new CliError(EXIT_CODES.input, code, message);
}

async function readBounded(file: string, max: number, what: string): Promise<Buffer> {
  const st = await fs.stat(file).catch(() => null);
  if (!st) throw inputError('IO_ERROR', `${what} ${file} does not exist`);
  if (!st.isFile()) throw inputError('IO_ERROR', `${what} ${file} is not a file`);
  if (st.size > max) throw inputError('INPUT_INVALID', `${what} ${file} has ${st.size} bytes, over the limit of ${max}`);
  return fs.readFile(file);
}

function dataKey(data: LoadedData): string {
  if (data.name === 'mnist' || data.name === 'fashion-mnist') return data.name;
  return `dir-${createHash('sha256').update(data.name).digest('hex').slice(0, 10)}`;
}

async function builtin(spec: string, name: string, options: LoadModelOptions): Promise<LoadedModel> {
  if (!(BUILTIN_MODELS as readonly string[]).includes(name)) {
    throw inputError('INPUT_INVALID', `unknown builtin model "${name}"; builtin models: ${BUILTIN_MODELS.map((n) => `builtin:${n}`).join(', ')}`);
  }
  const factory = referenceModels[name as ReferenceModelName];
  const data = options.data;
  if (!data) return { graph: factory({ seed: 0 }), source: spec, kind: 'builtin', trained: false };
  const make = (): Graph => factory({ seed: 0, inputShape: data.train.exampleShape, numClasses: Math.max(data.train.numClasses, data.test.numClasses) });
  const epochs = options.fp32Epochs ?? 3;
  const log = options.log ?? (() => undefined);
  const cacheDir = options.cacheDir === false ? undefined : (options.cacheDir ?? (await defaultCacheDir()));
  const file = cacheDir ? path.join(cacheDir, `${name}-${dataKey(data)}-${data.train.size}-e${epochs}-s0.json`) : undefined;
  if (file) {
    const cached = await readGraph(file).catch(() => undefined);
    if (cached) {
      log(`builtin:${name}: trained FP32 weights from ${file}`);
      return { graph: cached, source: spec, kind: 'builtin', cacheFile: file, trained: true };
    }
  }
  if (epochs === 0) return { graph: make(), source: spec, kind: 'builtin', trained: false };
  const recipe = FP32_RECIPES[data.recipe];
  log(`builtin:${name}: training FP32 on ${data.train.size} examples, ${epochs} epoch(s), Adam ${recipe.learningRate}, batch ${recipe.batchSize}, cosine`);
  const started = performance.now();
  const { graph } = await fit(make(), data.train, {
    epochs,
    batchSize: recipe.batchSize,
    optimizer: { type: 'adam', learningRate: recipe.learningRate },
    lrSchedule: 'cosine',
    seed: 0,
    progress: terminalProgress(options.progress ?? true),
    // Core (or the bar) prints the epoch lines itself unless progress is off; then they go to the caller's log.
    ...(options.progress === false && options.log ? { log: options.log } : {}),
    callbacks: { onBatchEnd: () => abortable(options.signal) },
  });
  const trainSeconds = (performance.now() - started) / 1000;
  throwIfAborted(options.signal);
  if (file) {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      await writeGraph(file, graph, { overwrite: true });
      log(`builtin:${name}: cached the trained weights in ${file}`);
    } catch (e) {
      log(`builtin:${name}: could not cache the trained weights (${e instanceof Error ? e.message : String(e)})`);
    }
  }
  return { graph, source: spec, kind: 'builtin', ...(file ? { cacheFile: file } : {}), trainSeconds, trained: true };
}

/**
 * Loads a model: `builtin:NAME` (a core reference model, trained on `options.data` first and
 * cached), a `.onnx` file, a tfjs-layers `model.json` (with its weight shards), or a tensorpress
 * graph written by `writeGraph` (its `.json`, or a folder with graph.json). Sizes are checked
 * before reading; bad input is a {@link CliError} with exit code 3.
 */
export async function loadModel(spec: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  if (spec.startsWith('builtin:')) return builtin(spec, spec.slice('builtin:'.length), options);
  const file = path.resolve(spec);
  const st = await fs.stat(file).catch(() => null);
  if (!st) throw inputError('IO_ERROR', `model file ${spec} does not exist`);
  if (st.isDirectory()) return { graph: await readGraph(file), source: spec, kind: 'tensorpress-graph', trained: true };
  const ext = path.extname(file).toLowerCase();
  if (ext === '.onnx') {
    const warnings: string[] = [];
    const graph = await readOnnx(file, { onWarning: (w) => warnings.push(w.message) });
    for (const w of warnings) options.log?.(`warning: ${w}`);
    return { graph, source: spec, kind: 'onnx', trained: true, warnings };
  }
  if (ext !== '.json') {
    throw inputError(
      'INPUT_INVALID',
      `model ${spec}: unknown format "${ext || '(no extension)'}"; expected a .onnx file, a model.json (tfjs-layers or tensorpress graph) or builtin:NAME (${BUILTIN_MODELS.join(', ')})`,
    );
  }
  const text = (await readBounded(file, MAX_JSON_BYTES, 'model file')).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw inputError('INPUT_INVALID', `model ${spec}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw inputError('INPUT_INVALID', `model ${spec}: expected a JSON object`);
  const obj = json as Record<string, unknown>;
  if (obj['format'] === GRAPH_FORMAT) return { graph: await readGraph(file), source: spec, kind: 'tensorpress-graph', trained: true };
  // export-tfjs reads the shards beside it (size-checked, inside the folder) in any weight format tfjs writes.
  if ('modelTopology' in obj) return { graph: await readTfjsModel(file), source: spec, kind: 'tfjs-layers', trained: true };
  throw inputError('INPUT_INVALID', `model ${spec}: neither a tfjs-layers model.json (no "modelTopology") nor a tensorpress graph (no "format": "${GRAPH_FORMAT}")`);
}
