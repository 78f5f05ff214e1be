import * as fs from 'node:fs/promises';
import path from 'node:path';
import { useBackend, writeFileAtomic, type BackendName, type ProgressMode } from '@tensorpress/core-tensor';
import { toOnnx } from '@tensorpress/export-onnx';
import type { WeightFormat } from '@tensorpress/export-tfjs';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { throwIfAborted } from './internal/abort.js';
import { TFJS_MODEL_FILE, tfjsOutputFiles } from './internal/tfjs-files.js';
import { loadData } from './load-data.js';
import { loadModel } from './load-model.js';
import { checkOutputDir, commitOutputs } from './output-dir.js';

/** Options of {@link runExport} (`tensorpress export`). */
export interface RunExportOptions {
  model: string;
  /** The .onnx file to write; with `format: 'tfjs'` the folder for model.json and its shards. */
  out: string;
  /** Replace an existing file (tfjs: write into a non-empty folder, replacing only tensorpress's own files). Default false. */
  force?: boolean;
  /** Data a builtin model is trained on first. Default `mnist`. */
  data?: string;
  limit?: number;
  fp32Epochs?: number;
  cacheDir?: string | false;
  /** ONNX opset, 13..21. Default export-onnx's. */
  opset?: number;
  /** ONNX with quantized graphs as `qdq` (default) or `qoperator`, or `tfjs`: a tfjs-layers model.json + weight shards. */
  format?: 'qdq' | 'qoperator' | 'tfjs';
  /** tfjs only: how weights are stored (default float32). */
  weights?: WeightFormat;
  backend?: BackendName | readonly BackendName[];
  progress?: ProgressMode;
  log?: (line: string) => void;
  signal?: AbortSignal;
}

/** What {@link runExport} wrote. */
export interface RunExportResult {
  /** The .onnx file, or the tfjs model.json. */
  file: string;
  /** Bytes written (tfjs: model.json plus the shards). */
  bytes: number;
  /** Every file written (tfjs: the shards, model.json and the folder's marker). */
  files: string[];
}

/**
 * `tensorpress export`: any model the CLI reads, written as ONNX (atomically; an existing file only
 * with `force`) or, with `format: 'tfjs'`, as a tfjs-layers model.json and weight shards in the
 * folder `out` (the rules of `compress --out`: a non-empty folder only with `force`).
 */
export async function runExport(options: RunExportOptions): Promise<RunExportResult> {
  const tfjs = options.format === 'tfjs';
  if (!tfjs && options.weights !== undefined) {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', '--weights applies to --format tfjs only (ONNX files keep the graph\'s own weights)');
  }
  if (tfjs && options.opset !== undefined) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', '--opset applies to ONNX only, not --format tfjs');
  const file = path.resolve(options.out);
  if (tfjs) await checkOutputDir(file, options.force ?? false);
  else await checkOnnxTarget(file, options);
  await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
  const needsData = options.model.startsWith('builtin:');
  const data = needsData ? await loadData(options.data ?? 'mnist', options.limit !== undefined ? { limit: options.limit } : {}) : undefined;
  const loaded = await loadModel(options.model, {
    ...(data ? { data } : {}),
    ...(options.fp32Epochs !== undefined ? { fp32Epochs: options.fp32Epochs } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    progress: options.progress ?? true,
    ...(options.log ? { log: options.log } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  throwIfAborted(options.signal);
  if (tfjs) {
    const out = tfjsOutputFiles(loaded.graph, options.weights ?? 'float32');
    const files = await commitOutputs(file, out.files, () => throwIfAborted(options.signal));
    return { file: path.join(file, TFJS_MODEL_FILE), bytes: out.bytes, files };
  }
  const bytes = toOnnx(loaded.graph, { ...(options.opset !== undefined ? { opset: options.opset } : {}), ...(options.format && options.format !== 'tfjs' ? { format: options.format } : {}) });
  await writeFileAtomic(file, bytes);
  return { file, bytes: bytes.length, files: [file] };
}

async function checkOnnxTarget(file: string, options: RunExportOptions): Promise<void> {
  const st = await fs.stat(file).catch(() => null);
  if (st?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FILE', `--out ${options.out} is a folder; give the .onnx file to write`);
  if (st && !options.force) throw new CliError(EXIT_CODES.usage, 'OUTPUT_EXISTS', `${options.out} exists; pass --force to replace it`);
  const parent = await fs.stat(path.dirname(file)).catch(() => null);
  if (!parent?.isDirectory()) throw new CliError(EXIT_CODES.usage, 'OUTPUT_NOT_A_FOLDER', `folder ${path.dirname(file)} does not exist`);
}
