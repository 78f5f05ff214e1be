/**
 * The browser-test page: run.ts loads it once per backend and calls `window.tensorpressHarness`.
 * Everything here is the published packages' code, bundled by Vite from their sources.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, fit, graphStatistics, type Graph } from '@tensorpress/core-tensor';
import { plainCnn } from '@tensorpress/models';
import { loadIdxDataset, loadMnist } from '@tensorpress/datasets';
import { quantizePostTraining } from '@tensorpress/quant';
import { startBackend, type PageBackend } from '../src/backends.js';
import { head, onnxInPage, parseConfig, runPipeline } from '../src/pipeline.js';
import { MODEL_NAMES, runCase, runFakeQuant, type CaseResult, type FakeQuantResult } from './cases.js';

/** ONNX-vs-page numbers of one graph. */
export interface OnnxCheck {
  bytes: number;
  maxAbsDiff: number;
  beyondStep: number | null;
  step: number | null;
  top1Agreement: number | null;
}

export interface PipelineCheck {
  backend: string;
  losses: number[];
  steps: number;
  seconds: number;
  float: OnnxCheck;
  quantized: OnnxCheck;
  leaked: number;
}

export interface Harness {
  start(backend: PageBackend): Promise<{ name: string; device: string; software: boolean }>;
  cases(): Promise<{ results: CaseResult[]; leaked: number }>;
  fakeQuant(): Promise<FakeQuantResult & { leaked: number }>;
  qat(steps: number): Promise<PipelineCheck>;
  ptq(): Promise<PipelineCheck>;
  stepTime(steps: number, warmup: number, batch: number): Promise<StepTime>;
  packages(): Promise<Record<string, number>>;
  idx(): Promise<{ size: number; shape: number[]; x: number[]; y: number[] }>;
}

/** An IDX file: magic (uint8, rank), big-endian dims, data. */
function idxFile(shape: number[], data: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  out.set([0, 0, 0x08, shape.length]);
  const view = new DataView(out.buffer);
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * shape.length);
  return out;
}

/** Every published package but the CLI (which is Node-only by design), loaded in the page. */
const PACKAGES: Record<string, () => Promise<Record<string, unknown>>> = {
  '@tensorpress/kernels': () => import('@tensorpress/kernels'),
  '@tensorpress/core-tensor': () => import('@tensorpress/core-tensor'),
  '@tensorpress/models': () => import('@tensorpress/models'),
  '@tensorpress/datasets': () => import('@tensorpress/datasets'),
  '@tensorpress/quant': () => import('@tensorpress/quant'),
  '@tensorpress/pruning': () => import('@tensorpress/pruning'),
  '@tensorpress/sparsity': () => import('@tensorpress/sparsity'),
  '@tensorpress/binary': () => import('@tensorpress/binary'),
  '@tensorpress/distill': () => import('@tensorpress/distill'),
  '@tensorpress/mixed-precision': () => import('@tensorpress/mixed-precision'),
  '@tensorpress/export-onnx': () => import('@tensorpress/export-onnx'),
  '@tensorpress/export-tfjs': () => import('@tensorpress/export-tfjs'),
};

/** Per-step FP32 training time of plainCnn (MNIST shape) in the page. */
export interface StepTime {
  backend: string;
  /** Milliseconds of each measured step (forward, backward, Adam update, loss read back). */
  stepsMs: number[];
  /** The warm-up steps (the first compiles shaders / kernels). */
  warmupMs: number[];
  params: number;
}

/** MNIST from the served `mnist` package files (bytes over fetch: the browser path of loadMnist). */
async function mnist() {
  return await loadMnist({ url: new URL('../mnist/', document.baseURI) });
}

/** A batch of test images as one tensor. */
async function testImages(n: number): Promise<tf.Tensor> {
  const { test } = await mnist();
  const b = test.batches(n).next().value!;
  b.y.dispose();
  return b.x;
}

function summary(p: Awaited<ReturnType<typeof onnxInPage>>, bytes: number): OnnxCheck {
  return { bytes, maxAbsDiff: p.parity.maxAbsDiff, beyondStep: p.parity.beyondStep, step: p.parity.outputs[0]?.step ?? null, top1Agreement: p.parity.top1Agreement };
}

