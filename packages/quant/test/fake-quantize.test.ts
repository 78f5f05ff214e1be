import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { ceilSte, fakeQuantize, quantizeToCodes, reduceToShape, roundHalfEven, roundSte, type SteVariant } from '@tensorpress/quant';
import { expectClose, expectNoLeak, seededArray } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const f32 = Math.fround;

/** Closed-form gradients of fake-quant (LSQ / LSQ+), from float32 v = x/s + z as tf computes it. */
function reference(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  scaleAt: (i: number) => number,
  zpAt: (i: number) => number,
  channelOf: (i: number) => number,
  channels: number,
  range: [number, number],
  gradient: SteVariant,
  gradScale = 1,
): { y: number[]; dx: number[]; ds: number[]; dz: number[] } {
  const [qmin, qmax] = range;
  const y: number[] = [];
  const dx: number[] = [];
  const ds = new Array<number>(channels).fill(0);
  const dz = new Array<number>(channels).fill(0);
  for (let i = 0; i < x.length; i++) {
    const s = f32(scaleAt(i));
    const z = zpAt(i);
    const v = f32(f32(f32(x[i]!) / s) + z);
    const q = Math.min(qmax, Math.max(qmin, roundHalfEven(v)));
    y.push(s * (q - z));
    const below = v < qmin;
    const above = v > qmax;
    const outside = below || above;
    dx.push(outside && gradient === 'clipped' ? 0 : dy[i]!);
    const c = channelOf(i);
    ds[c] = ds[c]! + dy[i]! * (below ? qmin - z : above ? qmax - z : roundHalfEven(v) - v) * gradScale;
    dz[c] = dz[c]! + dy[i]! * (outside ? -s : 0) * gradScale;
  }
  return { y, dx, ds, dz };
}

/** d/d(x, s, z) of sum(fakeQuantize(x, s, z) · dy). */
function gradsOf(x: tf.Tensor, s: tf.Tensor, z: tf.Tensor, dy: tf.Tensor, options: Parameters<typeof fakeQuantize>[3]): { y: tf.Tensor; g: tf.Tensor[] } {
  const y = fakeQuantize(x, s, z, options);
  const g = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(tf.mul(fakeQuantize(a, b, c, options), dy)))([x, s, z]);
  return { y, g };
}

