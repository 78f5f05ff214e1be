/**
 * `npm run bench -- quant [--only <dataset>:<model>] [--qat-epochs N] [--resume] [--retime] [--part2 [--inq-steps P,F] [--inq-bits B] [--inq-portions p1,...,1] [--inq-lr R]] [--ptq]`: FP32 against
 * quantization-aware training (default INT8, TQT INT8, DoReFa W4A4/W2A2, PACT W4A4, LSQ W4A4/W2A2)
 * and post-training INT8 (min-max, percentile, KL, MSE; 256 calibration images; dynamic) on
 * Fashion-MNIST with the plain and the residual reference CNN and on the MNIST split with the plain
 * CNN. Every accuracy is that of the stripped graph (int8 weights + Q/DQ run by the core executor),
 * i.e. the model that ships. Rows are saved as they finish (bench/.cache/quant-rows.json), so
 * `--resume` continues an interrupted run; `--retime` measures the step times of the saved rows
 * again (for an idle machine) without retraining. Part 2 rows (Fashion-MNIST only): INQ 5 and 3 bit
 * fine-tuned from the FP32 model, and INT8 training with quantized gradients from scratch against
 * FP32 and per-tensor gradient quantization under the same recipe; `--part2` runs only those and
 * keeps the rows of bench/results/quant.json. `--ptq` runs only the PTQ rows (minutes, no training)
 * and replaces them in place among the rows of bench/results/quant.json (no --resume).
 */
import { Executor, compress, evaluate, fit, graphStatistics, useBackend, type CompressionBuilder, type CompressionController, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { reestimateBatchNorm } from '@tensorpress/binary';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist, loadMnist } from '@tensorpress/datasets';
import { dorefa, inq, inqLrSchedule, int8Training, lsq, pact, quantizePostTraining, quantization, tqt, type BitsPlanEntry, type PtqOptions } from '@tensorpress/quant';
import { readFile } from 'node:fs/promises';
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

/** INQ: portion steps of this many optimizer steps (4 portions), Adam at a constant rate. */
const INQ_STEPS_PER_PORTION = 200;
const INQ_LR = 5e-4;
/**
 * INQ, second recipe (closer to the paper's): per bit width, `perPortion` steps of retraining after
 * each of the portions 0.5/0.75/0.875, the rate decaying (cosine) within each and restarting at the
 * next portion; after the last portion (every weight a power of two) `final` steps train what INQ
 * leaves in float (biases, BN scale and shift), then BN statistics are re-estimated. Training images:
 * the full 60,000 set (one pass in shuffled order, wrapping when the steps need more); the rate: `inqLrSchedule`.
 */
const INQ2: Record<number, { portions: number[]; perPortion: number; final: number }> = {
  5: { portions: [0.5, 0.75, 0.875, 1], perPortion: 120, final: 60 },
  // 3 bits: one more, smaller last portion (6.25 %): the weights still free have grown to compensate, and quantizing them all at once costs most.
  3: { portions: [0.5, 0.75, 0.875, 0.9375, 1], perPortion: 130, final: 70 },
};
const INQ2_LR = 5e-4;
const INQ2_BN_SAMPLES = 2048;

