import * as tf from '@tensorflow/tfjs-core';
import { PackedAdamOptimizer } from './internal/packed-adam.js';
import { ensureGradients } from './backend.js';
import type { LossContext } from './compression-types.js';
import type { Dataset } from './data.js';
import { ConfigError, TensorpressError } from './errors.js';
import { Executor } from './executor.js';
import { softmaxCrossEntropy } from './losses.js';
import type { Graph } from './graph.js';
import { createProgress, type ProgressMode, type ProgressReporter } from './internal/progress.js';

export type { ProgressMode };

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
  /** `true` (default): a bar on a TTY, one line per epoch otherwise; `'auto'`: a bar on a TTY only; `false`: silent. */
  progress?: ProgressMode;
  /** Receives the per-epoch summary line, whatever `progress` says. */
  log?: (line: string) => void;
}

/** Result of {@link fit}. */
export interface FitResult {
  /** The trained graph (current weights and BN statistics; hooks are not applied). */
  readonly graph: Graph;
  readonly history: readonly EpochStats[];
}

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Default 256. */
  batchSize?: number;
  /** As in {@link FitOptions.progress}. Default `true`. */
  progress?: ProgressMode;
  /** Receives the summary line. */
  log?: (line: string) => void;
}

/** Result of {@link evaluate}. */
export interface EvaluateResult {
  /** Fraction of examples whose arg-max logit is the label. */
  readonly accuracy: number;
  /** Mean softmax cross-entropy. */
  readonly loss: number;
  /** Examples seen. */
  readonly count: number;
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

function checkInt(path: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new ConfigError(path, `expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

function makeOptimizer(c: OptimizerConfig): tf.Optimizer {
  if (c === null || typeof c !== 'object') throw new ConfigError('$.optimizer', 'expected a tf.Optimizer or { type, learningRate }');
  if (!(typeof c.learningRate === 'number' && Number.isFinite(c.learningRate) && c.learningRate > 0)) {
    throw new ConfigError('$.optimizer.learningRate', `expected a positive number, got ${JSON.stringify(c.learningRate)}`);
  }
  const wd = c.weightDecay ?? 0;
  if (!(typeof wd === 'number' && Number.isFinite(wd) && wd >= 0)) {
    throw new ConfigError('$.optimizer.weightDecay', `expected a number >= 0, got ${JSON.stringify(wd)}`);
  }
  switch (c.type) {
    case 'sgd':
      return tf.train.sgd(c.learningRate);
    case 'momentum': {
      const m = c.momentum ?? 0.9;
      if (!(typeof m === 'number' && m >= 0 && m < 1)) throw new ConfigError('$.optimizer.momentum', `expected a number in [0, 1), got ${JSON.stringify(m)}`);
      return tf.train.momentum(c.learningRate, m);
    }
    case 'adam':
      return new PackedAdamOptimizer(c.learningRate);
    default:
      throw new ConfigError('$.optimizer.type', `expected 'sgd', 'momentum' or 'adam', got ${JSON.stringify((c as { type: unknown }).type)}`);
  }
}

function isOptimizer(o: unknown): o is tf.Optimizer {
  return typeof o === 'object' && o !== null && typeof (o as { applyGradients?: unknown }).applyGradients === 'function';
}

interface LrHandle {
  learningRate: number;
  setLearningRate?: (lr: number) => void;
}

/** SGD and Momentum keep `-lr` in a scalar that setLearningRate rebuilds; Adam reads the field per step. */
function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as unknown as LrHandle;
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  // MomentumOptimizer.dispose() forgets the learning-rate scalar its SGD parent allocated.
  const c = (opt as unknown as { c?: tf.Tensor }).c;
  if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
}

function logitsOf(ex: Executor, data: Dataset, what: string): number {
  const out = ex.graph.outputs[0];
  if (out === undefined) throw new TensorpressError('INPUT_INVALID', `${what}: the graph has no output`);
  const shape = ex.graph.info(out).shape;
  const c = shape[shape.length - 1];
  if (shape.length !== 2 || typeof c !== 'number') {
    throw new TensorpressError(
      'INPUT_INVALID',
      `${what}: the first graph output "${out}" must be logits [N, classes], got [${shape.map((d) => d ?? '?').join(', ')}]`,
    );
  }
  if (data.numClasses > c) {
    throw new TensorpressError('INPUT_INVALID', `${what}: the dataset has ${data.numClasses} classes but the model outputs ${c} logits`);
  }
  if (data.size === 0) throw new TensorpressError('DATA_INVALID', `${what}: the dataset is empty`);
  return c;
}

function correctCount(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'int32'));
}

function int32Labels(y: tf.Tensor): tf.Tensor1D {
  return (y.dtype === 'int32' ? y : tf.cast(y, 'int32')) as tf.Tensor1D;
}

function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  return new Promise((r) => (g.setImmediate ? g.setImmediate(r) : setTimeout(r, 0)));
}

function fmt(x: number): string {
  return x.toFixed(4);
}

/**
 * Trains a graph (on a new executor, disposed at the end) or an executor (in place, hooks
 * included) with softmax cross-entropy on integer labels: the first graph output is the logits.
 * A controller's loss is added and its scheduler stepped (`step()` after every optimisation step,
 * `epochStep()` after every epoch). Forward runs in train mode (BN batch statistics, dropout).
 *
 * Values are read from the device once per epoch (and, with a progress bar, every 20 steps), so
 * steps are not stalled by syncs. The same seed gives the same weights on the same backend.
 * Gradients are loaded with `ensureGradients()`; the backend is whatever tfjs has active.
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
  const given = isOptimizer(options.optimizer) ? options.optimizer : undefined;
  const config: OptimizerConfig | undefined = given ? undefined : ((options.optimizer as OptimizerConfig | undefined) ?? { type: 'adam', learningRate: 1e-3 });
  let baseLr: number;
  if (given) {
    const lr = (given as unknown as LrHandle).learningRate;
    if (options.lrSchedule !== undefined && !(typeof lr === 'number' && Number.isFinite(lr))) {
      throw new ConfigError('$.lrSchedule', 'the optimizer passed in has no numeric learningRate to schedule');
    }
    baseLr = lr;
  } else {
    baseLr = config!.learningRate;
  }

  // Gradient functions live in tfjs-layers' bundle; loading them here lets fit work on any backend setup.
  await ensureGradients();
  const owned = !(target instanceof Executor);
  const ex = target instanceof Executor ? target : new Executor(target, { seed });
  let optimizer: tf.Optimizer | undefined;
  const progress = createProgress(options.progress ?? true, options.log);
  try {
    if (options.controller?.initialize) await options.controller.initialize(data);
    logitsOf(ex, data, 'fit');
    if (options.validation) logitsOf(ex, options.validation, 'fit (validation)');
    optimizer = given ?? makeOptimizer(config!);
    const controller = options.controller;
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
    const stepsPerEpoch = options.dropRemainder ? Math.floor(data.size / batchSize) : Math.ceil(data.size / batchSize);
    if (stepsPerEpoch === 0) {
      throw new TensorpressError('DATA_INVALID', `fit: dropRemainder leaves no batch (${data.size} examples, batchSize ${batchSize})`);
    }
    const history: EpochStats[] = [];
    let globalStep = 0;
    let appliedLr = given ? baseLr : config!.learningRate;
    const setLr = (lr: number): void => {
      if (lr !== appliedLr) {
        setLearningRate(optimizer!, lr);
        appliedLr = lr;
      }
    };
    try {
      for (let epoch = 0; epoch < epochs; epoch++) {
        const t0 = performance.now();
        let lossSum: tf.Scalar = tf.scalar(0);
        let correct: tf.Scalar = tf.scalar(0, 'int32');
        let seenExamples = 0;
        let lr = appliedLr;
        await progress.start(`epoch ${epoch + 1}/${epochs}`, stepsPerEpoch);
        try {
          let step = 0;
          for (const batch of data.batches(batchSize, { shuffle: true, seed: seed + epoch, dropRemainder: options.dropRemainder ?? false })) {
            const n = batch.x.shape[0] ?? 0;
            let labels: tf.Tensor1D | undefined;
            let value: tf.Scalar | undefined;
            try {
              labels = int32Labels(batch.y);
              lr = learningRateAt(schedule, baseLr, epoch, step, stepsPerEpoch, epochs);
              if (options.lrSchedule !== undefined || !given) setLr(lr);
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
            if (progress.interactive) {
              let status: string | undefined;
              if (step % 20 === 0 || step === stepsPerEpoch) {
                const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
                status = `loss ${fmt(l[0]! / seenExamples)} acc ${fmt(c[0]! / seenExamples)}`;
              }
              progress.update(step, status);
              await yieldToEventLoop();
            }
          }
          const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
          const loss = l[0]! / seenExamples;
          const accuracy = c[0]! / seenExamples;
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

/**
 * Accuracy and mean softmax cross-entropy of the first graph output (logits) against integer
 * labels, in eval mode (BN running statistics, no dropout; an executor's hooks apply). Counts are
 * accumulated on the device and read once at the end.
 */
export async function evaluate(target: Graph | Executor, data: Dataset, options: EvaluateOptions = {}): Promise<EvaluateResult> {
  const batchSize = checkInt('$.batchSize', options.batchSize ?? 256, 1);
  const owned = !(target instanceof Executor);
  const ex = target instanceof Executor ? target : new Executor(target);
  const progress: ProgressReporter = createProgress(options.progress ?? true, options.log);
  let lossSum: tf.Scalar = tf.scalar(0);
  let correct: tf.Scalar = tf.scalar(0, 'int32');
  try {
    logitsOf(ex, data, 'evaluate');
    const steps = Math.ceil(data.size / batchSize);
    await progress.start('evaluate', steps);
    let count = 0;
    let step = 0;
    for (const batch of data.batches(batchSize)) {
      try {
        const [nl, nc] = tf.tidy(() => {
          const labels = int32Labels(batch.y);
          const logits = ex.run(batch.x)[0]!;
          const l = softmaxCrossEntropy(logits, labels, 'sum');
          return [tf.add(lossSum, l), tf.add(correct, correctCount(logits, labels))];
        });
        tf.dispose([lossSum, correct]);
        lossSum = nl as tf.Scalar;
        correct = nc as tf.Scalar;
        count += batch.x.shape[0] ?? 0;
      } finally {
        tf.dispose([batch.x, batch.y]);
      }
      step++;
      if (progress.interactive) {
        progress.update(step);
        await yieldToEventLoop();
      }
    }
    const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
    const result = { accuracy: c[0]! / count, loss: l[0]! / count, count };
    progress.end(`evaluate ${count} examples: loss ${fmt(result.loss)} acc ${fmt(result.accuracy)}`);
    return result;
  } finally {
    progress.end();
    tf.dispose([lossSum, correct]);
    if (owned) ex.dispose();
  }
}
