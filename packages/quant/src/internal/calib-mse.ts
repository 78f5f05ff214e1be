/**
 * MSE range search on a histogram: the range minimising the expected squared error of
 * quantise-dequantise at a bit width, with the mass of each bin spread uniformly over the bin.
 *
 * The error of a candidate is integrated exactly per bin (clipping and rounding together), not
 * approximated by Δ²/12 per in-range sample: that approximation is badly wrong when the step is
 * wider than the data's own spread (e.g. 4 bits with far outliers: rounding most values to 0 costs
 * their variance, not Δ²/12), which is exactly where the choice matters.
 */

/** A uniform grid of levels `base + q·step`, q = 0..top; values beyond it clamp to its end levels. */
export interface QuantGrid {
  base: number;
  step: number;
  top: number;
}

/** ∫ (x − r)² dx over [lo, hi] for a level r; b³ − a³ factored, so a narrow interval far from its level does not cancel. */
function cellIntegral(lo: number, hi: number, r: number): number {
  const a = lo - r;
  const b = hi - r;
  return ((b - a) * (a * a + a * b + b * b)) / 3;
}

/** ∫_u^v (x − grid(x))² dx, where grid(x) is the nearest level (clamped). */
export function intervalError(u: number, v: number, g: QuantGrid): number {
  const { base, step, top } = g;
  const q0 = Math.min(top, Math.max(0, Math.floor((u - base) / step + 0.5)));
  const q1 = Math.min(top, Math.max(0, Math.floor((v - base) / step + 0.5)));
  // Most bins are narrower than a step and sit in one cell.
  if (q0 === q1) return cellIntegral(u, v, base + q0 * step);
  let total = 0;
  for (let q = q0; q <= q1; q++) {
    const lo = q === q0 ? u : base + (q - 0.5) * step;
    const hi = q === q1 ? v : base + (q + 0.5) * step;
    if (hi > lo) total += cellIntegral(lo, hi, base + q * step);
  }
  return total;
}

/** Expected squared error of the histogram (bins `[origin + j·w, origin + (j+1)·w)`) under a grid. */
export function histogramError(
  counts: ArrayLike<number>,
  nonzero: ReadonlyArray<number>,
  origin: number,
  width: number,
  g: QuantGrid,
): number {
  let err = 0;
  for (let i = 0; i < nonzero.length; i++) {
    const j = nonzero[i]!;
    const u = origin + j * width;
    err += counts[j]! * intervalError(u, u + width, g);
  }
  return err / width;
}

/**
 * The symmetric grid of [-t, t] (scale t / qmax, zero point 0): signed, levels q·t/(2^(bits−1) − 1)
 * for |q| <= 2^(bits−1) − 1; unsigned (non-negative data), levels q·t/(2^bits − 1), q = 0..2^bits − 1.
 * Only the non-negative half is returned: the signed grid is sign-symmetric, so a histogram of |x|
 * gets its exact error from it.
 */
export function symmetricGrid(t: number, bits: number, unsigned: boolean): QuantGrid {
  const top = unsigned ? 2 ** bits - 1 : 2 ** (bits - 1) - 1;
  return { base: 0, step: t / top, top };
}

/** The affine grid of [lo, hi] widened to contain 0: 2^bits levels from min(lo, 0) to max(hi, 0). */
export function affineGrid(lo: number, hi: number, bits: number): QuantGrid {
  const L = Math.min(lo, 0);
  const H = Math.max(hi, 0);
  const top = 2 ** bits - 1;
  return { base: L, step: (H - L) / top, top };
}

function nonzeroBins(counts: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let j = 0; j < counts.length; j++) if (counts[j]! > 0) out.push(j);
  return out;
}

/**
 * Symmetric search on a histogram of |x| starting at 0 (width w): the edge index k of the
 * threshold t = k·w, over k = 1 .. (last non-empty bin + 1), minimising the error of
 * {@link symmetricGrid}. Ties go to the larger threshold. Returns 0 for an empty histogram.
 */
export function mseSymmetricEdge(counts: ArrayLike<number>, width: number, bits: number, unsigned: boolean): number {
  const nz = nonzeroBins(counts);
  if (nz.length === 0) return 0;
  const last = nz[nz.length - 1]! + 1;
  let best = last;
  let bestErr = Infinity;
  for (let k = last; k >= 1; k--) {
    const e = histogramError(counts, nz, 0, width, symmetricGrid(k * width, bits, unsigned));
    if (e < bestErr) {
      bestErr = e;
      best = k;
    }
  }
  return best;
}

/**
 * Asymmetric search on a histogram with left edge `origin`: starting from the data's hull
 * [first non-empty bin, last non-empty bin + 1], shrink one bin at a time from the side whose
 * outermost bin holds less mass (ties: the side farther from 0), as PyTorch HistogramObserver
 * does, evaluating every range on the path (PyTorch stops at the first increase) with the affine
 * grid of the range widened to contain 0. Returns the edge indices `[a, b]` of the best range;
 * ties go to the earlier (wider) one.
 */
export function mseAsymmetricEdges(counts: ArrayLike<number>, origin: number, width: number, bits: number): [number, number] {
  const nz = nonzeroBins(counts);
  if (nz.length === 0) return [0, counts.length];
  let a = nz[0]!;
  let b = nz[nz.length - 1]! + 1;
  let best: [number, number] = [a, b];
  let bestErr = Infinity;
  for (;;) {
    const e = histogramError(counts, nz, origin, width, affineGrid(origin + a * width, origin + b * width, bits));
    if (e < bestErr) {
      bestErr = e;
      best = [a, b];
    }
    if (b - a <= 1) break;
    const low = counts[a]!;
    const high = counts[b - 1]!;
    const lowFarther = Math.abs(origin + a * width) > Math.abs(origin + b * width);
    if (low < high || (low === high && lowFarther)) a++;
    else b--;
  }
  return best;
}
