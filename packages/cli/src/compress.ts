import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  compress,
  createBuilders,
  evaluate,
  fit,
  graphStatistics,
  removeStaleTempFiles,
  useBackend,
  type BackendName,
  type Dataset,
  type Graph,
  type Json,
  type PipelineConfig,
  type ProgressMode,
} from '@tensorpress/core-tensor';
import { checkParity, ortLatency, toOnnx } from '@tensorpress/export-onnx';
import type { WeightFormat } from '@tensorpress/export-tfjs';
import { checkIdentity, checkpointOption, interruption, prepareCheckpoints, removeCheckpoint, runIdentity } from './checkpoint-dir.js';
import { discoverAlgorithms } from './discover.js';
import { CliError, EXIT_CODES } from './exit-codes.js';
import { abortable, throwIfAborted } from './internal/abort.js';
import { dryApply, inConfigFile, readPipelineConfig } from './internal/config-file.js';
import { injectPlan, readPlanFile } from './internal/plan-file.js';
import { terminalProgress } from './internal/progress-bar.js';
import { TFJS_MODEL_FILE, tfjsOutputFiles } from './internal/tfjs-files.js';
import { checkOutputDir, commitOutputs } from './output-dir.js';
import { loadData } from './load-data.js';
import { loadModel } from './load-model.js';
import { reportChart, reportMarkdown, type CompressReport, type ModelMeasurements, type ParitySummary } from './report.js';

/** Options of {@link runCompress} (the `tensorpress compress` command). */
export interface RunCompressOptions {
  /** `builtin:NAME`, a .onnx file, a tfjs-layers or tensorpress model.json. Default: the config's `input.model`. */
  model?: string;
  /** `mnist`, `fashion-mnist` or a folder with the four IDX files. Default: the config's `input.data`, else `mnist`. */
  data?: string;
  /** Path of the pipeline config (JSON), or an already parsed config. */
  config: string | PipelineConfig;
  /** Output folder; must not exist or be empty unless `force`. */
  out: string;
  /** Write into a non-empty output folder, replacing only tensorpress's own file names. Default false. */
  force?: boolean;
  /** At most this many examples of each split. */
  limit?: number;
  /** Overrides the config's `training.epochs` (fine-tuning epochs). */
  epochs?: number;
  /** FP32 epochs of a builtin model that is not cached yet. Default 3. */
  fp32Epochs?: number;
  /** Cache of trained builtin models; `false` disables it. */
  cacheDir?: string | false;
  /** tfjs backend(s) to try in order. Default `['wasm', 'cpu']`. */
  backend?: BackendName | readonly BackendName[];
  /** onnxruntime timed runs per model and round (3 rounds); 0 skips the latency measurement. Default 30. */
  latencyRuns?: number;
  /**
   * Also write the stripped model as a tfjs-layers model.json + weight shards in `out`, with its
   * weights stored this way (export-tfjs's formats). Default: not written.
   */
  tfjs?: WeightFormat;
  /** Test examples compared in the parity check. Default 512. */
  parityExamples?: number;
  /** Progress of fit/evaluate: a bar on a TTY, else core's `ProgressMode` lines. Default true. */
  progress?: ProgressMode;
  /** Receives every status line. Default: nothing. */
  log?: (line: string) => void;
  /** Aborting it stops the run at the next training step or phase (an {@link InterruptedError}). */
  signal?: AbortSignal;
  /** Folder of the fine-tuning checkpoint (written every `checkpointEvery` steps and when `signal` aborts; removed when the run completes). */
  checkpointDir?: string;
  /** Fine-tuning steps between checkpoints. Default 100. */
  checkpointEvery?: number;
  /** Continue the interrupted run whose checkpoint is in `checkpointDir` (same model, data and config). */
  resume?: boolean;
  /** A plan.json of `tensorpress analyze`, put into the config entries it belongs to (`params.plan`). */
  plan?: string;
}

