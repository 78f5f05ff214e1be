/**
 * The web app: pick or drop a model, use MNIST or dropped images, pick a pipeline config, and
 * compress in the page; progress and a live loss/accuracy chart, accuracy against bytes at the
 * end, the result checked in onnxruntime-web, and the ONNX and tfjs files offered for download.
 * `window.tensorpressApp` exposes the state for the browser test.
 */
import * as tf from '@tensorflow/tfjs-core';
import { evaluate, fit, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { loadMnist } from '@tensorpress/datasets';
import { referenceModels, type ReferenceModelName } from '@tensorpress/models';
import { startBackend, type PageBackend } from './backends.js';
import { drawChart, type Series } from './chart.js';
import { imagesToDataset, modelFromFiles } from './inputs.js';
import { head, onnxInPage, parseConfig, runPipeline, tfjsFiles, weightBytes } from './pipeline.js';

/** The pipelines offered first; every other examples/*.json follows. */
const FEATURED: readonly { label: string; file: string }[] = [
  { label: 'PTQ: INT8 post-training quantization', file: 'post-training-quantization.json' },
  { label: 'Pruning + INT8 QAT (filter pruning 50% FLOPs, then quantization)', file: 'stacked.json' },
];
const EVAL_IMAGES = 500;
const PARITY_IMAGES = 64;

interface AppState {
  state: 'idle' | 'running' | 'done' | 'error';
  error?: string;
  backend?: string;
  device?: string;
  pipeline?: string;
  fp32?: { accuracy: number; bytes: number };
  compressed?: { accuracy: number; bytes: number };
  onnx?: { bytes: number; maxAbsDiff: number; top1Agreement: number | null; beyondStep: number | null };
  downloads: string[];
}

const app: AppState = { state: 'idle', downloads: [] };
(window as unknown as { tensorpressApp: AppState }).tensorpressApp = app;

const $ = <T extends HTMLElement>(id: string): T => document.getElementById(id) as T;
const log = (line: string): void => {
  const el = $('log');
  el.textContent += `${line}\n`;
  el.scrollTop = el.scrollHeight;
};
const status = (s: string): void => {
  $('status').textContent = s;
};

let droppedModel: { graph: Graph; name: string } | undefined;
let droppedData: File[] | undefined;
let configs: Record<string, string> = {};

function setupDrop(id: string, inputId: string, onFiles: (files: File[]) => Promise<void>): void {
  const el = $(id);
  const input = $<HTMLInputElement>(inputId);
  input.addEventListener('change', () => {
    onFiles([...(input.files ?? [])]).catch((err: unknown) => log(`error: ${(err as Error).message}`));
  });
  el.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.classList.add('over');
  });
  el.addEventListener('dragleave', () => el.classList.remove('over'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('over');
    const files = [...(e.dataTransfer?.files ?? [])];
    onFiles(files).catch((err: unknown) => log(`error: ${(err as Error).message}`));
  });
}

async function init(): Promise<void> {
  const models = $<HTMLSelectElement>('model');
  for (const name of Object.keys(referenceModels)) models.add(new Option(name, name));
  const names = (await (await fetch('examples/index.json')).json()) as string[];
  const pipeline = $<HTMLSelectElement>('pipeline');
  for (const f of FEATURED) if (names.includes(f.file)) pipeline.add(new Option(f.label, f.file));
  for (const n of names) if (!FEATURED.some((f) => f.file === n)) pipeline.add(new Option(`example: ${n}`, n));
  configs = Object.fromEntries(await Promise.all(names.map(async (n) => [n, await (await fetch(`examples/${n}`)).text()] as const)));
  const showConfig = (): void => {
    $('config').textContent = configs[pipeline.value] ?? '';
  };
  pipeline.addEventListener('change', showConfig);
  showConfig();
  setupDrop('modelDrop', 'modelFiles', async (files) => {
    droppedModel = await modelFromFiles(files);
    $('modelInfo').textContent = `using ${droppedModel.name}: input [${droppedModel.graph.inputs[0]?.shape.join(', ')}]`;
  });
  setupDrop('dataDrop', 'dataFiles', async (files) => {
    droppedData = files.filter((f) => f.type.startsWith('image/'));
    $('dataInfo').textContent = `using ${droppedData.length} dropped images`;
  });
  $('run').addEventListener('click', () => {
    run().catch((e: unknown) => {
      app.state = 'error';
      app.error = (e as Error).message;
      status(`error: ${app.error}`);
      log(`error: ${(e as Error).stack ?? app.error}`);
    });
  });
  status('ready');
}

