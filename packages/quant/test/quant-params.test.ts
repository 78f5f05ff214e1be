import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, useBackend } from '@tensorpress/core-tensor';
import {
  MIN_SCALE,
  checkBits,
  integerRange,
  quantParams,
  quantParamsPerChannel,
  quantizeToCodes,
  roundHalfEven,
  tensorRange,
  type QuantSpec,
} from '@tensorpress/quant';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const sym = (bits: number, signed = true, narrowRange = true): QuantSpec => ({ bits, mode: 'symmetric', signed, narrowRange });
const asym = (bits: number, signed = false, narrowRange = false): QuantSpec => ({ bits, mode: 'asymmetric', signed, narrowRange });

/** Codes as plain numbers (int32 tensor read and freed). */
function codesOf(x: tf.Tensor, scale: number | number[], zp: number | number[], range: [number, number], axis?: number): number[] {
  const c = quantizeToCodes(x, scale, zp, range, axis);
  expect(c.dtype).toBe('int32');
  const out = Array.from(c.dataSync());
  c.dispose();
  return out;
}

describe('integerRange', () => {
  it('gives the signed narrow, signed full and unsigned ranges of DESIGN §5 for 2, 4 and 8 bits', () => {
    expect(integerRange({ bits: 8, signed: true, narrowRange: true })).toEqual([-127, 127]);
    expect(integerRange({ bits: 8, signed: true, narrowRange: false })).toEqual([-128, 127]);
    expect(integerRange({ bits: 8, signed: false, narrowRange: false })).toEqual([0, 255]);
    expect(integerRange({ bits: 4, signed: true, narrowRange: true })).toEqual([-7, 7]);
    expect(integerRange({ bits: 4, signed: true, narrowRange: false })).toEqual([-8, 7]);
    expect(integerRange({ bits: 4, signed: false, narrowRange: false })).toEqual([0, 15]);
    expect(integerRange({ bits: 2, signed: true, narrowRange: true })).toEqual([-1, 1]);
    expect(integerRange({ bits: 2, signed: true, narrowRange: false })).toEqual([-2, 1]);
    expect(integerRange({ bits: 2, signed: false, narrowRange: false })).toEqual([0, 3]);
  });

  it('ignores narrowRange for unsigned ranges', () => {
    expect(integerRange({ bits: 8, signed: false, narrowRange: true })).toEqual([0, 255]);
    expect(integerRange({ bits: 4, signed: false, narrowRange: true })).toEqual([0, 15]);
  });
});

describe('roundHalfEven', () => {
  it('rounds exact ties to the even neighbour, both signs', () => {
    const cases: [number, number][] = [
      [0.5, 0],
      [1.5, 2],
      [2.5, 2],
      [3.5, 4],
      [-1.5, -2],
      [-2.5, -2],
      [-3.5, -4],
      [126.5, 126],
      [127.5, 128],
      [-127.5, -128],
    ];
    for (const [x, want] of cases) expect(roundHalfEven(x), `roundHalfEven(${x})`).toBe(want);
    // -0.5 gives zero (the sign of a zero does not matter to integer storage).
    expect(roundHalfEven(-0.5) === 0).toBe(true);
  });

  it('rounds to nearest just below and just above a tie', () => {
    const eps = 1e-9;
    expect(roundHalfEven(2.5 - eps)).toBe(2);
    expect(roundHalfEven(2.5 + eps)).toBe(3);
    expect(roundHalfEven(1.5 - eps)).toBe(1);
    expect(roundHalfEven(1.5 + eps)).toBe(2);
    expect(roundHalfEven(-2.5 - eps)).toBe(-3);
    expect(roundHalfEven(-2.5 + eps)).toBe(-2);
    expect(roundHalfEven(0.49999999)).toBe(0);
    expect(roundHalfEven(7)).toBe(7);
    expect(roundHalfEven(-7)).toBe(-7);
  });

  it('agrees with tf.round (the kernel QuantizeLinear uses) on ties and non-ties', () => {
    const xs = [-4.5, -3.5, -2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 4.5, 0.25, -0.75, 1.25, 2.75];
    const t = tf.round(tf.tensor1d(xs));
    expect(Array.from(t.dataSync())).toEqual(xs.map((x) => roundHalfEven(x) + 0));
    t.dispose();
  });
});