describe('fakeQuantize', () => {
  // ONNX QuantizeLinear (what strip() emits) adds the zero point AFTER rounding: round(x/s) + zp. With
  // half-to-even rounding, round(x/s + zp) differs from it on ties whenever zp is odd, so fake-quant
  // and the stripped graph would disagree by one step there.
  it('forward equals scale·(codes − zp) exactly on ties, boundaries and clipped values (per tensor)', () => {
    const s = 0.25;
    const xs = [-3, -1.875, -1.75, -0.375, -0.125, 0, 0.125, 0.375, 0.625, 0.625 - 1e-4, 0.625 + 1e-4, 1.75, 1.875, 5];
    for (const [range, zp] of [
      [[-7, 7], 0],
      [[-8, 7], 0],
      [[0, 15], 3],
      [[-1, 1], 0],
      [[-128, 127], -5],
      [[0, 255], 128],
    ] as [[number, number], number][]) {
      const x = tf.tensor1d(xs);
      const y = fakeQuantize(x, tf.scalar(s), tf.scalar(zp), { range });
      const codes = quantizeToCodes(x, s, zp, range);
      const want = Array.from(codes.dataSync(), (q) => s * (q - zp));
      expect(Array.from(y.dataSync()), `range ${range.join(',')} zp ${zp}`).toEqual(want);
      // and by hand: clamp(roundHalfEven(x/s) + zp) - zp
      expect(Array.from(y.dataSync())).toEqual(xs.map((v) => s * (Math.min(range[1], Math.max(range[0], roundHalfEven(f32(v) / s) + zp)) - zp)));
      tf.dispose([x, y, codes]);
    }
  });

  it('hand-derived 4-bit values: ties to even, clamps at ±7 steps', () => {
    const x = tf.tensor1d([0.125, 0.375, 0.625, -0.125, -0.375, 1.75, 1.8, 2, -2]);
    const y = fakeQuantize(x, tf.scalar(0.25), tf.scalar(0), { range: [-7, 7] });
    expect(Array.from(y.dataSync())).toEqual([0, 0.5, 0.5, 0, -0.5, 1.75, 1.75, 1.75, -1.75]);
    tf.dispose([x, y]);
  });

  it('forward per channel: scale and zero point broadcast along the last axis', () => {
    const x = tf.tensor2d(
      [
        [0.125, 0.75, 2.5],
        [-0.375, -1.25, 100],
      ],
      [2, 3],
    );
    const s = tf.tensor2d([[0.25, 0.5, 1]]);
    const z = tf.tensor2d([[0, 1, -1]]);
    const y = fakeQuantize(x, s, z, { range: [-7, 7] });
    const codes = [0, 3, 1, -2, -1, 7];
    const zs = [0, 1, -1];
    const ss = [0.25, 0.5, 1];
    expect(Array.from(y.dataSync())).toEqual(codes.map((q, i) => ss[i % 3]! * (q - zs[i % 3]!)));
    tf.dispose([x, s, z, y]);
  });

  it('rounds a fractional learned zero point in the forward pass', () => {
    const x = tf.tensor1d([0, 0.25, 0.5]);
    const y = fakeQuantize(x, tf.scalar(0.25), tf.scalar(2.4), { range: [0, 15] });
    expect(Array.from(y.dataSync())).toEqual([0, 0.25, 0.5]);
    tf.dispose([x, y]);
  });

  for (const gradient of ['ste', 'clipped'] as const) {
    it(`gradients (${gradient}) per tensor match the closed forms for x, scale and zero point`, () => {
      const n = 64;
      const xs = seededArray(n, 11, -2.2, 2.2);
      const dys = seededArray(n, 12, -1, 1);
      const sv = 0.13;
      const zv = 2;
      const range: [number, number] = [-8, 7];
      const x = tf.tensor1d(xs);
      const dy = tf.tensor1d(dys);
      const s = tf.scalar(sv);
      const z = tf.scalar(zv);
      const { y, g } = gradsOf(x, s, z, dy, { range, gradient });
      const ref = reference(xs, dys, () => sv, () => zv, () => 0, 1, range, gradient);
      // values below and above the range are both present, or the test proves nothing
      expect(xs.some((v) => f32(v / sv) + zv < range[0])).toBe(true);
      expect(xs.some((v) => f32(v / sv) + zv > range[1])).toBe(true);
      expectClose(y, ref.y, { label: 'y' });
      expectClose(g[0]!, ref.dx, { label: 'dx' });
      expectClose(g[1]!, ref.ds, { label: 'ds' });
      expectClose(g[2]!, ref.dz, { label: 'dz' });
      expect(g[1]!.shape).toEqual([]);
      expect(g[2]!.shape).toEqual([]);
      tf.dispose([x, dy, s, z, y, ...g]);
    });
  }

  it("'ste' passes every input gradient; 'clipped' zeroes exactly the ones outside [qmin, qmax]", () => {
    // s = 1, z = 0, range [-2, 1]: v = x
    const x = tf.tensor1d([-3, -2, -2.4, -2.6, 0.3, 1, 1.4, 1.6, 5]);
    const ones = tf.onesLike(x);
    const gs = tf.grads((a: tf.Tensor) => tf.sum(fakeQuantize(a, tf.scalar(1), tf.scalar(0), { range: [-2, 1], gradient: 'ste' })))([x]);
    const gc = tf.grads((a: tf.Tensor) => tf.sum(fakeQuantize(a, tf.scalar(1), tf.scalar(0), { range: [-2, 1], gradient: 'clipped' })))([x]);
    expect(Array.from(gs[0]!.dataSync())).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1]);
    expect(Array.from(gc[0]!.dataSync())).toEqual([0, 1, 0, 0, 1, 1, 0, 0, 0]);
    // default is clipped
    const gd = tf.grads((a: tf.Tensor) => tf.sum(fakeQuantize(a, tf.scalar(1), tf.scalar(0), { range: [-2, 1] })))([x]);
    expect(Array.from(gd[0]!.dataSync())).toEqual(Array.from(gc[0]!.dataSync()));
    tf.dispose([x, ones, ...gs, ...gc, ...gd]);
  });

  it('scale gradient: round(v) − v inside, qmin − z below, qmax − z above (hand values)', () => {
    // s = 1, z = 1, range [0, 3]: v = x + 1
    const x = tf.tensor1d([0.3, -0.8, -5, 9]);
    const [, ds, dz] = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) => tf.sum(fakeQuantize(a, b, c, { range: [0, 3] })))([x, tf.scalar(1), tf.scalar(1)]);
    // v: 1.3 (round 1: -0.3), 0.2 (round 0: -0.2), -4 (below: 0 - 1 = -1), 10 (above: 3 - 1 = 2)
    expectClose(ds!, [-0.3 - 0.2 - 1 + 2]);
    // dz: 0 inside, -s = -1 for each outside
    expectClose(dz!, [-2]);
    tf.dispose([x, ds!, dz!]);
  });

  it('per channel: scale and zero-point gradients are summed over the broadcast axes', () => {
    const shape = [2, 3, 3, 4];
    const n = 72;
    const xs = seededArray(n, 21, -1.5, 1.5);
    const dys = seededArray(n, 22, -1, 1);
    const sv = [0.05, 0.1, 0.2, 0.4];
    const zv = [0, 3, -2, 1];
    const range: [number, number] = [-8, 7];
    const x = tf.tensor(xs, shape);
    const dy = tf.tensor(dys, shape);
    const s = tf.tensor(sv, [1, 1, 1, 4]);
    const z = tf.tensor(zv, [1, 1, 1, 4]);
    const { y, g } = gradsOf(x, s, z, dy, { range, gradient: 'clipped' });
    const ref = reference(xs, dys, (i) => sv[i % 4]!, (i) => zv[i % 4]!, (i) => i % 4, 4, range, 'clipped');
    expectClose(y, ref.y, { label: 'y' });
    expectClose(g[0]!, ref.dx, { label: 'dx' });
    expectClose(g[1]!, ref.ds, { label: 'ds' });
    expectClose(g[2]!, ref.dz, { label: 'dz' });
    expect(g[1]!.shape).toEqual([1, 1, 1, 4]);
    expect(g[2]!.shape).toEqual([1, 1, 1, 4]);
    tf.dispose([x, dy, s, z, y, ...g]);
  });

  it('per channel with a rank-1 scale [C] against [N, C] inputs', () => {
    const xs = seededArray(40, 31, -1, 1);
    const dys = seededArray(40, 32, -1, 1);
    const sv = [0.02, 0.07, 0.3, 0.11, 0.05];
    const x = tf.tensor(xs, [8, 5]);
    const dy = tf.tensor(dys, [8, 5]);
    const s = tf.tensor1d(sv);
    const z = tf.zeros([5]);
    const { y, g } = gradsOf(x, s, z, dy, { range: [-7, 7], gradient: 'ste' });
    const ref = reference(xs, dys, (i) => sv[i % 5]!, () => 0, (i) => i % 5, 5, [-7, 7], 'ste');
    expectClose(g[0]!, ref.dx, { label: 'dx' });
    expectClose(g[1]!, ref.ds, { label: 'ds' });
    expectClose(g[2]!, ref.dz, { label: 'dz' });
    expect(g[1]!.shape).toEqual([5]);
    tf.dispose([x, dy, s, z, y, ...g]);
  });

  it('gradScale multiplies the scale and zero-point gradients only', () => {
    const xs = seededArray(32, 41, -1, 1);
    const dys = seededArray(32, 42, -1, 1);
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const s = tf.scalar(0.1);
    const z = tf.scalar(-3);
    const gsc = 1 / Math.sqrt(32 * 7);
    const { y, g } = gradsOf(x, s, z, dy, { range: [-8, 7], gradient: 'clipped', gradScale: gsc });
    const ref = reference(xs, dys, () => 0.1, () => -3, () => 0, 1, [-8, 7], 'clipped', gsc);
    expectClose(g[0]!, ref.dx, { label: 'dx' });
    expectClose(g[1]!, ref.ds, { label: 'ds' });
    expectClose(g[2]!, ref.dz, { label: 'dz' });
    tf.dispose([x, dy, s, z, y, ...g]);
  });

  it('leaks no tensors, forward or backward', async () => {
    const x = tf.tensor1d([0.1, -0.7, 3]);
    const s = tf.scalar(0.2);
    const z = tf.scalar(0);
    await expectNoLeak(() => {
      fakeQuantize(x, s, z, { range: [-7, 7] }).dispose();
      const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(fakeQuantize(a, b, z, { range: [-7, 7] })))([x, s]);
      tf.dispose(g);
    });
    tf.dispose([x, s, z]);
  });
});