/** What {@link runCompress} returns (and wrote). */
export interface RunCompressResult {
  readonly report: CompressReport;
  readonly outDir: string;
  /** Absolute paths of every file written. */
  readonly files: readonly string[];
}

const FILES = { onnx: 'model.onnx', reportMd: 'report.md', reportJson: 'report.json', chart: 'chart.svg' } as const;
const DEFAULT_TRAINING = { epochs: 3, batchSize: 64, learningRate: 1e-3, optimizer: 'adam' as const };

function firstBatch(data: Dataset, n: number): tf.Tensor {
  const b = data.batches(Math.min(n, data.size)).next();
  if (b.done) throw new CliError(EXIT_CODES.input, 'DATA_INVALID', 'the test split is empty');
  b.value.y.dispose();
  return b.value.x;
}

function isQuantized(g: Graph): boolean {
  return g.nodes.some((n) => n.op === 'DequantizeLinear' || n.op === 'QuantizeLinear');
}

function logitsRange(g: Graph, x: tf.Tensor): { lo: number; hi: number; absMax: number } {
  const ex = new Executor(g);
  try {
    const range = tf.tidy(() => {
      const out = ex.run(x)[0]!;
      return tf.stack([tf.min(out), tf.max(out)]);
    });
    const [lo, hi] = Array.from(range.dataSync()) as [number, number];
    range.dispose();
    return { lo, hi, absMax: Math.max(Math.abs(lo), Math.abs(hi)) };
  } finally {
    ex.dispose();
  }
}

/**
 * Runs onnxruntime on the exported file next to the graph and applies the parity rule: FP32 files
 * within 1e-4 relative to the largest logit (DESIGN §5); quantized files with top-1 agreement ≥ 99%,
 * at most 0.1% of logits beyond one output quantization step and none beyond 1.5 steps, the step
 * being the in-process logits' range / 255.
 */
export async function parityOf(graph: Graph, bytes: Uint8Array, x: tf.Tensor): Promise<ParitySummary> {
  const range = logitsRange(graph, x);
  const quantized = isQuantized(graph);
  const examples = x.shape[0] ?? 0;
  if (quantized) {
    const step = Math.max((range.hi - range.lo) / 255, 1e-12);
    const r = await checkParity(graph, bytes, x, { outputStep: step });
    const count = r.outputs.reduce((s, o) => s + o.count, 0);
    const beyond = r.beyondStep ?? 0;
    const top1 = r.top1Agreement ?? 1;
    return {
      passed: top1 >= 0.99 && beyond <= 0.001 * count && r.maxAbsDiff <= 1.5 * step,
      criterion: 'quantized: top-1 agreement ≥ 99%, ≤ 0.1% of logits beyond one output step, none beyond 1.5 steps',
      examples,
      maxAbsDiff: r.maxAbsDiff,
      top1Agreement: r.top1Agreement,
      outputStep: step,
      beyondStep: r.beyondStep,
    };
  }
  const atol = 1e-4 * Math.max(1, range.absMax);
  const r = await checkParity(graph, bytes, x, { atol });
  return {
    passed: r.withinTolerance,
    criterion: `FP32: max |diff| ≤ 1e-4 × max(1, largest |logit|) = ${atol.toExponential(2)}`,
    examples,
    maxAbsDiff: r.maxAbsDiff,
    top1Agreement: r.top1Agreement,
    outputStep: null,
    beyondStep: null,
  };
}

