import * as tf from '@tensorflow/tfjs-core';
import { ensureGradients } from './backend.js';
import type { FitCheckpoint } from './checkpoint.js';
import type { Json, LossContext } from './compression-types.js';
import type { Dataset } from './data.js';
import { ConfigError, TensorpressError } from './errors.js';
import { Executor } from './executor.js';
import { softmaxCrossEntropy } from './losses.js';
import type { Graph } from './graph.js';
import { captureCheckpoint, fingerprintOf, restoreCheckpoint, type FitPosition, type FitRun } from './internal/fit-resume.js';
import { disposeOptimizer, isOptimizer, learningRateOf, makeOptimizer, optimizerClassName, setLearningRate } from './internal/optimizers.js';
import { createProgress, type ProgressMode, type ProgressReporter } from './internal/progress.js';
import { checkInt, correctCount, fmt, int32Labels, logitsOf, lossNotFinite, yieldToEventLoop } from './internal/train-utils.js';
import { evaluate, type EvaluateResult } from './evaluate.js';

export type { ProgressMode, ProgressReporter };
// evaluate has its own file; fit uses it for validation, and the two are one API.
export { evaluate } from './evaluate.js';
export type { EvaluateOptions, EvaluateResult } from './evaluate.js';

/** An optimizer for {@link fit} to create (and dispose). */
export interface OptimizerConfig {
  type: 'sgd' | 'momentum' | 'adam';
  learningRate: number;
  /** Momentum of `'momentum'` (default 0.9). */
  momentum?: number;
  /**
   * Decoupled weight decay (AdamW/SGDW style): before each update, the weights of Conv, Gemm and
   * MatMul nodes (input 1) are scaled by `1 - lr·weightDecay`. Biases and BN are not decayed. Default 0.
   */
  weightDecay?: number;
}

/** A learning rate per step: `epoch` and `stepInEpoch` are 0-based. */
export type LrScheduleFn = (epoch: number, stepInEpoch: number, stepsPerEpoch: number, baseLr: number) => number;

/**
 * - `'constant'`: the base rate throughout.
 * - `'cosine'`: per step, `base · ½(1 + cos(π·t))` with `t` = steps done / total steps (no warm-up, no floor).
 * - `'step'`: ×0.1 from 50% of the epochs on and ×0.01 from 75% on (MultiStep at [½, ¾]).
 * - a function of (epoch, stepInEpoch, stepsPerEpoch, baseLr).
 */
export type LrSchedule = 'constant' | 'cosine' | 'step' | LrScheduleFn;

/**
 * What {@link fit} needs of a compression controller; every `AlgorithmController` (and a merged
 * `compress()` controller) is one.
 */
export interface FitController {
  /** Compression loss added to the task loss; called inside the gradient closure. */
  loss(ctx: LossContext): tf.Scalar;
  /** Extra trainable variables (learned scales, L0 logits, ...). */
  trainableVariables(): readonly tf.Variable[];
  readonly scheduler: { step(): void; epochStep(): void };
  /**
   * Data-driven initialisation (quantizer ranges), run by {@link fit} on the training data before
   * the first step; it must do nothing when already initialised (a resumed or second fit).
   */
  initialize?(data: Dataset): Promise<void>;
  /**
   * The controller's state for a checkpoint (schedule position, masks, quantizer state, a random
   * stream ...); with {@link loadState} it makes a resumed run continue exactly. A `compress()`
   * controller has both.
   */
  state?(): Json;
  /** Restores {@link state}; on resume fit calls it instead of {@link initialize}. */
  loadState?(state: Json): void;
}

/** What `onBatchEnd` sees. Indices are 0-based. */
export interface BatchEndInfo {
  readonly epoch: number;
  readonly epochs: number;
  readonly step: number;
  readonly stepsPerEpoch: number;
  /** Steps done since fit started, this one included. */
  readonly globalStep: number;
  /** Examples in this batch. */
  readonly batchSize: number;
  /** Learning rate used for this step. */
  readonly learningRate: number;
  readonly executor: Executor;
  /**
   * Reads this batch's loss (task + compression). Only valid during the callback; reading forces
   * a device sync, which is why the value is not read unless asked for.
   */
  loss(): Promise<number>;
}

