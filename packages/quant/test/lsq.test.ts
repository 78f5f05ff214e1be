import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { LsqQuantizer, MIN_SCALE, roundHalfEven } from '@tensorpress/quant';
import { expectClose, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, f32, localScaleGrad, outputAndGrads, W_SHAPE, W_N, wValues, dyValues } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

describe('LsqQuantizer', () => {
  it('weights per tensor: s0 = 2·mean|w|/sqrt(Qp); d loss/d s = Σ dy·local / sqrt(N·Qp)', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const q = keep(new LsqQuantizer('w', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: undefined }));
    const meanAbs = Array.from(wValues).reduce((a, v) => a + Math.abs(v), 0) / W_N;
    const s0 = (2 * meanAbs) / Math.sqrt(7);
    expectClose(q.variables()[0]!, [s0], { label: 's0' });
    const s = q.grid().scale[0]!;
    expectClose([s], [s0 + MIN_SCALE]);
    const { y, grads } = outputAndGrads(q, w, dy);
    expectClose(y, Array.from(wValues, (v) => s * Math.min(7, Math.max(-7, roundHalfEven(f32(v / s))))), { label: 'y' });
    let sum = 0;
    wValues.forEach((v, i) => (sum += dyValues[i]! * localScaleGrad(v, s, -7, 7)));
    const g = 1 / Math.sqrt(W_N * 7);
    expectClose(grads[0]!, [sum * g], { label: 'ds' });
    // without the 1/sqrt(N·Qp) factor the gradient would be ~23x larger: make sure the test can tell
    expect(Math.abs(sum * g - sum)).toBeGreaterThan(1e-3);
    tf.dispose([w, dy, ...grads]);
  });

  it('weights per channel: N is the number of values per step', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const q = keep(new LsqQuantizer('w', 'weight', { bits: 3, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: 3 }));
    const grid = q.grid();
    expect(grid.axis).toBe(3);
    const s = Array.from(grid.scale);
    const meanAbs = [0, 1, 2, 3].map((c) => Array.from(wValues).filter((_, i) => i % 4 === c).reduce((a, v) => a + Math.abs(v), 0) / 18);
    expectClose(s, meanAbs.map((m) => (2 * m) / Math.sqrt(3) + MIN_SCALE), { label: 's0' });
    const { grads } = outputAndGrads(q, w, dy);
    const ds = [0, 0, 0, 0];
    wValues.forEach((v, i) => (ds[i % 4]! += dyValues[i]! * localScaleGrad(v, s[i % 4]!, -3, 3)));
    expect(grads[0]!.shape).toEqual([1, 1, 1, 4]);
    expectClose(grads[0]!, ds.map((d) => d / Math.sqrt(18 * 3)), { label: 'ds' });
    tf.dispose([w, dy, ...grads]);
  });

  it('activations: s0 from mean|x|, Qp from the signedness, N = features per example', () => {
    const q = keep(new LsqQuantizer('act:x', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: 0, max: 3, meanAbs: 0.6, featuresPerExample: 16 });
    expectClose(q.grid().scale, [(2 * 0.6) / Math.sqrt(15) + MIN_SCALE]);
    expect(q.grid().range).toEqual([0, 15]);
    const xs = seededArray(32, 3, -0.5, 3);
    const dys = seededArray(32, 4, -1, 1);
    const x = tf.tensor(xs, [2, 16]);
    const dy = tf.tensor(dys, [2, 16]);
    const s = q.grid().scale[0]!;
    const { grads } = outputAndGrads(q, x, dy);
    let sum = 0;
    xs.forEach((v, i) => (sum += dys[i]! * localScaleGrad(v, s, 0, 15)));
    expectClose(grads[0]!, [sum / Math.sqrt(16 * 15)], { label: 'ds' });
    tf.dispose([x, dy, ...grads]);
    // a negative minimum makes it signed: Qp = 7
    q.initActivation({ min: -1, max: 3, meanAbs: 0.6, featuresPerExample: 16 });
    expect(q.grid().range).toEqual([-8, 7]);
    expectClose(q.grid().scale, [(2 * 0.6) / Math.sqrt(7) + MIN_SCALE]);
  });
});