/** The float graph and the compressed one, both written as ONNX and run in onnxruntime-web on 64 test images. */
async function onnxChecks(float: Graph, quantized: Graph): Promise<{ float: OnnxCheck; quantized: OnnxCheck }> {
  const x = await testImages(64);
  try {
    const f = await onnxInPage(float, x);
    // The logits leave the quantized graph in float (the last Gemm's output is not quantized):
    // "one output step" is then one 8-bit step of the logits' range on these images.
    const ex = new Executor(quantized);
    const [logits] = ex.run(x);
    const range = tf.tidy(() => tf.sub(tf.max(logits!), tf.min(logits!)).dataSync()[0]!);
    logits!.dispose();
    ex.dispose();
    const q = await onnxInPage(quantized, x, { outputStep: range / 255 });
    return { float: summary(f, f.bytes.length), quantized: summary(q, q.bytes.length) };
  } finally {
    x.dispose();
  }
}

const harness: Harness = {
  async start(backend) {
    const s = await startBackend(backend);
    return { name: s.name, device: s.device, software: s.software };
  },
  async cases() {
    const before = tf.memory().numTensors;
    const results: CaseResult[] = [];
    for (const m of MODEL_NAMES) results.push(await runCase(m));
    return { results, leaked: tf.memory().numTensors - before };
  },
  async fakeQuant() {
    const before = tf.memory().numTensors;
    const r = await runFakeQuant();
    return { ...r, leaked: tf.memory().numTensors - before };
  },
  // quant's QAT (examples/quantization.json) on plainCnn with MNIST, a few steps.
  async qat(steps) {
    const before = tf.memory().numTensors;
    const { train } = await mnist();
    const float = plainCnn({ seed: 1, width: 0.5 });
    const config = parseConfig(await (await fetch(new URL('../examples/quantization.json', document.baseURI))).text());
    const r = await runPipeline(float, head(train, 1024), config, { maxSteps: steps, batchSize: 32, calibrationSamples: 128 });
    const checks = await onnxChecks(float, r.graph);
    return { backend: tf.getBackend(), losses: r.losses, steps: r.steps, seconds: r.seconds, ...checks, leaked: tf.memory().numTensors - before };
  },
  // quant's PTQ (quantizePostTraining) on plainCnn, calibrated on MNIST.
  async ptq() {
    const before = tf.memory().numTensors;
    const started = performance.now();
    const { train } = await mnist();
    const float = plainCnn({ seed: 1, width: 0.5 });
    const q = await quantizePostTraining(float, head(train, 256), { samples: 256 });
    const seconds = (performance.now() - started) / 1000;
    const checks = await onnxChecks(float, q.graph);
    return { backend: tf.getBackend(), losses: [], steps: 0, seconds, ...checks, leaked: tf.memory().numTensors - before };
  },
  async packages() {
    const out: Record<string, number> = {};
    for (const [name, load] of Object.entries(PACKAGES)) out[name] = Object.keys(await load()).length;
    return out;
  },
  // An IDX pair as bytes in the page, the images gzipped (CompressionStream): loadIdxDataset inflates
  // them with DecompressionStream, as there is no Node zlib here.
  async idx() {
    const images = idxFile([2, 2, 2], [0, 51, 102, 255, 1, 2, 3, 4]);
    const gz = new Uint8Array(await new Response(new Blob([images as BlobPart]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer());
    const ds = await loadIdxDataset(gz, idxFile([2], [1, 0]));
    const b = ds.batches(2).next().value!;
    const out = { size: ds.size, shape: [...ds.exampleShape], x: [...(await b.x.data())], y: [...(await b.y.data())] };
    tf.dispose([b.x, b.y]);
    return out;
  },
  // FP32 training of plainCnn on MNIST-shaped batches: the time between step ends, each step's loss
  // read back (a device sync, so GPU work is counted in the step that queued it).
  async stepTime(steps, warmup, batch) {
    const { train } = await mnist();
    const graph = plainCnn({ seed: 0 });
    const ends: number[] = [];
    const started = performance.now();
    await fit(graph, head(train, (steps + warmup) * batch), {
      epochs: 1,
      batchSize: batch,
      optimizer: { type: 'adam', learningRate: 1e-3 },
      seed: 0,
      progress: false,
      callbacks: {
        onBatchEnd: async (info) => {
          await info.loss();
          ends.push(performance.now());
        },
      },
    });
    const ms = ends.map((t, i) => t - (i === 0 ? started : ends[i - 1]!));
    return { backend: tf.getBackend(), warmupMs: ms.slice(0, warmup), stepsMs: ms.slice(warmup), params: graphStatistics(graph).total.params };
  },
};

(window as unknown as { tensorpressHarness: Harness }).tensorpressHarness = harness;
document.getElementById('log')!.textContent = 'ready';
