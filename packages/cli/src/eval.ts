import { evaluate, graphStatistics, useBackend, type BackendName, type ProgressMode } from '@tensorpress/core-tensor';
import { throwIfAborted } from './internal/abort.js';
import { terminalProgress } from './internal/progress-bar.js';
import { loadData, type LoadedData } from './load-data.js';
import { loadModel, type LoadedModel } from './load-model.js';

/** Options of {@link runEval} (`tensorpress eval`). */
export interface RunEvalOptions {
  model: string;
  /** Default `mnist`. */
  data?: string;
  limit?: number;
  fp32Epochs?: number;
  cacheDir?: string | false;
  backend?: BackendName | readonly BackendName[];
  progress?: ProgressMode;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** What {@link runEval} measured. */
export interface RunEvalResult {
  readonly model: string;
  readonly data: string;
  readonly accuracy: number;
  readonly loss: number;
  readonly count: number;
  readonly params: number;
  readonly flops: number;
  readonly bytes: number;
}

/**
 * The backend, the data and the model of `eval` and `analyze` (a builtin model is trained first,
 * then cached); logs the backend.
 */
export async function evalInputs(options: RunEvalOptions): Promise<{ data: LoadedData; model: LoadedModel }> {
  const log = options.log ?? (() => undefined);
  const backend = await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
  log(`backend: ${backend.name}`);
  const data = await loadData(options.data ?? 'mnist', options.limit !== undefined ? { limit: options.limit } : {});
  const model = await loadModel(options.model, {
    data,
    ...(options.fp32Epochs !== undefined ? { fp32Epochs: options.fp32Epochs } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    progress: options.progress ?? true,
    log,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  throwIfAborted(options.signal);
  return { data, model };
}

/** `tensorpress eval`: test accuracy and loss of a model (builtin models are trained first, cached), plus its size. */
export async function runEval(options: RunEvalOptions): Promise<RunEvalResult> {
  const log = options.log ?? (() => undefined);
  const { data, model } = await evalInputs(options);
  const r = await evaluate(model.graph, data.test, { progress: terminalProgress(options.progress ?? true), ...(options.progress === false ? { log } : {}) });
  const t = graphStatistics(model.graph).total;
  return { model: options.model, data: data.name, accuracy: r.accuracy, loss: r.loss, count: r.count, params: t.params, flops: t.flops, bytes: t.bytes };
}
