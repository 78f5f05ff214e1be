/**
 * Pieces shared by {@link fit} and {@link evaluate}: option checks, the logits/labels contract,
 * device-side counts, and yielding to the event loop.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '../data.js';
import { ConfigError, TensorpressError } from '../errors.js';
import type { Executor } from '../executor.js';

/** An integer option >= min, or a ConfigError at `path`. */
export function checkInt(path: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min) {
    throw new ConfigError(path, `expected an integer >= ${min}, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** The number of logits of the first graph output, checked against the data. */
export function logitsOf(ex: Executor, data: Dataset, what: string): number {
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

/** Examples whose arg-max logit is the label (int32 scalar). */
export function correctCount(logits: tf.Tensor, labels: tf.Tensor): tf.Scalar {
  return tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), labels), 'int32'));
}

/** Labels as int32. */
export function int32Labels(y: tf.Tensor): tf.Tensor1D {
  return (y.dtype === 'int32' ? y : tf.cast(y, 'int32')) as tf.Tensor1D;
}

/** Lets pending callbacks (signal handlers, progress output) run. */
export function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => void };
  return new Promise((r) => (g.setImmediate ? g.setImmediate(r) : setTimeout(r, 0)));
}

/** A metric with four decimals. */
export function fmt(x: number): string {
  return x.toFixed(4);
}

/** The typed error of a diverged run: where the loss sum turned non-finite, and what to do. */
export function lossNotFinite(
  loss: number,
  at: { epoch: number; epochs: number; from: number; to: number; stepsPerEpoch: number; globalStep: number; lr: number },
): TensorpressError {
  const first = at.globalStep - (at.to - at.from) + 1;
  const steps =
    at.to > at.from + 1
      ? `one of steps ${at.from + 1}-${at.to} of ${at.stepsPerEpoch} (global steps ${first}-${at.globalStep})`
      : `step ${at.to} of ${at.stepsPerEpoch} (global step ${at.globalStep})`;
  return new TensorpressError(
    'LOSS_NOT_FINITE',
    `fit: the training loss became ${loss} in epoch ${at.epoch + 1}/${at.epochs}, at ${steps}; ` +
      `the weights are no longer usable and no checkpoint was written. Lower the learning rate (${at.lr} at that point) or check the data for NaN/Inf.`,
    { epoch: at.epoch, fromStep: at.from, toStep: at.to, globalStep: at.globalStep, learningRate: at.lr },
  );
}
