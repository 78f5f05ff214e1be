import { useBackend } from '@tensorpress/core-tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect, seededGauss, seededLaplace } from './calibration-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

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
