import * as fs from 'node:fs/promises';
import path from 'node:path';
import { useBackend, writeFileAtomic, type BackendName, type ProgressMode } from '@tensorpress/core-tensor';
import { toOnnx } from '@tensorpress/export-onnx';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { throwIfAborted } from './internal/abort.js';
import { loadData } from './load-data.js';
import { loadModel } from './load-model.js';

/** Options of {@link runExport} (`tensorpress export`). */
export interface RunExportOptions {
  model: string;
  /** The .onnx file to write. */
  out: string;
  /** Replace an existing file. Default false. */
  force?: boolean;
  /** Data a builtin model is trained on first. Default `mnist`. */
  data?: string;
  limit?: number;
  fp32Epochs?: number;
  cacheDir?: string | false;
  /** ONNX opset, 13..21. Default export-onnx's. */
  opset?: number;
  /** `qdq` (default) or `qoperator` for quantized graphs. */
  format?: 'qdq' | 'qoperator';
  backend?: BackendName | readonly BackendName[];
  progress?: ProgressMode;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** `tensorpress export`: any model the CLI reads, written as ONNX (atomically; an existing file only with `force`). */
export async function runExport(options: RunExportOptions): Promise<{ file: string; bytes: number }> {
  const file = path.resolve(options.out);
  const st = await fs.stat(file).catch(() => null);
  if (st?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FILE', `--out ${options.out} is a folder; give the .onnx file to write`);
  if (st && !options.force) throw new CliError(EXIT_CODES.usage, 'OUTPUT_EXISTS', `${options.out} exists; pass --force to replace it`);
  const parent = await fs.stat(path.dirname(file)).catch(() => null);
  if (!parent?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FOLDER', `folder ${path.dirname(file)} does not exist`);
  await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
  const needsData = options.model.startsWith('builtin:');
  const data = needsData ? await loadData(options.data ?? 'mnist', options.limit !== undefined ? { limit: options.limit } : {}) : undefined;
  const model = await loadModel(options.model, {
    ...(data ? { data } : {}),
    ...(options.fp32Epochs !== undefined ? { fp32Epochs: options.fp32Epochs } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    progress: options.progress ?? true,
    ...(options.log ? { log: options.log } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  throwIfAborted(options.signal);
  const bytes = toOnnx(model.graph, { ...(options.opset !== undefined ? { opset: options.opset } : {}), ...(options.format ? { format: options.format } : {}) });
  await writeFileAtomic(file, bytes);
  return { file, bytes: bytes.length };
}
