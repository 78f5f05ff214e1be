/**
 * `npm run bench -- binary [--only <model>] [--images N] [--epochs E] [--resume]`: FP32 against
 * binarized and ternarized fine-tuning on Fashion-MNIST with the plain and the residual reference
 * CNN: BNN W1A1, XNOR W1A1, XNOR W1A32, TWN W2A32 and TWN without scale W2A1, each without and with
 * the staged schedule (activations from epoch 0, weights from epoch 1, polynomial LR decay from
 * epoch 2). Every run fine-tunes the cached FP32 weights for E passes over N training images (a
 * fixed, spread-out subset). Accuracy is that of the stripped graph (int8 {−1, 0, +1} codes +
 * DequantizeLinear, Sign, BN folded) run by the core executor on the full test set; the ONNX file
 * of every binarized row is run in onnxruntime on the full test set for top-1 agreement. Rows are
 * saved as they finish (bench/.cache/binary-rows.json), so `--resume` continues.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, compress, evaluate, fit, graphStatistics, useBackend, type CompressionBuilder, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { binarization, packedBytes, reestimateBatchNorm, type BinarizationController, type BinarizationOptions } from '@tensorpress/binary';
import { loadFashionMnist } from '@tensorpress/datasets';
import { toOnnx } from '@tensorpress/export-onnx';
import * as ort from 'onnxruntime-node';
import type { SuiteResult } from './run.js';
import { loadPartialRows, round, savePartialRows, trainedBaseline } from './common.js';

type Row = Record<string, unknown>;

const BATCH = 64;
const LEARNING_RATE = 1e-3;
const BN_SAMPLES = 1024;

interface Method {
  method: string;
  bits: string;
  options: BinarizationOptions;
}

const METHODS: Method[] = [
  { method: 'bnn', bits: 'W1A1', options: { weights: { method: 'bnn' }, activations: { method: 'binary' } } },
  { method: 'xnor', bits: 'W1A1', options: { weights: { method: 'xnor' }, activations: { method: 'binary' } } },
  { method: 'xnor', bits: 'W1A32', options: { weights: { method: 'xnor' }, activations: { method: 'none' } } },
  { method: 'twn', bits: 'W2A32', options: { weights: { method: 'twn' }, activations: { method: 'none' } } },
  { method: 'twn-no-scale', bits: 'W2A1', options: { weights: { method: 'ternary' }, activations: { method: 'binary' } } },
];

const STAGED = { type: 'staged', unit: 'epochs', activationsAt: 0, weightsAt: 1, decayAt: 2 } as const;

/**
 * One pass over the test set: the stripped graph in process and its ONNX file (NHWC input) in
 * onnxruntime, batch by batch: both accuracies, top-1 agreement and the largest logit difference.
 */
async function testAndParity(graph: Graph, onnx: Uint8Array, x: tf.Tensor, y: Int32Array): Promise<{ accuracy: number; ortAccuracy: number; agreement: number; maxAbsDiff: number }> {
  const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: 1, interOpNumThreads: 1 });
  const ex = new Executor(graph);
  const n = x.shape[0]!;
  let right = 0;
  let ortRight = 0;
  let agree = 0;
  let maxAbsDiff = 0;
  try {
    for (let start = 0; start < n; start += 1000) {
      const size = Math.min(1000, n - start);
      const chunk = tf.slice(x, start, size);
      const [logits] = ex.run(chunk);
      const out = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', chunk.dataSync() as Float32Array, chunk.shape) });
      const theirs = out[session.outputNames[0]!]!.data as Float32Array;
      const mine = logits!.dataSync() as Float32Array;
      const k = mine.length / size;
      for (let i = 0; i < size; i++) {
        let a = 0;
        let b = 0;
        for (let j = 0; j < k; j++) {
          if (mine[i * k + j]! > mine[i * k + a]!) a = j;
          if (theirs[i * k + j]! > theirs[i * k + b]!) b = j;
          maxAbsDiff = Math.max(maxAbsDiff, Math.abs(mine[i * k + j]! - theirs[i * k + j]!));
        }
        if (a === y[start + i]) right++;
        if (b === y[start + i]) ortRight++;
        if (a === b) agree++;
      }
      tf.dispose([chunk, logits!]);
    }
  } finally {
    ex.dispose();
    await session.release();
  }
  return { accuracy: right / n, ortAccuracy: ortRight / n, agreement: agree / n, maxAbsDiff };
}