describe('roundSte', () => {
  it('rounds half to even forward and passes the gradient unchanged', () => {
    const x = tf.tensor1d([0.5, 1.5, 2.5, -0.5, -1.5, 0.7]);
    const y = roundSte(x);
    expect(Array.from(y.dataSync())).toEqual([0, 2, 2, 0, -2, 1].map((v) => v + 0));
    const dy = tf.tensor1d([1, 2, 3, 4, 5, 6]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(roundSte(a), dy)))([x]);
    expect(Array.from(g!.dataSync())).toEqual([1, 2, 3, 4, 5, 6]);
    tf.dispose([x, y, dy, g!]);
  });
});

describe('ceilSte', () => {
  it('takes the ceiling forward and passes the gradient unchanged', () => {
    const x = tf.tensor1d([0.1, 1, -1.5, 2.0001]);
    const y = ceilSte(x);
    expect(Array.from(y.dataSync())).toEqual([1, 1, -1, 3]);
    const dy = tf.tensor1d([0.5, -2, 3, 7]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(ceilSte(a), dy)))([x]);
    expect(Array.from(g!.dataSync())).toEqual([0.5, -2, 3, 7]);
    tf.dispose([x, y, dy, g!]);
  });
});

describe('reduceToShape', () => {
  it('sums over leading and broadcast (size-1) axes', () => {
    const g = tf.tensor(Array.from({ length: 24 }, (_, i) => i), [2, 3, 4]);
    const a = reduceToShape(g, [4]);
    expect(a.shape).toEqual([4]);
    expect(Array.from(a.dataSync())).toEqual([60, 66, 72, 78]);
    const b = reduceToShape(g, [1, 3, 1]);
    expect(b.shape).toEqual([1, 3, 1]);
    expect(Array.from(b.dataSync())).toEqual([60, 92, 124]);
    const c = reduceToShape(g, []);
    expect(c.shape).toEqual([]);
    expect(Array.from(c.dataSync())).toEqual([276]);
    expect(reduceToShape(g, [2, 3, 4])).toBe(g);
    tf.dispose([g, a, b, c]);
  });
});