async function data(graph: Graph): Promise<{ train: Dataset; test: Dataset }> {
  if (droppedData != null && droppedData.length > 0) {
    const ds = await imagesToDataset(droppedData, graph.inputs[0]!.shape.slice(1).map(Number));
    log(`data: ${ds.size} dropped images (used for training, calibration and evaluation)`);
    return { train: ds, test: ds };
  }
  const { train, test } = await loadMnist({ url: new URL('mnist/', document.baseURI) });
  log(`data: MNIST ${train.size} train / ${test.size} test`);
  return { train, test: head(test, EVAL_IMAGES) };
}

async function run(): Promise<void> {
  Object.assign(app, { state: 'running', downloads: [] });
  $('downloads').innerHTML = '';
  $('results').innerHTML = '';
  const button = $<HTMLButtonElement>('run');
  button.disabled = true;
  try {
    const choice = $<HTMLSelectElement>('backend').value;
    const selected = await startBackend(choice === 'auto' ? undefined : (choice as PageBackend));
    Object.assign(app, { backend: selected.name, device: selected.device, pipeline: $<HTMLSelectElement>('pipeline').value });
    log(`backend: ${selected.name} (${selected.device}${selected.software ? ', software' : ''})`);

    let graph: Graph = droppedModel?.graph ?? referenceModels[$<HTMLSelectElement>('model').value as ReferenceModelName]({ seed: 0, width: 0.5 });
    const { train, test } = await data(graph);
    const losses: Series = { name: 'training loss', color: '#c33', points: [] };
    const accuracy: Series = { name: 'test accuracy', color: '#36c', points: [] };
    let stepAt = 0;
    const redraw = (): void => drawChart($('lossChart'), [losses, accuracy], { x: 'step', y: 'loss / accuracy', yMin: 0 });
    const progress = $<HTMLProgressElement>('progress');
    const liveTest = head(test, 200);

    // A builtin model starts untrained: a short FP32 training first, so compression has something to keep.
    const pretrain = droppedModel ? 0 : Number($<HTMLInputElement>('pretrain').value);
    if (pretrain > 0) {
      status(`FP32 training (${pretrain} steps)`);
      const r = await fit(graph, head(train, pretrain * 32), {
        epochs: 1,
        batchSize: 32,
        optimizer: { type: 'adam', learningRate: 2e-3 },
        seed: 0,
        progress: false,
        callbacks: {
          onBatchEnd: async (info) => {
            losses.points.push({ x: ++stepAt, y: await info.loss() });
            progress.value = (0.4 * info.globalStep) / pretrain;
            if (info.globalStep % Math.max(1, Math.ceil(pretrain / 5)) === 0 && info.globalStep < pretrain) {
              accuracy.points.push({ x: stepAt, y: (await evaluate(info.executor, liveTest, { progress: false, batchSize: 100 })).accuracy });
            }
            redraw();
          },
        },
      });
      graph = r.graph;
    }
    const fp32 = { accuracy: (await evaluate(graph, test, { progress: false, batchSize: 100 })).accuracy, bytes: weightBytes(graph) };
    app.fp32 = fp32;
    accuracy.points.push({ x: stepAt, y: fp32.accuracy, label: 'FP32' });
    redraw();
    log(`FP32: accuracy ${(100 * fp32.accuracy).toFixed(2)}%, ${fp32.bytes} weight bytes`);

    const file = $<HTMLSelectElement>('pipeline').value;
    const config = parseConfig(configs[file]);
    status(`compressing: ${config.compression.map((c) => c.algorithm).join(' + ')}`);
    const maxSteps = Number($<HTMLInputElement>('steps').value);
    const result = await runPipeline(graph, train, config, {
      maxSteps,
      batchSize: 32,
      onLog: log,
      test: liveTest,
      onEval: ({ step, accuracy: a }) => {
        accuracy.points.push({ x: stepAt + step, y: a });
        redraw();
      },
      onStep: ({ step, steps, loss }) => {
        losses.points.push({ x: stepAt + step, y: loss });
        progress.value = 0.4 + (0.4 * step) / Math.max(1, steps);
        status(`compressing: step ${step} / ${steps}`);
        redraw();
      },
    });
    stepAt += result.steps;
    const compressed = { accuracy: (await evaluate(result.graph, test, { progress: false, batchSize: 100 })).accuracy, bytes: weightBytes(result.graph) };
    app.compressed = compressed;
    accuracy.points.push({ x: stepAt, y: compressed.accuracy, label: 'compressed' });
    redraw();
    log(`compressed: accuracy ${(100 * compressed.accuracy).toFixed(2)}%, ${compressed.bytes} weight bytes, ${result.steps} steps in ${result.seconds.toFixed(1)} s`);
    if (compressed.accuracy < fp32.accuracy - 0.1) {
      log('warning: accuracy fell by more than 10 points. A model that is already quantized (e.g. a tfjs file this app wrote, which emulates int8 activations with float layers) does not survive a second quantization; start from the FP32 model.');
    }
    drawChart(
      $('bytesChart'),
      [
        { name: 'FP32', color: '#888', scatter: true, points: [{ x: fp32.bytes / 1024, y: fp32.accuracy, label: 'FP32' }] },
        { name: file, color: '#3a3', scatter: true, points: [{ x: compressed.bytes / 1024, y: compressed.accuracy, label: 'compressed' }] },
      ],
      { x: 'weight KiB', y: 'test accuracy', yMin: 0, yMax: 1 },
    );
    progress.value = 0.85;

    status('checking the ONNX in onnxruntime-web');
    const x = tf.tidy(() => {
      const b = test.batches(PARITY_IMAGES).next().value!;
      b.y.dispose();
      return b.x;
    });
    let onnxBytes: Uint8Array;
    try {
      const { bytes, parity } = await onnxInPage(result.graph, x);
      onnxBytes = bytes;
      app.onnx = { bytes: bytes.length, maxAbsDiff: parity.maxAbsDiff, top1Agreement: parity.top1Agreement, beyondStep: parity.beyondStep };
      log(`onnxruntime-web: ${bytes.length} bytes, max |diff| ${parity.maxAbsDiff.toExponential(2)} against the page's graph, top-1 agreement ${parity.top1Agreement}`);
    } finally {
      x.dispose();
    }

    $('results').innerHTML = `<table>
      <tr><th></th><th>test accuracy</th><th>weight bytes</th></tr>
      <tr><td>FP32</td><td>${(100 * fp32.accuracy).toFixed(2)}%</td><td>${fp32.bytes}</td></tr>
      <tr><td>compressed (${file})</td><td>${(100 * compressed.accuracy).toFixed(2)}%</td><td>${compressed.bytes}</td></tr>
      <tr><td>ONNX in onnxruntime-web</td><td colspan="2">max |diff| ${app.onnx!.maxAbsDiff.toExponential(2)}, top-1 agreement ${app.onnx!.top1Agreement}</td></tr>
    </table>`;
    offer('model.onnx', onnxBytes, 'application/octet-stream');
    try {
      const t = tfjsFiles(result.graph);
      offer('model.json', new TextEncoder().encode(t.modelJson), 'application/json');
      for (const s of t.shards) offer(s.path, s.bytes, 'application/octet-stream');
    } catch (e) {
      log(`tfjs export: ${(e as Error).message}`);
    }
    progress.value = 1;
    app.state = 'done';
    status(`done on ${selected.name}`);
  } finally {
    button.disabled = false;
  }
}

function offer(name: string, bytes: Uint8Array, type: string): void {
  const a = document.createElement('a');
  a.href = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  a.download = name;
  a.textContent = `download ${name} (${bytes.length} B)`;
  $('downloads').append(a);
  app.downloads.push(name);
}

init().catch((e: unknown) => {
  app.state = 'error';
  app.error = (e as Error).message;
  status(`error: ${app.error}`);
});
