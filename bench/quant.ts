/**
 * `npm run bench -- quant [--only <dataset>:<model>] [--qat-epochs N] [--resume] [--retime]`: FP32 against
 * quantization-aware training (default INT8, TQT INT8, DoReFa W4A4/W2A2, PACT W4A4, LSQ W4A4/W2A2)
 * and post-training INT8 (min-max, percentile, KL, MSE; 256 calibration images; dynamic) on
 * Fashion-MNIST with the plain and the residual reference CNN and on the MNIST split with the plain
 * CNN. Every accuracy is that of the stripped graph (int8 weights + Q/DQ run by the core executor),
 * i.e. the model that ships. Rows are saved as they finish (bench/.cache/quant-rows.json), so
 * `--resume` continues an interrupted run; `--retime` measures the step times of the saved rows
 * again (for an idle machine) without retraining.
 */
import {
  Executor,
  compress,
  evaluate,
  fit,
  graphStatistics,
  referenceModels,
  useBackend,
  type CompressionBuilder,
  type Dataset,
  type Graph,
} from '@tensorpress/core-tensor';
import { loadFashionMnist, loadMnist } from '@tensorpress/datasets';
import { dorefa, lsq, pact, quantizePostTraining, quantization, tqt, type BitsPlanEntry, type PtqOptions } from '@tensorpress/quant';
import type { SuiteResult } from './run.js';
import { loadPartialRows, median, medianStepMs, round, savePartialRows, trainedBaseline } from './common.js';

const CALIBRATION_IMAGES = 256;
const BATCH = 64;

type Row = Record<string, unknown>;

interface QatRow {
  method: string;
  bits: string;
  learningRate: number;
  make: (plan: BitsPlanEntry[]) => CompressionBuilder;
}

/** Low-bit methods keep the first conv and the last Gemm (weights and their inputs) at 8 bits, as the papers do. */
const QAT: QatRow[] = [
  { method: 'qat int8 (quantization)', bits: 'W8A8', learningRate: 1e-4, make: () => quantization() },
  { method: 'tqt int8', bits: 'W8A8', learningRate: 1e-4, make: () => tqt() },
  { method: 'dorefa w4a4', bits: 'W4A4', learningRate: 5e-4, make: (plan) => dorefa({ weights: { bits: 4 }, activations: { bits: 4 }, plan }) },
  { method: 'dorefa w2a2', bits: 'W2A2', learningRate: 5e-4, make: (plan) => dorefa({ weights: { bits: 2 }, activations: { bits: 2 }, plan }) },
  { method: 'pact w4a4', bits: 'W4A4', learningRate: 5e-4, make: (plan) => pact({ weights: { bits: 4 }, activations: { bits: 4 }, plan }) },
  { method: 'lsq w4a4', bits: 'W4A4', learningRate: 5e-4, make: (plan) => lsq({ weights: { bits: 4 }, activations: { bits: 4 }, plan }) },
  { method: 'lsq w2a2', bits: 'W2A2', learningRate: 5e-4, make: (plan) => lsq({ weights: { bits: 2 }, activations: { bits: 2 }, plan }) },
];

const PTQ: { method: string; options: PtqOptions }[] = [
  { method: 'ptq int8 min-max', options: { calibration: 'minmax' } },
  { method: 'ptq int8 percentile 99.99', options: { calibration: 'percentile', percentile: 99.99 } },
  { method: 'ptq int8 kl', options: { calibration: 'kl', activations: { mode: 'symmetric' } } },
  { method: 'ptq int8 mse', options: { calibration: 'mse' } },
  { method: 'ptq int8 dynamic', options: { mode: 'dynamic' } },
];

const SETUPS = [
  { dataset: 'mnist', model: 'plainCnn', qatEpochs: 3 },
  { dataset: 'fashion-mnist', model: 'plainCnn', qatEpochs: 1 },
  { dataset: 'fashion-mnist', model: 'residualCnn', qatEpochs: 1 },
] as const;

