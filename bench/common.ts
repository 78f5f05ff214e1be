/**
 * Shared helpers of the benchmark suites: medians, step timing through `fit`'s own loop, and a
 * stand-in weight fake-quant to measure the cost of a weight transform.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import {
  PRIORITY,
  defineController,
  fit,
  readGraph,
  writeGraph,
  type AlgorithmController,
  type CompressionBuilder,
  type Dataset,
  type Executor,
  type FitController,
  type Graph,
} from '@tensorpress/core-tensor';

/** Median of a list of numbers. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Rounds to `digits` decimals. */
export function round(v: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

/**
 * Median wall time of one training step (forward, backward, update) of `fit`'s own loop:
 * `warmup + steps` batches are trained and the first `warmup` are dropped.
 */
export async function medianStepMs(
  target: Executor,
  data: Dataset,
  options: { batchSize: number; steps: number; warmup: number; controller?: FitController },
): Promise<{ medianMs: number; samples: number[] }> {
  const n = options.batchSize * (options.steps + options.warmup);
  const subset = data.subset(Array.from({ length: n }, (_, i) => i % data.size));
  const marks: number[] = [];
  let last = performance.now();
  await fit(target, subset, {
    epochs: 1,
    batchSize: options.batchSize,
    optimizer: { type: 'adam', learningRate: 1e-3 },
    progress: false,
    ...(options.controller ? { controller: options.controller } : {}),
    callbacks: {
      onBatchEnd: async (info) => {
        // Reading the loss forces the step to finish on every backend before the clock is read.
        await info.loss();
        const now = performance.now();
        marks.push(now - last);
        last = now;
      },
    },
  });
  const samples = marks.slice(options.warmup);
  return { medianMs: median(samples), samples };
}

/**
 * A stand-in weight transform for overhead measurements: symmetric per-tensor 8-bit fake
 * quantization with a straight-through gradient on every Conv and Gemm weight.
 */
export function standInFakeQuant(): CompressionBuilder {
  const algorithm = 'bench_fake_quant';
  const fq = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [x, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const scale = tf.div(tf.maximum(tf.max(tf.abs(x)), 1e-8), 127);
    const y = tf.mul(tf.clipByValue(tf.round(tf.div(x, scale)), -127, 127), scale);
    save([]);
    return { value: y, gradFunc: (dy: tf.Tensor) => [dy] };
  });
  return {
    algorithm,
    priority: PRIORITY.quantization,
    register(graph: Graph, layout) {
      for (const node of graph.nodes) {
        if ((node.op === 'Conv' || node.op === 'Gemm') && graph.isParam(node.inputs[1]!)) {
          layout.addHook({ type: 'weight', node: node.name, input: 1 }, (w) => fq(w), {
            algorithm,
            priority: PRIORITY.quantization,
            id: `${node.name}.weight`,
          });
        }
      }
    },
    build: (): AlgorithmController => defineController(algorithm),
  };
}

/** The 3-epoch FP32 recipes of the training bench (Adam, cosine decay, seed 0). */
export const FP32_RECIPES: Readonly<Record<string, { batch: number; learningRate: number }>> = {
  mnist: { batch: 32, learningRate: 2e-3 },
  'fashion-mnist': { batch: 64, learningRate: 4e-3 },
};

const CACHE_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache');

/**
 * A reference model trained in FP32 with its dataset's recipe, cached under bench/.cache (keyed by
 * model, dataset, training-set size and epochs) so every suite starts from the same weights.
 */
export async function trainedBaseline(
  model: string,
  make: () => Graph,
  dataset: string,
  train: Dataset,
  options: { epochs?: number; cache?: boolean } = {},
): Promise<{ graph: Graph; trainSeconds: number | undefined }> {
  const epochs = options.epochs ?? 3;
  const recipe = FP32_RECIPES[dataset] ?? FP32_RECIPES['fashion-mnist']!;
  const file = path.join(CACHE_DIR, `${model}-${dataset}-${train.size}-e${epochs}.json`);
  if (options.cache ?? true) {
    try {
      const graph = await readGraph(file);
      console.log(`${model}/${dataset}: FP32 weights from ${path.relative(process.cwd(), file)}`);
      return { graph, trainSeconds: undefined };
    } catch {
      // Not cached yet: train below.
    }
  }
  const started = performance.now();
  const { graph } = await fit(make(), train, {
    epochs,
    batchSize: recipe.batch,
    optimizer: { type: 'adam', learningRate: recipe.learningRate },
    lrSchedule: 'cosine',
    seed: 0,
    progress: false,
    log: (line) => console.log(`  ${model}/${dataset} fp32: ${line}`),
  });
  const trainSeconds = (performance.now() - started) / 1000;
  console.log(`${model}/${dataset}: FP32 trained in ${trainSeconds.toFixed(0)} s`);
  if (options.cache ?? true) {
    await mkdir(CACHE_DIR, { recursive: true });
    await writeGraph(file, graph);
  }
  return { graph, trainSeconds };
}

/** Rows of an interrupted suite run, saved as they finish (bench/.cache/<name>-rows.json). */
export async function loadPartialRows(name: string): Promise<Record<string, unknown>[]> {
  try {
    return JSON.parse(await readFile(path.join(CACHE_DIR, `${name}-rows.json`), 'utf8')) as Record<string, unknown>[];
  } catch {
    return [];
  }
}

/**
 * Saves the rows done so far, so `--resume` can continue after an interruption. With `merge` (a
 * resumed run), rows that another process of the same bench saved meanwhile are kept and appended
 * to `rows` too, so that runs of one bench side by side neither lose each other's rows nor leave
 * them out of the results file the last one writes.
 */
export async function savePartialRows(
  name: string,
  rows: Record<string, unknown>[],
  options: { merge?: boolean; normalize?: (row: Record<string, unknown>) => Record<string, unknown> } = {},
): Promise<void> {
  if (options.merge === true) {
    // `normalize`: what the bench does to the rows it loads, so saved rows compare equal to its own.
    const mine = new Set(rows.map((r) => JSON.stringify(r)));
    for (const r of (await loadPartialRows(name)).map(options.normalize ?? ((x) => x))) if (!mine.has(JSON.stringify(r))) rows.push(r);
  }
  await mkdir(CACHE_DIR, { recursive: true });
  const file = path.join(CACHE_DIR, `${name}-rows.json`);
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(rows, null, 2));
  await rename(tmp, file);
}