/** INT8 training from scratch: this many training images, epochs, Adam rate (FP32 and both gradient modes alike). */
const SCRATCH_IMAGES = 6000;
const SCRATCH_EPOCHS = 2;
const SCRATCH_LR = 2e-3;

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
  const part2 = args.includes('--part2');
  const ptqOnly = args.includes('--ptq');
  // --inq-steps P,F: the second INQ recipe with P steps per portion and F final steps (rows labelled with them);
  // --inq-bits 5 or 3,5: only those bit widths of that recipe.
  const inqSteps = args.includes('--inq-steps') ? args[args.indexOf('--inq-steps') + 1]!.split(',').map(Number) : undefined;
  const inqBits = args.includes('--inq-bits') ? args[args.indexOf('--inq-bits') + 1]!.split(',').map(Number) : [3, 5];
  // --inq-portions 0.5,0.75,0.875,0.9375,1: other accumulated portions for that recipe (the label names them).
  const inqPortions = args.includes('--inq-portions') ? args[args.indexOf('--inq-portions') + 1]!.split(',').map(Number) : undefined;
  // --inq-lr R: Adam's base rate of that recipe (default INQ2_LR; the label names another).
  const inqLr = args.includes('--inq-lr') ? Number(args[args.indexOf('--inq-lr') + 1]) : INQ2_LR;
  // --part2 keeps the committed rows (and its own partial rows when resumed) and adds the part 2 rows.
  const committed = async (): Promise<Row[]> => {
    try {
      return (JSON.parse(await readFile(new URL('./results/quant.json', import.meta.url), 'utf8')) as { rows: Row[] }).rows;
    } catch {
      return [];
    }
  };
  const partial = part2 ? 'quant-part2' : ptqOnly ? 'quant-ptq' : 'quant';
  // --ptq always starts from the committed rows (its run takes minutes: no --resume).
  const rows: Row[] = ptqOnly
    ? await committed()
    : part2
      ? args.includes('--resume')
        ? await loadPartialRows(partial)
        : await committed()
      : args.includes('--resume') || retime
        ? await loadPartialRows('quant')
        : [];
  const rowKey = (r: Row): string => `${String(r['dataset'])}:${String(r['model'])}:${String(r['method'])}`;
  // --ptq redoes every PTQ row of the selected setups.
  const redo = new Set<string>();
  if (ptqOnly) for (const r of rows) if (PTQ.some((p) => p.method === r['method'])) redo.add(rowKey(r));
  const done = new Set(rows.map(rowKey).filter((k) => !redo.has(k)));
  const backend = await useBackend('wasm');
  const mnist = await loadMnist();
  let fashion: Awaited<ReturnType<typeof loadFashionMnist>> | undefined;

  for (const setup of SETUPS) {
    if (only && only !== `${setup.dataset}:${setup.model}`) continue;
    if (part2 && setup.dataset !== 'fashion-mnist') continue;
    const data = setup.dataset === 'mnist' ? mnist : (fashion ??= await loadFashionMnist());
    const make = referenceModels[setup.model as 'plainCnn' | 'residualCnn'];
    const { graph: baseline } = await trainedBaseline(setup.model, () => make({ seed: 0 }), setup.dataset, data.train);
    const fp32 = await evaluate(baseline, data.test, { batchSize: 500, progress: false });
    const fp32Bytes = graphStatistics(baseline).total.bytes;
    const base = { dataset: setup.dataset, model: setup.model, backend: backend.name, testImages: fp32.count };
    const key = (method: string): string => `${setup.dataset}:${setup.model}:${method}`;
    const push = async (row: Row): Promise<void> => {
      // A redone row takes the place of the old one (the README table keeps its order).
      const at = rows.findIndex((r) => rowKey(r) === rowKey(row));
      if (at >= 0) rows[at] = row;
      else rows.push(row);
      await savePartialRows(partial, rows);
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

    if (setup.dataset === 'fashion-mnist' && !ptqOnly) {
      // Part 2: INQ fine-tuned from the FP32 model; INT8 training from scratch vs FP32 and per-tensor gradients.
      // Three retraining phases: the last portion (every weight) is quantized at the final step, where the paper ends.
      const inqTrain = subset(data.train, INQ_STEPS_PER_PORTION * 3 * BATCH, 1);
      const inqRows: { bits: number; n1: 'max' | 'min_error'; method: string; cosine?: boolean }[] = [
        ...[5, 3].flatMap((bits) => [
          { bits, n1: 'max' as const, method: `inq ${bits}-bit` },
          { bits, n1: 'min_error' as const, method: `inq ${bits}-bit (min-error n1)` },
        ]),
        // The paper decays the rate; here a cosine decay over the whole run (each later portion retrains at a lower rate).
        { bits: 3, n1: 'min_error', method: 'inq 3-bit (min-error n1, cosine)', cosine: true },
      ];
      /** Strips an INQ run, evaluates the shipped graph and gives the row's common fields (the controller is disposed). */
      const inqResult = async (ctrl: CompressionController, bits: number, started: number): Promise<Row> => {
        const trainSeconds = (performance.now() - started) / 1000;
        const total = ctrl.statistics().algorithms[0]!.total;
        const stripped = ctrl.strip();
        ctrl.dispose();
        const r = await evaluate(stripped, data.test, { batchSize: 500, progress: false });
        return {
          ...base,
          bits: `W${bits} pow2`,
          accuracy: round(r.accuracy, 4),
          deltaPts: round((r.accuracy - fp32.accuracy) * 100, 2),
          weightBytesAtBits: Number(total['bytesAtBits']),
          weightFloatBytes: Number(total['floatBytes']),
          quantizedFraction: Number(total['quantizedFraction']),
          trainSeconds: round(trainSeconds, 1),
        };
      };
      for (const { bits, n1, method, cosine } of inqRows) {
        if (done.has(key(method))) continue;
        const ctrl = compress(baseline, [inq({ bits, n1, stepsPerStep: INQ_STEPS_PER_PORTION })]);
        const started = performance.now();
        await fit(ctrl.model.executor, inqTrain, { epochs: 1, batchSize: BATCH, optimizer: { type: 'adam', learningRate: INQ_LR }, ...(cosine ? { lrSchedule: 'cosine' as const } : {}), seed: 0, controller: ctrl, progress: false });
        await push({
          method,
          ...(await inqResult(ctrl, bits, started)),
          n1: n1 === 'max' ? 'max (paper)' : 'min error',
          trainImages: inqTrain.size,
          steps: Math.ceil(inqTrain.size / BATCH),
          learningRate: INQ_LR,
          ...(cosine ? { lrSchedule: 'cosine' } : {}),
        });
      }
      // INQ2 (see its comment), 3-bit first; min-error n1 (the paper's n1 zeroes most 3-bit weights).
      for (const bits of inqBits) {
        const { portions, perPortion, final } = {
          ...INQ2[bits]!,
          ...(inqSteps ? { perPortion: inqSteps[0]!, final: inqSteps[1] ?? INQ2[bits]!.final } : {}),
          ...(inqPortions ? { portions: inqPortions } : {}),
        };
        const phases = portions.length - 1;
        const steps = phases * perPortion + final;
        const portionTag = inqPortions ? `, portions ${portions.join('/')}` : '';
        const lrTag = inqLr === INQ2_LR ? '' : ` ${inqLr}`;
        const method = `inq ${bits}-bit (min-error n1, ${phases}×${perPortion}+${final} steps${portionTag}, Adam${lrTag} cos/portion, BN)`;
        if (done.has(key(method))) continue;
        const train = data.train.subset(Array.from({ length: steps * BATCH }, (_, i) => i % data.train.size));
        const ctrl = compress(baseline, [inq({ bits, n1: 'min_error', portions, stepsPerStep: perPortion })]);
        const started = performance.now();
        await fit(ctrl.model.executor, train, {
          epochs: 1,
          batchSize: BATCH,
          optimizer: { type: 'adam', learningRate: inqLr },
          lrSchedule: inqLrSchedule({ stepsPerStep: perPortion, retrainings: phases, finalSteps: final }),
          seed: 0,
          controller: ctrl,
          progress: false,
          log: (line) => console.log(`  ${setup.model} ${method}: ${line}`),
        });
        reestimateBatchNorm(ctrl.model.executor, train, { samples: INQ2_BN_SAMPLES });
        await push({
          method,
          ...(await inqResult(ctrl, bits, started)),
          n1: 'min error',
          portions: portions.join('/'),
          trainImages: Math.min(train.size, data.train.size),
          steps,
          learningRate: inqLr,
          lrSchedule: `cosine per portion (${perPortion}), final ${final} (biases, BN)`,
          bnReestimated: INQ2_BN_SAMPLES,
        });
      }
      const scratchTrain = subset(data.train, SCRATCH_IMAGES, 2);
      const scratch: { method: string; builder?: () => CompressionBuilder }[] = [
        { method: 'fp32 scratch (same recipe)' },
        { method: 'int8 training scratch (channel, magnitude-aware)', builder: () => int8Training() },
        { method: 'int8 training scratch (per-tensor gradients)', builder: () => int8Training({ gradients: { granularity: 'tensor', clipping: 'max' } }) },
      ];
      let fp32Scratch: { accuracy: number; seconds: number } | undefined;
      const prevFp32 = rows.find((r) => r['dataset'] === setup.dataset && r['model'] === setup.model && r['method'] === scratch[0]!.method);
      if (prevFp32) fp32Scratch = { accuracy: Number(prevFp32['accuracy']), seconds: Number(prevFp32['trainSeconds']) };
      for (const sc of scratch) {
        if (done.has(key(sc.method))) continue;
        const fresh = make({ seed: 0 });
        const ctrl = sc.builder ? compress(fresh, [sc.builder()]) : undefined;
        if (ctrl) await ctrl.initialize(scratchTrain, { samples: CALIBRATION_IMAGES });
        const ex = ctrl ? ctrl.model.executor : new Executor(fresh);
        const started = performance.now();
        await fit(ex, scratchTrain, { epochs: SCRATCH_EPOCHS, batchSize: BATCH, optimizer: { type: 'adam', learningRate: SCRATCH_LR }, lrSchedule: 'cosine', seed: 0, ...(ctrl ? { controller: ctrl } : {}), progress: false });
        const seconds = (performance.now() - started) / 1000;
        const graph = ctrl ? ctrl.strip() : ex.snapshot();
        ctrl?.dispose();
        ex.dispose();
        const r = await evaluate(graph, data.test, { batchSize: 500, progress: false });
        if (!ctrl) fp32Scratch = { accuracy: r.accuracy, seconds };
        await push({
          ...base,
          method: sc.method,
          bits: ctrl ? 'W8A8G8' : 'FP32',
          accuracy: round(r.accuracy, 4),
          deltaPts: round((r.accuracy - fp32.accuracy) * 100, 2),
          ...(fp32Scratch ? { deltaVsScratchFp32Pts: round((r.accuracy - fp32Scratch.accuracy) * 100, 2), stepTimeRatioToFp32: round(seconds / fp32Scratch.seconds, 3) } : {}),
          trainImages: scratchTrain.size,
          epochs: SCRATCH_EPOCHS,
          learningRate: SCRATCH_LR,
          trainSeconds: round(seconds, 1),
        });
      }
    }
    if (part2) continue;

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
    if (ptqOnly) continue;

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
      'PTQ: 256 training images for calibration, BN folded, per-channel symmetric int8 weights, asymmetric uint8 activations (KL: symmetric, unsigned [0, t] on non-negative values); statistics of the value each quantizer rounds (after MaxPool/Flatten). KL: TensorRT entropy search (bin 0 = bin 1, 2048 bins, 2^(b-1) or 2^b quantized bins), threshold never below the 99.99th percentile of |x|.',
      `INQ (Fashion-MNIST): fine-tuned from the FP32 model on ${INQ_STEPS_PER_PORTION * 3 * BATCH} training images, one epoch, portions 0.5/0.75/0.875 retrained ${INQ_STEPS_PER_PORTION} steps each, the last (1) at the final step, Adam ${INQ_LR} constant; accuracy of the stripped graph (every weight 0 or ±2^k through DequantizeLinear). weightBytesAtBits: Conv/Gemm weights packed at b bits. n1: the paper's floor(log2(4·max|W|/3)) per layer, or (min-error n1) the one of it and the 3 below with the least squared error on the FP32 weights.`,
      `INQ, second recipe (rows "inq b-bit (min-error n1, P×K+F steps, Adam cos/portion, BN)"): fine-tuned from the FP32 model on the first P·K+F batches of 64 of the training set (shuffled), min-error n1; after each portion but the last, K steps of Adam ${INQ2_LR} with the rate decaying (cosine to 0) within the portion and restarting at the next (the paper decays its rate within each retraining); portions 0.5/0.75/0.875/1 at 5 bits, 0.5/0.75/0.875/0.9375/1 at 3 bits; after the last portion every Conv/Gemm weight is a fixed power of two and F more steps (cosine) train only what INQ leaves in float (biases, BN scale and shift); then the BN running statistics are re-estimated on ${INQ2_BN_SAMPLES} training images (train-mode batch statistics, AdaBN). trainSeconds includes the re-estimation.`,
      `INT8 training (Fashion-MNIST): from scratch on ${SCRATCH_IMAGES} training images, ${SCRATCH_EPOCHS} epochs, Adam ${SCRATCH_LR} cosine, batch 64, for FP32 and both gradient modes alike; deltaPts vs the cached 3-epoch FP32 model, deltaVsScratchFp32Pts vs FP32 under the same recipe; stepTimeRatioToFp32: training time over the FP32 run's.`,
    ],
  };
}
