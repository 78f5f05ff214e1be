/** Helpers shared by the quantizer tests (one test file per method, as in src/). */
import * as tf from '@tensorflow/tfjs-core';
import { roundHalfEven, type Quantizer } from '@tensorpress/quant';
import { seededArray } from '@tensorpress/test-utils';

const made: Quantizer[] = [];

/** Registers a quantizer for {@link disposeKept} and returns it. */
export function keep<Q extends Quantizer>(q: Q): Q {
  made.push(q);
  return q;
}

/** Disposes every quantizer kept since the last call (each test file runs it after each test). */
export function disposeKept(): void {
  for (const q of made.splice(0)) q.dispose();
}

/** Rounds to float32, as the kernels compute. */
export const f32 = Math.fround;

/** Applies a quantizer through the interface (the classes declare apply(x) only). */
export const run = (q: Quantizer, x: tf.Tensor, training: boolean): tf.Tensor => q.apply(x, training);

/** LSQ's local scale gradient of one value (v = x / s unrounded, zero point 0). */
export function localScaleGrad(x: number, s: number, qmin: number, qmax: number): number {
  const v = f32(f32(x) / f32(s));
  if (v < qmin) return qmin;
  if (v > qmax) return qmax;
  return roundHalfEven(v) - v;
}

/** Output of a quantizer and d(sum(y·dy))/d(its variables), in the order of variables(). */
export function outputAndGrads(q: Quantizer, x: tf.Tensor, dy: tf.Tensor): { y: Float32Array; grads: tf.Tensor[] } {
  const y = tf.tidy(() => run(q, x, true));
  const out = Float32Array.from(y.dataSync());
  y.dispose();
  const vars = q.variables();
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(run(q, x, true), dy))) as tf.Scalar, vars);
  value.dispose();
  return { y: out, grads: vars.map((v) => grads[v.name]!) };
}

/** A Conv weight shape (HWIO, 4 output channels) and seeded values and upstream gradients of that shape. */
export const W_SHAPE = [3, 3, 2, 4];
export const W_N = 72;
export const wValues = seededArray(W_N, 5, -0.6, 0.6);
export const dyValues = seededArray(W_N, 6, -1, 1);
