/**
 * Compression in the page: the packages' own APIs, as the CLI drives them in Node. A pipeline
 * config (the repo's examples/*.json shape) becomes builders; QAT/pruning configs train with
 * `fit` (a few steps here: the page is for showing it works), PTQ calibrates only. The result
 * is written as ONNX and tfjs files (bytes) and the ONNX is run in onnxruntime-web.
 */
import type * as tf from '@tensorflow/tfjs-core';
import {
  compress,
  createBuilders,
  evaluate,
  fit,
  graphStatistics,
  parsePipelineConfig,
  type AnyAlgorithmDefinition,
  type Dataset,
  type Graph,
  type PipelineConfig,
} from '@tensorpress/core-tensor';
import { checkParity, toOnnx, type ParityReport } from '@tensorpress/export-onnx';
import { toTfjsModel } from '@tensorpress/export-tfjs';
import { pruningAlgorithms } from '@tensorpress/pruning';
import { quantAlgorithms } from '@tensorpress/quant';
import { sparsityAlgorithms } from '@tensorpress/sparsity';
import * as ort from 'onnxruntime-web/wasm';

/** The algorithms the page knows (the CLI finds the same ones by package). */
export const ALGORITHMS: readonly AnyAlgorithmDefinition[] = [...quantAlgorithms, ...pruningAlgorithms, ...sparsityAlgorithms];

let ortReady = false;
/** onnxruntime-web, single-threaded (the page is not cross-origin isolated), binaries from `wasm/`. */
export function onnxRuntime(): typeof ort {
  if (!ortReady) {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = { wasm: new URL(/* @vite-ignore */ '../wasm/ort-wasm-simd-threaded.wasm', import.meta.url).href };
    ortReady = true;
  }
  return ort;
}

/** One training step's numbers, for progress and the live chart. */
export interface StepInfo {
  step: number;
  steps: number;
  loss: number;
}

export interface PipelineOptions {
  /** Optimisation steps at most (the config's epochs are capped to them). Default 20. */
  maxSteps?: number;
  /** Examples per step. Default: the config's batch size, else 32. */
  batchSize?: number;
  /** Calibration examples for initialize/PTQ. Default 256. */
  calibrationSamples?: number;
  onStep?: (info: StepInfo) => void | Promise<void>;
  onLog?: (line: string) => void;
  /** Held-out data for the live accuracy: evaluated with the compression hooks on every `evalEvery` steps. */
  test?: Dataset;
  /** Steps between live evaluations. Default: a fifth of the steps. */
  evalEvery?: number;
  onEval?: (info: { step: number; accuracy: number }) => void;
}

/** What a pipeline produced. */
export interface PipelineResult {
  /** The deployable graph (stripped: int8 weights, Q/DQ). */
  graph: Graph;
  /** Optimisation steps run (0 for PTQ). */
  steps: number;
  losses: number[];
  seconds: number;
}

/** Parses a pipeline config (text or object) against the page's algorithms; ConfigError naming the JSON path. */
export function parseConfig(config: unknown): PipelineConfig {
  return parsePipelineConfig(config, ALGORITHMS);
}

/** The first `n` examples of a dataset as a new array dataset (the short in-page training set). */
export function head(data: Dataset, n: number): Dataset {
  return data.subset(Int32Array.from({ length: Math.min(n, data.size) }, (_, i) => i));
}

/** Runs a pipeline config on `graph`: compress, initialize (calibrate), train a few steps, strip. */
export async function runPipeline(graph: Graph, train: Dataset, config: PipelineConfig, options: PipelineOptions = {}): Promise<PipelineResult> {
  const started = performance.now();
  const batchSize = options.batchSize ?? config.training?.batchSize ?? 32;
  const maxSteps = options.maxSteps ?? 20;
  const epochs = config.training?.epochs ?? 1;
  const ctrl = compress(graph, createBuilders(config, ALGORITHMS));
  const losses: number[] = [];
  try {
    await ctrl.initialize(train, { samples: Math.min(train.size, options.calibrationSamples ?? 256) });
    options.onLog?.(`initialized ${config.compression.map((c) => c.algorithm).join(' + ')}`);
    const steps = epochs === 0 ? 0 : Math.min(maxSteps, epochs * Math.floor(train.size / batchSize));
    if (steps > 0) {
      const subset = head(train, steps * batchSize);
      await fit(ctrl.model.executor, subset, {
        epochs: 1,
        batchSize,
        optimizer: { type: 'adam', learningRate: config.training?.learningRate ?? 1e-3 },
        controller: ctrl,
        seed: 0,
        progress: false,
        callbacks: {
          onBatchEnd: async (info) => {
            const loss = await info.loss();
            losses.push(loss);
            await options.onStep?.({ step: info.globalStep, steps, loss });
            const every = options.evalEvery ?? Math.max(1, Math.ceil(steps / 5));
            if (options.test != null && (info.globalStep % every === 0 || info.globalStep === steps)) {
              const r = await evaluate(info.executor, options.test, { batchSize: 100, progress: false });
              options.onEval?.({ step: info.globalStep, accuracy: r.accuracy });
            }
          },
        },
      });
    }
    const out = ctrl.strip();
    return { graph: out, steps, losses, seconds: (performance.now() - started) / 1000 };
  } finally {
    ctrl.dispose();
  }
}

/** Accuracy and loss of a graph on (a head of) the test set. */
export async function accuracyOf(graph: Graph, test: Dataset): Promise<{ accuracy: number; loss: number }> {
  const r = await evaluate(graph, test, { batchSize: 100, progress: false });
  return { accuracy: r.accuracy, loss: r.loss };
}

/** Weight bytes as deployed (int8 codes count one byte). */
export function weightBytes(graph: Graph): number {
  return graphStatistics(graph).total.bytes;
}

/** The ONNX bytes of a graph, and what onnxruntime-web computes for them against the page's own run. */
export async function onnxInPage(graph: Graph, x: tf.Tensor, options: { outputStep?: number } = {}): Promise<{ bytes: Uint8Array; parity: ParityReport }> {
  const bytes = toOnnx(graph);
  const parity = await checkParity(graph, bytes, x, {
    runtime: onnxRuntime() as unknown as NonNullable<Parameters<typeof checkParity>[3]>['runtime'],
    ...(options.outputStep != null ? { outputStep: options.outputStep } : {}),
  });
  return { bytes, parity };
}

/** The tfjs layers-model files of a graph (model.json text and weight shards). */
export function tfjsFiles(graph: Graph): { modelJson: string; shards: { path: string; bytes: Uint8Array }[] } {
  const files = toTfjsModel(graph);
  return {
    modelJson: JSON.stringify(files.modelJson),
    shards: files.shards.map((s) => ({ path: s.path, bytes: new Uint8Array(s.data) })),
  };
}

