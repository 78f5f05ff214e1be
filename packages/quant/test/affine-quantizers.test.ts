import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { AsymmetricQuantizer, MIN_SCALE, quantParams, roundHalfEven, SymmetricQuantizer } from '@tensorpress/quant';
import { expectClose, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, f32, localScaleGrad, outputAndGrads, W_SHAPE, wValues, dyValues } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

describe('SymmetricQuantizer', () => {
  it('weights: scale = max|w| / qmax per channel; forward = fake-quant on that grid; threshold gradient = Σ dy·local / qmax', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const absMax = [0, 1, 2, 3].map((c) => Math.max(...Array.from(wValues).filter((_, i) => i % 4 === c).map(Math.abs)));
    const q = keep(
      new SymmetricQuantizer('conv.w', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, 'clipped', {
        threshold: absMax,
        rank: 4,
        axis: 3,
      }),
    );
    expect(q.initialized).toBe(true);
    const g = q.grid();
    expect(g.range).toEqual([-7, 7]);
    expect(g.axis).toBe(3);
    expect(Array.from(g.zeroPoint)).toEqual([0, 0, 0, 0]);
    expectClose(g.scale, absMax.map((t) => t / 7 + MIN_SCALE), { label: 'scale' });
    const { y, grads } = outputAndGrads(q, w, dy);
    const s = Array.from(g.scale);
    expectClose(
      y,
      Array.from(wValues, (v, i) => s[i % 4]! * Math.min(7, Math.max(-7, roundHalfEven(f32(v / s[i % 4]!))))),
      { label: 'y' },
    );
    const dt = [0, 0, 0, 0];
    wValues.forEach((v, i) => (dt[i % 4]! += (dyValues[i]! * localScaleGrad(v, s[i % 4]!, -7, 7)) / 7));
    expect(grads[0]!.shape).toEqual([1, 1, 1, 4]);
    expectClose(grads[0]!, dt, { label: 'dt' });
    // the per-channel maximum sits exactly on code ±7
    const codes = Array.from(y, (v, i) => Math.round(v / s[i % 4]!));
    for (let c = 0; c < 4; c++) expect(Math.max(...codes.filter((_, i) => i % 4 === c).map(Math.abs))).toBe(7);
    tf.dispose([w, dy, ...grads]);
  });

  it('activations: initialised from statistics, signed when the minimum is negative', () => {
    const q = keep(new SymmetricQuantizer('act:x', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'clipped', undefined));
    expect(q.initialized).toBe(false);
    q.initActivation({ min: 0, max: 2.55, meanAbs: 1, featuresPerExample: 10 });
    expect(q.initialized).toBe(true);
    let g = q.grid();
    expect(g.signed).toBe(false);
    expect(g.range).toEqual([0, 255]);
    expectClose(g.scale, [quantParams(0, 2.55, { bits: 8, mode: 'symmetric', signed: false, narrowRange: false }).scale]);
    q.initActivation({ min: -1.27, max: 0.5, meanAbs: 1, featuresPerExample: 10 });
    g = q.grid();
    expect(g.signed).toBe(true);
    expect(g.range).toEqual([-128, 127]);
    expectClose(g.scale, [1.27 / 127]);
  });
});

describe('AsymmetricQuantizer', () => {
  it('grid matches quantParams (scale, clamped rounded zero point) and the low gradient flows through the zero point', () => {
    const spec = { bits: 8, mode: 'asymmetric', signed: false, narrowRange: false } as const;
    const q = keep(new AsymmetricQuantizer('act:x', 'activation', spec, 'clipped', undefined));
    q.initActivation({ min: -1, max: 2, meanAbs: 0.5, featuresPerExample: 4 });
    const g = q.grid();
    const want = quantParams(-1, 2, spec);
    expectClose(g.scale, [want.scale]);
    expect(Array.from(g.zeroPoint)).toEqual([want.zeroPoint]);
    expect(want.zeroPoint).toBe(85); // 0 + 1 / (3/255) = 85
    // gradients: scale = |range| / 255 + eps, zp = clip(roundSte(0 − low / scale)), d zp / d low = −1 / scale
    const xs = seededArray(40, 9, -1.5, 2.5);
    const dys = seededArray(40, 10, -1, 1);
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const { y, grads } = outputAndGrads(q, x, dy);
    const s = g.scale[0]!;
    const z = g.zeroPoint[0]!;
    let dz = 0;
    let ds = 0;
    xs.forEach((v, i) => {
      const u = f32(f32(v / s) + z);
      const out = u < 0 || u > 255;
      dz += dys[i]! * (out ? -s : 0);
      ds += dys[i]! * (u < 0 ? 0 - z : u > 255 ? 255 - z : roundHalfEven(u) - u);
    });
    expectClose(
      y,
      xs.map((v) => s * (Math.min(255, Math.max(0, roundHalfEven(f32(v / s)) + z)) - z)),
      { label: 'y', atol: 1e-6 },
    );
    // variables(): [low, range]
    expectClose(grads[0]!, [dz * (-1 / s)], { label: 'd low' });
    // d/d range: through scale (1/255) and through zp (d zp/d s = low / s²)
    expectClose(grads[1]!, [(ds + dz * (-1 / (s * s))) / 255], { label: 'd range', rtol: 2e-3 });
    tf.dispose([x, dy, ...grads]);
  });

  it('per-channel weight grid: one zero point per channel, range widened to contain 0', () => {
    const spec = { bits: 4, mode: 'asymmetric', signed: true, narrowRange: true } as const;
    const q = keep(new AsymmetricQuantizer('w', 'weight', spec, 'clipped', { min: [-1, 0.5, -3], max: [2, 1.4, -1], rank: 2, axis: 1 }));
    const g = q.grid();
    expect(g.axis).toBe(1);
    const want = [
      [-1, 2],
      [0.5, 1.4],
      [-3, -1],
    ].map(([a, b]) => quantParams(a!, b!, spec));
    expectClose(g.scale, want.map((p) => p.scale));
    expect(Array.from(g.zeroPoint)).toEqual(want.map((p) => p.zeroPoint));
    expect(Array.from(g.zeroPoint)).toEqual([-2, -7, 7]);
  });
});
