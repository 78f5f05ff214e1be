/**
 * `npm run bench -- mixed-precision`: HAWQ-v2 and sensitivity pruning on the Fashion-MNIST residual
 * CNN (issue 19).
 *  1. Bits: the HAWQ-v2 plan within the BOPs of uniform W4A8 vs uniform W4A8 vs 10 random plans of
 *     that budget (each within 90–100% of it), every one after the same short QAT from the FP32
 *     weights; accuracy of the stripped graph on the full test set.
 *  2. Channels: a sensitivity-based pruning plan (PaddleSlim's rule) vs uniform ratios, both at −50%
 *     FLOPs (filter_pruning scales each to the target exactly), after the same fine-tuning.
 * Options: --quick (smoke run), --resume (keep finished rows), --steps N (training steps per row).
 */
import { compress, createRng, evaluate, fit, graphStatistics, useBackend, type CompressionBuilder, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { hawqV2, planCost, pruningPlan, sensitivity, weightLayers, type BitsPlanEntry, type HawqBudget } from '@tensorpress/mixed-precision';
import { filterPruning, pruningGroups } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import type { SuiteResult } from './run.js';
import { loadPartialRows, median, round, savePartialRows, trainedBaseline } from './common.js';

const BATCH = 64;
const QAT_LR = 5e-4;
const PRUNE_LR = 1e-3;
const BITS = [2, 4, 8] as const;
const RANDOM_PLANS = 10;
const PRUNE_LEVELS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8];

function range(from: number, n: number): number[] {
  return Array.from({ length: n }, (_, i) => from + i);
}

/** `count` plans of random bits per layer whose cost is within 90–100% of the budget (seeded). */
function randomPlans(graph: Graph, budget: HawqBudget, count: number, seed: number): BitsPlanEntry[][] {
  const rng = createRng(seed);
  const layers = weightLayers(graph);
  const out: BitsPlanEntry[][] = [];
  for (let tries = 0; out.length < count && tries < 1_000_000; tries++) {
    const plan = layers.map((l) => ({ node: l.node, weightBits: BITS[rng.int(BITS.length)]! }));
    const { cost, limit } = planCost(graph, plan, budget);
    if (cost <= limit && cost >= 0.9 * limit) out.push(plan);
  }
  return out;
}

