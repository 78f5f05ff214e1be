import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { ActivationBinarizer } from '@tensorpress/binary';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('ActivationBinarizer', () => {
  it('learned: out = s·sign(x − s·t) per channel, with closed-form gradients for x, s and t', () => {
    const before = tf.memory().numTensors;
    const a = new ActivationBinarizer('a', 2, { method: 'binary', ste: 'saturate_ste', learned: true });
    a.set(2, [0.5, -1]);
    // u = x − [1, −2] = [[0, −1], [−0.1, 0.1]], all inside |u| <= 1.
    const x = tf.tensor2d([
      [1, -3],
      [0.9, -1.9],
    ]);
    const out = tf.tidy(() => a.apply(x).arraySync());
    expect(out).toEqual([
      [2, -2],
      [-2, 2],
    ]);
    const { gx, gs, gt } = tf.tidy(() => {
      const f = (): tf.Scalar => tf.sum(a.apply(x)) as tf.Scalar;
      const { grads } = tf.variableGrads(f, [a.scale!, a.threshold!]);
      const gxT = tf.grad((xi: tf.Tensor) => tf.sum(a.apply(xi)))(x);
      return { gx: gxT.arraySync(), gs: grads[a.scale!.name]!.arraySync(), gt: grads[a.threshold!.name]!.arraySync() };
    });
    // d/dx = s·g(u) = 2; d/ds = Σ sign(u) − s·t_c·g(u) = 0 − 2·(0.5 − 1 + 0.5 − 1) = 2; d/dt_c = Σ −s²·g(u) = −8.
    expect(gx).toEqual([
      [2, 2],
      [2, 2],
    ]);
    expect(gs).toBeCloseTo(2, 5);
    expect(gt).toEqual([-8, -8]);
    x.dispose();
    a.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('initialises t at each channel mean and s at the mean absolute deviation', () => {
    const a = new ActivationBinarizer('a', 2, { method: 'binary', ste: 'ste', learned: true });
    // Channel means [2, −1]; |x − mean| = [[1, 1], [1, 1]] → s = 1, t = [2, −1].
    const x = tf.tensor2d([
      [1, 0],
      [3, -2],
    ]);
    a.observe(x);
    a.finishInit();
    expect(a.values()).toEqual({ scale: 1, threshold: Float32Array.of(2, -1) });
    x.dispose();
    a.dispose();
  });

  it('not learned: a plain sign; ternary: codes of u/s against ½', () => {
    const plain = new ActivationBinarizer('p', 1, { method: 'binary', ste: 'ste', learned: false });
    const ter = new ActivationBinarizer('t', 1, { method: 'ternary', ste: 'ste', learned: false });
    const x = tf.tensor2d([[-1], [-0.5], [0], [0.6]]);
    expect(tf.tidy(() => Array.from(plain.apply(x).dataSync()))).toEqual([-1, -1, 1, 1]);
    expect(tf.tidy(() => Array.from(ter.apply(x).dataSync()))).toEqual([-1, 0, 0, 1]);
    x.dispose();
  });
});