/** Metrics of one epoch. */
export interface EpochStats {
  /** 0-based. */
  readonly epoch: number;
  /** Mean training loss over the epoch's examples (task + compression loss, train mode). */
  readonly loss: number;
  /** Running training accuracy over the epoch (train-mode outputs, weights changing as it goes). */
  readonly accuracy: number;
  readonly valLoss?: number;
  readonly valAccuracy?: number;
  /** Learning rate of the epoch's last step. */
  readonly learningRate: number;
  /** Wall time of the epoch, validation included. */
  readonly ms: number;
}

/** What `onEpochEnd` sees. */
export interface EpochEndInfo extends EpochStats {
  readonly epochs: number;
  readonly executor: Executor;
}

/** Callbacks of {@link fit}; fit awaits them. */
export interface FitCallbacks {
  onBatchEnd?(info: BatchEndInfo): void | Promise<void>;
  onEpochEnd?(info: EpochEndInfo): void | Promise<void>;
}

/** Checkpoints of a {@link fit} run. */
export interface FitCheckpointOptions {
  /** Take a checkpoint after every this many optimisation steps (counted over the whole run). Default: only when `signal` aborts. */
  everySteps?: number;
  /**
   * Receives each checkpoint; fit waits for it. `(c) => writeCheckpoint(file, c)` (from
   * `@tensorpress/cli`) keeps the latest one on disk; its `encodeCheckpoint` gives the bytes.
   */
  save(checkpoint: FitCheckpoint): void | Promise<void>;
}

/** Options of {@link fit}. */
export interface FitOptions {
  /** Passes over the data (0 returns the model unchanged). */
  epochs: number;
  batchSize: number;
  /**
   * An optimizer config (fit creates it and disposes it at the end) or a tfjs optimizer (the
   * caller's: fit keeps its state and leaves it alive). Default `{ type: 'adam', learningRate: 1e-3 }`.
   */
  optimizer?: tf.Optimizer | OptimizerConfig;
  /**
   * Learning-rate schedule, applied before every step. Default `'constant'`. With a caller's
   * optimizer the base rate is its `learningRate`, which is restored when fit ends.
   */
  lrSchedule?: LrSchedule;
  callbacks?: FitCallbacks;
  /** A compression controller: its loss is added, its variables trained, its scheduler stepped. */
  controller?: FitController;
  /** Seed of the shuffles (epoch `e` shuffles with `seed + e`) and of a new executor's dropout. Default 0. */
  seed?: number;
  /** Evaluated (eval mode) after every epoch. */
  validation?: Dataset;
  /** Batch size of validation. Default 256. */
  validationBatchSize?: number;
  /** Drop a last batch smaller than `batchSize`. Default false. */
  dropRemainder?: boolean;
  /**
   * `true` (default): one line per epoch on standard output; `'auto'`: those lines on an interactive
   * terminal only; `false`: silent; or a display of your own (a {@link ProgressReporter}, e.g. a
   * terminal bar: the CLI draws one), updated after every step.
   */
  progress?: ProgressMode | ProgressReporter;
  /** Receives the per-epoch summary line, whatever `progress` says. */
  log?: (line: string) => void;
  /**
   * Aborting it stops training at the next step boundary: a checkpoint is saved (with
   * `checkpoint`), then fit throws a TensorpressError `ABORTED`. fit yields to the event loop
   * before every step when it is given, so a signal handler (SIGINT) gets to run.
   */
  signal?: AbortSignal;
  /** Checkpoints every N steps and on abort, for {@link FitOptions.resumeFrom}. */
  checkpoint?: FitCheckpointOptions;
  /**
   * Continue the run a checkpoint was taken from, mid-epoch, on a fresh executor, controller and
   * optimizer: the weights, BN statistics, controller state and variables, optimizer state, random
   * stream, data position and metrics are restored, so the result is bit-identical to the run
   * that was not interrupted (same backend). The checkpoint's fingerprint (epochs, batch size, seed,
   * data size, optimizer, schedule, the variables' names and shapes, `fingerprint`) must match this
   * run's, or fit throws `CHECKPOINT_MISMATCH` naming the field. The controller's `initialize` is
   * not called when it has `loadState`.
   */
  resumeFrom?: FitCheckpoint;
  /** The caller's own fields in the run's fingerprint (a hash of the model, the config ...), compared on resume. */
  fingerprint?: Readonly<Record<string, Json>>;
}

