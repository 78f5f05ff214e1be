/**
 * `npm run bench -- distill [--quick] [--resume] [--only a,b] [--methods m,n] [--seeds N] [--scale X]
 * [--student-steps N] [--finetune-steps N]`: knowledge distillation on Fashion-MNIST, mean ± std over
 * 3 seeds, each comparison measured side by side (`--methods`: only the methods that contain one of
 * the strings; every row is keyed by its step count, so runs of other lengths never mix):
 *
 * - `offline`: the plain CNN at quarter width trained alone vs with offline KD from the cached FP32
 *   residual CNN (`knowledgeDistillation({ teacher })`).
 * - `semi`: 5,000 labelled images alone vs the same 5,000 plus 55,000 unlabelled ones that a teacher
 *   trained on the 5,000 labels only labels (hard pseudo-labels above a confidence threshold).
 * - `self`: the quarter-width student alone vs self-distillation from an EMA of its own weights.
 * - `pruning`: the residual CNN pruned to −50% FLOPs (FPGM, regular mode) and fine-tuned, alone vs
 *   with KD from its own FP32 original (the default teacher: no teacher named).
 * - `qat`: the plain CNN with INT8 QAT (`quantization()`), alone vs with KD from its own FP32 original.
 *
 * Training is short to fit the machine (2 shared cores): every run trains a fixed number of steps
 * of batch 64 drawn by a seeded shuffle of the whole training set (a fraction of an epoch for the
 * fine-tuning rows); epochs were cut, never training images or rows. `--quick` is a smoke run.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { compress, createRng, evaluate, fit, permutation, useBackend, type CompressionBuilder, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { knowledgeDistillation, precomputeTeacherOutputs, pseudoLabel, concatDatasets, type TeacherOutputs } from '@tensorpress/distill';
import { filterPruning } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import type { SuiteResult } from './run.js';
import { loadPartialRows, round, savePartialRows, trainedBaseline } from './common.js';

const BATCH = 64;
/** Hinton's setting for a small student: T = 4, most weight on the soft targets. */
const KD = { temperature: 4, alpha: 0.9 };
/** A second setting for the short runs: T = 1, half the weight on the teacher (NNCF's KD temperature). */
const KD_T1 = { temperature: 1, alpha: 0.5 };
/** The pruning comparison's methods, by their short key. */
const PRUNING_KD_LABEL = { alone: 'alone', '+ KD': '+ KD from FP32', '+ KD T=1': '+ KD from FP32 (T=1, α=0.5)', '+ KD T=1 + hints': '+ KD from FP32 (T=1, α=0.5) + block hints' } as const;
/** Hint nodes of the pruning + KD rows: the residual CNN's three block outputs (FitNets-style, weight 1). */
const PRUNING_HINTS = ['block1.relu', 'block2.relu', 'block3.relu'];
const STUDENT_WIDTH = 0.25;
const LABELLED = 5000;
/** Keep a pseudo-label when the teacher's top probability is at least this. */
const PSEUDO_THRESHOLD = 0.7;
const EMA_DECAY = 0.99;
/** Epochs of the semi-supervised teacher (a full-width plainCnn) on the 5,000 labels. */
const SEMI_TEACHER_EPOCHS = 5;

interface Settings {
  quick: boolean;
  seeds: number;
  /** Multiplies every step count. */
  scale: number;
  only: Set<string> | undefined;
  /** Runs whose method contains one of these strings (all when undefined). */
  methods: string[] | undefined;
  /** Steps of the students from scratch (offline, self) and of the fine-tuning (pruning, qat), past `scale`. */
  studentSteps: number | undefined;
  finetuneSteps: number | undefined;
}

function settingsOf(args: string[]): Settings {
  const val = (flag: string): string | undefined => (args.includes(flag) ? args[args.indexOf(flag) + 1] : undefined);
  const quick = args.includes('--quick');
  return {
    quick,
    seeds: Number(val('--seeds') ?? (quick ? 1 : 3)),
    scale: Number(val('--scale') ?? (quick ? 0.1 : 1)),
    only: val('--only') ? new Set(val('--only')!.split(',')) : undefined,
    methods: val('--methods')?.split(','),
    studentSteps: val('--student-steps') === undefined ? undefined : Number(val('--student-steps')),
    finetuneSteps: val('--finetune-steps') === undefined ? undefined : Number(val('--finetune-steps')),
  };
}