function spreadSubset(data: Dataset, n: number): Dataset {
  const step = Math.max(1, Math.floor(data.size / n));
  const idx: number[] = [];
  for (let i = 0; i < data.size && idx.length < n; i += step) idx.push(i);
  return data.subset(idx);
}

export default async function binary(args: string[]): Promise<SuiteResult> {
  const arg = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
  const only = arg('--only');
  const images = Number(arg('--images') ?? 12000);
  const epochs = Number(arg('--epochs') ?? 3);
  // Each --only part saves its own rows (parts may run side by side); --resume reads them all.
  const part = `binary-${only ?? 'all'}`;
  const rows: Row[] = args.includes('--resume') ? (await Promise.all(['binary-all', 'binary-plainCnn', 'binary-residualCnn'].map((p) => loadPartialRows(p)))).flat() : [];
  const done = new Set(rows.map((r) => `${String(r['model'])}:${String(r['method'])}:${String(r['bits'])}:${String(r['schedule'])}`));
  const backend = await useBackend('wasm');
  const fashion = await loadFashionMnist();
  const train = spreadSubset(fashion.train, images);
  const testBatch = fashion.test.batches(fashion.test.size).next().value!;
  const testX = testBatch.x;
  const testY = Int32Array.from(testBatch.y.dataSync());
  testBatch.y.dispose();

  const push = async (row: Row): Promise<void> => {
    rows.push(row);
    await savePartialRows(part, rows.filter((r) => !only || r['model'] === only));
    console.log(JSON.stringify(row));
  };

  for (const model of ['plainCnn', 'residualCnn'] as const) {
    if (only && only !== model) continue;
    // Fine-tune only from the shared cached FP32 weights: never train the baseline here.
    const cached = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache', `${model}-fashion-mnist-${fashion.train.size}-e3.json`);
    if (!existsSync(cached)) {
      console.log(`${model}: no cached FP32 weights at ${cached}; skipped`);
      continue;
    }
    const { graph: baseline } = await trainedBaseline(model, () => referenceModels[model]({ seed: 0 }), 'fashion-mnist', fashion.train);
    const fp32 = await evaluate(baseline, fashion.test, { batchSize: 500, progress: false });
    const fp32Bytes = graphStatistics(baseline).total.bytes;
    const base = { dataset: 'fashion-mnist', model, backend: backend.name, testImages: fp32.count };
    if (!done.has(`${model}:fp32:FP32:none`)) {
      await push({ ...base, method: 'fp32', bits: 'FP32', schedule: 'none', accuracy: round(fp32.accuracy, 4), deltaPts: 0, bytes: fp32Bytes, onnxBytes: toOnnx(baseline).length });
    }
    for (const m of METHODS) {
      for (const schedule of ['none', 'staged'] as const) {
        if (done.has(`${model}:${m.method}:${m.bits}:${schedule}`)) continue;
        const make = (): CompressionBuilder => binarization({ ...m.options, ...(schedule === 'staged' ? { schedule: STAGED } : {}) });
        const ctrl = compress(baseline, [make()]);
        const b = ctrl.controllers[0] as BinarizationController;
        const started = performance.now();
        await fit(ctrl.model.executor, train, {
          epochs,
          batchSize: BATCH,
          optimizer: { type: 'adam', learningRate: LEARNING_RATE, weightDecay: 0 },
          lrSchedule: schedule === 'staged' ? b.learningRate(epochs) : 'cosine',
          seed: 0,
          controller: ctrl,
          progress: false,
          log: (line) => console.log(`  ${model} ${m.method} ${m.bits} ${schedule}: ${line}`),
        });
        // AdaBN: running statistics of the binarized model (a short fine-tune leaves FP32 ones mixed in).
        reestimateBatchNorm(ctrl.model.executor, train, { samples: BN_SAMPLES });
        const trainSeconds = (performance.now() - started) / 1000;
        const stripped: Graph = ctrl.strip();
        ctrl.dispose();
        const onnx = toOnnx(stripped, { nhwcInput: true });
        const r = await testAndParity(stripped, onnx, testX, testY);
        const packed = packedBytes(stripped);
        const w1 = packed.layers.filter((l) => l.binary);
        const w1Fp32 = w1.reduce((a, l) => a + l.fp32Bytes, 0);
        const w1Packed = w1.reduce((a, l) => a + l.packedBytes, 0);
        await push({
          ...base,
          method: m.method,
          bits: m.bits,
          schedule,
          accuracy: round(r.accuracy, 4),
          deltaPts: round((r.accuracy - fp32.accuracy) * 100, 2),
          bytes: packed.storedBytes,
          onnxBytes: onnx.length,
          packed1Bytes: packed.packed1Bytes,
          packed2Bytes: packed.packed2Bytes,
          sizeRatio: round(packed.packed1Bytes / fp32Bytes, 4),
          ...(w1.length > 0 ? { w1Layers: w1.length, w1CompressionX: round(w1Fp32 / w1Packed, 1) } : {}),
          ortAccuracy: round(r.ortAccuracy, 4),
          ortTop1Agreement: round(r.agreement, 5),
          ortMaxAbsDiff: round(r.maxAbsDiff, 5),
          epochs,
          trainImages: train.size,
          learningRate: LEARNING_RATE,
          trainSeconds: round(trainSeconds, 1),
        });
      }
    }
  }
  testX.dispose();
  return {
    rows,
    backend: backend.name,
    notes: [
      `fine-tuning: from the cached FP32 weights (3-epoch recipe of the training bench), ${epochs} passes over ${train.size} training images (a fixed, spread-out subset of the 60,000; cut to fit the bench's time on a shared 2-core machine), Adam ${LEARNING_RATE}, batch ${BATCH}, weight decay 0.`,
      "schedule 'none': everything binarized from the first step, cosine LR decay. 'staged': activations binarized from epoch 0, weights from epoch 1, polynomial (power 2) LR decay from epoch 2 (the FP32 stage is the cached baseline).",
      `BatchNormalization statistics re-estimated on ${BN_SAMPLES} training images with the binarized model after fine-tuning (reestimateBatchNorm, AdaBN); trainSeconds includes it.`,
      'First and last layers (conv / stem.conv and the final Gemm) stay FP32 (the default fullPrecision). A1 rows: learned scale and per-channel threshold, saturate_ste; weights centred, ste.',
      'accuracy: the stripped graph (int8 {-1, 0, +1} codes with per-filter DequantizeLinear scales, Sign, BN folded) run by the core executor on the 10,000 test images; ortTop1Agreement: the ONNX file in onnxruntime against it on the same images.',
      'This run: the two models as two parts side by side (--only plainCnn, --only residualCnn, about 30 and 40 minutes on a 2-core machine shared with other jobs), merged with --resume. The fine-tuning budget (120 steps per row) was cut to fit; the issue targets (XNOR W1A1 >= -2.0, XNOR W1A32 >= -0.5, TWN W2A32 >= -0.3 points) need longer fine-tuning than this budget allowed: see deltaPts for what was measured.',
      'bytes: parameters as stored (int8 codes); packed1Bytes: binary codes at 1 bit (ternary at 2), float32 scales, other parameters as stored; packed2Bytes: all codes at 2 bits; w1CompressionX: FP32 bytes over 1-bit codes + float32 scales, summed over the W1 layers.',
    ],
  };
}