/** Result of {@link fit}. */
export interface FitResult {
  /** The trained graph (current weights and BN statistics; hooks are not applied). */
  readonly graph: Graph;
  readonly history: readonly EpochStats[];
}

const SCHEDULES = new Set(['constant', 'cosine', 'step']);

/**
 * The learning rate of a schedule at a step (0-based epoch and step), as {@link fit} applies it.
 * Exported for tests and for users who drive their own loop.
 */
export function learningRateAt(
  schedule: LrSchedule,
  baseLr: number,
  epoch: number,
  stepInEpoch: number,
  stepsPerEpoch: number,
  epochs: number,
): number {
  let lr: number;
  if (typeof schedule === 'function') lr = schedule(epoch, stepInEpoch, stepsPerEpoch, baseLr);
  else if (schedule === 'constant') lr = baseLr;
  else if (schedule === 'cosine') {
    const t = (epoch * stepsPerEpoch + stepInEpoch) / Math.max(1, epochs * stepsPerEpoch);
    lr = baseLr * 0.5 * (1 + Math.cos(Math.PI * t));
  } else if (schedule === 'step') {
    const passed = [0.5, 0.75].filter((m) => epoch >= m * epochs).length;
    lr = baseLr * 0.1 ** passed;
  } else {
    throw new ConfigError('$.lrSchedule', `expected 'constant', 'cosine', 'step' or a function, got ${JSON.stringify(schedule)}`);
  }
  if (!(Number.isFinite(lr) && lr >= 0)) {
    throw new ConfigError('$.lrSchedule', `the schedule gave learning rate ${lr} at epoch ${epoch}, step ${stepInEpoch}; expected a finite number >= 0`);
  }
  return lr;
}


/**
 * Trains a graph (on a new executor, disposed at the end) or an executor (in place, hooks
 * included) with softmax cross-entropy on integer labels: the first graph output is the logits.
 * A controller's loss is added and its scheduler stepped (`step()` after every optimisation step,
 * `epochStep()` after every epoch). Forward runs in train mode (BN batch statistics, dropout).
 *
 * The running loss is read from the device only every 20 steps, at a checkpoint and at the end of
 * an epoch, so steps are not stalled by syncs; when it is no longer finite fit throws
 * `LOSS_NOT_FINITE` (naming the epoch and steps). The same seed gives the same weights on the same
 * backend, and a run resumed from a checkpoint (`resumeFrom`) ends with the same weights as one
 * that was never interrupted. Gradients are loaded with `ensureGradients()`; the backend is
 * whatever tfjs has active.
 *
 * @example
 * const { graph, history } = await fit(referenceModels.plainCnn(), mnist.train, {
 *   epochs: 3, batchSize: 64, optimizer: { type: 'adam', learningRate: 3e-3 }, lrSchedule: 'cosine',
 *   validation: mnist.test,
 * });
 */