/**
 * The first `n` examples of a seeded shuffle of `data`: the first n/64 steps of a shuffled epoch.
 * Past one epoch (`n > size`), the next epochs' shuffles follow (seeds `seed + 100`, `seed + 200`, ...).
 */
function draw(data: Dataset, n: number, seed: number): Dataset {
  if (n === data.size) return data;
  const idx = new Int32Array(n);
  for (let at = 0, k = 0; at < n; at += data.size, k++) {
    const p = permutation(data.size, createRng(seed + 100 * k));
    idx.set(p.subarray(0, Math.min(data.size, n - at)), at);
  }
  return data.subset(idx);
}

interface Run {
  /** Comparison id (`offline`, `semi`, ...). */
  comparison: string;
  method: string;
  /** Trains from a seed and returns the graph to evaluate. */
  train: (seed: number) => Promise<Graph>;
  steps: number;
  /** Samples per step come from here (for the notes). */
  data: string;
  /** Set-up shared by every seed (a teacher, pseudo-labels), done before the clock starts. */
  prepare?: () => Promise<unknown>;
}

async function fitSteps(
  target: Graph | ReturnType<typeof compress>,
  train: Dataset,
  steps: number,
  seed: number,
  learningRate: number,
): Promise<Graph> {
  const subset = draw(train, steps * BATCH, 1000 + seed);
  const opts = { epochs: 1, batchSize: BATCH, optimizer: { type: 'adam' as const, learningRate }, lrSchedule: 'cosine' as const, seed, progress: false };
  if ('controllers' in target) {
    await fit(target.model.executor, subset, { ...opts, controller: target });
    const kd = target.statistics().algorithms.find((a) => a.algorithm === 'knowledge_distillation')?.total;
    if (kd?.['precomputedBatches'] !== undefined) console.log(`  teacher outputs: ${String(kd['precomputedBatches'])} batches precomputed, ${String(kd['teacherRuns'])} teacher runs`);
    const g = target.strip();
    target.dispose();
    return g;
  }
  return (await fit(target, subset, opts)).graph;
}