function firstAndLast(graph: Graph): BitsPlanEntry[] {
  const mac = graph.nodes.filter((n) => n.op === 'Conv' || n.op === 'Gemm' || n.op === 'MatMul');
  const ends = [mac[0]!, mac[mac.length - 1]!];
  return ends.map((n) => ({ node: n.name, weightBits: 8, activationBits: 8 }));
}

function subset(data: Dataset, n: number, seed = 0): Dataset {
  const idx = Array.from({ length: data.size }, (_, i) => i);
  // A fixed, spread-out sample (every k-th example) rather than the first n of one class order.
  const step = Math.max(1, Math.floor(data.size / n));
  return data.subset(idx.filter((i) => (i + seed) % step === 0).slice(0, n));
}

/**
 * QAT and FP32 step times side by side: 8 rounds of 4 FP32 steps then 4 QAT steps (one warm-up
 * step each), same backend, same run. The ratio is the median of the rounds' ratios: this machine's
 * speed drifts within a run (see fp32StepMs across rows), which pairing adjacent blocks cancels.
 */
async function stepRatio(baseline: Graph, make: () => CompressionBuilder, train: Dataset): Promise<{ fp32Ms: number; qatMs: number; ratio: number }> {
  const fp32Ex = new Executor(baseline);
  const ctrl = compress(baseline, [make()]);
  await ctrl.initialize(train, { samples: CALIBRATION_IMAGES });
  const a: number[] = [];
  const b: number[] = [];
  const ratios: number[] = [];
  try {
    for (let r = 0; r < 8; r++) {
      const fp32 = await medianStepMs(fp32Ex, train, { batchSize: BATCH, steps: 4, warmup: 1 });
      const qat = await medianStepMs(ctrl.model.executor, train, { batchSize: BATCH, steps: 4, warmup: 1, controller: ctrl });
      a.push(...fp32.samples);
      b.push(...qat.samples);
      ratios.push(qat.medianMs / fp32.medianMs);
    }
  } finally {
    fp32Ex.dispose();
    ctrl.dispose();
  }
  return { fp32Ms: median(a), qatMs: median(b), ratio: median(ratios) };
}