export async function fit(target: Graph | Executor, data: Dataset, options: FitOptions): Promise<FitResult> {
  const epochs = checkInt('$.epochs', options.epochs, 0);
  const batchSize = checkInt('$.batchSize', options.batchSize, 1);
  const seed = checkInt('$.seed', options.seed ?? 0, Number.MIN_SAFE_INTEGER);
  const validationBatchSize = checkInt('$.validationBatchSize', options.validationBatchSize ?? 256, 1);
  const schedule = options.lrSchedule ?? 'constant';
  if (typeof schedule !== 'function' && !SCHEDULES.has(schedule)) {
    throw new ConfigError('$.lrSchedule', `expected 'constant', 'cosine', 'step' or a function, got ${JSON.stringify(schedule)}`);
  }
  const checkpoint = options.checkpoint;
  if (checkpoint !== undefined) {
    if (typeof checkpoint?.save !== 'function') throw new ConfigError('$.checkpoint.save', 'expected a function that receives each checkpoint');
    if (checkpoint.everySteps !== undefined) checkInt('$.checkpoint.everySteps', checkpoint.everySteps, 1);
  }
  const given = isOptimizer(options.optimizer) ? options.optimizer : undefined;
  const config: OptimizerConfig | undefined = given ? undefined : ((options.optimizer as OptimizerConfig | undefined) ?? { type: 'adam', learningRate: 1e-3 });
  const baseLr = given ? learningRateOf(given) : config!.learningRate;
  if (given && options.lrSchedule !== undefined && !(typeof baseLr === 'number' && Number.isFinite(baseLr))) {
    throw new ConfigError('$.lrSchedule', 'the optimizer passed in has no numeric learningRate to schedule');
  }
  const resume = options.resumeFrom;
  const signal = options.signal;
  const dropRemainder = options.dropRemainder ?? false;

  // Gradient functions live in tfjs-layers' bundle; loading them here lets fit work on any backend setup.
  await ensureGradients();
  const owned = !(target instanceof Executor);
  const ex = target instanceof Executor ? target : new Executor(target, { seed });
  let optimizer: tf.Optimizer | undefined;
  const progress = createProgress(options.progress ?? true, options.log);
  try {
    const controller = options.controller;
    // A resumed run takes the controller's state from the checkpoint, not from the data.
    if (controller?.initialize && !(resume && controller.loadState)) await controller.initialize(data);
    logitsOf(ex, data, 'fit');
    if (options.validation) logitsOf(ex, options.validation, 'fit (validation)');
    optimizer = given ?? makeOptimizer(config!);
    const seen = new Set<tf.Variable>();
    const vars: tf.Variable[] = [];
    for (const v of [...ex.trainableVariables(), ...(controller?.trainableVariables() ?? [])]) {
      if (v.trainable && !seen.has(v)) {
        seen.add(v);
        vars.push(v);
      }
    }
    if (vars.length === 0) throw new TensorpressError('INPUT_INVALID', 'fit: the model has no trainable variables');
    const weightDecay = config?.weightDecay ?? 0;
    const decayed = weightDecay > 0 ? decayedVariables(ex) : [];
    const stepsPerEpoch = dropRemainder ? Math.floor(data.size / batchSize) : Math.ceil(data.size / batchSize);
    if (stepsPerEpoch === 0) {
      throw new TensorpressError('DATA_INVALID', `fit: dropRemainder leaves no batch (${data.size} examples, batchSize ${batchSize})`);
    }
    const optimizerPrint = given
      ? { type: optimizerClassName(given), learningRate: baseLr, momentum: null, weightDecay: 0 }
      : { type: config!.type, learningRate: config!.learningRate, momentum: config!.type === 'momentum' ? (config!.momentum ?? 0.9) : null, weightDecay };
    const fingerprint = fingerprintOf(
      { epochs, batchSize, seed, dropRemainder, dataSize: data.size, stepsPerEpoch, optimizer: optimizerPrint, lrSchedule: schedule, extra: options.fingerprint },
      ex,
      vars,
      controller,
    );
    const run: FitRun = { ex, vars, controller, optimizer, fingerprint };
    const history: EpochStats[] = resume ? [...resume.history] : [];
    let globalStep = resume?.globalStep ?? 0;
    let appliedLr = baseLr;
    const scheduled = options.lrSchedule !== undefined || !given;
    const setLr = (lr: number): void => {
      if (lr !== appliedLr) {
        setLearningRate(optimizer!, lr);
        appliedLr = lr;
      }
    };
    if (resume) {
      await restoreCheckpoint(run, resume);
      if (scheduled) setLr(resume.learningRate);
    }
    try {
      for (let epoch = resume?.epoch ?? 0; epoch < epochs; epoch++) {
        const resumed = resume && epoch === resume.epoch ? resume : undefined;
        const t0 = performance.now() - (resumed?.epochProgress.ms ?? 0);
        let lossSum: tf.Scalar = tf.scalar(resumed?.epochProgress.lossSum ?? 0);
        let correct: tf.Scalar = tf.scalar(resumed?.epochProgress.correct ?? 0, 'int32');
        let seenExamples = resumed?.epochProgress.examples ?? 0;
        let lr = resumed?.epochProgress.learningRate ?? appliedLr;
        let step = resumed?.step ?? 0;
        /** Steps of this epoch after which the loss sum was last seen finite. */
        let finiteAt = step;
        /** Reads the running loss sum and correct count; a non-finite loss ends the run (it never recovers). */
        const readTotals = async (): Promise<[number, number]> => {
          const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
          const loss = l[0]!;
          if (!Number.isFinite(loss)) throw lossNotFinite(loss, { epoch, epochs, from: finiteAt, to: step, stepsPerEpoch, globalStep, lr });
          finiteAt = step;
          return [loss, c[0]!];
        };
        const position = async (): Promise<FitPosition> => {
          const [l, c] = await readTotals();
          const epochProgress = { lossSum: l, correct: c, examples: seenExamples, learningRate: lr, ms: performance.now() - t0 };
          return { epoch, step, globalStep, history, epochProgress, learningRate: appliedLr };
        };
        const save = async (): Promise<void> => checkpoint!.save(await captureCheckpoint(run, await position()));
        await progress.start(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch);
        if (step > 0) progress.update(step);
        try {
          const batches = data.batches(batchSize, { shuffle: true, seed: seed + epoch, dropRemainder, ...(step > 0 ? { skip: step } : {}) });
          try {
            for (;;) {
              if (signal) {
                // A step is synchronous work: without a turn of the event loop a signal handler never runs.
                await yieldToEventLoop();
                if (signal.aborted) {
                  if (checkpoint) await save();
                  throw new TensorpressError(
                    'ABORTED',
                    `fit: aborted at epoch ${epoch + 1}/${epochs}, step ${step}/${stepsPerEpoch} (global step ${globalStep})${checkpoint ? '; a checkpoint of this point was saved' : ''}`,
                    { epoch, step, globalStep, checkpointSaved: checkpoint !== undefined },
                  );
                }
              }
              const next = batches.next();
              if (next.done) break;
              const batch = next.value;
              const n = batch.x.shape[0] ?? 0;
              let labels: tf.Tensor1D | undefined;
              let value: tf.Scalar | undefined;
              try {
                if (step >= stepsPerEpoch) {
                  throw new TensorpressError('DATA_INVALID', `fit: the dataset yielded more than ${stepsPerEpoch} batches of ${batchSize} for its ${data.size} examples`);
                }
                labels = int32Labels(batch.y);
                lr = learningRateAt(schedule, baseLr, epoch, step, stepsPerEpoch, epochs);
                if (scheduled) setLr(lr);
                let stepCorrect: tf.Scalar | undefined;
                const lab = labels;
                const { value: v, grads } = optimizer.computeGradients(() => {
                  const outputs = ex.run(batch.x, { training: true });
                  const logits = outputs[0]!;
                  let loss = softmaxCrossEntropy(logits, lab);
                  if (controller) loss = tf.add(loss, controller.loss({ inputs: batch.x, labels: lab, outputs, executor: ex }));
                  stepCorrect = tf.keep(correctCount(logits, lab));
                  return loss;
                }, vars);
                value = v;
                if (decayed.length > 0) {
                  const factor = 1 - lr * weightDecay;
                  tf.tidy(() => {
                    for (const w of decayed) w.assign(tf.mul(w, factor));
                  });
                }
                optimizer.applyGradients(vars.map((x) => ({ name: x.name, tensor: grads[x.name]! })));
                tf.dispose(grads);
                const nextLoss = tf.tidy(() => tf.add(lossSum, tf.mul(v, n)));
                const nextCorrect = tf.tidy(() => tf.add(correct, stepCorrect!));
                tf.dispose([lossSum, correct, stepCorrect!]);
                lossSum = nextLoss as tf.Scalar;
                correct = nextCorrect as tf.Scalar;
                seenExamples += n;
                globalStep++;
                controller?.scheduler.step();
                if (options.callbacks?.onBatchEnd) {
                  await options.callbacks.onBatchEnd({
                    epoch,
                    epochs,
                    step,
                    stepsPerEpoch,
                    globalStep,
                    batchSize: n,
                    learningRate: lr,
                    executor: ex,
                    loss: async () => (await v.data())[0]!,
                  });
                }
              } finally {
                tf.dispose([batch.x, batch.y]);
                if (labels && labels !== batch.y) labels.dispose();
                value?.dispose();
              }
              step++;
              if (checkpoint?.everySteps !== undefined && globalStep % checkpoint.everySteps === 0) await save();
              let status: string | undefined;
              // The loss is read (a device sync) only every 20 steps: often enough to stop a diverged run early.
              if (step % 20 === 0 || step === stepsPerEpoch) {
                const [l, c] = await readTotals();
                status = `loss ${fmt(l / seenExamples)} acc ${fmt(c / seenExamples)}`;
              }
              if (progress.interactive) {
                progress.update(step, status);
                await yieldToEventLoop();
              }
            }
          } finally {
            batches.return?.(undefined);
          }
          if (step !== stepsPerEpoch) {
            throw new TensorpressError('DATA_INVALID', `fit: the dataset yielded ${step} batches in epoch ${epoch + 1}, expected ${stepsPerEpoch} (does its batches() honour skip?)`);
          }
          const [l, c] = await readTotals();
          const loss = l / seenExamples;
          const accuracy = c / seenExamples;
          controller?.scheduler.epochStep();
          let val: EvaluateResult | undefined;
          if (options.validation) val = await evaluate(ex, options.validation, { batchSize: validationBatchSize, progress: false });
          const stats: EpochStats = {
            epoch,
            loss,
            accuracy,
            ...(val ? { valLoss: val.loss, valAccuracy: val.accuracy } : {}),
            learningRate: lr,
            ms: performance.now() - t0,
          };
          history.push(stats);
          progress.end(
            `epoch ${epoch + 1}/${epochs} loss ${fmt(loss)} acc ${fmt(accuracy)}${val ? ` val ${fmt(val.accuracy)}` : ''} ${(stats.ms / 1000).toFixed(1)} s`,
          );
          if (options.callbacks?.onEpochEnd) await options.callbacks.onEpochEnd({ ...stats, epochs, executor: ex });
        } finally {
          progress.end();
          tf.dispose([lossSum, correct]);
        }
      }
    } finally {
      if (given && options.lrSchedule !== undefined && appliedLr !== baseLr) setLearningRate(given, baseLr);
    }
    return { graph: ex.snapshot(), history };
  } finally {
    if (optimizer && !given) disposeOptimizer(optimizer);
    if (owned) ex.dispose();
  }
}

/** Conv/Gemm/MatMul weights (input 1) that are trainable variables of the executor. */
function decayedVariables(ex: Executor): tf.Variable[] {
  const vars = ex.variables();
  const out = new Set<tf.Variable>();
  for (const node of ex.graph.nodes) {
    if (node.op !== 'Conv' && node.op !== 'Gemm' && node.op !== 'MatMul') continue;
    const v = vars.get(node.inputs[1] ?? '');
    if (v?.trainable) out.add(v);
  }
  return [...out];
}
