import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, TensorpressError, createRng, useBackend } from '@tensorpress/core-tensor';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCollector, type CollectorOptions } from '../src/calibration.js';
import { ALL_METHODS, collect, feed, npPercentile, seededGauss, seededLaplace, type Method } from './calibration-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('createCollector', () => {
  it('rejects unknown methods and out-of-range options with ConfigError', () => {
    const bad: Array<[Method, Partial<CollectorOptions>, string]> = [
      ['bogus' as Method, {}, '$.method'],
      ['minmax', { bits: 1 }, '$.bits'],
      ['minmax', { bits: 8.5 }, '$.bits'],
      ['percentile', { percentile: 0 }, '$.percentile'],
      ['percentile', { percentile: 101 }, '$.percentile'],
      ['percentile', { percentile: 99, lowerPercentile: 99.5 }, '$.lowerPercentile'],
      ['kl', { bins: 200 }, '$.bins'],
      ['kl', { bins: 128, symmetric: false }, '$.bins'],
      ['moving_average_minmax', { averagingConstant: 0 }, '$.averagingConstant'],
      ['kl', { klFloorPercentile: 100.5 }, '$.klFloorPercentile'],
      ['kl', { klFloorPercentile: -1 }, '$.klFloorPercentile'],
    ];
    for (const [method, opts, path] of bad) {
      const e = errorOf(() => createCollector(method, { name: 'conv1', ...opts }));
      expect(e, `${method} ${JSON.stringify(opts)}`).toBeInstanceOf(ConfigError);
      expect(e.code).toBe('CONFIG_INVALID');
      expect((e as ConfigError).path).toBe(path);
    }
    expect(errorOf(() => createCollector('minmax', { name: '' })).code).toBe('CONFIG_INVALID');
    // 128 bins are enough for a symmetric 8-bit KL search (128 quantized bins).
    expect(createCollector('kl', { name: 'x', bins: 128, symmetric: true }).method).toBe('kl');
  });

  it('range() before any batch throws STATE_INVALID naming the node', () => {
    for (const m of ALL_METHODS) {
      const e = errorOf(() => createCollector(m, { name: 'block3/relu' }).range());
      expect(e.code).toBe('STATE_INVALID');
      expect(e.message).toContain('block3/relu');
    }
  });

  it('ignores empty batches and accepts any shape and integer dtypes', () => {
    const c = createCollector('minmax', { name: 'x' });
    const empty = tf.zeros([0, 3]);
    const ints = tf.tensor3d([[[1, -5]], [[9, 2]]], [2, 1, 2], 'int32');
    c.observe(empty);
    expect(c.batches).toBe(0);
    c.observe(ints);
    empty.dispose();
    ints.dispose();
    expect(c.batches).toBe(1);
    expect(c.range()).toEqual({ min: -5, max: 9 });
  });
});

describe('minmax / min_max', () => {
  const batches = [
    [1, -2, 3],
    [0.5, 7],
    [-4, 2],
  ];
  it('returns the global min and max', () => {
    expect(collect('minmax', batches)).toEqual({ min: -4, max: 7 });
    expect(collect('min_max', batches)).toEqual({ min: -4, max: 7 });
  });
  it('symmetric gives [-m, m] with m the larger magnitude', () => {
    expect(collect('minmax', batches, { symmetric: true })).toEqual({ min: -7, max: 7 });
  });
  it('keeps a positive min for positive data', () => {
    expect(collect('minmax', [[3, 4], [5]])).toEqual({ min: 3, max: 5 });
  });
});

describe('moving_average_minmax', () => {
  it('follows PyTorch: first batch sets the range, then r += c·(batch − r)', () => {
    // c = 0.5: min -1 → -1 + 0.5(-3+1) = -2 → -2 + 0.5(1+2) = -0.5; max 2 → 3 → 2.5.
    const c = feed(createCollector('moving_average_minmax', { name: 'a', averagingConstant: 0.5 }), [
      [-1, 0, 2],
      [-3, 4],
      [1, 2],
    ]);
    expect(c.batches).toBe(3);
    expect(c.range()).toEqual({ min: -0.5, max: 2.5 });
  });
  it('defaults to c = 0.01', () => {
    const r = collect('moving_average_minmax', [
      [0, 10],
      [-100, 20],
    ]);
    expect(r.min).toBeCloseTo(-1, 12);
    expect(r.max).toBeCloseTo(10.1, 12);
  });
});

describe('mean_min_max', () => {
  it('averages per-batch min and max', () => {
    const r = collect('mean_min_max', [
      [-1, 2],
      [-3, 0, 4],
      [1, 2],
    ]);
    expect(r.min).toBe(-1);
    expect(r.max).toBeCloseTo(8 / 3, 12);
  });
});

