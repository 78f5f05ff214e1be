import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { DorefaActivationQuantizer, DorefaWeightQuantizer, quantizeK, roundHalfEven } from '@tensorpress/quant';
import { errorOf, expectClose, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, f32, run, W_SHAPE, wValues } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

describe('DorefaWeightQuantizer', () => {
  const tanhNorm = (ws: ArrayLike<number>, k: number, c: number): number[] => {
    const n = 2 ** k - 1;
    const t = Array.from(ws, Math.tanh);
    const m = Math.max(...t.map(Math.abs));
    return t.map((v) => c * (2 * (roundHalfEven((v / (2 * m) + 0.5) * n) / n) - 1));
  };

  for (const k of [2, 4]) {
    it(`${k} bit: tanh-normalise → quantize_k → 2q − 1, times c = max|W|`, () => {
      const w = tf.tensor(wValues, W_SHAPE);
      const q = keep(new DorefaWeightQuantizer('w', k, w, 'max'));
      const c = Math.max(...Array.from(wValues, Math.abs));
      const y = tf.tidy(() => run(q, w, false));
      expectClose(y, tanhNorm(wValues, k, c), { label: 'y' });
      const n = 2 ** k - 1;
      const g = q.grid();
      expectClose(g.scale, [c / n]);
      expect(g.range).toEqual([-n, n]);
      // codes are odd integers in [−n, n]; the extremes are reached
      const codes = Array.from(y.dataSync(), (v) => v / (c / n));
      for (const code of codes) {
        expect(Math.abs(code - Math.round(code))).toBeLessThan(1e-3);
        expect(Math.abs(Math.round(code)) % 2).toBe(1);
        expect(Math.abs(code)).toBeLessThanOrEqual(n + 1e-3);
      }
      expect(Math.max(...codes.map((v) => Math.round(v)))).toBe(n);
      tf.dispose([w, y]);
    });
  }

  it("scale 'none' keeps w_q in [−1, 1]; more than 7 bits is refused", () => {
    const w = tf.tensor1d([0.5, -0.25, 0.1]);
    const q = keep(new DorefaWeightQuantizer('w', 3, w, 'none'));
    const y = tf.tidy(() => run(q, w, false));
    expectClose(y, tanhNorm([0.5, -0.25, 0.1], 3, 1));
    const e = errorOf(() => new DorefaWeightQuantizer('conv9', 8, w, 'max'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('conv9');
    tf.dispose([w, y]);
  });

  it('straight-through gradient of the tanh normalisation, through the max too (ties included)', () => {
    // the closed-form custom gradient against tfjs differentiating the same expression without the round
    for (const [xs, scale] of [
      [[0.4, -0.2, 0.1], 'none'],
      [[0.4, -0.7, 0.1, 0.7, -0.05, 0.3], 'max'], // |w| = 0.7 twice: both get the max's gradient
    ] as [number[], 'none' | 'max'][]) {
      const w = tf.tensor1d(xs);
      const dy = tf.tensor1d(seededArray(xs.length, 41, -1, 1));
      const q = keep(new DorefaWeightQuantizer('w', 2, w, scale));
      const c = scale === 'max' ? Math.max(...xs.map(Math.abs)) : 1;
      const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(q, a, true), dy)))([w]);
      const [gr] = tf.grads((a: tf.Tensor) => {
        const t = tf.tanh(a);
        return tf.sum(tf.mul(tf.mul(tf.sub(tf.mul(2, tf.add(tf.div(t, tf.mul(2, tf.max(tf.abs(t)))), 0.5)), 1), c), dy));
      })([w]);
      expectClose(g!, gr!, { atol: 1e-6, rtol: 1e-5 });
      tf.dispose([w, dy, g!, gr!]);
    }
  });
});