const mean = (v: readonly number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const std = (v: readonly number[]): number => (v.length < 2 ? 0 : Math.sqrt(v.reduce((a, b) => a + (b - mean(v)) ** 2, 0) / (v.length - 1)));

/**
 * Step counts of the rows saved before the keys carried one: every such run used `--scale 1`, so
 * 300 steps for the students (offline, semi, self) and 80 for the fine-tuning (pruning, qat).
 */
const LEGACY_STEPS: Record<string, number> = { offline: 300, semi: 300, self: 300, pruning: 80, qat: 80 };

/** A saved row with its step count in the row and in the key (older rows get {@link LEGACY_STEPS}). */
function withSteps(d: Record<string, unknown>): Record<string, unknown> {
  if (d['steps'] !== undefined) return d;
  const steps = LEGACY_STEPS[String(d['comparison'])];
  if (steps === undefined) throw new Error(`distill partial rows: no step count for the legacy row ${String(d['key'])}`);
  return { ...d, key: `${String(d['comparison'])}|${String(d['method'])}|${steps} steps|${String(d['seed'])}`, steps };
}

export default async function distill(args: string[]): Promise<SuiteResult> {
  const s = settingsOf(args);
  const backend = (await useBackend(['wasm', 'cpu'])).name;
  const fashion = await loadFashionMnist();
  const test = s.quick ? fashion.test.subset(Array.from({ length: 2000 }, (_, i) => i)) : fashion.test;
  const train = fashion.train;
  const steps = (n: number): number => Math.max(1, Math.round(n * s.scale));

  // The FP32 baselines come from the shared cache; this suite never trains them.
  const cached = async (m: 'residualCnn' | 'plainCnn'): Promise<{ graph: Graph; accuracy: number }> => {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '.cache', `${m}-fashion-mnist-${train.size}-e3.json`);
    if (!existsSync(file)) throw new Error(`${file} is missing: run the suite that trains the FP32 baselines first (npm run bench -- training)`);
    const graph = (await trainedBaseline(m, () => referenceModels[m]({ seed: 0 }), 'fashion-mnist', train)).graph;
    return { graph, accuracy: await accuracy(graph) };
  };
  const accuracy = async (g: Graph): Promise<number> => (await evaluate(g, test, { batchSize: 500, progress: false })).accuracy;
  let residualP: Promise<{ graph: Graph; accuracy: number }> | undefined;
  let plainP: Promise<{ graph: Graph; accuracy: number }> | undefined;
  const residual = async (): Promise<Graph> => (await (residualP ??= cached('residualCnn'))).graph;
  // The FP32 residual CNN teaches both offline KD and pruning + KD (as the pruned model's original):
  // its eval-mode logits on the 60,000 training images are computed once and looked up by the
  // images' exact bits, the numbers a teacher run would give every step.
  let residualOutputsP: Promise<TeacherOutputs> | undefined;
  const residualOutputs = async (): Promise<TeacherOutputs> =>
    (residualOutputsP ??= (async () => {
      const started = performance.now();
      const o = await precomputeTeacherOutputs(train, await residual(), { batchSize: 500 });
      console.log(`residualCnn teacher outputs on ${o.size} training images in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return o;
    })());
  const plain = async (): Promise<Graph> => (await (plainP ??= cached('plainCnn'))).graph;

  // Semi-supervised: 5,000 labelled images (a fixed seeded draw), the other 55,000 unlabelled. The
  // teacher learns from the 5,000 labels only (the cached FP32 models saw all 60,000 labels).
  const order = permutation(train.size, createRng(7));
  const labelled = train.subset(order.subarray(0, LABELLED));
  const pool = train.subset(order.subarray(LABELLED));
  let semiTeacher: { graph: Graph; accuracy: number; kept: number; pseudoAccuracy: number; data: Dataset } | undefined;
  const semiData = async (): Promise<NonNullable<typeof semiTeacher>> => {
    if (semiTeacher) return semiTeacher;
    const { graph } = await trainedBaseline('plainCnn', () => referenceModels.plainCnn({ seed: 0 }), 'fashion-mnist', labelled, { epochs: s.quick ? 1 : SEMI_TEACHER_EPOCHS, cache: !s.quick });
    const started = performance.now();
    const r = await pseudoLabel(pool, graph, { threshold: PSEUDO_THRESHOLD, batchSize: 500 });
    // How right the pseudo-labels are (the pool's true labels are used for this number only).
    let right = 0;
    let at = 0;
    for (const b of pool.batches(4096)) {
      const y = b.y.dataSync();
      for (let i = 0; i < y.length; i++) if (r.confidence[at + i]! >= PSEUDO_THRESHOLD && r.labels[at + i] === y[i]) right++;
      at += y.length;
      tf.dispose([b.x, b.y]);
    }
    console.log(`semi teacher: pseudo-labelled ${r.kept}/${r.total} in ${((performance.now() - started) / 1000).toFixed(1)} s, ${((right / r.kept) * 100).toFixed(2)}% right`);
    semiTeacher = { graph, accuracy: await accuracy(graph), kept: r.kept, pseudoAccuracy: right / r.kept, data: concatDatasets([labelled, r.dataset]) };
    return semiTeacher;
  };

  const student = (seed: number): Graph => referenceModels.plainCnn({ seed, width: STUDENT_WIDTH });
  const STUDENT_STEPS = s.studentSteps ?? steps(300);
  const FINETUNE_STEPS = s.finetuneSteps ?? steps(80);
  const SEMI_STEPS = steps(300);
  const runs: Run[] = [
    { comparison: 'offline', method: 'student alone', steps: STUDENT_STEPS, data: '60k labelled', train: (seed) => fitSteps(student(seed), train, STUDENT_STEPS, seed, 4e-3) },
    {
      comparison: 'offline',
      method: 'student + KD from residualCnn',
      steps: STUDENT_STEPS,
      data: '60k labelled',
      prepare: residualOutputs,
      train: async (seed) =>
        fitSteps(compress(student(seed), [knowledgeDistillation({ teacher: await residual(), ...KD, teacherOutputs: await residualOutputs() })]), train, STUDENT_STEPS, seed, 4e-3),
    },
    {
      comparison: 'offline',
      method: 'student + KD from residualCnn (T=1, α=0.5)',
      steps: STUDENT_STEPS,
      data: '60k labelled',
      prepare: residualOutputs,
      train: async (seed) =>
        fitSteps(compress(student(seed), [knowledgeDistillation({ teacher: await residual(), ...KD_T1, teacherOutputs: await residualOutputs() })]), train, STUDENT_STEPS, seed, 4e-3),
    },
    { comparison: 'semi', method: '5k labels alone', steps: SEMI_STEPS, data: '5k labelled', train: (seed) => fitSteps(student(seed), labelled, SEMI_STEPS, seed, 4e-3) },
    {
      comparison: 'semi',
      method: '5k labels + 55k pseudo-labelled + KD',
      steps: SEMI_STEPS,
      data: '5k labelled + pseudo-labelled pool',
      prepare: semiData,
      train: async (seed) => {
        const semi = await semiData();
        return fitSteps(compress(student(seed), [knowledgeDistillation({ teacher: semi.graph, ...KD })]), semi.data, SEMI_STEPS, seed, 4e-3);
      },
    },
    { comparison: 'self', method: 'student alone', steps: STUDENT_STEPS, data: '60k labelled', train: (seed) => fitSteps(student(seed), train, STUDENT_STEPS, seed, 4e-3) },
    {
      comparison: 'self',
      method: `self-distillation (EMA ${EMA_DECAY})`,
      steps: STUDENT_STEPS,
      data: '60k labelled',
      train: (seed) =>
        fitSteps(compress(student(seed), [knowledgeDistillation({ ...KD, alpha: 0.5, selfDistillation: { mode: 'ema', decay: EMA_DECAY } })]), train, STUDENT_STEPS, seed, 4e-3),
    },
    ...(['alone', '+ KD', '+ KD T=1', '+ KD T=1 + hints'] as const).map(
      (k): Run => ({
        comparison: 'pruning',
        method: `residualCnn −50% FLOPs ${PRUNING_KD_LABEL[k]}`,
        steps: FINETUNE_STEPS,
        data: '60k labelled',
        ...(k === 'alone' || k === '+ KD T=1 + hints' ? {} : { prepare: residualOutputs }),
        train: async (seed) => {
          const builders: CompressionBuilder[] = [filterPruning({ criterion: 'fpgm', flopsReduction: 0.5, mode: 'regular', multipleOf: 8, pruneFirstConv: true, pruneDownsampleConvs: true })];
          // No teacher named: the FP32 original teaches; the precomputed outputs are that graph's.
          if (k === '+ KD' || k === '+ KD T=1') builders.push(knowledgeDistillation({ ...(k === '+ KD' ? KD : KD_T1), teacherOutputs: await residualOutputs() }));
          // Hints: each block's output in the pruned graph (fewer channels, a learned 1×1 adapter) against the original's; the teacher runs every step.
          if (k === '+ KD T=1 + hints') builders.push(knowledgeDistillation({ ...KD_T1, hints: PRUNING_HINTS.map((node) => ({ student: node, teacher: node })) }));
          return fitSteps(compress(await residual(), builders), train, FINETUNE_STEPS, seed, 1e-3);
        },
      }),
    ),
    ...(['alone', '+ KD'] as const).map(
      (k): Run => ({
        comparison: 'qat',
        method: `plainCnn INT8 QAT ${k === 'alone' ? 'alone' : '+ KD from FP32'}`,
        steps: FINETUNE_STEPS,
        data: '60k labelled',
        train: async (seed) => {
          const builders: CompressionBuilder[] = [quantization()];
          if (k !== 'alone') builders.push(knowledgeDistillation(KD));
          return fitSteps(compress(await plain(), builders), train, FINETUNE_STEPS, seed, 1e-4);
        },
      }),
    ),
  ];

  // Per-seed results, saved as they finish (`--resume` continues an interrupted run). The key
  // carries the step count, so runs of another length (another --scale) never mix with these.
  const done: Record<string, unknown>[] = args.includes('--resume') ? (await loadPartialRows('distill')).map(withSteps) : [];
  const key = (comparison: string, method: string, stepCount: number, seed: number): string => `${comparison}|${method}|${stepCount} steps|${seed}`;
  const keyOf = (r: Run, seed: number): string => key(r.comparison, r.method, r.steps, seed);
  const have = new Map(done.map((d) => [String(d['key']), d]));
  const twinsOf = (r: Run): Run[] => runs.filter((o) => o !== r && o.method === r.method && o.steps === r.steps && o.data === r.data);
  for (let seed = 0; seed < s.seeds; seed++) {
    for (const r of runs) {
      if (s.only && !s.only.has(r.comparison)) continue;
      if (s.methods && !s.methods.some((m) => r.method.includes(m))) continue;
      if (have.has(keyOf(r, seed))) continue;
      // "student alone" is one model: the self comparison reuses the offline one's run.
      const twinRow = twinsOf(r)
        .map((t) => have.get(keyOf(t, seed)))
        .find((x) => x !== undefined);
      let acc: number;
      let seconds: number;
      if (twinRow) {
        acc = Number(twinRow['accuracy']);
        seconds = Number(twinRow['trainSeconds']);
      } else {
        await r.prepare?.();
        const started = performance.now();
        const g = await r.train(seed);
        seconds = (performance.now() - started) / 1000;
        acc = await accuracy(g);
      }
      const row = { key: keyOf(r, seed), comparison: r.comparison, method: r.method, steps: r.steps, seed, accuracy: acc, trainSeconds: seconds };
      console.log(`${r.comparison} / ${r.method} / ${r.steps} steps / seed ${seed}: ${(acc * 100).toFixed(2)}% in ${seconds.toFixed(1)} s`);
      done.push(row);
      have.set(row.key, row);
      if (!s.quick) await savePartialRows('distill', done);
    }
  }

  // One group per comparison and step count; deltas and targets compare methods of the same length.
  const TARGETS: Record<string, number> = { offline: 0.5, semi: 1.0, pruning: 0.3 };
  const rows: Record<string, unknown>[] = [];
  for (const comparison of ['offline', 'semi', 'self', 'pruning', 'qat']) {
    const group = runs.filter((r) => r.comparison === comparison);
    const lengths = [...new Set(done.filter((d) => d['comparison'] === comparison).map((d) => Number(d['steps'])))].sort((a, b) => a - b);
    for (const stepCount of lengths) {
      const of = (method: string): Record<string, unknown>[] =>
        done.filter((d) => d['comparison'] === comparison && d['method'] === method && Number(d['steps']) === stepCount);
      const present = group.filter((r) => of(r.method).length > 0);
      // Without the first method (the baseline) at this length there is nothing to compare.
      if (present[0] !== group[0]) continue;
      const baseMean = mean(of(group[0]!.method).map((d) => Number(d['accuracy'])));
      present.forEach((r, i) => {
        const a = of(r.method).map((d) => Number(d['accuracy']));
        const secs = of(r.method).map((d) => Number(d['trainSeconds']));
        const delta = (mean(a) - baseMean) * 100;
        rows.push({
          comparison,
          method: r.method,
          seeds: a.length,
          accuracyMean: round(mean(a), 4),
          accuracyStd: round(std(a), 4),
          accuracy: `${(mean(a) * 100).toFixed(2)} ± ${(std(a) * 100).toFixed(2)}`,
          deltaPts: round(delta, 2),
          ...(i > 0 && TARGETS[comparison] !== undefined ? { targetPts: TARGETS[comparison], targetMet: delta >= TARGETS[comparison]! } : {}),
          accuracies: a.map((v) => round(v, 4)),
          steps: stepCount,
          batch: BATCH,
          data: r.data,
          trainSecondsMean: round(mean(secs), 1),
        });
      });
    }
  }
  const notes = [
    'accuracy: Fashion-MNIST test set (10,000 images), mean ± sample std over seeds 0..2 in percent; deltaPts: mean minus the first method of the comparison, in points.',
    `Short training (2 shared CPU cores): every run trains \`steps\` Adam steps of batch ${BATCH} with cosine decay, drawn by a seeded shuffle of the whole training set (epochs were cut, not images or rows; past 937 steps the next epoch's shuffle follows). Students from scratch: lr 4e-3; pruning fine-tuning 1e-3; QAT 1e-4.`,
    `Each comparison is grouped by its step count (rows keyed by comparison, method, steps and seed): deltaPts and targetMet compare methods of the same length only. Lengths run: ${['offline', 'semi', 'self', 'pruning', 'qat']
      .map((c) => `${c} ${[...new Set(rows.filter((r) => r['comparison'] === c).map((r) => Number(r['steps'])))].join(' and ') || '-'}`)
      .join('; ')} steps (the longer offline and pruning rows were added after the short ones missed their targets; the short ones stay).`,
    'Teacher outputs: the longer offline and pruning KD rows look up the FP32 residual CNN\'s eval-mode logits, computed once over the 60,000 training images (precomputeTeacherOutputs; exact: rows are matched by their bits), instead of running the teacher every step; the 300/80-step rows ran it every step, so their trainSecondsMean include the teacher and the new ones do not.',
    `student: plainCnn at width ${STUDENT_WIDTH}; KD: T=${KD.temperature}, alpha=${KD.alpha} (soft-label KL, T²-scaled) unless the method names T=${KD_T1.temperature}, α=${KD_T1.alpha} (added after the first setting lost in these short runs; both are reported), teacher in eval mode. Pruning and QAT name no teacher: the default is the pipeline's own FP32 original.`,
    `self: EMA (decay ${EMA_DECAY}) of the student's weights as its teacher, alpha 0.5. 'student alone' is the same run as in 'offline'.`,
    `semi: a fixed seeded draw of ${LABELLED} labelled images; the teacher is a full-width plainCnn trained on those labels only (${SEMI_TEACHER_EPOCHS} epochs, FP32 recipe); it labels the other ${train.size - LABELLED} images (hard labels, kept at top-class probability >= ${PSEUDO_THRESHOLD}) and, as KD teacher on the joined data, gives soft labels (T=${KD.temperature}, alpha=${KD.alpha}).`,
  ];
  // The teacher's numbers belong with the semi rows even when an earlier (resumed) run trained them.
  if (!semiTeacher && done.some((d) => d['comparison'] === 'semi')) await semiData();
  if (semiTeacher) {
    notes.push(
      `semi teacher: ${(semiTeacher.accuracy * 100).toFixed(2)}% test accuracy; kept ${semiTeacher.kept} pseudo-labels, ${(semiTeacher.pseudoAccuracy * 100).toFixed(2)}% of them right.`,
    );
  }
  // Both FP32 references are named in the notes, whichever comparisons this invocation ran.
  if (done.some((d) => d['comparison'] !== 'semi')) await Promise.all([residual(), plain()]);
  for (const [m, p] of [['residualCnn', residualP], ['plainCnn', plainP]] as const) {
    if (p) notes.push(`FP32 ${m}: ${((await p).accuracy * 100).toFixed(2)}% (cached, 3 epochs on 60,000).`);
  }
  if (s.quick) notes.push('--quick: a smoke run (2,000 test images, a tenth of the steps, one seed), not a result.');
  console.log(`tensors alive at the end: ${tf.memory().numTensors}`);
  return { rows, backend, notes };
}