describe('quantParams', () => {
  it('symmetric: scale = max|.| / qmax, zero point 0 (signed narrow, 8/4/2 bits)', () => {
    expect(quantParams(-0.5, 1.27, sym(8))).toEqual({ scale: 1.27 / 127, zeroPoint: 0 });
    expect(quantParams(-2.54, 1, sym(8))).toEqual({ scale: 2.54 / 127, zeroPoint: 0 });
    expect(quantParams(-0.7, 0.35, sym(4))).toEqual({ scale: 0.7 / 7, zeroPoint: 0 });
    expect(quantParams(-3, 1, sym(2))).toEqual({ scale: 3, zeroPoint: 0 });
  });

  it('symmetric signed full range divides by qmax = 2^(b-1) - 1 too', () => {
    expect(quantParams(-1, 1, sym(8, true, false))).toEqual({ scale: 1 / 127, zeroPoint: 0 });
    expect(quantParams(-1, 0.5, sym(4, true, false))).toEqual({ scale: 1 / 7, zeroPoint: 0 });
  });

  it('symmetric unsigned: scale = max / (2^b - 1), zero point 0', () => {
    expect(quantParams(0, 2.55, sym(8, false, false))).toEqual({ scale: 2.55 / 255, zeroPoint: 0 });
    expect(quantParams(0.5, 1.5, sym(4, false, false))).toEqual({ scale: 1.5 / 15, zeroPoint: 0 });
    expect(quantParams(0, 3, sym(2, false, false))).toEqual({ scale: 1, zeroPoint: 0 });
  });

  it('symmetric unsigned refuses negative values', () => {
    const e = errorOf(() => quantParams(-0.1, 1, sym(8, false, false)));
    expect(e.code).toBe('NUMERIC_INVALID');
    expect(e.message).toContain('-0.1');
  });

  it('asymmetric unsigned: scale = (max - min) / (qmax - qmin), zero point = round(qmin - min / scale)', () => {
    // 0 - (-1) / (4/255) = 63.75 -> 64
    expect(quantParams(-1, 3, asym(8))).toEqual({ scale: 4 / 255, zeroPoint: roundHalfEven(255 / 4) });
    expect(quantParams(-1, 3, asym(8)).zeroPoint).toBe(64);
    // 4 bit: scale 1.5/15 = 0.1, zp = 0.5/0.1 = 5 (the float quotient may be 4.999..., which rounds to 5)
    expect(quantParams(-0.5, 1, asym(4))).toEqual({ scale: 1.5 / 15, zeroPoint: 5 });
    // 2 bit: scale 3/3 = 1, zp = round(2) = 2
    expect(quantParams(-2, 1, asym(2))).toEqual({ scale: 1, zeroPoint: 2 });
  });

  it('asymmetric zero point rounds a half tie to even', () => {
    // 4 bit unsigned: range [-2.5, 12.5] -> scale 1, zp = round(2.5) = 2 (not 3)
    expect(quantParams(-2.5, 12.5, asym(4))).toEqual({ scale: 1, zeroPoint: 2 });
    // [-3.5, 11.5] -> zp = round(3.5) = 4
    expect(quantParams(-3.5, 11.5, asym(4))).toEqual({ scale: 1, zeroPoint: 4 });
  });

  it('asymmetric signed (full range): zero point = round(-128 - min / scale)', () => {
    // [-1, 1] over 255 steps: -128 + 127.5 = -0.5 -> 0 (half to even)
    const p = quantParams(-1, 1, asym(8, true, false));
    expect(p.scale).toBe(2 / 255);
    expect(p.zeroPoint === 0).toBe(true);
    // [-0.5, 2] over 15 steps (4 bit): scale 1/6, zp = -8 + 3 = -5
    const q = quantParams(-0.5, 2, asym(4, true, false));
    expect(q.scale).toBe(2.5 / 15);
    expect(q.zeroPoint).toBe(-5);
    // narrow signed asymmetric 8 bit: 254 steps, [-1, 1.54] -> scale 0.01, zp = -127 + 100 = -27
    const n = quantParams(-1, 1.54, asym(8, true, true));
    expect(n.scale).toBe(2.54 / 254);
    expect(n.zeroPoint).toBe(-27);
  });

  it('widens a range that excludes 0 so that 0 is exactly representable', () => {
    // all positive: [2, 4] -> [0, 4], zp at qmin
    expect(quantParams(2, 4, asym(8))).toEqual({ scale: 4 / 255, zeroPoint: 0 });
    expect(quantParams(2, 4, asym(8, true, false))).toEqual({ scale: 4 / 255, zeroPoint: -128 });
    // all negative: [-4, -2] -> [-4, 0], zp at qmax
    expect(quantParams(-4, -2, asym(8))).toEqual({ scale: 4 / 255, zeroPoint: 255 });
    expect(quantParams(-4, -2, asym(4, true, false))).toEqual({ scale: 4 / 15, zeroPoint: 7 });
    // symmetric: [0.5, 1.27] behaves as [0, 1.27]
    expect(quantParams(0.5, 1.27, sym(8))).toEqual({ scale: 1.27 / 127, zeroPoint: 0 });
    expect(quantParams(-1.27, -0.5, sym(8))).toEqual({ scale: 1.27 / 127, zeroPoint: 0 });
  });

  it('zero maps exactly onto the zero point (asymmetric, many ranges)', () => {
    for (const [lo, hi] of [
      [-0.3, 0.7],
      [-1.1, 0.2],
      [-5, 5],
      [-0.01, 100],
    ] as const) {
      for (const spec of [asym(8), asym(8, true, false), asym(4), asym(2)]) {
        const { scale, zeroPoint } = quantParams(lo, hi, spec);
        const [qmin, qmax] = integerRange(spec);
        expect(Number.isInteger(zeroPoint)).toBe(true);
        expect(zeroPoint).toBeGreaterThanOrEqual(qmin);
        expect(zeroPoint).toBeLessThanOrEqual(qmax);
        expect(zeroPoint).toBe(Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale))));
        // the code of 0.0 dequantizes to exactly 0
        expect(scale * (zeroPoint - zeroPoint)).toBe(0);
      }
    }
  });

  it('an all-zero range gets MIN_SCALE (float32 eps) and a zero point that represents 0', () => {
    expect(MIN_SCALE).toBe(2 ** -23);
    expect(quantParams(0, 0, sym(8))).toEqual({ scale: MIN_SCALE, zeroPoint: 0 });
    expect(quantParams(0, 0, sym(8, false, false))).toEqual({ scale: MIN_SCALE, zeroPoint: 0 });
    expect(quantParams(0, 0, asym(8))).toEqual({ scale: MIN_SCALE, zeroPoint: 0 });
    expect(quantParams(0, 0, asym(8, true, false))).toEqual({ scale: MIN_SCALE, zeroPoint: -128 });
    // a tiny range is lifted to MIN_SCALE too
    expect(quantParams(-1e-9, 1e-9, sym(8)).scale).toBe(MIN_SCALE);
  });

  it('rejects non-finite or inverted ranges with NUMERIC_INVALID', () => {
    for (const [lo, hi] of [
      [NaN, 1],
      [0, Infinity],
      [-Infinity, 0],
      [2, 1],
    ] as const) {
      const e = errorOf(() => quantParams(lo, hi, sym(8)));
      expect(e.code).toBe('NUMERIC_INVALID');
    }
  });
});

