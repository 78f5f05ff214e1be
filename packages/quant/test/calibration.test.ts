import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, TensorpressError, createRng, useBackend } from '@tensorpress/core-tensor';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCollector, type CalibrationMethod, type CollectorOptions, type RangeCollector, type RangeInitMethod } from '../src/calibration.js';

beforeAll(async () => {
  await useBackend('cpu');
});

type Method = CalibrationMethod | RangeInitMethod;
const ALL_METHODS: Method[] = [
  'minmax',
  'moving_average_minmax',
  'percentile',
  'kl',
  'mse',
  'min_max',
  'mean_min_max',
  'threesigma',
  'mean_percentile',
];

/** Observes each array as one batch (tensor made and freed here). */
function feed(c: RangeCollector, batches: ReadonlyArray<ArrayLike<number>>, shape?: number[]): RangeCollector {
  for (const b of batches) {
    const t = tf.tensor(Array.from(b), shape);
    try {
      c.observe(t);
    } finally {
      t.dispose();
    }
  }
  return c;
}

function collect(method: Method, batches: ReadonlyArray<ArrayLike<number>>, options: Partial<CollectorOptions> = {}) {
  return feed(createCollector(method, { name: 'act', ...options }), batches).range();
}

/** numpy.percentile(values, p) with the default linear interpolation. */
function npPercentile(values: ArrayLike<number>, p: number): number {
  const s = Float64Array.from(values).sort();
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!);
}

function seededLaplace(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = rng.next() - 0.5;
    out.push(-Math.sign(u) * Math.log(1 - 2 * Math.abs(u)));
  }
  return out;
}

function seededGauss(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()));
  return out;
}

/** Snaps |v| onto the centre of its bin of width 2^-8 over [0, 8) and keeps the sign: exact in float32. */
function snapToCentres(values: number[]): number[] {
  return values.map((v) => {
    const j = Math.min(2047, Math.floor(Math.abs(v) * 256));
    return Math.sign(v || 1) * ((j + 0.5) / 256);
  });
}

/** Counts of |x| in 2048 bins of width 2^-8 (the collector's grid when max|x| = 8). */
function absCounts(values: number[]): number[] {
  const counts = new Array<number>(2048).fill(0);
  for (const v of values) counts[Math.min(2047, Math.floor(Math.abs(v) * 256))]!++;
  return counts;
}

/**
 * Test-side oracle: TensorRT's entropy calibration written straight from the GTC 2017 pseudocode,
 * returning the candidate i of the last minimum of KL (i = number of bins kept).
 */
