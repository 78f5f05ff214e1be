/**
 * `npm run bench -- pruning [--quick] [--fp32-epochs N] [--finetune-epochs N] [--no-cache] [--resume] [--only a,b]`:
 * the residual reference CNN trained on Fashion-MNIST (FP32, cached under bench/.cache), pruned to
 * −50% FLOPs with L1, L2, FPGM and Slim (pruneFirstConv and pruneDownsampleConvs on), fine-tuned with
 * the masks, stripped (channels physically removed) and evaluated; params and FLOPs before and after
 * from core statistics; the ONNX Runtime latency of the exported pruned model over the unpruned one
 * at batch 256. The four criteria run in regular mode (kept filters a multiple of 8, what ORT's fast
 * convolutions want); one normal-mode FPGM row shows the cost of arbitrary channel counts; group mode
 * runs on a small grouped-conv CNN. Every stripped model is exported and run in ORT.
 *
 * `--quick` is a smoke run: 2,000 training and 1,000 test images, one epoch each, few latency runs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { GraphBuilder, compress, evaluate, fit, graphStatistics, numAttr, useBackend, type Dataset, type CompressionBuilder, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { knowledgeDistillation } from '@tensorpress/distill';
import { filterPruning, type FilterPruningOptions, type PruningCriterion } from '@tensorpress/pruning';
import type { SuiteResult } from './run.js';
import { loadPartialRows, median, round, savePartialRows, trainedBaseline } from './common.js';

const LATENCY_BATCH = 256;
/** Fine-tuning after pruning: a lower rate, cosine decay. */
const FINETUNE = { batch: 64, learningRate: 1e-3 };
/** Temperature of the knowledge distillation from the unpruned model during fine-tuning. */
const KD_TEMPERATURE = 4;

/**
 * Offline knowledge distillation (Hinton et al., 2015) from the unpruned model while fine-tuning
 * the pruned one, as NNCF users pair it with filter pruning: `knowledgeDistillation` stacked after
 * the pruner, naming no teacher (the default is the FP32 original the pipeline starts from). With
 * alpha 0.5 the objective is half of `CE + T²·KL` (Adam does not see a constant factor); Slim's
 * L1 penalty, which is not halved, gets half its weight to keep `CE + T²·KL + penalty` exactly.
 */
function distillation(run: PruneRun): { builders: CompressionBuilder[]; options: FilterPruningOptions } {
  if (!run.distill) return { builders: [], options: run.options };
  const penalty = run.options.slimPenalty ?? 1e-4;
  return {
    builders: [knowledgeDistillation({ temperature: KD_TEMPERATURE, alpha: 0.5 })],
    options: { ...run.options, slimPenalty: penalty / 2 },
  };
}

interface Settings {
  quick: boolean;
  fp32Epochs: number;
  finetuneEpochs: number;
  cache: boolean;
  latencyRuns: number;
}

function settingsOf(args: string[]): Settings {
  const quick = args.includes('--quick');
  const num = (flag: string, fallback: number): number => {
    const i = args.indexOf(flag);
    if (i < 0) return fallback;
    const v = Number(args[i + 1]);
    if (!Number.isInteger(v) || v < 0) throw new Error(`${flag} expects a non-negative integer, got ${String(args[i + 1])}`);
    return v;
  };
  return {
    quick,
    fp32Epochs: num('--fp32-epochs', quick ? 1 : 3),
    finetuneEpochs: num('--finetune-epochs', quick ? 1 : 5),
    cache: !args.includes('--no-cache'),
    latencyRuns: quick ? 5 : 30,
  };
}

function subsetOf(data: Dataset, n: number): Dataset {
  return n >= data.size ? data : data.subset(Array.from({ length: n }, (_, i) => i));
}

/** The trained FP32 model (shared cache with the other suites, see trainedBaseline). */
async function trainedFp32(name: string, make: () => Graph, train: Dataset, s: Settings): Promise<Graph> {
  return (await trainedBaseline(name, make, 'fashion-mnist', train, { epochs: s.fp32Epochs, cache: s.cache })).graph;
}