describe('quantParamsPerChannel', () => {
  it('computes one scale and zero point per channel', () => {
    const got = quantParamsPerChannel(Float32Array.of(-1, 0, -2, 0), Float32Array.of(1, 2, 0, 0), sym(8));
    expect(got).toEqual([
      { scale: Math.fround(1) / 127, zeroPoint: 0 },
      { scale: 2 / 127, zeroPoint: 0 },
      { scale: 2 / 127, zeroPoint: 0 },
      { scale: MIN_SCALE, zeroPoint: 0 },
    ]);
    const a = quantParamsPerChannel([-1, 2, -2.5], [3, 4, 12.5], asym(4));
    expect(a).toEqual([
      { scale: 4 / 15, zeroPoint: 4 }, // 0 + 3.75 -> 4
      { scale: 4 / 15, zeroPoint: 0 }, // widened to [0, 4]
      { scale: 1, zeroPoint: 2 }, // tie 2.5 -> 2
    ]);
  });

  it('propagates a bad channel range as NUMERIC_INVALID', () => {
    expect(errorOf(() => quantParamsPerChannel([0, 1], [1, 0], sym(8))).code).toBe('NUMERIC_INVALID');
  });
});

describe('quantizeToCodes', () => {
  const s = 0.25; // a power of two: x / s is exact in float32, so ties are real ties
  it('rounds x = (k + 0.5)·scale half to even (per tensor, signed narrow 4 bit)', () => {
    const ks = [-4, -3, -2, -1, 0, 1, 2, 3];
    const x = tf.tensor1d(ks.map((k) => (k + 0.5) * s));
    expect(codesOf(x, s, 0, [-7, 7])).toEqual(ks.map((k) => roundHalfEven(k + 0.5) + 0));
    expect(codesOf(x, s, 0, [-7, 7])).toEqual([-4, -2, -2, 0, 0, 2, 2, 4]);
    x.dispose();
  });

  it('rounds just below and just above a tie to the nearest code', () => {
    const d = 1e-4;
    const x = tf.tensor1d([2.5 * s - d, 2.5 * s + d, -2.5 * s - d, -2.5 * s + d, 1.5 * s - d, 1.5 * s + d]);
    expect(codesOf(x, s, 0, [-127, 127])).toEqual([2, 3, -3, -2, 1, 2]);
    x.dispose();
  });

  it('puts values on level boundaries exactly on their code, and clamps outside the range', () => {
    const x = tf.tensor1d([0, s, -s, 7 * s, -7 * s, 8 * s, -8 * s, 100, -100]);
    expect(codesOf(x, s, 0, [-7, 7])).toEqual([0, 1, -1, 7, -7, 7, -7, 7, -7]);
    expect(codesOf(x, s, 0, [-8, 7])).toEqual([0, 1, -1, 7, -7, 7, -8, 7, -8]);
    expect(codesOf(x, s, 0, [-1, 1])).toEqual([0, 1, -1, 1, -1, 1, -1, 1, -1]);
    expect(codesOf(x, s, 0, [-2, 1])).toEqual([0, 1, -1, 1, -2, 1, -2, 1, -2]);
    x.dispose();
  });

  it('adds the zero point after rounding, then clamps (unsigned 8, 4 and 2 bit)', () => {
    const x = tf.tensor1d([-1, -0.375, 0, 0.125, 0.375, 10, 100]);
    // x/s: -4, -1.5, 0, 0.5, 1.5, 40, 400
    expect(codesOf(x, s, 3, [0, 15])).toEqual([0, 1, 3, 3, 5, 15, 15]);
    expect(codesOf(x, s, 128, [0, 255])).toEqual([124, 126, 128, 128, 130, 168, 255]);
    expect(codesOf(x, s, 1, [0, 3])).toEqual([0, 0, 1, 1, 3, 3, 3]);
    x.dispose();
  });

  it('uses one scale and zero point per channel along the last axis', () => {
    // [2, 3], channels on axis 1
    const x = tf.tensor2d(
      [
        [0.125, 0.75, 2.5],
        [-0.375, -1.25, 100],
      ],
      [2, 3],
    );
    // column scales 0.25, 0.5, 1; zps 0, 1, -1
    // col0: 0.5 -> 0, -1.5 -> -2; col1: 1.5 -> 2 (+1 = 3), -2.5 -> -2 (+1 = -1); col2: 2.5 -> 2 (-1 = 1), 100 -> 99 -> clamp 7
    expect(codesOf(x, [0.25, 0.5, 1], [0, 1, -1], [-7, 7], 1)).toEqual([0, 3, 1, -2, -1, 7]);
    // axis -1 is the same axis
    expect(codesOf(x, [0.25, 0.5, 1], [0, 1, -1], [-7, 7])).toEqual([0, 3, 1, -2, -1, 7]);
    x.dispose();
  });

  it('uses one scale per channel along axis 0 (and a scalar zero point)', () => {
    const x = tf.tensor2d(
      [
        [0.125, 0.375, 0.625],
        [0.125, 0.375, 0.625],
      ],
      [2, 3],
    );
    // row 0 scale 0.25: 0.5, 1.5, 2.5 -> 0, 2, 2; row 1 scale 0.125: 1, 3, 5
    expect(codesOf(x, [0.25, 0.125], 0, [-127, 127], 0)).toEqual([0, 2, 2, 1, 3, 5]);
    x.dispose();
  });

  it('per channel on a conv weight [kh, kw, cin, cout] along axis 3', () => {
    const w = tf.tensor4d([0.5, 0.5, 1.5, 1.5, -2.5, -2.5, 3, 3], [1, 2, 2, 2]);
    // cout 0 scale 1, cout 1 scale 0.5
    expect(codesOf(w, [1, 0.5], [0, 0], [-127, 127], 3)).toEqual([0, 1, 2, 3, -2, -5, 3, 6]);
    w.dispose();
  });

  it('frees its intermediates', async () => {
    const x = tf.tensor1d([0.1, 0.2]);
    await expectNoLeak(() => {
      quantizeToCodes(x, [0.1, 0.2], [0, 0], [-127, 127], 0).dispose();
      quantizeToCodes(x, 0.1, 0, [-127, 127]).dispose();
    });
    x.dispose();
  });
});

