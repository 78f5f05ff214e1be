import { useBackend } from '@tensorpress/core-tensor';
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { klSearch } from '../src/internal/calib-kl.js';
import { collect, seededGauss, seededLaplace } from './calibration-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

interface GoldenCase {
  name: string;
  source: string;
  unsigned: boolean;
  absMax: number;
  counts: number[];
  trt: Record<string, { quantBins: number; best: number; amax: number; divergence: Record<string, number | null> }>;
  ort: Record<string, [number, number]>;
}

/** Written by packages/quant/scripts/kl-golden.py: TensorRT's search transcribed in numpy, on committed histograms. */
const golden = JSON.parse(readFileSync(new URL('./fixtures/kl-golden.json', import.meta.url), 'utf8')) as { cases: GoldenCase[] };

/**
 * Samples whose collector histogram is exactly `counts` on 2048 bins over [0, absMax]: every count
 * at its bin centre, one value of the last bin at absMax itself (as numpy's closed last bin holds
 * the maximum). Signed cases alternate the sign.
 */
function samplesOf(c: GoldenCase): number[] {
  const w = c.absMax / 2048;
  const out: number[] = [];
  let k = 0;
  c.counts.forEach((n, j) => {
    for (let r = 0; r < n; r++) {
      const v = j === 2047 && r === 0 ? c.absMax : (j + 0.5) * w;
      out.push(!c.unsigned && k++ % 2 === 1 ? -v : v);
    }
  });
  return out;
}

describe('kl search (TensorRT variant)', () => {
  it('hand-derived divergences on a 4-bin histogram, bin 0 replaced by bin 1', () => {
    // counts [9, 2, 2, 1] → bins [2, 2, 2, 1], total 7; Q = 2 groups; candidates i = 2, 3, 4.
    const { best, divergence } = klSearch([9, 2, 2, 1], 2, 2);
    const kl = (p: number[], q: number[]): number => {
      const sp = p.reduce((a, b) => a + b, 0);
      const sq = q.reduce((a, b) => a + b, 0);
      return p.reduce((a, x, j) => a + (x / sp) * Math.log(x / sp / (q[j]! / sq)), 0);
    };
    // i = 2: P = [2, 2 + 3], Q = [2, 2].
    expect(divergence[2]).toBeCloseTo(kl([2, 5], [2, 2]), 14);
    // i = 3: bins 0, 1 → group 0 (floor(2j/3)), bin 2 → group 1; P = [2, 2, 2 + 1], Q = [2, 2, 2].
    expect(divergence[3]).toBeCloseTo(kl([2, 2, 3], [2, 2, 2]), 14);
    // i = 4: groups {0, 1}, {2, 3}; P = [2, 2, 2, 1], Q = [2, 2, 1.5, 1.5].
    expect(divergence[4]).toBeCloseTo(kl([2, 2, 2, 1], [2, 2, 1.5, 1.5]), 14);
    const min = Math.min(divergence[2]!, divergence[3]!, divergence[4]!);
    expect(best).toBe([4, 3, 2].find((i) => divergence[i] === min));
    expect(Number.isNaN(divergence[1]!)).toBe(true);
  });

  it('the count of bin 0 (the exact zeros after a ReLU) does not move the threshold', () => {
    const c = golden.cases.find((x) => x.name === 'relu-like')!;
    const a = klSearch(c.counts, 256);
    for (const zeros of [0, 1, 10 * c.counts[0]!]) {
      const counts = [zeros, ...c.counts.slice(1)];
      expect(klSearch(counts, 256).best).toBe(a.best);
    }
  });

  it('a kept bin that P has and Q lacks gives an infinite divergence; ties go to the largest i', () => {
    // Bin 3 (= i − 1 for i = 4) is empty but receives the clipped mass of bin 5 → Q lacks it.
    const { divergence } = klSearch([1, 1, 1, 0, 1, 1], 2, 2);
    expect(divergence[4]).toBe(Infinity);
    // [4, 4, 0, 0]: every candidate (i = 2, 3, 4) reproduces P exactly (KL 0); the largest wins.
    const flat = klSearch([4, 4, 0, 0], 2, 2);
    expect([flat.divergence[2], flat.divergence[3], flat.divergence[4]]).toEqual([0, 0, 0]);
    expect(flat.best).toBe(4);
  });

  for (const c of golden.cases) {
    for (const [bits, g] of Object.entries(c.trt)) {
      it(`${c.name} at ${bits} bits: the same i and divergences as the numpy transcription`, () => {
        const { best, divergence } = klSearch(c.counts, g.quantBins);
        expect(best).toBe(g.best);
        for (const [i, d] of Object.entries(g.divergence)) {
          if (d === null) expect(divergence[Number(i)]).toBe(Infinity);
          else expect(divergence[Number(i)]).toBeCloseTo(d, 10);
        }
      });
    }
  }
});

/**
 * The collector's histogram quantile (linear inside the bin where the cumulative count crosses
 * q·total), computed from the fixture's counts.
 */
function quantileOf(c: GoldenCase, q: number): number {
  const w = c.absMax / 2048;
  const total = c.counts.reduce((a, b) => a + b, 0);
  const target = q * total;
  let cum = 0;
  for (let j = 0; j < 2048; j++) {
    const n = c.counts[j]!;
    if (n === 0) continue;
    if (cum + n >= target) return j * w + w * Math.max(0, (target - cum) / n);
    cum += n;
  }
  return c.absMax;
}

describe('kl collector', () => {
  for (const c of golden.cases.filter((x) => x.source === 'synthetic')) {
    it(`${c.name}: with no floor, the collector's threshold is the golden amax = i·max|x|/2048`, () => {
      const data = samplesOf(c);
      for (const [bits, g] of Object.entries(c.trt)) {
        const r = collect('kl', [data], { bits: Number(bits), klFloorPercentile: 0 });
        expect(r.max).toBe(Math.min(c.absMax, g.amax));
        expect(r.min).toBe(c.unsigned ? 0 : -r.max);
      }
    });
  }

  it('by default the threshold is at least the 99.99th percentile of |x| (at most 0.01 % clipped)', () => {
    for (const c of golden.cases.filter((x) => x.source === 'synthetic')) {
      const g = c.trt['8']!;
      const floor = quantileOf(c, 0.9999);
      const r = collect('kl', [samplesOf(c)]);
      expect(r.max, c.name).toBeCloseTo(Math.min(c.absMax, Math.max(g.amax, floor)), 12);
    }
    // The Laplace case with three far outliers (30,003 values): the floor binds (the bulk's top is
    // above TensorRT's threshold) but still clips the outliers, far below max|x| = 40.
    const lap = golden.cases.find((x) => x.name === 'laplace-outliers')!;
    const r = collect('kl', [samplesOf(lap)]);
    expect(r.max).toBeGreaterThan(lap.trt['8']!.amax);
    expect(r.max).toBeLessThan(lap.absMax / 2);
  });

  it('symmetric forces [-t, t] and 2^(bits-1) quantized bins on non-negative data', () => {
    const c = golden.cases.find((x) => x.name === 'relu-like')!;
    const t = klSearch(c.counts, 128).best * (c.absMax / 2048);
    expect(collect('kl', [samplesOf(c)], { symmetric: true, klFloorPercentile: 0 })).toEqual({ min: -Math.min(c.absMax, t), max: Math.min(c.absMax, t) });
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