describe('threesigma', () => {
  it('is mean ± 3·(population) std over all values, merged across batches', () => {
    // 1..6: mean 3.5, variance 35/12.
    const r = collect('threesigma', [
      [1, 2, 3, 4],
      [5, 6],
    ]);
    const s = Math.sqrt(35 / 12);
    expect(r.min).toBeCloseTo(3.5 - 3 * s, 5);
    expect(r.max).toBeCloseTo(3.5 + 3 * s, 5);
  });
  it('matches a float64 two-pass reference on 10 uneven batches with a large offset', () => {
    const all: number[] = [];
    const batches: number[][] = [];
    for (let b = 0; b < 10; b++) {
      const g = seededGauss(200 + 37 * b, 10 + b).map((v) => 1000 + 2 * v + b * 0.1);
      batches.push(g);
      all.push(...g);
    }
    const mean = all.reduce((a, v) => a + v, 0) / all.length;
    const std = Math.sqrt(all.reduce((a, v) => a + (v - mean) ** 2, 0) / all.length);
    const r = collect('threesigma', batches);
    expect(Math.abs(r.max - (mean + 3 * std))).toBeLessThan(1e-3);
    expect(Math.abs(r.min - (mean - 3 * std))).toBeLessThan(1e-3);
  });
});

describe('percentile', () => {
  // 10,000 known values 0, 1, ..., 9999 (one batch, shuffled order does not matter to a histogram).
  const values = [...Array(10000).keys()];
  it('99th percentile and 1st percentile within one bin width of numpy', () => {
    const r = collect('percentile', [values], { percentile: 99 });
    const w = 9999 / 2048;
    expect(Math.abs(r.max - npPercentile(values, 99))).toBeLessThanOrEqual(w);
    expect(Math.abs(r.min - npPercentile(values, 1))).toBeLessThanOrEqual(w);
  });
  it('symmetric: percentile of |x| → [-t, t]', () => {
    const signed = values.map((v) => v - 5000);
    const r = collect('percentile', [signed], { percentile: 99, symmetric: true });
    const w = 5000 / 2048;
    const t = npPercentile(
      signed.map((v) => Math.abs(v)),
      99,
    );
    expect(Math.abs(r.max - t)).toBeLessThanOrEqual(w);
    expect(r.min).toBe(-r.max);
  });
  it('defaults: 99.99 and a lower percentile of 0.01', () => {
    const r = collect('percentile', [values]);
    const w = 9999 / 2048;
    expect(Math.abs(r.max - npPercentile(values, 99.99))).toBeLessThanOrEqual(w);
    expect(Math.abs(r.min - npPercentile(values, 0.01))).toBeLessThanOrEqual(w);
  });
  it('percentile 100 gives the data max, never beyond it', () => {
    const r = collect('percentile', [[-3, 0.25, 1.5]], { percentile: 100, lowerPercentile: 0 });
    expect(r).toEqual({ min: -3, max: 1.5 });
  });
});

describe('mean_percentile', () => {
  it('averages exact per-batch percentiles (numpy linear interpolation)', () => {
    const rng = createRng(3);
    const shuffled = (n: number) => [...Array(n).keys()].sort(() => rng.next() - 0.5);
    // p = 90 / 10: batch 0..100 → 90 and 10; 0..200 → 180 and 20; [0,1,2,3] → 2.7 and 0.3.
    const r = collect('mean_percentile', [shuffled(101), shuffled(201), [3, 0, 2, 1]], { percentile: 90, lowerPercentile: 10 });
    expect(r.max).toBeCloseTo((90 + 180 + 2.7) / 3, 5);
    expect(r.min).toBeCloseTo((10 + 20 + 0.3) / 3, 5);
  });
  it("defaults to NNCF's 99.9 / 0.1", () => {
    const r = collect('mean_percentile', [[...Array(1001).keys()].reverse()]);
    expect(r.max).toBeCloseTo(999, 6);
    expect(r.min).toBeCloseTo(1, 6);
  });
  it('symmetric uses |x|', () => {
    const b1 = [...Array(101).keys()].map((v) => (v % 2 ? -v : v));
    const r = collect('mean_percentile', [b1, [-4, 2]], { percentile: 50, symmetric: true });
    expect(r.max).toBeCloseTo((50 + 3) / 2, 6);
    expect(r.min).toBe(-r.max);
  });
});