export default async function run(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  const stepsArg = args.includes('--steps') ? Number(args[args.indexOf('--steps') + 1]) : undefined;
  const steps = stepsArg ?? (quick ? 10 : 150);
  const backend = (await useBackend(['wasm', 'cpu'])).name;
  const fashion = await loadFashionMnist();
  const train = fashion.train;
  const test = quick ? fashion.test.subset(range(0, 1000)) : fashion.test;
  // Fine-tuning uses the first steps × batch training images; the analyses use the last ones.
  const tune = train.subset(range(0, steps * BATCH));
  const calibration = train.subset(range(train.size - 256, 256));
  const heldOut = train.subset(range(train.size - 2256, 2000));

  const rows: Record<string, unknown>[] = args.includes('--resume') ? await loadPartialRows('mixed-precision') : [];
  const done = (label: string): boolean => rows.some((r) => r['method'] === label);
  const push = async (row: Record<string, unknown>): Promise<void> => {
    rows.push(row);
    console.log(JSON.stringify(row));
    if (!quick) await savePartialRows('mixed-precision', rows);
  };

  // --quick: an FP32 model of one epoch on 2,000 images (its own cache entry), for smoke runs.
  const fp32Train = quick ? train.subset(range(0, 2000)) : train;
  const fp32 = (await trainedBaseline('residualCnn', () => referenceModels.residualCnn({ seed: 0 }), 'fashion-mnist', fp32Train, { epochs: quick ? 1 : 3 })).graph;
  const fp32Acc = (await evaluate(fp32, test, { batchSize: 500, progress: false })).accuracy;
  const fp32Stats = graphStatistics(fp32).total;
  if (!done('fp32')) await push({ part: 'bits', method: 'fp32', accuracy: round(fp32Acc, 4), deltaPts: 0, flops: fp32Stats.flops });

  const tuneOnce = async (make: () => CompressionBuilder, learningRate: number, label: string): Promise<{ accuracy: number; graph: Graph; seconds: number; stats: Record<string, unknown> }> => {
    const ctrl = compress(fp32, [make()]);
    const started = performance.now();
    await fit(ctrl.model.executor, tune, {
      epochs: 1,
      batchSize: BATCH,
      optimizer: { type: 'adam', learningRate },
      lrSchedule: 'cosine',
      seed: 0,
      controller: ctrl,
      progress: false,
      log: (line) => console.log(`  ${label}: ${line}`),
    });
    const seconds = (performance.now() - started) / 1000;
    const stats = ctrl.statistics().algorithms[0]!.total as Record<string, unknown>;
    const graph = ctrl.strip();
    ctrl.dispose();
    const accuracy = (await evaluate(graph, test, { batchSize: 500, progress: false })).accuracy;
    return { accuracy, graph, seconds, stats };
  };

  // 1. Bits: HAWQ-v2 vs uniform W4A8 vs random plans, at the BOPs of uniform W4A8.
  const layers = weightLayers(fp32);
  const budget: HawqBudget = { type: 'bops', value: layers.reduce((a, l) => a + l.macs * 4 * 8, 0) };
  const hawqStarted = performance.now();
  const hawq = hawqV2(fp32, calibration, { budget, bits: [...BITS], hutchinson: { samples: 256, batchSize: 64, tolerance: 1e-2, minIterations: quick ? 10 : 30, maxIterations: quick ? 10 : 100 } });
  const hawqSeconds = (performance.now() - hawqStarted) / 1000;
  for (const w of hawq.warnings) console.log(`  hawq warning: ${w}`);
  const qatRow = async (method: string, plan: BitsPlanEntry[], extra: Record<string, unknown> = {}): Promise<void> => {
    if (done(method)) return;
    const r = await tuneOnce(() => quantization({ weights: { bits: 4 }, activations: { bits: 8 }, plan }), QAT_LR, method);
    const { cost } = planCost(fp32, plan, budget);
    await push({
      part: 'bits',
      method,
      bits: plan.map((e) => e.weightBits).join(','),
      bops: cost,
      budgetShare: round(cost / budget.value, 4),
      accuracy: round(r.accuracy, 4),
      deltaPts: round((r.accuracy - fp32Acc) * 100, 2),
      steps,
      trainSeconds: round(r.seconds, 1),
      ...extra,
    });
  };
  const uniform = layers.map((l) => ({ node: l.node, weightBits: 4 }));
  await qatRow('uniform W4A8', uniform);
  await qatRow('hawq-v2', hawq.plan, {
    traces: hawq.layers.map((l) => ({ node: l.node, trace: Number(l.trace.toPrecision(4)), stdError: Number(l.stdError.toPrecision(3)) })),
    hutchinsonIterations: hawq.traces.iterations,
    hutchinsonConverged: hawq.traces.converged,
    analysisSeconds: round(hawqSeconds, 1),
  });
  const randoms = randomPlans(fp32, budget, quick ? 2 : RANDOM_PLANS, 1);
  for (const [i, plan] of randoms.entries()) await qatRow(`random ${i + 1}`, plan);

  // 1b. A tighter budget, where uniform bits lose accuracy: the BOPs of uniform W3A8, HAWQ choosing
  // among {2, 3, 4, 8} (the same traces).
  const budget3: HawqBudget = { type: 'bops', value: layers.reduce((a, l) => a + l.macs * 3 * 8, 0) };
  const hawq3 = hawqV2(fp32, calibration, { budget: budget3, bits: [2, 3, 4, 8], traces: hawq.traces });
  const qatRow3 = async (method: string, plan: BitsPlanEntry[]): Promise<void> => {
    if (done(method)) return;
    const r = await tuneOnce(() => quantization({ weights: { bits: 3 }, activations: { bits: 8 }, plan }), QAT_LR, method);
    const { cost } = planCost(fp32, plan, budget3);
    await push({ part: 'bits-w3', method, bits: plan.map((e) => e.weightBits).join(','), bops: cost, budgetShare: round(cost / budget3.value, 4), accuracy: round(r.accuracy, 4), deltaPts: round((r.accuracy - fp32Acc) * 100, 2), steps, trainSeconds: round(r.seconds, 1) });
  };
  await qatRow3('uniform W3A8', layers.map((l) => ({ node: l.node, weightBits: 3 })));
  await qatRow3('hawq-v2 (W3A8 budget)', hawq3.plan);

  // 2. Channels: sensitivity plan vs uniform ratios at -50% FLOPs.
  const sensStarted = performance.now();
  const common = { criterion: 'l1' as const, flopsReduction: 0.5, pruneFirstConv: true, pruneDownsampleConvs: true };
  // Coupled producers (through an Add) are analysed together, as filter_pruning cuts them.
  const groups = pruningGroups(fp32, common).groups.filter((g) => g.prunable).map((g) => g.producers);
  const analysis = sensitivity(fp32, heldOut, 'filter_pruning', PRUNE_LEVELS, { samples: quick ? 500 : 2000, groups });
  const { plan: ratioPlan, threshold, estimatedFlopsReduction } = pruningPlan(fp32, analysis, { flopsReduction: 0.5 });
  const sensSeconds = (performance.now() - sensStarted) / 1000;
  const pruneRow = async (method: string, make: () => CompressionBuilder, extra: Record<string, unknown> = {}): Promise<void> => {
    if (done(method)) return;
    const r = await tuneOnce(make, PRUNE_LR, method);
    const s = graphStatistics(r.graph).total;
    await push({
      part: 'channels',
      method,
      accuracy: round(r.accuracy, 4),
      deltaPts: round((r.accuracy - fp32Acc) * 100, 2),
      flops: s.flops,
      flopsReduction: round(1 - s.flops / fp32Stats.flops, 4),
      params: s.params,
      steps,
      trainSeconds: round(r.seconds, 1),
      ...extra,
    });
  };
  await pruneRow('uniform ratios -50% FLOPs', () => filterPruning(common));
  await pruneRow('sensitivity plan -50% FLOPs', () => filterPruning({ ...common, plan: ratioPlan }), {
    plan: ratioPlan,
    threshold: round(threshold, 5),
    estimatedFlopsReduction: round(estimatedFlopsReduction, 4),
    analysisSeconds: round(sensSeconds, 1),
    sensitivity: analysis.rows.map((row) => ({ node: row.node, ...(row.members ? { members: row.members } : {}), drops: row.levels.map((l) => round(l.drop * 100, 2)) })),
  });

  // Summary rows: what the targets compare.
  const acc = (m: string): number => rows.find((r) => r['method'] === m)?.['accuracy'] as number;
  const randomAcc = rows.filter((r) => String(r['method']).startsWith('random ')).map((r) => r['accuracy'] as number);
  const summary = {
    part: 'summary',
    method: 'targets',
    hawqMinusUniformPts: round((acc('hawq-v2') - acc('uniform W4A8')) * 100, 2),
    hawqMinusRandomMedianPts: round((acc('hawq-v2') - median(randomAcc)) * 100, 2),
    randomMedian: round(median(randomAcc), 4),
    randomBest: round(Math.max(...randomAcc), 4),
    hawqW3MinusUniformW3Pts: round((acc('hawq-v2 (W3A8 budget)') - acc('uniform W3A8')) * 100, 2),
    sensitivityMinusUniformPts: round((acc('sensitivity plan -50% FLOPs') - acc('uniform ratios -50% FLOPs')) * 100, 2),
  };
  const out = rows.filter((r) => r['part'] !== 'summary');
  out.push(summary);
  console.log(JSON.stringify(summary));
  const notes = [
    `Fashion-MNIST residualCnn, FP32 weights: 3 epochs on 60,000 (bench/.cache). Every row fine-tunes from them for ${steps} steps (batch ${BATCH}, Adam, cosine, seed 0) on the first ${steps * BATCH} training images; accuracy of the stripped graph on the ${test.size}-image test set.`,
    `bits: quant 'quantization' (symmetric per-channel weights, 8-bit activations) at lr ${QAT_LR}; budget = the BOPs of uniform W4A8 (${budget.value}); random plans draw bits from {2,4,8} per layer, kept when their BOPs are 90–100% of the budget (seed 1).`,
    'bits-w3: the same at the BOPs of uniform W3A8, HAWQ choosing among {2,3,4,8} with the same traces.',
    'hawq-v2: Hutchinson traces (Gauss-Newton estimator, see the package README) on 256 calibration images (the last of the training set), tolerance 1e-2 (30 to 100 draws), Ω = trace·‖Q_b(W)−W‖², exact Pareto allocation.',
    `channels: filter_pruning l1, first and downsample convs prunable, flopsReduction 0.5 for both; the plan is PaddleSlim's rule on a filter_pruning sensitivity analysis (levels ${PRUNE_LEVELS.join(', ')}, 2,000 held-out training images), scaled to the target by filter_pruning; producers coupled through an Add are analysed as one group (pruning's pruningGroups); lr ${PRUNE_LR}.`,
  ];
  if (quick) notes.push('--quick: 1,000 test images, few steps, 2 random plans: a smoke run, not a result.');
  return { rows: out, backend, notes };
}