describe('tensorRange', () => {
  it('gives min and max per tensor and per channel', () => {
    const x = tf.tensor2d(
      [
        [1, -2, 3],
        [-4, 5, 0.5],
      ],
      [2, 3],
    );
    const all = tensorRange(x);
    expect(Array.from(all.min)).toEqual([-4]);
    expect(Array.from(all.max)).toEqual([5]);
    const cols = tensorRange(x, 1);
    expect(Array.from(cols.min)).toEqual([-4, -2, 0.5]);
    expect(Array.from(cols.max)).toEqual([1, 5, 3]);
    const rows = tensorRange(x, 0);
    expect(Array.from(rows.min)).toEqual([-2, -4]);
    expect(Array.from(rows.max)).toEqual([3, 5]);
    x.dispose();
  });
});

describe('checkBits', () => {
  it('accepts integers 2..8 and names the place of a bad value', () => {
    for (const b of [2, 3, 4, 5, 6, 7, 8]) expect(() => checkBits(b, 'x')).not.toThrow();
    for (const b of [1, 9, 0, -8, 4.5, NaN]) {
      const e = errorOf(() => checkBits(b, 'node "conv1" weightBits'));
      expect(e).toBeInstanceOf(TensorpressError);
      expect(e.code).toBe('CONFIG_INVALID');
      expect(e.message).toContain('node "conv1" weightBits');
      expect(e.message).toContain(String(b));
    }
  });
});