describe('streaming', () => {
  it('200 growing batches: constant state size and tensor count, every method', () => {
    for (const m of ALL_METHODS) {
      const c = createCollector(m, { name: 'x' });
      const before = tf.memory().numTensors;
      let size = -1;
      for (let b = 0; b < 200; b++) {
        const t = tf.tidy(() => tf.mul(tf.randomNormal([64], 0, 1, 'float32', b), 1 + b / 20));
        c.observe(t);
        t.dispose();
        if (b === 0) size = c.stateSize;
        expect(c.stateSize, m).toBe(size);
      }
      expect(tf.memory().numTensors, m).toBe(before);
      expect(c.batches).toBe(200);
      if (m === 'percentile' || m === 'kl' || m === 'mse') expect(size).toBeLessThan(2048 + 16);
      else expect(size).toBeLessThan(16);
      const r = c.range();
      expect(Number.isFinite(r.min) && Number.isFinite(r.max) && r.min < r.max, m).toBe(true);
    }
  });

  it('re-binning is an exact merge: same range as one big batch when the grids coincide', () => {
    // |x| grid [0,1] then [0,2] (k = 2); signed grid [-1,1] then [-2,2] (shift 1024 old bins,
    // k = 2): the streamed histogram equals the one-batch histogram bin for bin.
    // Values on a 2^-13 grid keep every (x - origin) / width exact in float32.
    const snap = (v: number) => (Math.floor(v * 4096) + 0.5) / 4096;
    const a = seededGauss(4000, 21).map((v) => snap(Math.max(-0.99, Math.min(0.99, v / 3))));
    a[0] = 1;
    a[1] = -1;
    const b = seededLaplace(4000, 22).map((v) => snap(Math.max(-1.99, Math.min(1.99, v))));
    b[0] = 2;
    b[1] = -2;
    for (const [m, symmetric] of [
      ['percentile', false],
      ['percentile', true],
      ['kl', false],
      ['mse', false],
      ['mse', true],
    ] as Array<[Method, boolean]>) {
      const streamed = collect(m, [a, b], { symmetric });
      const once = collect(m, [[...a, ...b]], { symmetric });
      expect(streamed, `${m} symmetric=${symmetric}`).toEqual(once);
    }
  });

  it('arbitrary growth (shifts and widenings) stays within a bin width of one big batch', () => {
    const batches: number[][] = [];
    for (let k = 0; k < 20; k++) batches.push(seededGauss(500, 30 + k).map((v) => (v + 0.3 * k) * (1 + 0.4 * k)));
    const all = batches.flat();
    const span = Math.max(...all) - Math.min(...all);
    const maxAbs = Math.max(...all.map(Math.abs));
    // Growth by whole multiples of the old width: the streamed width is at most about twice span/bins.
    const wAsym = (2 * span) / 2048;
    const wSym = (2 * maxAbs) / 2048;
    const s = collect('percentile', batches, { percentile: 99 });
    expect(Math.abs(s.max - npPercentile(all, 99))).toBeLessThanOrEqual(wAsym);
    expect(Math.abs(s.min - npPercentile(all, 1))).toBeLessThanOrEqual(wAsym);
    const o = collect('percentile', [all], { percentile: 99 });
    expect(Math.abs(s.max - o.max)).toBeLessThanOrEqual(wAsym);
    expect(Math.abs(s.min - o.min)).toBeLessThanOrEqual(wAsym);
    const ss = collect('percentile', batches, { percentile: 99.5, symmetric: true });
    expect(Math.abs(ss.max - npPercentile(all.map(Math.abs), 99.5))).toBeLessThanOrEqual(wSym);
    expect(collect('minmax', batches)).toEqual(collect('minmax', [all]));
  });

  it('a constant first batch (dead ReLU) is kept as a point mass and merged later', () => {
    const zeros = new Array<number>(1000).fill(0);
    const data = seededLaplace(3000, 40).map((v) => Math.max(0, v));
    for (const m of ['percentile', 'kl', 'mse'] as Method[]) {
      expect(collect(m, [zeros, data], { percentile: 90 }), m).toEqual(collect(m, [[...zeros, ...data]], { percentile: 90 }));
    }
    expect(collect('percentile', [zeros, zeros])).toEqual({ min: 0, max: 0 });
    expect(collect('kl', [zeros])).toEqual({ min: 0, max: 0 });
    expect(collect('mse', [zeros], { symmetric: true })).toEqual({ min: 0, max: 0 });
    expect(collect('mse', [[3, 3, 3]])).toEqual({ min: 3, max: 3 });
    expect(collect('percentile', [[3, 3], [3]])).toEqual({ min: 3, max: 3 });
    expect(collect('threesigma', [[2, 2, 2]])).toEqual({ min: 2, max: 2 });
  });
});

describe('non-finite input', () => {
  it('NaN / ±Inf throw QUANT_NONFINITE naming the node and the count; the state is unchanged', () => {
    for (const m of ALL_METHODS) {
      const c = feed(createCollector(m, { name: 'stage2/conv1:out' }), [[1, -2, 3, 0.5]]);
      const before = c.range();
      const bad = tf.tensor([1, NaN, Infinity, -Infinity, 2]);
      const e = errorOf(() => c.observe(bad));
      bad.dispose();
      expect(e, m).toBeInstanceOf(TensorpressError);
      expect(e.code).toBe('QUANT_NONFINITE');
      expect(e.message).toContain('stage2/conv1:out');
      expect(e.message).toContain('1 NaN');
      expect(e.message).toContain('2 ±Inf');
      expect(e.details).toMatchObject({ name: 'stage2/conv1:out', nonFinite: 3 });
      expect(c.batches).toBe(1);
      expect(c.range()).toEqual(before);
    }
  });
});

describe('tensor hygiene', () => {
  it('observe and range leak no tensors and leave the input alive', async () => {
    for (const m of ALL_METHODS) {
      const x = tf.tensor2d(seededGauss(600, 50), [20, 30]);
      const c = createCollector(m, { name: 'x', symmetric: m === 'mse' });
      await expectNoLeak(() => {
        c.observe(x);
        c.observe(x);
        c.range();
      });
      expect(x.isDisposed).toBe(false);
      x.dispose();
    }
  });
});
