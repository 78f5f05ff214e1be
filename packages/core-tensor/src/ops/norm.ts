/** Batch normalisation: inference with running statistics, training with the closed-form backward pass. */
import * as tf from '@tensorflow/tfjs-core';
import { numAttr } from '../attrs.js';
import { dimsEqual, fail, fmt, needFloat, req } from './helpers.js';
import type { OpSpec } from './registry.js';

/**
 * Train-mode batch normalisation over every axis but the last, with the closed-form backward
 * pass: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), dγ = Σ dy · x̂, dβ = Σ dy. Autodiff through
 * `moments` + `batchNorm` takes about three times as many full-size kernels. The batch mean and
 * (biased) variance are returned for the running statistics; they are not on the gradient tape.
 */
export function batchNormTrain(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps: number,
): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  const axes = [...Array(x.rank - 1).keys()];
  const count = x.size / x.shape[x.rank - 1]!;
  let mean: tf.Tensor | undefined;
  let variance: tf.Tensor | undefined;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // The kernel's scope disposes everything but its output and saved tensors: keep the moments.
    mean = tf.keep(tf.mean(xi, axes));
    const xc = tf.sub(xi, mean);
    variance = tf.keep(tf.mean(tf.square(xc), axes));
    const invStd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(xc, invStd);
    save([xhat, invStd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const d = Array.isArray(dy) ? dy[0]! : dy;
        const [xh, is, gm] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dBeta = tf.sum(d, axes);
        const dGamma = tf.sum(tf.mul(d, xh), axes);
        const centred = tf.sub(tf.sub(d, tf.div(dBeta, count)), tf.mul(xh, tf.div(dGamma, count)));
        return [tf.mul(centred, tf.mul(gm, is)), dGamma, dBeta];
      },
    };
  });
  const y = f(x, gamma, beta);
  // Clones share the data but belong to the caller's scope, so tidy frees them as usual.
  const out = { y, mean: tf.clone(mean!), variance: tf.clone(variance!) };
  mean!.dispose();
  variance!.dispose();
  return out;
}

/** The normalisation ops, in registration order. */
export const NORM_OPS: readonly OpSpec[] = [
  {
    op: 'BatchNormalization',
    arity: [5, 5],
    weightInputs: [1, 2, 3, 4],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      const c = x.shape[x.shape.length - 1];
      for (let i = 1; i <= 4; i++) {
        const p = needFloat(node, ins, i);
        if (p.shape.length !== 1 || !dimsEqual(p.shape[0]!, c ?? null)) {
          fail(node, `input ${i} must be [${c}] (channels last), got ${fmt(p.shape)}`);
        }
      }
      return [{ name: '', shape: x.shape, dtype: 'float32' }];
    },
    forward: (ins, node, ctx) => {
      const x = req(node, ins, 0);
      const gamma = req(node, ins, 1);
      const beta = req(node, ins, 2);
      const mean = req(node, ins, 3);
      const variance = req(node, ins, 4);
      const eps = numAttr(node, 'epsilon', 1e-5);
      if (!ctx.training) return [tf.batchNorm(x, mean, variance, beta, gamma, eps)];
      const m = batchNormTrain(x, gamma, beta, eps);
      // Running statistics follow PyTorch/ONNX: momentum weights the old value; variance is unbiased.
      const momentum = numAttr(node, 'momentum', 0.9);
      const n = x.size / (x.shape[x.rank - 1] ?? 1);
      const unbiased = n > 1 ? tf.mul(m.variance, n / (n - 1)) : m.variance;
      ctx.updateParam(node.inputs[3]!, tf.add(tf.mul(mean, momentum), tf.mul(m.mean, 1 - momentum)));
      ctx.updateParam(node.inputs[4]!, tf.add(tf.mul(variance, momentum), tf.mul(unbiased, 1 - momentum)));
      return [m.y];
    },
  },
];
