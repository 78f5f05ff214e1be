/**
 * `npm run bench -- sparsity [--quick] [--steps N] [--resume] [--only a,b] [--models plainCnn,residualCnn]`:
 * the plain and residual reference CNNs trained on Fashion-MNIST (FP32, 3 epochs, cached under
 * bench/.cache) are fine-tuned from those weights with magnitude sparsity at 50/75/90/95% (Zhu &
 * Gupta polynomial schedule, per step), L0 hard-concrete gates and 2:4 N:M sparsity, stripped,
 * evaluated on the whole test set, exported to ONNX (parity in onnxruntime-node, gzip bytes) and
 * measured as bitmask + non-zeros.
 *
 * Fine-tuning is cut in epochs, not rows: every row trains on shuffled batches of the full 60,000
 * training images, for `--steps` optimiser steps (a fraction of one epoch; default 200 steps of 64
 * = 12,800 images, 0.21 epoch), and is evaluated on all 10,000 test images. The schedule's "epoch"
 * is that budget: the level rises per step over its first half and is frozen for the rest.
 *
 * `--quick` is a smoke run: 40 steps, 1,000 test images.
 */
import { gzipSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, compress, evaluate, fit, useBackend, type CompressionBuilder, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { checkParity, toOnnx } from '@tensorpress/export-onnx';
import { l0Sparsity, magnitudeSparsity, nmSparsity, rbSparsity, sparseSize } from '@tensorpress/sparsity';
import type { SuiteResult } from './run.js';
import { loadPartialRows, round, savePartialRows, trainedBaseline } from './common.js';

const BATCH = 64;
const LEARNING_RATE = 1e-3;
/** Share of the fine-tuning budget over which the polynomial schedule rises (then frozen). */
const RAMP = 0.5;
const LEVELS = [0.5, 0.75, 0.9, 0.95];
/** Optimiser steps per pass over the 60,000 training images (the last batch is partial). */
const STEPS_PER_EPOCH = Math.ceil(60000 / BATCH);
/** L0: λ on the mean expected L0 norm, and log α = GATE_SCALE·θ so gates move within the budget. */
const L0 = { lambda: 100, gateScale: 100, initLogAlpha: 3 };
/**
 * RB: the same gates with a penalty towards a target density (1 − level); the level follows the
 * magnitude rows' polynomial ramp, and the gates freeze after FREEZE of the steps, so the rest
 * fine-tunes the weights under fixed gates (NNCF's RB freeze).
 */
const RB = { gateScale: 100, initLogAlpha: 3 };
/** RB levels and the share of the steps after which the gates freeze (`--freeze`). */
const RB_LEVELS = [0.81, 0.83];
const FREEZE = 0.55;
const FIRST_CONV: Record<string, string> = { plainCnn: 'conv1', residualCnn: 'stem.conv' };

interface Settings {
  quick: boolean;
  steps: number;
  /** Share of the steps over which a schedule rises (`--ramp`, default {@link RAMP}). */
  ramp: number;
  /** Share of the steps after which RB gates freeze (`--freeze`, default {@link FREEZE}). */
  freeze: number;
  testSize: number;
}

function settingsOf(args: string[]): Settings {
  const quick = args.includes('--quick');
  const i = args.indexOf('--steps');
  const steps = i >= 0 ? Number(args[i + 1]) : quick ? 40 : DEFAULT_STEPS;
  if (!Number.isInteger(steps) || steps <= 0) throw new Error(`--steps expects a positive integer, got ${String(args[i + 1])}`);
  const r = args.indexOf('--ramp');
  const ramp = r >= 0 ? Number(args[r + 1]) : RAMP;
  if (!(ramp > 0 && ramp <= 1)) throw new Error(`--ramp expects a share of the steps in (0, 1], got ${String(args[r + 1])}`);
  const f = args.indexOf('--freeze');
  const freeze = f >= 0 ? Number(args[f + 1]) : FREEZE;
  if (!(freeze > 0 && freeze <= 1)) throw new Error(`--freeze expects a share of the steps in (0, 1], got ${String(args[f + 1])}`);
  return { quick, steps, ramp, freeze, testSize: quick ? 1000 : 10000 };
}

function subsetOf(data: Dataset, n: number): Dataset {
  return n >= data.size ? data : data.subset(Array.from({ length: n }, (_, i) => i));
}

/**
 * Fine-tunes for `steps` optimiser steps of shuffled passes over the full training set, then stops
 * (fit's abort signal): cosine learning rate over those steps. Returns the median step time.
 */
async function finetune(
  ctrl: ReturnType<typeof compress>,
  train: Dataset,
  steps: number,
  label: string,
): Promise<{ stepMs: number; seconds: number }> {
  const abort = new AbortController();
  const marks: number[] = [];
  let last = performance.now();
  const started = last;
  try {
    await fit(ctrl.model.executor, train, {
      // As many passes as the steps need (a budget over one pass used to stop at its end).
      epochs: Math.ceil((steps * BATCH) / train.size),
      batchSize: BATCH,
      optimizer: { type: 'adam', learningRate: LEARNING_RATE },
      // Cosine over the whole budget, counted in steps across passes.
      lrSchedule: (epoch, step, perEpoch, base) => base * 0.5 * (1 + Math.cos((Math.PI * Math.min(epoch * perEpoch + step, steps)) / steps)),
      controller: ctrl,
      seed: 1,
      progress: false,
      signal: abort.signal,
      callbacks: {
        onBatchEnd: async (info) => {
          const now = performance.now();
          marks.push(now - last);
          last = now;
          if (info.globalStep % 100 === 0) console.log(`  ${label}: step ${info.globalStep}/${steps}, loss ${(await info.loss()).toFixed(4)}`);
          if (info.globalStep >= steps) abort.abort();
        },
      },
    });
  } catch (e) {
    if (!(e instanceof TensorpressError && e.code === 'ABORTED')) throw e;
  }
  const sorted = marks.slice(5).sort((a, b) => a - b);
  return { stepMs: sorted[Math.floor(sorted.length / 2)] ?? 0, seconds: (performance.now() - started) / 1000 };
}

interface Measured {
  accuracy: number;
  onnxBytes: number;
  gzipBytes: number;
  denseBytes: number;
  bitmaskBytes: number;
  onnxMaxAbsDiff: number;
  sparseOnnxBytes: number;
  sparseOnnxMaxAbsDiff: number;
}

async function measure(graph: Graph, test: Dataset, probe: tf.Tensor): Promise<Measured> {
  const accuracy = (await evaluate(graph, test, { batchSize: 500, progress: false })).accuracy;
  const bytes = toOnnx(graph);
  const parity = await checkParity(graph, bytes, probe);
  const sparseBytes = toOnnx(graph, { sparseInitializers: true });
  const sparseParity = await checkParity(graph, sparseBytes, probe);
  const size = sparseSize(graph);
  return {
    accuracy,
    onnxBytes: bytes.length,
    gzipBytes: gzipSync(bytes, { level: 9 }).length,
    denseBytes: size.denseBytes,
    bitmaskBytes: size.bitmaskBytes,
    onnxMaxAbsDiff: parity.maxAbsDiff,
    sparseOnnxBytes: sparseBytes.length,
    sparseOnnxMaxAbsDiff: sparseParity.maxAbsDiff,
  };
}

interface Run {
  method: string;
  targetLevel: number | null;
  /** What the row's method was run with (kept in the row). */
  recipe: Record<string, string | number>;
  make: (model: string) => CompressionBuilder;
}

/**
 * Rows measured before `finetune` counted steps across passes (no `stepsRun`): it stopped on the
 * step within a pass, so a budget over one pass ({@link STEPS_PER_EPOCH} steps) ran every pass that
 * ceil(steps·64/60,000) asks for, and its cosine rate restarted each pass (over the whole budget, so
 * it fell only to 75% of the base rate for 2,814 steps). Such a row is relabelled with the steps it
 * ran: "magnitude 90% (2814 steps)" ran 3,752 and becomes "magnitude 90% (3752 steps, rate
 * restarting per pass)"; rows within one pass ran what they say.
 */
function stepsRunOf(row: Record<string, unknown>): Record<string, unknown> {
  const asked = row['finetuneSteps'];
  if (row['stepsRun'] !== undefined || typeof asked !== 'number') return row;
  if (asked <= STEPS_PER_EPOCH) return { ...row, stepsRun: asked };
  const ran = Math.ceil((asked * BATCH) / 60000) * STEPS_PER_EPOCH;
  const method = String(row['method']).replace(`(${asked} steps`, `(${ran} steps, rate restarting per pass`);
  return { ...row, method, finetuneSteps: asked, stepsRun: ran, lrSchedule: 'cosine over finetuneSteps, restarted at each pass' };
}

/** Fine-tuning steps per row unless --steps says otherwise. */
const DEFAULT_STEPS = 200;

/**
 * The rows. The polynomial schedule counts fractional epochs of the real data pass
 * ({@link STEPS_PER_EPOCH} steps; fit ends an epoch there and the scheduler's position follows it),
 * and reaches the level after `ramp·steps` steps.
 */
function runs(s: Settings): Run[] {
  const rampSteps = Math.max(1, Math.round(s.ramp * s.steps));
  const poly = { type: 'polynomial' as const, initialLevel: 0, targetEpoch: rampSteps / STEPS_PER_EPOCH, power: 3, perStep: true, stepsPerEpoch: STEPS_PER_EPOCH, updateEvery: 10 };
  const magnitude = (level: number, importance: 'abs' | 'normalized_abs', suffix: string, ranking: 'global' | 'layer' = 'global'): Run => ({
    method: `magnitude ${Math.round(level * 100)}%${suffix}`,
    targetLevel: level,
    recipe: { importance, ranking, rampSteps },
    make: () => magnitudeSparsity({ level, importance, ranking, schedule: poly }),
  });
  return [
    ...LEVELS.map((level) => magnitude(level, 'normalized_abs', '')),
    // Global |w| (not normalised per layer): the normalised ranking empties residualCnn's block3.conv2 at 90%.
    magnitude(0.9, 'abs', ' abs'),
    // Every layer at the level (its own threshold): no layer emptied, none kept denser.
    magnitude(0.9, 'normalized_abs', ' per-layer', 'layer'),
    { method: 'L0', targetLevel: null, recipe: { ...L0 }, make: () => l0Sparsity(L0) },
    ...RB_LEVELS.map(
      (level): Run => ({
        method: `RB ${Math.round(level * 100)}%`,
        targetLevel: level,
        recipe: { ...RB, level, rampSteps, freezeStep: Math.round(s.freeze * s.steps) },
        make: () => rbSparsity({ ...RB, level, schedule: poly, freezeStep: Math.round(s.freeze * s.steps) }),
      }),
    ),
    { method: '2:4', targetLevel: 0.5, recipe: {}, make: (model) => nmSparsity({ n: 2, m: 4, ignoredScopes: [FIRST_CONV[model]!] }) },
  ];
}

export default async function sparsity(args: string[]): Promise<SuiteResult> {
  const s = settingsOf(args);
  const backend = (await useBackend(['wasm', 'cpu'])).name;
  const fashion = await loadFashionMnist();
  const test = subsetOf(fashion.test, s.testSize);
  const probeBatch = test.batches(256).next().value!;
  const probe = probeBatch.x;
  probeBatch.y.dispose();
  const resume = args.includes('--resume');
  const rows: Record<string, unknown>[] = resume ? (await loadPartialRows('sparsity')).map(stepsRunOf) : [];
  const only = args.includes('--only') ? new Set(args[args.indexOf('--only') + 1]!.split(',')) : undefined;
  const models = args.includes('--models') ? args[args.indexOf('--models') + 1]!.split(',') : ['plainCnn', 'residualCnn'];
  // A run with another --steps than the default labels its rows "<method> (<N> steps)", so that
  // `--resume --steps N --only ...` adds longer-budget rows beside the default ones.
  // A --ramp (--freeze, RB rows) other than the default adds it: "<method> (<N> steps, ramp 30%)".
  const label = (method: string): string => {
    if (method === 'fp32') return method;
    const tags = [...(s.steps === DEFAULT_STEPS ? [] : [`${s.steps} steps`]), ...(s.ramp === RAMP ? [] : [`ramp ${Math.round(s.ramp * 100)}%`])];
    if (method.startsWith('RB') && s.freeze !== FREEZE) tags.push(`freeze ${Math.round(s.freeze * 100)}%`);
    return tags.length === 0 ? method : `${method} (${tags.join(', ')})`;
  };
  const done = (model: string, method: string): boolean => rows.some((r) => r['model'] === model && r['method'] === label(method));
  const wanted = (model: string, method: string): boolean => (only === undefined || only.has(method)) && !done(model, method);
  const push = async (row: Record<string, unknown>): Promise<void> => {
    rows.push(row);
    console.log(JSON.stringify(row));
    if (!s.quick) await savePartialRows('sparsity', rows, { merge: resume, normalize: stepsRunOf });
  };
  const notes = [
    `Fine-tuning from the cached FP32 weights (3 epochs, Adam, cosine): finetuneSteps steps of batch ${BATCH} over shuffled batches of all ${fashion.train.size} training images (${DEFAULT_STEPS} steps = ${((DEFAULT_STEPS * BATCH) / fashion.train.size).toFixed(2)} epoch by default; rows labelled "(N steps)" ran N steps, added with --resume --steps N), Adam ${LEARNING_RATE} with cosine decay over those steps. Epochs were cut, not rows, to fit the time budget of a shared 2-core machine.`,
    `magnitude: one global threshold (the package default; rows "per-layer": each layer its own threshold at the level) on |w| / ||W||2 of each layer (the package default; rows "abs": on |w|); polynomial schedule (Zhu & Gupta, power 3) per step from 0 to the level over the first rampSteps steps (${RAMP * 100}% of the steps unless the label says "ramp N%"; masks every 10 steps), then frozen.`,
    `The schedule counts fractional epochs of the real data pass (${STEPS_PER_EPOCH} steps). Before that fix a run longer than one pass ended its ramp at the end of the first pass: the "magnitude 90% (2800 steps)" row rose over 938 steps (to 86.8%, then 90%), not 1,400.`,
    `L0: hard-concrete gates (beta 2/3, gamma -0.1, zeta 1.1), lambda ${L0.lambda} on the mean expected L0, log alpha = ${L0.gateScale}*theta from ${L0.initLogAlpha}; the level is what training reached (deterministic gates at eval).`,
    `RB: the same gates (gateScale ${RB.gateScale}, from log alpha ${RB.initLogAlpha}), penalty ((mean P(z != 0) - (1 - level))/0.05)^2 with the level rising on the magnitude rows' polynomial ramp to the row's level; the gates freeze after freezeStep steps (${Math.round(FREEZE * 100)}% of the run unless --freeze said otherwise: deterministic gates, log alpha stops) and the weights fine-tune under them for the rest. sparsity: the deterministic gates' zeros.`,
    '2:4: exactly 2 of every 4 input-channel weights kept, one-shot; the first conv (1 input channel) stays dense.',
    'accuracy: the stripped graph on the Fashion-MNIST test set; deltaPts = accuracy - fp32Accuracy in points; sparsity: zeros over the sparsified weights; modelSparsity: over every float parameter.',
    'gzipBytes: gzip -9 of the ONNX file; sparseOnnxBytes: the ONNX file with sparse initializers (export-onnx sparseInitializers: non-zeros + int64 indices where smaller; the first plainCnn rows predate it); bitmaskBytes: parameters as bitmask + non-zero float32 values (dense where cheaper); onnxMaxAbsDiff: onnxruntime-node vs the in-process graph on 256 test images.',
  ];
  if (s.quick) notes.push('--quick: 40 steps, 1,000 test images: a smoke run, not a result.');

  for (const model of models) {
    const make = model === 'plainCnn' ? () => referenceModels.plainCnn({ seed: 0 }) : () => referenceModels.residualCnn({ seed: 0 });
    const { graph: fp32 } = await trainedBaseline(model, make, 'fashion-mnist', fashion.train, { epochs: 3 });
    const base = await measure(fp32, test, probe);
    if (wanted(model, 'fp32')) {
      await push({ model, method: 'fp32', targetLevel: 0, sparsity: 0, modelSparsity: 0, accuracy: round(base.accuracy, 4), fp32Accuracy: round(base.accuracy, 4), deltaPts: 0, ...sizes(base, base) });
    }
    for (const run of runs(s)) {
      if (!wanted(model, run.method)) continue;
      const ctrl = compress(fp32, [run.make(model)]);
      const t = await finetune(ctrl, fashion.train, s.steps, `${model} ${run.method}`);
      const stats = ctrl.statistics().algorithms[0]!;
      const stripped = ctrl.strip();
      ctrl.dispose();
      const m = await measure(stripped, test, probe);
      await push({
        model,
        method: label(run.method),
        targetLevel: run.targetLevel,
        sparsity: round(Number(stats.total['sparsity']), 4),
        modelSparsity: round(Number(stats.total['modelSparsity']), 4),
        accuracy: round(m.accuracy, 4),
        fp32Accuracy: round(base.accuracy, 4),
        deltaPts: round((m.accuracy - base.accuracy) * 100, 2),
        ...sizes(m, base),
        unreachedLayers: stats.total['unreachedLayers'] ?? 0,
        ...run.recipe,
        finetuneSteps: s.steps,
        stepsRun: s.steps,
        stepMs: round(t.stepMs, 1),
        trainSeconds: round(t.seconds, 1),
      });
    }
  }
  probe.dispose();
  console.log(`tensors alive at the end: ${tf.memory().numTensors}`);
  return { rows, backend, notes };
}

function sizes(m: Measured, base: Measured): Record<string, number> {
  return {
    onnxBytes: m.onnxBytes,
    gzipBytes: m.gzipBytes,
    fp32GzipBytes: base.gzipBytes,
    gzipRatio: round(m.gzipBytes / base.gzipBytes, 3),
    bitmaskBytes: m.bitmaskBytes,
    denseBytes: m.denseBytes,
    bitmaskRatio: round(m.bitmaskBytes / m.denseBytes, 3),
    onnxMaxAbsDiff: Number(m.onnxMaxAbsDiff.toExponential(2)),
    sparseOnnxBytes: m.sparseOnnxBytes,
    sparseOnnxMaxAbsDiff: Number(m.sparseOnnxMaxAbsDiff.toExponential(2)),
  };
}
