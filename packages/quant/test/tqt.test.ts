import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { roundHalfEven, TqtQuantizer } from '@tensorpress/quant';
import { expectClose, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, f32, run, localScaleGrad, outputAndGrads } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

describe('TqtQuantizer', () => {
  it('weights: scale = 2^ceil(log2 max|w|) / 2^(b−1), a power of two', () => {
    // max |w| = 0.3: log2 = −1.74 → ceil −1 → 2^-1 / 2^7 = 2^-8
    const w = tf.tensor2d([0.3, -0.1, 0.05, -0.2], [2, 2]);
    const q = keep(new TqtQuantizer('w', 'weight', { bits: 8, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: undefined }));
    expectClose(q.variables()[0]!, [Math.log2(0.3)]);
    expect(q.grid().scale[0]).toBe(2 ** -8);
    expect(q.grid().range).toEqual([-127, 127]);
    const y = tf.tidy(() => run(q, w, false));
    expect(Array.from(y.dataSync())).toEqual([0.3, -0.1, 0.05, -0.2].map((v) => 2 ** -8 * roundHalfEven(f32(v) * 256)));
    tf.dispose([w, y]);
    // 4 bit, max 1.0 exactly: log2 = 0 → scale 1/8
    const w4 = tf.tensor1d([1, -0.5]);
    const q4 = keep(new TqtQuantizer('w4', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, { w: w4, axis: undefined }));
    expect(q4.grid().scale[0]).toBe(1 / 8);
    w4.dispose();
  });

  it('d loss / d log2 t = scale·ln2·Σ dy·(LSQ local gradient)', () => {
    const q = keep(new TqtQuantizer('act:x', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: 0, max: 1.7, meanAbs: 0.5, featuresPerExample: 8 });
    // unsigned: 2^ceil(log2 1.7) / 2^4 = 2 / 16
    const s = q.grid().scale[0]!;
    expect(s).toBe(0.125);
    expect(q.grid().range).toEqual([0, 15]);
    const xs = seededArray(48, 13, -0.4, 2.4);
    const dys = seededArray(48, 14, -1, 1);
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const { y, grads } = outputAndGrads(q, x, dy);
    expect(Array.from(y, (v) => v + 0)).toEqual(Array.from(xs, (v) => s * Math.min(15, Math.max(0, roundHalfEven(f32(v) / s)))));
    let sum = 0;
    xs.forEach((v, i) => (sum += dys[i]! * localScaleGrad(v, s, 0, 15)));
    expectClose(grads[0]!, [s * Math.LN2 * sum], { label: 'd log2 t' });
    tf.dispose([x, dy, ...grads]);
  });

  it('signed activations divide by 2^(b−1)', () => {
    const q = keep(new TqtQuantizer('act:y', 'activation', { bits: 8, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: -3, max: 1, meanAbs: 0.5, featuresPerExample: 8 });
    expect(q.grid().signed).toBe(true);
    expect(q.grid().scale[0]).toBe(4 / 128);
    expect(q.grid().range).toEqual([-128, 127]);
  });
});
