/**
 * DoReFa-Net's weight quantizer and its closed-form gradient as fused kernels (array kernels of
 * @tensorpress/kernels on wasm and cpu): as taped tensor ops it is about thirty kernel calls per
 * weight and step, fused it is two. The forward also returns `t = tanh(w)`, which the backward takes instead
 * of recomputing it. Same float32 arithmetic as the tensor ops of dorefa.ts, step by step:
 * `t = tanh(w)`, `M = max|t|`, `w_t = t / 2M + 1/2`, `y = (2 · round(w_t · n) / n − 1) · c`
 * (round half to even); backward with `g = 2c · dy` and S = Σ g·t accumulated in float64:
 * `dw = (g / 2M − [|t| = M] · sign(t) · S / (2M · M)) · (1 − t²)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasArrayKernel, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/kernels';
import type { TypedArray } from '@tensorflow/tfjs-core';
import { roundHalfEven } from '../quant-params.js';

const FORWARD = 'TensorpressDorefaWeights';
const BACKWARD = 'TensorpressDorefaWeightsGrad';
const f = Math.fround;

/** tanh of every weight (float32) into `t`, and max |t|. */
function tanhAndMax(w: TypedArray, t: Float32Array): number {
  let m = 0;
  for (let i = 0; i < w.length; i++) {
    const v = f(Math.tanh(w[i]!));
    t[i] = v;
    const a = Math.abs(v);
    if (a > m) m = a;
  }
  return m;
}

const forward: ArrayKernelSpec = {
  kernelName: FORWARD,
  inputs: ['w'],
  outputs: (shapes) => [
    { shape: [...shapes[0]!], dtype: 'float32' },
    { shape: [...shapes[0]!], dtype: 'float32' },
  ],
  compute([w], [y, tOut], _shapes, attrs) {
    const n = attrs['levels'] as number;
    const c = f(attrs['c'] as number);
    const t = tOut as Float32Array;
    const twoM = f(2 * tanhAndMax(w!, t));
    for (let i = 0; i < t.length; i++) {
      const wt = f(f(t[i]! / twoM) + 0.5);
      const q = f(roundHalfEven(f(wt * n)) / n);
      y![i] = f(f(2 * q) - 1) * c;
    }
  },
};

const backward: ArrayKernelSpec = {
  kernelName: BACKWARD,
  inputs: ['t', 'dy'],
  outputs: (shapes) => [{ shape: [...shapes[0]!], dtype: 'float32' }],
  compute([ts, dy], [dw], _shapes, attrs) {
    const t = ts!;
    const twoC = f(2 * (attrs['c'] as number));
    let m = 0;
    for (let i = 0; i < t.length; i++) m = Math.max(m, Math.abs(t[i]!));
    const twoM = f(2 * m);
    let s = 0;
    for (let i = 0; i < t.length; i++) s += f(dy![i]! * twoC) * t[i]!;
    const through = f(f(s) / f(twoM * m));
    for (let i = 0; i < t.length; i++) {
      const ti = t[i]!;
      const g = f(dy![i]! * twoC);
      const atMax = Math.abs(ti) === m ? Math.sign(ti) : 0;
      dw![i] = f(f(g / twoM) - atMax * through) * f(1 - f(ti * ti));
    }
  },
};

let registered = false;

/** Whether the fused kernels serve a float32 weight on the active backend. */
export function fusedDorefaAvailable(w: tf.Tensor): boolean {
  if (!registered) {
    registerArrayKernel(forward);
    registerArrayKernel(backward);
    registered = true;
  }
  return w.dtype === 'float32' && hasArrayKernel(BACKWARD);
}

/** DoReFa weights with `n` levels and constant `c`, fused; call only where {@link fusedDorefaAvailable}. */
export function fusedDorefaWeights(w: tf.Tensor, levels: number, c: number): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [wi, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const [y, t] = tf.engine().runKernel(FORWARD, { w: wi }, { levels, c }) as tf.Tensor[];
    save([t!]);
    return {
      value: y!,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => tf.engine().runKernel(BACKWARD, { t: saved[0]!, dy }, { c }) as tf.Tensor,
    };
  });
  return (op as (x: tf.Tensor) => tf.Tensor)(w);
}
