import { evaluate, graphStatistics, useBackend, type BackendName, type ProgressMode } from '@tensorpress/core-tensor';
import { throwIfAborted } from './internal/abort.js';
import { terminalProgress } from './internal/progress-bar.js';
import { loadData } from './load-data.js';
import { loadModel } from './load-model.js';

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

/** `tensorpress eval`: test accuracy and loss of a model (builtin models are trained first, cached), plus its size. */
export async function runEval(options: RunEvalOptions): Promise<RunEvalResult> {
  const log = options.log ?? (() => undefined);
  await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
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
  const r = await evaluate(model.graph, data.test, { progress: terminalProgress(options.progress ?? true), ...(options.progress === false ? { log } : {}) });
  const t = graphStatistics(model.graph).total;
  return { model: options.model, data: data.name, accuracy: r.accuracy, loss: r.loss, count: r.count, params: t.params, flops: t.flops, bytes: t.bytes };
}
