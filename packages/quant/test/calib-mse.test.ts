import { useBackend } from '@tensorpress/core-tensor';
import { beforeAll, describe, expect, it } from 'vitest';
import { collect, seededGauss, seededLaplace } from './calibration-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});

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