/** A small CNN with grouped convolutions (group 4) for the group-mode row. */
function groupedCnn(): Graph {
  const b = new GraphBuilder({ seed: 0 });
  let h = b.input('input', [null, 28, 28, 1]);
  const cbr = (x: string, name: string, filters: number, kernel: number, group = 1): string =>
    b.relu(
      b.batchNorm(b.conv(x, { filters, kernel, group, padding: kernel > 1 ? 'same' : 'valid', bias: false, name }), { name: `${name}_bn` }),
      `${name}_relu`,
    );
  h = cbr(h, 'stem', 16, 3);
  h = b.maxPool(h, 2, { name: 'pool1' });
  h = cbr(h, 'gconv1', 32, 3, 4);
  h = b.maxPool(h, 2, { name: 'pool2' });
  h = cbr(h, 'pw', 64, 1);
  h = cbr(h, 'gconv2', 64, 3, 4);
  h = b.flatten(b.globalAvgPool(h, 'gap'), 'flatten');
  b.output(b.dense(h, 10, { name: 'fc' }));
  return b.build();
}

/** What the ORT part reports: a latency ratio, or why it could not be measured. */
type LatencyResult = { unprunedMs: number; prunedMs: number; latencyRatio: number } | { unavailable: string };

interface ExportOnnx {
  toOnnx(graph: Graph, options?: Record<string, unknown>): Uint8Array;
  ortLatency(bytes: Uint8Array, options: { batch: number; threads?: number; runs?: number; warmup?: number }): Promise<{ medianMs: number }>;
}

/**
 * ONNX Runtime latency of the pruned model over the unpruned one at batch 256, both exported with
 * `@tensorpress/export-onnx` and measured alternately in rounds in the same run (medians of the
 * round medians). Returns why not when export-onnx or onnxruntime-node is not available yet.
 */
async function ortLatencyRatio(unpruned: Graph, pruned: Graph, runs: number): Promise<LatencyResult> {
  let mod: Partial<ExportOnnx>;
  try {
    mod = (await import('@tensorpress/export-onnx')) as unknown as Partial<ExportOnnx>;
  } catch (e) {
    return { unavailable: `@tensorpress/export-onnx did not load: ${(e as Error).message}` };
  }
  if (typeof mod.toOnnx !== 'function' || typeof mod.ortLatency !== 'function') {
    return { unavailable: '@tensorpress/export-onnx does not provide toOnnx and ortLatency yet' };
  }
  const bytes = [mod.toOnnx(unpruned), mod.toOnnx(pruned)];
  const samples: number[][] = [[], []];
  const rounds = 3;
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < 2; i++) {
      const res = await mod.ortLatency(bytes[i]!, { batch: LATENCY_BATCH, runs: Math.max(1, Math.round(runs / rounds)), warmup: 2 });
      samples[i]!.push(res.medianMs);
    }
  }
  const unprunedMs = median(samples[0]!);
  const prunedMs = median(samples[1]!);
  return { unprunedMs: round(unprunedMs, 2), prunedMs: round(prunedMs, 2), latencyRatio: round(prunedMs / unprunedMs, 3) };
}

function latencyFields(l: LatencyResult): Record<string, unknown> {
  return 'unavailable' in l ? { latencyNote: l.unavailable } : { unprunedLatencyMs: l.unprunedMs, latencyMs: l.prunedMs, latencyRatio: l.latencyRatio };
}

interface PruneRun {
  label: string;
  criterion: PruningCriterion;
  options: FilterPruningOptions;
  /** Epochs of sparse training (Slim's L1 on γ) before the masks are set. */
  sparseEpochs: number;
  /** Fine-tune with knowledge distillation from the unpruned model. */
  distill?: boolean;
  /** Fine-tuning epochs of this run (default: the settings'). */
  finetuneEpochs?: number;
}

