/**
 * `npm run bench -- mixed-precision`: HAWQ-v2 and sensitivity pruning on the Fashion-MNIST residual
 * CNN (issue 19).
 *  1. Bits: the HAWQ-v2 plan within the BOPs of uniform W4A8 vs uniform W4A8 vs 10 random plans of
 *     that budget (each within 90–100% of it), every one after the same short QAT from the FP32
 *     weights; accuracy of the stripped graph on the full test set.
 *  2. Channels: a sensitivity-based pruning plan (PaddleSlim's rule) vs uniform ratios, both at −50%
 *     FLOPs (filter_pruning scales each to the target exactly), after the same fine-tuning.
 *  The W4 comparison runs with several QAT data orders (--seeds, default 3) next to the FP32 weights
 *  fine-tuned the same way without quantization (the fair no-quantization reference: 3 epochs of
 *  FP32 training leave room that any fine-tune recovers), and every stripped graph's weight codes
 *  are counted per output channel (a b-bit layer must have at most 2^b − 1 distinct codes).
 * Options: --quick (smoke run), --resume (keep finished rows), --steps N (training steps per row),
 * --seeds N (data orders of the W4 rows).
 */
import { compress, createRng, evaluate, fit, graphStatistics, useBackend, type CompressionBuilder, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { hawqV2, planCost, pruningPlan, sensitivity, weightLayers, type BitsPlanEntry, type HawqBudget, type HutchinsonResult } from '@tensorpress/mixed-precision';
import { filterPruning, pruningGroups } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import type { SuiteResult } from './run.js';
import { loadPartialRows, median, round, savePartialRows, trainedBaseline } from './common.js';

const BATCH = 64;
const QAT_LR = 5e-4;
const PRUNE_LR = 1e-3;
const BITS = [2, 4, 8] as const;
const RANDOM_PLANS = 10;
/** QAT / fine-tuning steps of every row unless --steps says otherwise. */
const DEFAULT_STEPS = 150;
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

/**
 * The largest number of distinct integer codes in one output channel of each layer's weight in a
 * stripped graph (int8 codes read by a per-channel DequantizeLinear), by layer node name.
 */
function codesPerChannel(graph: Graph, layers: readonly string[]): number[] {
  return layers.map((name) => {
    const dq = graph.nodes.find((n) => n.op === 'DequantizeLinear' && n.name === `${name.replace(/[^A-Za-z0-9_./:-]/g, '_')}/dq_w`);
    const p = dq ? graph.param(dq.inputs[0]!) : undefined;
    if (!p || p.dtype !== 'int8') throw new Error(`the stripped graph has no int8 weight for layer "${name}"`);
    const cout = p.shape[p.shape.length - 1]!;
    const seen = Array.from({ length: cout }, () => new Set<number>());
    p.data.forEach((v, i) => seen[i % cout]!.add(v));
    return Math.max(...seen.map((x) => x.size));
  });
}

/** Mean and sample standard deviation. */
function meanStd(values: readonly number[]): { mean: number; std: number } {
  const m = values.reduce((a, v) => a + v, 0) / values.length;
  const v = values.length > 1 ? values.reduce((a, x) => a + (x - m) ** 2, 0) / (values.length - 1) : 0;
  return { mean: m, std: Math.sqrt(v) };
}

/** Traces stored in a finished hawq-v2 row, as {@link hawqV2}'s `traces` (so --resume skips the analysis). */
function tracesFromRow(row: Record<string, unknown> | undefined, graph: Graph): HutchinsonResult | undefined {
  const t = row?.['traces'] as { node: string; trace: number; stdError: number }[] | undefined;
  if (!row || !t) return undefined;
  const layers = weightLayers(graph).map((l) => {
    const e = t.find((x) => x.node === l.node);
    if (!e) throw new Error(`the stored hawq-v2 row has no trace for layer "${l.node}"`);
    return { node: l.node, weight: l.weight, params: l.params, trace: e.trace, stdError: e.stdError };
  });
  return { layers, iterations: row['hutchinsonIterations'] as number, converged: row['hutchinsonConverged'] as boolean, relativeChange: Number.NaN, samples: 256, method: 'gauss-newton', warnings: [] };
}

export default async function run(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  const stepsArg = args.includes('--steps') ? Number(args[args.indexOf('--steps') + 1]) : undefined;
  const steps = stepsArg ?? (quick ? 10 : DEFAULT_STEPS);
  // Another --steps than the default runs only part 1 (bits) and labels its rows "<method> (<N> steps)",
  // so that they sit beside the default rows (--resume keeps both).
  const tag = quick || steps === DEFAULT_STEPS ? '' : ` (${steps} steps)`;
  const seeds = args.includes('--seeds') ? Number(args[args.indexOf('--seeds') + 1]) : quick ? 1 : 3;
  const backend = (await useBackend(['wasm', 'cpu'])).name;
  const fashion = await loadFashionMnist();
  const train = fashion.train;
  const test = quick ? fashion.test.subset(range(0, 1000)) : fashion.test;
  // Fine-tuning uses the first steps × batch training images; the analyses use the last ones.
  const tune = train.subset(range(0, steps * BATCH));
  const calibration = train.subset(range(train.size - 256, 256));
  const heldOut = train.subset(range(train.size - 2256, 2000));

  const rows: Record<string, unknown>[] = args.includes('--resume') ? await loadPartialRows('mixed-precision') : [];
  // Rows written before seeds were recorded used seed 0: label them so.
  for (const r of rows) if (['uniform W4A8', 'hawq-v2', 'fp32 fine-tuned'].includes(r['method'] as string) && r['seed'] === undefined) r['seed'] = 0;
  const seedOf = (r: Record<string, unknown>): number => (r['seed'] as number | undefined) ?? 0;
  const done = (label: string, seed = 0): boolean => rows.some((r) => r['method'] === label && seedOf(r) === seed);
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

  const fitOptions = (learningRate: number, label: string, seed: number) =>
    ({ epochs: 1, batchSize: BATCH, optimizer: { type: 'adam' as const, learningRate }, lrSchedule: 'cosine' as const, seed, progress: false, log: (line: string) => console.log(`  ${label}: ${line}`) });
  const tuneOnce = async (make: () => CompressionBuilder, learningRate: number, label: string, seed = 0): Promise<{ accuracy: number; graph: Graph; seconds: number; stats: Record<string, unknown> }> => {
    const ctrl = compress(fp32, [make()]);
    const started = performance.now();
    await fit(ctrl.model.executor, tune, { ...fitOptions(learningRate, label, seed), controller: ctrl });
    const seconds = (performance.now() - started) / 1000;
    const stats = ctrl.statistics().algorithms[0]!.total as Record<string, unknown>;
    const graph = ctrl.strip();
    ctrl.dispose();
    const accuracy = (await evaluate(graph, test, { batchSize: 500, progress: false })).accuracy;
    return { accuracy, graph, seconds, stats };
  };

  // 1. Bits: HAWQ-v2 vs uniform W4A8 vs random plans, at the BOPs of uniform W4A8.
  const layers = weightLayers(fp32);
  const layerNames = layers.map((l) => l.node);
  const budget: HawqBudget = { type: 'bops', value: layers.reduce((a, l) => a + l.macs * 4 * 8, 0) };
  const storedTraces = tracesFromRow(rows.find((r) => r['method'] === 'hawq-v2' && r['traces']), fp32);
  const hawqStarted = performance.now();
  const hawq = hawqV2(fp32, calibration, {
    budget,
    bits: [...BITS],
    ...(storedTraces ? { traces: storedTraces } : { hutchinson: { samples: 256, batchSize: 64, tolerance: 1e-2, minIterations: quick ? 10 : 30, maxIterations: quick ? 10 : 100 } }),
  });
  const hawqSeconds = (performance.now() - hawqStarted) / 1000;
  const storedBits = rows.find((r) => String(r['method']).startsWith('hawq-v2') && r['part'] === 'bits')?.['bits'];
  if (storedBits !== undefined && storedBits !== hawq.plan.map((e) => e.weightBits).join(',')) {
    throw new Error(`the stored hawq-v2 rows used bits ${String(storedBits)}, the plan now is ${hawq.plan.map((e) => e.weightBits).join(',')}: rerun without --resume`);
  }
  for (const w of hawq.warnings) console.log(`  hawq warning: ${w}`);
  const qatRow = async (method: string, plan: BitsPlanEntry[], extra: Record<string, unknown> = {}, seed = 0): Promise<void> => {
    if (done(method, seed)) return;
    const r = await tuneOnce(() => quantization({ weights: { bits: 4 }, activations: { bits: 8 }, plan }), QAT_LR, method, seed);
    const { cost } = planCost(fp32, plan, budget);
    const codes = codesPerChannel(r.graph, layerNames);
    const bad = codes.map((c, i) => [c, plan[i]!.weightBits!] as const).filter(([c, b]) => c > 2 ** b - 1);
    if (bad.length > 0) throw new Error(`${method}: a layer has more distinct weight codes per channel than its bits allow: ${bad.map(([c, b]) => `${c} at ${b} bits`).join(', ')}`);
    await push({
      part: 'bits',
      method,
      seed,
      bits: plan.map((e) => e.weightBits).join(','),
      bops: cost,
      budgetShare: round(cost / budget.value, 4),
      accuracy: round(r.accuracy, 4),
      deltaPts: round((r.accuracy - fp32Acc) * 100, 2),
      steps,
      trainSeconds: round(r.seconds, 1),
      codesPerChannel: codes.join(','),
      ...extra,
    });
  };
  // The reference without quantization: the same fine-tune of the FP32 weights, same steps, lr, seeds.
  const fp32Row = async (seed: number): Promise<void> => {
    if (done(`fp32 fine-tuned${tag}`, seed)) return;
    const started = performance.now();
    const { graph } = await fit(fp32, tune, fitOptions(QAT_LR, 'fp32 fine-tuned', seed));
    const seconds = (performance.now() - started) / 1000;
    const accuracy = (await evaluate(graph, test, { batchSize: 500, progress: false })).accuracy;
    await push({ part: 'bits', method: `fp32 fine-tuned${tag}`, seed, accuracy: round(accuracy, 4), deltaPts: round((accuracy - fp32Acc) * 100, 2), steps, trainSeconds: round(seconds, 1) });
  };
  const uniform = layers.map((l) => ({ node: l.node, weightBits: 4 }));
  for (let seed = 0; seed < seeds; seed++) {
    await fp32Row(seed);
    await qatRow(`uniform W4A8${tag}`, uniform, {}, seed);
    await qatRow(
      `hawq-v2${tag}`,
      hawq.plan,
      seed > 0
        ? {}
        : {
            traces: hawq.layers.map((l) => ({ node: l.node, trace: Number(l.trace.toPrecision(4)), stdError: Number(l.stdError.toPrecision(3)) })),
            hutchinsonIterations: hawq.traces.iterations,
            hutchinsonConverged: hawq.traces.converged,
            analysisSeconds: round(hawqSeconds, 1),
          },
      seed,
    );
  }
  const randoms = randomPlans(fp32, budget, quick ? 2 : RANDOM_PLANS, 1);
  for (const [i, plan] of randoms.entries()) await qatRow(`random ${i + 1}${tag}`, plan);
  if (tag !== '') return finish();

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
  const common = { criterion: 'l1' as const, flopsReduction: 0.5, pruneFirstConv: true, pruneDownsampleConvs: true };
  const pruneRow = async (method: string, make: () => CompressionBuilder, extra: Record<string, unknown> = {}): Promise<void> => {
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
  if (!done('uniform ratios -50% FLOPs')) await pruneRow('uniform ratios -50% FLOPs', () => filterPruning(common));
  if (!done('sensitivity plan -50% FLOPs')) {
    const sensStarted = performance.now();
    // Coupled producers (through an Add) are analysed together, as filter_pruning cuts them.
    const groups = pruningGroups(fp32, common).groups.filter((g) => g.prunable).map((g) => g.producers);
    const analysis = sensitivity(fp32, heldOut, 'filter_pruning', PRUNE_LEVELS, { samples: quick ? 500 : 2000, groups });
    const { plan: ratioPlan, threshold, estimatedFlopsReduction } = pruningPlan(fp32, analysis, { flopsReduction: 0.5 });
    const sensSeconds = (performance.now() - sensStarted) / 1000;
    await pruneRow('sensitivity plan -50% FLOPs', () => filterPruning({ ...common, plan: ratioPlan }), {
      plan: ratioPlan,
      threshold: round(threshold, 5),
      estimatedFlopsReduction: round(estimatedFlopsReduction, 4),
      analysisSeconds: round(sensSeconds, 1),
      sensitivity: analysis.rows.map((row) => ({ node: row.node, ...(row.members ? { members: row.members } : {}), drops: row.levels.map((l) => round(l.drop * 100, 2)) })),
    });
  }

  return finish();

  // Summary rows, one per step count run: what the targets compare. The W4 rows: mean ± std over the seeds run.
  function finish(): SuiteResult {
    const out = rows.filter((r) => r['part'] !== 'summary');
    const tags = [...new Set(out.filter((r) => String(r['method']).startsWith('hawq-v2') && r['part'] === 'bits').map((r) => String(r['method']).slice('hawq-v2'.length)))];
    for (const t of tags.sort((a, b) => a.length - b.length)) out.push(summaryOf(t));
    return { rows: out, backend, notes: notesOf() };
  }
  function summaryOf(t: string): Record<string, unknown> {
    const accs = (m: string): number[] => rows.filter((r) => r['method'] === m && seedOf(r) < seeds).map((r) => r['accuracy'] as number);
    const acc = (m: string): number => accs(m)[0]!;
    const randomAcc = rows.filter((r) => r['part'] === 'bits' && r['method'] === `random ${String(r['method']).split(' ')[1]}${t}`).map((r) => r['accuracy'] as number);
    const [h, u, f] = [meanStd(accs(`hawq-v2${t}`)), meanStd(accs(`uniform W4A8${t}`)), meanStd(accs(`fp32 fine-tuned${t}`))];
    const summary = {
      part: 'summary',
      method: `targets${t}`,
      seeds: accs(`hawq-v2${t}`).length,
      hawqMean: round(h.mean, 4),
      hawqStd: round(h.std, 4),
      uniformMean: round(u.mean, 4),
      uniformStd: round(u.std, 4),
      fp32FineTunedMean: round(f.mean, 4),
      fp32FineTunedStd: round(f.std, 4),
      hawqMinusUniformPts: round((h.mean - u.mean) * 100, 2),
      uniformMinusFp32FineTunedPts: round((u.mean - f.mean) * 100, 2),
      hawqMinusRandomMedianPts: round((acc(`hawq-v2${t}`) - median(randomAcc)) * 100, 2),
      randomMedian: round(median(randomAcc), 4),
      randomBest: round(Math.max(...randomAcc), 4),
      ...(t === ''
        ? {
            hawqW3MinusUniformW3Pts: round((acc('hawq-v2 (W3A8 budget)') - acc('uniform W3A8')) * 100, 2),
            sensitivityMinusUniformPts: round((acc('sensitivity plan -50% FLOPs') - acc('uniform ratios -50% FLOPs')) * 100, 2),
          }
        : { steps: rows.find((r) => r['method'] === `hawq-v2${t}`)!['steps'] }),
    };
    console.log(JSON.stringify(summary));
    return summary;
  }
  function notesOf(): string[] {
    const notes = [
      `Fashion-MNIST residualCnn, FP32 weights: 3 epochs on 60,000 (bench/.cache). Every row fine-tunes from them for ${DEFAULT_STEPS} steps, or the N of a method labelled "(N steps)" (--steps N, part 1 only; its summary row is "targets (N steps)"), (batch ${BATCH}, Adam, cosine; data order seed 0 unless a row names its seed) on the first steps × ${BATCH} training images; accuracy of the stripped graph on the ${test.size}-image test set.`,
      `bits: quant 'quantization' (symmetric per-channel weights, 8-bit activations) at lr ${QAT_LR}; budget = the BOPs of uniform W4A8 (${budget.value}); random plans draw bits from {2,4,8} per layer, kept when their BOPs are 90–100% of the budget (seed 1).`,
      `bits, seeds: 'uniform W4A8', 'hawq-v2' and 'fp32 fine-tuned' (the FP32 weights fine-tuned the same way without quantization, lr ${QAT_LR}) with data-order seeds 0..${seeds - 1}; the summary gives mean ± sample std over them; the random plans use seed 0. codesPerChannel: the most distinct int8 weight codes in one output channel of each layer of the stripped graph (checked ≤ 2^bits − 1).`,
      'bits-w3: the same at the BOPs of uniform W3A8, HAWQ choosing among {2,3,4,8} with the same traces.',
      'hawq-v2: Hutchinson traces (Gauss-Newton estimator, see the package README) on 256 calibration images (the last of the training set), tolerance 1e-2 (30 to 100 draws), Ω = trace·‖Q_b(W)−W‖², exact Pareto allocation.',
      `channels: filter_pruning l1, first and downsample convs prunable, flopsReduction 0.5 for both; the plan is PaddleSlim's rule on a filter_pruning sensitivity analysis (levels ${PRUNE_LEVELS.join(', ')}, 2,000 held-out training images), scaled to the target by filter_pruning; producers coupled through an Add are analysed as one group (pruning's pruningGroups); lr ${PRUNE_LR}.`,
    ];
    if (quick) notes.push('--quick: 1,000 test images, few steps, 2 random plans: a smoke run, not a result.');
    return notes;
  }
}