export default async function quant(args: string[]): Promise<SuiteResult> {
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
  const epochsArg = args.includes('--qat-epochs') ? Number(args[args.indexOf('--qat-epochs') + 1]) : undefined;
  const retime = args.includes('--retime');
  const rows: Row[] = args.includes('--resume') || retime ? await loadPartialRows('quant') : [];
  const done = new Set(rows.map((r) => `${String(r['dataset'])}:${String(r['model'])}:${String(r['method'])}`));
  const backend = await useBackend('wasm');
  const mnist = await loadMnist();
  let fashion: Awaited<ReturnType<typeof loadFashionMnist>> | undefined;

  for (const setup of SETUPS) {
    if (only && only !== `${setup.dataset}:${setup.model}`) continue;
    const data = setup.dataset === 'mnist' ? mnist : (fashion ??= await loadFashionMnist());
    const make = referenceModels[setup.model as 'plainCnn' | 'residualCnn'];
    const { graph: baseline } = await trainedBaseline(setup.model, () => make({ seed: 0 }), setup.dataset, data.train);
    const fp32 = await evaluate(baseline, data.test, { batchSize: 500, progress: false });
    const fp32Bytes = graphStatistics(baseline).total.bytes;
    const base = { dataset: setup.dataset, model: setup.model, backend: backend.name, testImages: fp32.count };
    const key = (method: string): string => `${setup.dataset}:${setup.model}:${method}`;
    const push = async (row: Row): Promise<void> => {
      rows.push(row);
      await savePartialRows('quant', rows);
      console.log(JSON.stringify(row));
    };
    if (!done.has(key('fp32'))) {
      await push({ ...base, method: 'fp32', bits: 'FP32', accuracy: round(fp32.accuracy, 4), deltaPts: 0, bytes: fp32Bytes, sizeRatio: 1 });
    }
    const plan = firstAndLast(baseline);
    const calibration = subset(data.train, CALIBRATION_IMAGES);
    if (retime) {
      // Step times again (e.g. on an idle machine) for rows already trained; accuracy is kept.
      for (const q of QAT) {
        const row = rows.find((r) => r['dataset'] === setup.dataset && r['model'] === setup.model && r['method'] === q.method);
        if (!row) continue;
        const timing = await stepRatio(baseline, () => q.make(plan), data.train);
        Object.assign(row, { stepMs: round(timing.qatMs, 1), fp32StepMs: round(timing.fp32Ms, 1), overheadRatio: round(timing.ratio, 3) });
        console.log(`${setup.model}/${setup.dataset} ${q.method}: ${timing.qatMs.toFixed(1)} / ${timing.fp32Ms.toFixed(1)} ms, ratio ${timing.ratio.toFixed(3)}`);
      }
      await savePartialRows('quant', rows);
      continue;
    }

    for (const p of PTQ) {
      if (done.has(key(p.method))) continue;
      const started = performance.now();
      const { graph } = await quantizePostTraining(baseline, calibration, { ...p.options, samples: CALIBRATION_IMAGES });
      const seconds = (performance.now() - started) / 1000;
      const r = await evaluate(graph, data.test, { batchSize: 500, progress: false });
      const bytes = graphStatistics(graph).total.bytes;
      await push({
        ...base,
        method: p.method,
        bits: p.options.mode === 'dynamic' ? 'W8A8 dynamic' : 'W8A8',
        accuracy: round(r.accuracy, 4),
        deltaPts: round((r.accuracy - fp32.accuracy) * 100, 2),
        bytes,
        sizeRatio: round(bytes / fp32Bytes, 3),
        calibrationImages: CALIBRATION_IMAGES,
        quantizeSeconds: round(seconds, 1),
      });
    }

    const epochs = epochsArg ?? setup.qatEpochs;
    for (const q of QAT) {
      if (done.has(key(q.method))) continue;
      const timing = await stepRatio(baseline, () => q.make(plan), data.train);
      const ctrl = compress(baseline, [q.make(plan)]);
      const started = performance.now();
      await fit(ctrl.model.executor, data.train, {
        epochs,
        batchSize: BATCH,
        optimizer: { type: 'adam', learningRate: q.learningRate },
        lrSchedule: 'cosine',
        seed: 0,
        controller: ctrl,
        progress: false,
        log: (line) => console.log(`  ${setup.model}/${setup.dataset} ${q.method}: ${line}`),
      });
      const trainSeconds = (performance.now() - started) / 1000;
      const stripped = ctrl.strip();
      ctrl.dispose();
      const r = await evaluate(stripped, data.test, { batchSize: 500, progress: false });
      const bytes = graphStatistics(stripped).total.bytes;
      await push({
        ...base,
        method: q.method,
        bits: q.bits,
        accuracy: round(r.accuracy, 4),
        deltaPts: round((r.accuracy - fp32.accuracy) * 100, 2),
        bytes,
        sizeRatio: round(bytes / fp32Bytes, 3),
        epochs,
        learningRate: q.learningRate,
        trainSeconds: round(trainSeconds, 1),
        stepMs: round(timing.qatMs, 1),
        fp32StepMs: round(timing.fp32Ms, 1),
        overheadRatio: round(timing.ratio, 3),
      });
    }
  }
  return {
    rows,
    backend: backend.name,
    notes: [
      'accuracy: the stripped graph (int8 weights + DequantizeLinear, activation Q/DQ) run by the core executor on the full test set.',
      'QAT: fine-tuned from the cached FP32 model (3-epoch recipe of the training bench) with Adam, cosine decay, batch 64; ranges initialised on 256 training images.',
      'Low-bit rows keep the first conv and the last Gemm (weights and inputs) at 8 bits. bytes: parameter storage of the stripped graph (int8 weights, int32 biases, float32 scales).',
      'overheadRatio: QAT step time over FP32 step time (batch 64), the median ratio of 8 alternating rounds of 4 steps each in the same run; stepMs and fp32StepMs are the medians of all steps.',
      'PTQ: 256 training images for calibration, BN folded, per-channel symmetric int8 weights, asymmetric uint8 activations (KL: symmetric).',
    ],
  };
}