async function pruneAndFinetune(
  model: string,
  fp32: Graph,
  fp32Accuracy: number,
  run: PruneRun,
  data: { train: Dataset; test: Dataset },
  s: Settings,
): Promise<{ row: Record<string, unknown>; stripped: Graph }> {
  const kd = distillation(run);
  const ctrl = compress(fp32, [filterPruning({ criterion: run.criterion, ...kd.options }), ...kd.builders]);
  const started = performance.now();
  await fit(ctrl.model.executor, data.train, {
    epochs: run.sparseEpochs + (run.finetuneEpochs ?? s.finetuneEpochs),
    batchSize: FINETUNE.batch,
    optimizer: { type: 'adam', learningRate: FINETUNE.learningRate },
    lrSchedule: 'cosine',
    controller: ctrl,
    seed: 1,
    progress: false,
    log: (line) => console.log(`  ${model} ${run.label}: ${line}`),
  });
  const trainSeconds = (performance.now() - started) / 1000;
  const stats = ctrl.statistics().algorithms.find((a) => a.algorithm === 'filter_pruning')!;
  const stripped = ctrl.strip();
  ctrl.dispose();
  const acc = (await evaluate(stripped, data.test, { batchSize: 500, progress: false })).accuracy;
  const before = graphStatistics(fp32).total;
  const after = graphStatistics(stripped).total;
  const pruned = stats.layers.filter((l) => l.prunable && l['keptFilters'] !== l['totalFilters']);
  console.log(`${model} ${run.label}: ${(acc * 100).toFixed(2)}% (FP32 ${(fp32Accuracy * 100).toFixed(2)}%), FLOPs ${before.flops} → ${after.flops}`);
  return {
    stripped,
    row: {
      model,
      method: run.label,
      criterion: run.criterion,
      mode: run.options.mode ?? 'normal',
      sparseEpochs: run.sparseEpochs,
      finetuneEpochs: run.finetuneEpochs ?? s.finetuneEpochs,
      distillation: run.distill ? `T=${KD_TEMPERATURE}` : 'none',
      accuracy: round(acc, 4),
      fp32Accuracy: round(fp32Accuracy, 4),
      deltaPts: round((acc - fp32Accuracy) * 100, 2),
      params: after.params,
      paramsBefore: before.params,
      flops: after.flops,
      flopsBefore: before.flops,
      flopsReductionPct: round((1 - after.flops / before.flops) * 100, 1),
      keptFilters: pruned.map((l) => `${l.node}:${String(l['keptFilters'])}/${String(l['totalFilters'])}`).join(' '),
      trainSeconds: round(trainSeconds, 1),
    },
  };
}