function referenceKl(hist: number[], quantBins: number): number {
  const smoothRef = (d: number[]): number[] | null => {
    const zeros = d.filter((v) => v === 0).length;
    const nonzeros = d.length - zeros;
    if (nonzeros === 0) return null;
    const eps1 = (1e-4 * zeros) / nonzeros;
    return d.map((v) => (v === 0 ? 1e-4 : v - eps1));
  };
  let last = hist.length - 1;
  while (last > 0 && hist[last] === 0) last--;
  let best = -1;
  let bestKl = Infinity;
  for (let i = quantBins; i <= last + 1; i++) {
    const reference = hist.slice(0, i);
    reference[i - 1]! += hist.slice(i).reduce((a, b) => a + b, 0);
    const sliced = hist.slice(0, i);
    const per = Math.floor(i / quantBins);
    const expanded = new Array<number>(i).fill(0);
    for (let g = 0; g < quantBins; g++) {
      const start = g * per;
      const stop = g === quantBins - 1 ? i : start + per;
      const idx = [...Array(stop - start).keys()].map((k) => k + start);
      const nz = idx.filter((j) => reference[j] !== 0);
      const sum = idx.reduce((a, j) => a + sliced[j]!, 0);
      for (const j of nz) expanded[j] = sum / nz.length;
    }
    const p = smoothRef(reference);
    const q = smoothRef(expanded);
    if (!p || !q) continue;
    const sp = p.reduce((a, b) => a + b, 0);
    const sq = q.reduce((a, b) => a + b, 0);
    let kl = 0;
    for (let j = 0; j < i; j++) if (p[j]! > 0) kl += (p[j]! / sp) * Math.log(p[j]! / sp / (q[j]! / sq));
    if (kl <= bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return best;
}

/**
 * Test-side oracle of the MSE model: ∫ over a bin of (x − nearest level)², levels base + q·step
 * (q = 0..top, clamped), written as a plain loop over every level's cell.
 */
function binSqError(u: number, v: number, base: number, step: number, top: number): number {
  let total = 0;
  for (let q = 0; q <= top; q++) {
    const r = base + q * step;
    const lo = Math.max(u, q === 0 ? -Infinity : r - step / 2);
    const hi = Math.min(v, q === top ? Infinity : r + step / 2);
    if (hi > lo) total += ((hi - r) ** 3 - (lo - r) ** 3) / 3;
  }
  return total;
}

function modelError(counts: number[], origin: number, w: number, base: number, step: number, top: number): number {
  let err = 0;
  counts.forEach((n, j) => {
    if (n > 0) err += (n / w) * binSqError(origin + j * w, origin + (j + 1) * w, base, step, top);
  });
  return err;
}

/** Sampled squared error of quantise-dequantise of `values` on [lo, hi] (affine, 2^bits levels, 0 inside). */
function sampledError(values: number[], lo: number, hi: number, bits: number): number {
  const L = Math.min(lo, 0);
  const H = Math.max(hi, 0);
  const step = (H - L) / (2 ** bits - 1);
  let err = 0;
  for (const x of values) {
    const q = Math.min(2 ** bits - 1, Math.max(0, Math.round((x - L) / step)));
    err += (x - (L + q * step)) ** 2;
  }
  return err;
}

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

describe('kl', () => {
  // Bulk: 100 values in each of the first T = 512 = 128·4 bins (width 2^-8 over [0, 8]), signs
  // alternating; far outliers: 1 in bin 2046, 3 at max|x| = 8 (bin 2047).
  // - i < 512: P piles the rest of the bulk into bin i-1, Q cannot → KL ≈ 8e-4 at i = 511, more below.
  // - i = 512: P = bulk with the 4 outliers added to bin 511; Q = uniform bulk → KL ≈ 1.5e-6.
  // - 512 < i < 2047: the outliers land in a bin whose group holds no (or too little) mass of
  //   the clipped histogram → KL ≥ 7e-4.
  // - i = 2047: bin 2046 gets 1 + 3 where Q has 1 → KL ≈ 5e-5; i = 2048 (no clip): the group
  //   2032..2047 holds 1 and 3, Q spreads 2 and 2 → KL ≈ 1e-5.
  // So the minimum is i = 512 and t = (512 + 0.5)·2^-8.
  function designed(signed: boolean): number[] {
    const v: number[] = [];
    for (let j = 0; j < 512; j++) for (let r = 0; r < 100; r++) v.push((signed && r % 2 ? -1 : 1) * ((j + 0.5) / 256));
    v.push(2046.5 / 256, 8, signed ? -8 : 8, 8);
    return v;
  }

  it('picks the known optimum at the edge of the bulk', () => {
    const data = designed(true);
    expect(referenceKl(absCounts(data), 128)).toBe(512);
    expect(collect('kl', [data])).toEqual({ min: -512.5 / 256, max: 512.5 / 256 });
    expect(collect('kl', [data], { symmetric: true })).toEqual({ min: -512.5 / 256, max: 512.5 / 256 });
  });

  it('non-negative data with symmetric false: 2^bits quantized bins and [0, t]', () => {
    const data = designed(false);
    expect(referenceKl(absCounts(data), 256)).toBe(512);
    expect(collect('kl', [data])).toEqual({ min: 0, max: 512.5 / 256 });
    // symmetric forces [-t, t] and 128 bins.
    expect(collect('kl', [data], { symmetric: true })).toEqual({ min: -512.5 / 256, max: 512.5 / 256 });
  });

  it('agrees with a straight transcription of the TensorRT pseudocode on a Laplace sample', () => {
    const data = snapToCentres(seededLaplace(20000, 5).map((v) => v * 0.8));
    data.push(-8); // pins max|x| = 8 so the collector's grid is the test's grid
    for (const bits of [8, 6]) {
      const i = referenceKl(absCounts(data), 2 ** (bits - 1));
      expect(i).toBeGreaterThan(0);
      const r = collect('kl', [data], { bits });
      expect(r.max).toBe(Math.min(8, (i + 0.5) / 256));
      expect(r.min).toBe(-r.max);
    }
  });

  it('clips the outliers of heavy-tailed data well below max|x|', () => {
    const lap = [...seededLaplace(50000, 9), 60, -80, 100];
    const r = collect('kl', [lap], { symmetric: true });
    expect(r.max).toBeGreaterThan(5);
    expect(r.max).toBeLessThan(0.2 * 100);
    const t3 = seededGauss(30000, 4).map((z, k) => {
      const g = seededGauss(3, 1000 + k);
      return z / Math.sqrt((g[0]! ** 2 + g[1]! ** 2 + g[2]! ** 2) / 3);
    });
    const maxAbs = Math.max(...t3.map(Math.abs));
    const rt = collect('kl', [t3], { symmetric: true });
    expect(rt.max).toBeLessThan(0.7 * maxAbs);
    expect(rt.max).toBeGreaterThan(3);
  });
});

describe('mse', () => {
  it('symmetric: equals the brute-force minimiser over bin-edge thresholds', () => {
    // 256 bins of |x| over [0, 8] (width 1/32), values at bin centres, max|x| pinned at 8.
    const w = 1 / 32;
    const data = [...seededGauss(20000, 11), 7.5, -6.2, 5.1].map((v) => {
      const j = Math.min(255, Math.floor(Math.abs(v) / w));
      return Math.sign(v || 1) * (j + 0.5) * w;
    });
    data.push(8);
    const counts = new Array<number>(256).fill(0);
    for (const v of data) counts[Math.min(255, Math.floor(Math.abs(v) / w))]!++;
    // Signed data: levels q·t/(2^(bits-1) - 1); the same magnitudes all non-negative: q·t/(2^bits - 1).
    for (const unsigned of [false, true]) {
      const values = unsigned ? data.map(Math.abs) : data;
      for (const bits of [8, 4, 3]) {
        const top = unsigned ? 2 ** bits - 1 : 2 ** (bits - 1) - 1;
        let best = -1;
        let bestErr = Infinity;
        for (let k = 256; k >= 1; k--) {
          const err = modelError(counts, 0, w, 0, (k * w) / top, top);
          if (err < bestErr) {
            bestErr = err;
            best = k;
          }
        }
        const r = collect('mse', [values], { bits, symmetric: true, bins: 256 });
        expect(r.max, `${bits} bits, unsigned ${unsigned}`).toBe(Math.min(8, best * w));
        expect(r.min).toBe(-r.max);
        expect(r.max).toBeLessThan(8);
      }
    }
  });

  it('picks a range below max on data with outliers, with less error than min-max', () => {
    // At 4 bits the full range [-30, 30] rounds most of the N(0, 1) bulk to 0 (cost ≈ Σx²), while
    // clipping three outliers near 6 costs ≈ 3·24²: MSE must clip. (With far outliers and many
    // more bits, keeping them is the MSE optimum and min-max is right.)
    const data = [...seededGauss(20000, 12), 30, -28, 25];
    const r = collect('mse', [data], { bits: 4, symmetric: true });
    expect(r.max).toBeLessThan(15);
    expect(r.max).toBeGreaterThan(2);
    const a = collect('mse', [data], { bits: 4 });
    expect(a.max).toBeLessThan(15);
    expect(a.min).toBeGreaterThan(-15);
    const minmax = sampledError(data, -28, 30, 4);
    expect(sampledError(data, a.min, a.max, 4)).toBeLessThan(minmax);
    expect(sampledError(data, r.min, r.max, 4)).toBeLessThan(minmax);
  });

  it('asymmetric: equals the brute-force minimiser along the shrinking path', () => {
    // 128 bins over [-2, 6] (width 1/16), values at bin centres plus the two ends.
    const bins = 128;
    const w = 1 / 16;
    const raw = seededLaplace(5000, 13).map((v) => 0.7 * v + 0.5);
    const data = raw
      .filter((v) => v > -2 && v < 6)
      .map((v) => -2 + (Math.floor((v + 2) / w) + 0.5) * w)
      .concat([-2, 6, 5.9, -1.95]);
    const counts = new Array<number>(bins).fill(0);
    for (const v of data) counts[Math.min(bins - 1, Math.floor((v + 2) / w))]!++;
    for (const bits of [8, 4]) {
      const levels = 2 ** bits - 1;
      let a = 0;
      let b = bins;
      let best: [number, number] = [-1, -1];
      let bestErr = Infinity;
      while (b > a) {
        const lo = Math.min(0, -2 + a * w);
        const hi = Math.max(0, -2 + b * w);
        const err = modelError(counts, -2, w, lo, (hi - lo) / levels, levels);
        if (err < bestErr) {
          bestErr = err;
          best = [a, b];
        }
        // Shrink from the lighter end (ties: the end farther from 0).
        const dropLow = counts[a]! < counts[b - 1]! || (counts[a] === counts[b - 1] && Math.abs(-2 + a * w) > Math.abs(-2 + b * w));
        if (dropLow) a++;
        else b--;
        if (b - a < 1) break;
      }
      const r = collect('mse', [data], { bits, bins });
      expect(r, `${bits} bits`).toEqual({ min: -2 + best[0] * w, max: -2 + best[1] * w });
    }
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