function median(v: readonly number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Median batch-1 single-thread ORT latency of both files, alternated over 3 rounds. */
async function latencies(files: readonly Uint8Array[], runs: number, signal: AbortSignal | undefined): Promise<(number | null)[]> {
  if (runs === 0) return files.map(() => null);
  const samples: number[][] = files.map(() => []);
  for (let round = 0; round < 3; round++) {
    for (const [i, bytes] of files.entries()) {
      await abortable(signal);
      samples[i]!.push((await ortLatency(bytes, { batch: 1, threads: 1, runs, warmup: 5 })).medianMs);
    }
  }
  return samples.map(median);
}

async function ensureOnnxRuntime(): Promise<void> {
  try {
    await import('onnxruntime-node');
  } catch (e) {
    throw new CliError(
      EXIT_CODES.unexpected,
      'ONNX_RUNTIME_UNAVAILABLE',
      `onnxruntime-node did not load (${e instanceof Error ? e.message.split('\n')[0] : String(e)}); run \`npm i onnxruntime-node\` (the parity check needs it)`,
    );
  }
}

function measurements(g: Graph, acc: { accuracy: number; loss: number }, onnxBytes: number, latencyMs: number | null): ModelMeasurements {
  const t = graphStatistics(g).total;
  return { accuracy: acc.accuracy, loss: acc.loss, params: t.params, flops: t.flops, macs: t.macs, paramBytes: t.bytes, onnxBytes, latencyMs };
}

/**
 * `tensorpress compress`: loads the model (training a builtin one first, cached), applies the
 * stacked pipeline of the config, fine-tunes with the controller, evaluates, strips, exports ONNX,
 * checks parity in onnxruntime-node, measures ORT latency, and writes model.onnx, report.md,
 * report.json and chart.svg to `out`, all at the end and each atomically. Nothing is written
 * when it fails or is interrupted before that; a parity failure still writes the report, then
 * throws a {@link CliError} with exit code 4.
 */
export async function runCompress(options: RunCompressOptions): Promise<RunCompressResult> {
  const started = performance.now();
  const log = options.log ?? (() => undefined);
  const signal = options.signal;
  const outDir = path.resolve(options.out);
  // A run killed mid-write (SIGKILL) leaves temp files that would make the folder look foreign.
  await removeStaleTempFiles(outDir);
  await checkOutputDir(outDir, options.force ?? false);
  const checkpoints = await prepareCheckpoints({ dir: options.checkpointDir, every: options.checkpointEvery, resume: options.resume, outDir });
  const { definitions } = await discoverAlgorithms();
  const configFile = typeof options.config === 'string' ? options.config : undefined;
  if (options.plan !== undefined && typeof options.config !== 'string') {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', 'plan: give the config as a file path (the plan goes into its entries)');
  }
  const plan = options.plan !== undefined ? await readPlanFile(options.plan) : undefined;
  const config =
    typeof options.config === 'string'
      ? await readPipelineConfig(options.config, definitions, plan ? (text) => injectPlan(text, plan, options.config as string, options.plan!) : undefined)
      : options.config;
  if (config.compression.length === 0) throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', 'the config has no compression entries');
  // Teachers a config names (knowledge_distillation's `teacher`), loaded once with the model loaders.
  const teachers = new Map<string, Graph>();
  const builders = (): ReturnType<typeof createBuilders> => withTeachers(createBuilders(config, definitions), teachers);
  // Fail before training when a config's algorithm cannot be built.
  try {
    builders();
  } catch (e) {
    throw inConfigFile(configFile, e);
  }
  const modelSpec = options.model ?? config.input?.model;
  if (!modelSpec) throw new CliError(EXIT_CODES.usage, 'MODEL_MISSING', 'no model: pass --model (or set "input.model" in the config)');
  const dataSpec = options.data ?? config.input?.data ?? 'mnist';
  if (options.epochs !== undefined && !(Number.isInteger(options.epochs) && options.epochs >= 0)) {
    throw new CliError(EXIT_CODES.usage, 'CONFIG_INVALID', `--epochs: expected an integer >= 0, got ${options.epochs}`);
  }
  await ensureOnnxRuntime();
  const backend = await useBackend((options.backend ?? ['wasm', 'cpu']) as BackendName | BackendName[]);
  log(`backend: ${backend.name}`);
  throwIfAborted(signal);

  const progress = options.progress ?? true;
  // A model file is read before the data, so a bad path fails at once; a builtin model needs the data.
  const early = modelSpec.startsWith('builtin:') ? undefined : await loadModel(modelSpec, { log });
  const data = await loadData(dataSpec, options.limit !== undefined ? { limit: options.limit } : {});
  log(`data: ${data.name}, ${data.train.size} train / ${data.test.size} test examples`);
  if (checkpoints) checkIdentity(checkpoints, runIdentity(modelSpec, data.name, options.limit, config));
  // A teacher the config names is loaded like the model (a builtin one trained on the data, or cached).
  for (const spec of teacherSpecs(builders())) {
    if (!teachers.has(spec)) {
      log(`teacher: ${spec}`);
      teachers.set(spec, (await loadModel(spec, { data, progress, log, ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}), ...(signal ? { signal } : {}) })).graph);
    }
  }
  // Whatever the config decides on this graph fails now, before a builtin model's FP32 training
  // (its untrained form has the same structure).
  dryApply((early ?? (await loadModel(modelSpec, { data, fp32Epochs: 0, cacheDir: false }))).graph, builders, configFile);
  const model = early ?? await loadModel(modelSpec, {
    data,
    ...(options.fp32Epochs !== undefined ? { fp32Epochs: options.fp32Epochs } : {}),
    ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
    progress,
    log,
    ...(signal ? { signal } : {}),
  });
  throwIfAborted(signal);
  const fp32 = model.graph;
  const fp32Eval = await evaluate(fp32, data.test, { progress: false });
  log(`FP32 ${modelSpec}: test accuracy ${(fp32Eval.accuracy * 100).toFixed(2)}%`);
  throwIfAborted(signal);

  const training = { ...DEFAULT_TRAINING, ...config.training, ...(options.epochs !== undefined ? { epochs: options.epochs } : {}) };
  const ctrl = compress(fp32, builders(), { seed: 0 });
  let parityInput: tf.Tensor | undefined;
  try {
    log(`compressing with ${config.compression.map((c) => c.algorithm).join(' + ')}; fine-tuning ${training.epochs} epoch(s)`);
    const t0 = performance.now();
    if (checkpoints?.resumeFrom) {
      const c = checkpoints.resumeFrom;
      log(`resuming from ${checkpoints.file}: epoch ${c.epoch + 1}/${training.epochs}, step ${c.step} (global step ${c.globalStep})`);
    } else if (checkpoints) log(`checkpoints every ${checkpoints.everySteps} steps and on Ctrl-C: ${checkpoints.file}`);
    const { history } = await fit(ctrl.model.executor, data.train, {
      controller: ctrl,
      epochs: training.epochs,
      batchSize: training.batchSize,
      optimizer: { type: training.optimizer as 'sgd' | 'momentum' | 'adam', learningRate: training.learningRate },
      lrSchedule: 'cosine',
      seed: 0,
      progress: terminalProgress(progress),
      // Core (or the bar) prints the epoch lines itself unless progress is off; then they go to our log.
      ...(progress === false ? { log } : {}),
      ...(signal ? { signal } : {}),
      ...(checkpoints
        ? { checkpoint: checkpointOption(checkpoints), fingerprint: runIdentity(modelSpec, data.name, options.limit, config, fp32) }
        : {}),
      ...(checkpoints?.resumeFrom ? { resumeFrom: checkpoints.resumeFrom } : {}),
    }).catch((e: unknown) => {
      throw interruption(e, checkpoints);
    });
    const trainSeconds = (performance.now() - t0) / 1000;
    throwIfAborted(signal);
    const stripped = ctrl.strip();
    const algorithms = ctrl.controllers.map((c) => c.statistics());
    const compressedEval = await evaluate(stripped, data.test, { progress: false });
    log(`compressed: test accuracy ${(compressedEval.accuracy * 100).toFixed(2)}%`);
    throwIfAborted(signal);

    const fp32Onnx = toOnnx(fp32);
    const onnx = toOnnx(stripped);
    parityInput = firstBatch(data.test, options.parityExamples ?? 512);
    const parity = await parityOf(stripped, onnx, parityInput);
    log(`ONNX parity ${parity.passed ? 'passed' : 'FAILED'}: max |diff| ${parity.maxAbsDiff.toExponential(2)}`);
    throwIfAborted(signal);
    if (options.latencyRuns !== 0) log('measuring onnxruntime latency (batch 1, 1 thread)');
    const [fp32Ms, compressedMs] = await latencies([fp32Onnx, onnx], options.latencyRuns ?? 30, signal);

    const fp32M = measurements(fp32, fp32Eval, fp32Onnx.length, fp32Ms ?? null);
    const compM = measurements(stripped, compressedEval, onnx.length, compressedMs ?? null);
    // Before any file is written: a graph tfjs-layers cannot express fails the run here.
    const tfjs = options.tfjs === undefined ? undefined : { weights: options.tfjs, ...tfjsOutputFiles(stripped, options.tfjs) };
    const report: CompressReport = {
      format: 'tensorpress.compress-report',
      version: 1,
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version, backend: backend.name },
      model: { source: model.source, kind: model.kind },
      data: { name: data.name, trainExamples: data.train.size, testExamples: data.test.size },
      pipeline: config,
      training: {
        epochs: training.epochs,
        batchSize: training.batchSize,
        optimizer: training.optimizer,
        learningRate: training.learningRate,
        lrSchedule: 'cosine',
        seconds: trainSeconds,
        history: history.map((h) => ({ ...h }) as unknown as Json),
      },
      fp32: fp32M,
      compressed: compM,
      ratios: {
        deltaPts: (compM.accuracy - fp32M.accuracy) * 100,
        params: compM.params / fp32M.params,
        flops: compM.flops / fp32M.flops,
        onnxBytes: compM.onnxBytes / fp32M.onnxBytes,
        latency: compM.latencyMs !== null && fp32M.latencyMs !== null ? compM.latencyMs / fp32M.latencyMs : null,
      },
      algorithms,
      parity,
      files: { ...FILES, ...(tfjs ? { tfjs: TFJS_MODEL_FILE } : {}) },
      ...(tfjs ? { tfjs: { weights: tfjs.weights, bytes: tfjs.bytes, shards: tfjs.shards } } : {}),
      seconds: (performance.now() - started) / 1000,
    };
    throwIfAborted(signal);
    const files = await commitOutputs(
      outDir,
      [
        ...(tfjs?.files ?? []),
        { name: FILES.onnx, data: onnx },
        { name: FILES.chart, data: reportChart(report) },
        { name: FILES.reportJson, data: `${JSON.stringify(report, null, 2)}\n` },
        { name: FILES.reportMd, data: reportMarkdown(report) },
      ],
      () => throwIfAborted(signal),
    );
    await removeCheckpoint(checkpoints);
    if (!parity.passed) {
      throw new CliError(EXIT_CODES.parity, 'PARITY_FAILED', `the exported ONNX model does not match the graph (max |diff| ${parity.maxAbsDiff.toExponential(2)}); see ${path.join(outDir, FILES.reportMd)}`);
    }
    return { report, outDir, files };
  } finally {
    parityInput?.dispose();
    ctrl.dispose();
  }
}

/** A builder that names a teacher model to load (knowledge_distillation; duck-typed: the CLI finds techniques at run time). */
interface TeacherBuilder {
  readonly teacherSource: string | undefined;
  setTeacher(graph: Graph): void;
}

function isTeacherBuilder(b: unknown): b is TeacherBuilder {
  const t = b as Partial<TeacherBuilder>;
  return typeof t.setTeacher === 'function' && typeof t.teacherSource === 'string';
}

/** The teacher model specs the builders name. */
function teacherSpecs(builders: readonly unknown[]): string[] {
  return [...new Set(builders.filter(isTeacherBuilder).map((b) => b.teacherSource!))];
}

/** Hands every builder that names a teacher the loaded graph. */
function withTeachers<B>(builders: B[], teachers: ReadonlyMap<string, Graph>): B[] {
  for (const b of builders) {
    if (!isTeacherBuilder(b)) continue;
    const g = teachers.get(b.teacherSource!);
    if (g) b.setTeacher(g);
  }
  return builders;
}