export default async function pruning(args: string[]): Promise<SuiteResult> {
  const s = settingsOf(args);
  const backend = (await useBackend(['wasm', 'cpu'])).name;
  const fashion = await loadFashionMnist();
  const data = s.quick ? { train: subsetOf(fashion.train, 2000), test: subsetOf(fashion.test, 1000) } : fashion;
  // `--resume` keeps the rows of an interrupted run; `--only a,b` runs just those labels.
  const rows: Record<string, unknown>[] = args.includes('--resume') ? await loadPartialRows('pruning') : [];
  const only = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1]!.split(',')) : undefined;
  const wanted = (label: string): boolean => (only === undefined || only.has(label)) && !rows.some((r) => r['method'] === label);
  const push = async (row: Record<string, unknown>): Promise<void> => {
    rows.push(row);
    if (!s.quick) await savePartialRows('pruning', rows);
  };
  const notes: string[] = [
    'accuracy: the stripped (physically pruned) graph on the Fashion-MNIST test set; fp32Accuracy: the unpruned model; deltaPts in points.',
    'params, flops: per example from core graphStatistics of the stripped graph; *Before: the FP32 graph.',
    `latencyRatio: ONNX Runtime median latency of the exported pruned model over the exported unpruned one at batch ${LATENCY_BATCH}, measured alternately in the same run.`,
    'Slim: one epoch of sparse training (L1 on BN γ as compression loss) before the masks are set, then the same fine-tuning as the others.',
    `Fine-tuning: Adam ${FINETUNE.learningRate}, cosine decay, batch ${FINETUNE.batch}; distillation T=${KD_TEMPERATURE}: plus T²·KL from the unpruned model (@tensorpress/distill, alpha 0.5, default teacher), 'none': task loss only.`,
  ];
  if (s.quick) notes.push('--quick: 2,000 training / 1,000 test images, one FP32 and one fine-tuning epoch: a smoke run, not a result.');

  // Residual CNN: the four criteria at −50% FLOPs, then regular mode.
  const fp32 = await trainedFp32('residualCnn', () => referenceModels.residualCnn({ seed: 0 }), data.train, s);
  const fp32Acc = (await evaluate(fp32, data.test, { batchSize: 500, progress: false })).accuracy;
  const fp32Stats = graphStatistics(fp32).total;
  if (wanted('fp32')) await push({
    model: 'residualCnn',
    method: 'fp32',
    accuracy: round(fp32Acc, 4),
    fp32Accuracy: round(fp32Acc, 4),
    deltaPts: 0,
    params: fp32Stats.params,
    flops: fp32Stats.flops,
    flopsReductionPct: 0,
  });
  // ORT's fast convolutions (NCHWc) want channel counts in multiples of 8 on this CPU: the four
  // criteria run in regular mode (N = 8, FLOPs target reached by giving back whole steps); one
  // normal-mode row shows what arbitrary counts cost in ORT.
  const common: FilterPruningOptions = { flopsReduction: 0.5, pruneFirstConv: true, pruneDownsampleConvs: true };
  const regular: FilterPruningOptions = { ...common, mode: 'regular', multipleOf: 8 };
  const runs: PruneRun[] = [
    { label: 'fpgm', criterion: 'fpgm', options: regular, sparseEpochs: 0 },
    { label: 'l1', criterion: 'l1', options: regular, sparseEpochs: 0 },
    { label: 'l2', criterion: 'l2', options: regular, sparseEpochs: 0 },
    { label: 'slim', criterion: 'slim', options: { ...regular, schedule: { type: 'baseline', initSteps: 1 } }, sparseEpochs: 1 },
    { label: 'fpgm normal', criterion: 'fpgm', options: common, sparseEpochs: 0 },
  ];
  const runResidual = async (run: PruneRun): Promise<void> => {
    if (!wanted(run.label)) return;
    const { row, stripped } = await pruneAndFinetune('residualCnn', fp32, fp32Acc, run, data, s);
    if (run.options.mode === 'regular') {
      const kept = String(row['keptFilters'])
        .split(' ')
        .filter((x) => x !== '')
        .map((x) => Number(x.split(':')[1]!.split('/')[0]));
      row['allKeptMultipleOfN'] = kept.every((k) => k % (run.options.multipleOf ?? 8) === 0);
    }
    Object.assign(row, latencyFields(await ortLatencyRatio(fp32, stripped, s.latencyRuns)));
    await push(row);
  };
  for (const run of runs) await runResidual(run);
  // Then the best of the four criteria (by the rows just measured or kept) again: fine-tuned with
  // knowledge distillation from the unpruned model, and fine-tuned 3 epochs longer.
  const accuracyOf = (r: PruneRun): number => Number(rows.find((row) => row['method'] === r.label)?.['accuracy'] ?? -1);
  const best = runs.slice(0, 4).reduce((a, b) => (accuracyOf(b) > accuracyOf(a) ? b : a));
  const longer = s.finetuneEpochs + 3;
  await runResidual({ ...best, label: `${best.label} + KD`, distill: true });
  await runResidual({ ...best, label: `${best.label} ${longer} epochs`, finetuneEpochs: longer });

  // Grouped-conv CNN: group mode keeps every grouped conv's group count with equal channels per group.
  if (!wanted('l1 group mode')) return { rows, backend, notes };
  const gFp32 = await trainedFp32('groupedCnn', groupedCnn, data.train, { ...s, fp32Epochs: Math.min(s.fp32Epochs, 1) });
  const gAcc = (await evaluate(gFp32, data.test, { batchSize: 500, progress: false })).accuracy;
  const groupRun: PruneRun = { label: 'l1 group mode', criterion: 'l1', options: { ...common, flopsReduction: 0.4, mode: 'group' }, sparseEpochs: 0 };
  const { row, stripped } = await pruneAndFinetune('groupedCnn', gFp32, gAcc, groupRun, data, { ...s, finetuneEpochs: Math.min(s.finetuneEpochs, 1) });
  const groupsKept = gFp32.nodes
    .filter((n) => n.op === 'Conv' && numAttr(n, 'group', 1) > 1)
    .every((n) => {
      const after = stripped.node(n.name)!;
      const w = stripped.param(after.inputs[1]!)!.shape;
      return numAttr(after, 'group', 1) === numAttr(n, 'group', 1) && w[3]! % numAttr(n, 'group', 1) === 0;
    });
  row['groupStructureKept'] = groupsKept;
  Object.assign(row, latencyFields(await ortLatencyRatio(gFp32, stripped, s.latencyRuns)));
  await push(row);

  if (rows.some((r) => r['latencyNote'] !== undefined)) notes.push(`latency not measured: ${String(rows.find((r) => r['latencyNote'])!['latencyNote'])}`);
  console.log(`tensors alive at the end: ${tf.memory().numTensors}`);
  return { rows, backend, notes };
}