describe('DorefaWeightQuantizer fused kernels', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`on ${backend}: equal the taped ops, forward exactly and gradient closely, leaking nothing`, async () => {
      await useBackend(backend);
      const xs = seededArray(3 * 3 * 8 * 16, 77, -0.5, 0.5);
      xs[5] = 0.9;
      xs[700] = -0.9; // two elements at max |tanh w|: both take the max's gradient
      const w = tf.tensor(xs, [3, 3, 8, 16]);
      const dy = tf.tensor(seededArray(xs.length, 78, -1, 1), [3, 3, 8, 16]);
      const fused = keep(new DorefaWeightQuantizer('w', 4, w, 'max'));
      const taped = keep(new DorefaWeightQuantizer('w', 4, w, 'max', false));
      const before = tf.memory().numTensors;
      const [ya, yb] = tf.tidy(() => [run(fused, w, true), run(taped, w, true)]);
      const [ga] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(fused, a, true), dy)))([w]);
      const [gb] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(taped, a, true), dy)))([w]);
      expect(Array.from(ya!.dataSync())).toEqual(Array.from(yb!.dataSync()));
      expectClose(ga!, gb!, { atol: 1e-6, rtol: 1e-5 });
      expect(Math.abs(ga!.dataSync()[5]!)).toBeGreaterThan(0);
      tf.dispose([ya!, yb!, ga!, gb!]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([w, dy]);
      await useBackend('cpu');
    });
  }
});

describe('DorefaActivationQuantizer', () => {
  it('unsigned: quantize_k(clip(x, 0, 1)); gradient 1 inside [0, 1], 0 outside', () => {
    const q = keep(new DorefaActivationQuantizer('act:x', 2));
    q.initActivation({ min: 0, max: 3, meanAbs: 1, featuresPerExample: 1 });
    const xs = [-0.5, 0, 0.1, 1 / 6, 0.5, 0.7, 1, 2];
    const x = tf.tensor1d(xs);
    const y = tf.tidy(() => run(q, x, true));
    expectClose(y, xs.map((v) => roundHalfEven(f32(Math.min(Math.max(v, 0), 1) * 3)) / 3));
    const g = q.grid();
    expect(g.range).toEqual([0, 3]);
    expectClose(g.scale, [1 / 3]);
    const [gx] = tf.grads((a: tf.Tensor) => tf.sum(run(q, a, true)))([x]);
    expect(Array.from(gx!.dataSync())).toEqual([0, 1, 1, 1, 1, 1, 1, 0]);
    tf.dispose([x, y, gx!]);
  });

  it('signed (from statistics): quantize on [−1, 1] with 2^(k−1)−1 steps a side', () => {
    const q = keep(new DorefaActivationQuantizer('act:x', 4));
    q.initActivation({ min: -0.5, max: 3, meanAbs: 1, featuresPerExample: 1 });
    const xs = [-2, -0.5, 0.3, 0.9, 1.5];
    const x = tf.tensor1d(xs);
    const y = tf.tidy(() => run(q, x, true));
    // Computed as the exported graph does, round(x / s) with s = f32(1/7): −0.5 → −3.4999999 → −3
    // (the paper's round(x·7) would meet a tie at −3.5 and go to −4; the deployed model cannot).
    const s7 = f32(1 / 7);
    expectClose(y, xs.map((v) => f32(roundHalfEven(f32(Math.min(Math.max(v, -1), 1) / s7)) * s7)));
    expect(Array.from(y.dataSync())[1]).toBeCloseTo(-3 / 7, 6);
    expect(q.grid().range).toEqual([-7, 7]);
    expect(q.grid().signed).toBe(true);
    tf.dispose([x, y]);
  });
});

describe('quantizeK', () => {
  it('round(r·n)/n with ties to even and an identity gradient', () => {
    const r = tf.tensor1d([0, 1 / 6, 0.5, 5 / 6, 1]);
    const y = quantizeK(r, 3);
    // r·3: 0, 0.5, 1.5, 2.5, 3 → 0, 0, 2, 2, 3
    expectClose(y, [0, 0, 2 / 3, 2 / 3, 1]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(quantizeK(a, 3)))([r]);
    expectClose(g!, [1, 1, 1, 1, 1]);
    tf.dispose([r, y, g!]);
  });
});
