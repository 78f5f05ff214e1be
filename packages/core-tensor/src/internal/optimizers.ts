/**
 * The optimizers {@link fit} creates, setting their learning rate, disposing them, and their state
 * in a checkpoint: exact for fit's packed Adam and tfjs' Adam, SGD and Momentum (read from their
 * fields), through `getWeights`/`setWeights` for any other optimizer (exact only if those are).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedCheckpointTensor, OptimizerCheckpoint } from '../checkpoint.js';
import { ConfigError, TensorpressError } from '../errors.js';
import type { OptimizerConfig } from '../train.js';
import { PackedAdamOptimizer } from './packed-adam.js';
import { adamSlots, copyTensor, loadAdamSlots, loadMomentumSlots, momentumSlots, setIterations } from './optimizer-slots.js';

/** Creates the optimizer of a config (validated). */
export function makeOptimizer(c: OptimizerConfig): tf.Optimizer {
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

/** True for a tfjs optimizer (anything with applyGradients). */
export function isOptimizer(o: unknown): o is tf.Optimizer {
  return typeof o === 'object' && o !== null && typeof (o as { applyGradients?: unknown }).applyGradients === 'function';
}

interface LrHandle {
  learningRate: number;
  setLearningRate?: (lr: number) => void;
}

/** The optimizer's `learningRate` field (undefined when it has none). */
export function learningRateOf(opt: tf.Optimizer): number {
  return (opt as unknown as LrHandle).learningRate;
}

/** SGD and Momentum keep `-lr` in a scalar that setLearningRate rebuilds; Adam reads the field per step. */
export function setLearningRate(opt: tf.Optimizer, lr: number): void {
  const o = opt as unknown as LrHandle;
  if (typeof o.setLearningRate === 'function') o.setLearningRate(lr);
  else o.learningRate = lr;
}

/** Disposes an optimizer fit created. */
export function disposeOptimizer(opt: tf.Optimizer): void {
  opt.dispose();
  // MomentumOptimizer.dispose() forgets the learning-rate scalar its SGD parent allocated.
  const c = (opt as unknown as { c?: tf.Tensor }).c;
  if (c instanceof tf.Tensor && !c.isDisposed) c.dispose();
}

/** The class name tfjs serialises an optimizer under (`Adam`, `SGD`, `Momentum`, `PackedAdam`, ...). */
export function optimizerClassName(opt: tf.Optimizer): string {
  const name = (opt.constructor as { className?: unknown }).className;
  return typeof name === 'string' ? name : opt.constructor.name;
}

function isPackedAdam(opt: tf.Optimizer): opt is PackedAdamOptimizer {
  return opt.constructor === PackedAdamOptimizer;
}

/** How each class's state is taken: by its fields (exact) or by getWeights. */
function kindOf(opt: tf.Optimizer): OptimizerCheckpoint['kind'] {
  // Optimizer overrides Symbol.hasInstance (any optimizer passes instanceof), so compare classes.
  if (opt.constructor === PackedAdamOptimizer || opt.constructor === tf.AdamOptimizer) return 'adam';
  if (opt.constructor === tf.MomentumOptimizer) return 'momentum';
  if (opt.constructor === tf.SGDOptimizer) return 'sgd';
  return 'weights';
}

/** The optimizer's complete state; `vars` is the list fit passes to every step. */
export async function saveOptimizer(opt: tf.Optimizer, vars: readonly tf.Variable[]): Promise<OptimizerCheckpoint> {
  const base = { className: optimizerClassName(opt), iterations: opt.iterations };
  const kind = kindOf(opt);
  if (isPackedAdam(opt)) return { kind, ...base, ...(await opt.saveState(vars)) };
  if (kind === 'adam') return { kind, ...base, packed: [], slots: await adamSlots(opt) };
  if (kind === 'momentum') return { kind, ...base, packed: [], slots: await momentumSlots(opt) };
  if (kind === 'sgd') return { kind, ...base, packed: [], slots: [] };
  const weights = await opt.getWeights();
  const slots: NamedCheckpointTensor[] = [];
  for (const w of weights) {
    slots.push(await copyTensor(w.name, w.tensor));
    // getWeights returns the live slot variables plus a new scalar for the step counter.
    if (!(w.tensor instanceof tf.Variable)) w.tensor.dispose();
  }
  return { kind, ...base, packed: [], slots };
}

/** Restores {@link saveOptimizer} into a fresh optimizer of the same class. */
export async function loadOptimizer(opt: tf.Optimizer, vars: readonly tf.Variable[], state: OptimizerCheckpoint): Promise<void> {
  const className = optimizerClassName(opt);
  if (className !== state.className) {
    throw new TensorpressError('CHECKPOINT_MISMATCH', `resumeFrom: the checkpoint holds the state of a ${state.className} optimizer, this run uses ${className}`, {
      field: 'optimizer',
    });
  }
  const shapes = vars.map((v) => v.shape);
  const names = vars.map((v) => v.name);
  if (isPackedAdam(opt)) return opt.loadState(vars, state);
  if (state.kind === 'adam') loadAdamSlots(opt, state.slots, shapes, names);
  else if (state.kind === 'momentum') loadMomentumSlots(opt, state.slots, shapes, names);
  else if (state.kind === 'weights') {
    const tensors = state.slots.map((s) => ({ name: s.name, tensor: tf.tensor(s.data, [...s.shape], s.data instanceof Int32Array ? 'int32' : 'float32') }));
    try {
      await opt.setWeights(tensors);
    } finally {
      tf.dispose(tensors.map((t) => t.tensor));
    }
    return;
  }
  setIterations(opt, state.iterations);
}
