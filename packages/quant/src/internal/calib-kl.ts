/**
 * Entropy (KL) calibration as TensorRT describes it (Migacz, "8-bit Inference with TensorRT",
 * GTC 2017), on a histogram of |x| whose bin 0 starts at 0.
 */

/** Additive smoothing constant, as in the MXNet / ONNX Runtime implementations (on raw counts). */
const SMOOTH_EPS = 1e-4;

/**
 * The smoothing of a count vector with `zeros` zero entries out of `n`: zeros become `eps`, the
 * same total is taken evenly (`eps1`) from the non-zero entries, so KL stays finite and the total
 * is unchanged. `minNonzero` guards the sign of the smallest entry (counts here are >= 0.5 where
 * non-zero, so the guard never binds in practice).
 */
function smoothing(zeros: number, n: number, minNonzero: number): { eps: number; eps1: number } {
  if (zeros === 0) return { eps: 0, eps1: 0 };
  const nonzeros = n - zeros;
  const eps = Math.min(SMOOTH_EPS, (minNonzero * nonzeros) / (2 * zeros));
  return { eps, eps1: (eps * zeros) / nonzeros };
}

/** KL divergence of each candidate, and the chosen candidate. */
export interface KlSearch {
  /** The number of bins `i` kept by the chosen candidate (threshold = (i + 0.5)·binWidth), or -1. */
  best: number;
  /** `divergence[i]` for candidates `i` in `[quantBins, last]`, NaN elsewhere. */
  divergence: Float64Array;
}

/**
 * Runs the search over candidates `i = quantBins .. lastNonzero + 1` (the last one keeps every
 * bin: no clipping). For each: P = the first `i` bins with the mass of bins `>= i` added to bin
 * `i-1`; Q = the first `i` bins (without that outlier mass) merged into `quantBins` groups
 * (`floor(i/quantBins)` bins each, the last group taking the remainder) and spread evenly over the
 * bins of each group that are non-zero in P; both smoothed; KL(P‖Q). The minimum wins; ties go to
 * the largest `i` (the last minimum).
 */
export function klSearch(counts: ArrayLike<number>, quantBins: number): KlSearch {
  const bins = counts.length;
  const divergence = new Float64Array(bins + 1).fill(NaN);
  let last = -1;
  for (let j = bins - 1; j >= 0; j--) {
    if (counts[j]! > 0) {
      last = j;
      break;
    }
  }
  const maxI = last + 1;
  if (maxI < quantBins) return { best: -1, divergence };
  // suffix[i] = Σ counts[i..]
  const suffix = new Float64Array(bins + 1);
  for (let j = bins - 1; j >= 0; j--) suffix[j] = suffix[j + 1]! + counts[j]!;
  const groupValue = new Float64Array(quantBins);
  let best = -1;
  let bestKl = Infinity;
  for (let i = quantBins; i <= maxI; i++) {
    const outliers = suffix[i]!;
    const pAt = (j: number): number => (j === i - 1 ? counts[j]! + outliers : counts[j]!);
    // Q: each group's clipped mass spread over the group's bins that are non-zero in P.
    const per = Math.floor(i / quantBins);
    let zerosP = 0;
    let zerosQ = 0;
    let minP = Infinity;
    let minQ = Infinity;
    let sumP = 0;
    let sumQ = 0;
    for (let g = 0; g < quantBins; g++) {
      const start = g * per;
      const stop = g === quantBins - 1 ? i : start + per;
      let mass = 0;
      let nonzero = 0;
      for (let j = start; j < stop; j++) {
        mass += counts[j]!;
        const pj = pAt(j);
        if (pj !== 0) {
          nonzero++;
          if (pj < minP) minP = pj;
        }
      }
      const v = nonzero > 0 ? mass / nonzero : 0;
      groupValue[g] = v;
      zerosP += stop - start - nonzero;
      if (v === 0) zerosQ += stop - start;
      else {
        zerosQ += stop - start - nonzero;
        if (v < minQ) minQ = v;
      }
      sumP += mass;
      sumQ += v * nonzero;
    }
    sumP += outliers;
    if (zerosP === i || zerosQ === i) continue;
    const sp = smoothing(zerosP, i, minP);
    const sq = smoothing(zerosQ, i, minQ);
    // Smoothing keeps each total, so the normalisers are the raw sums.
    let kl = 0;
    for (let g = 0; g < quantBins; g++) {
      const start = g * per;
      const stop = g === quantBins - 1 ? i : start + per;
      const v = groupValue[g]!;
      for (let j = start; j < stop; j++) {
        const pj = pAt(j);
        const p = (pj === 0 ? sp.eps : pj - sp.eps1) / sumP;
        const qv = pj === 0 || v === 0 ? 0 : v;
        const q = (qv === 0 ? sq.eps : qv - sq.eps1) / sumQ;
        if (p > 0) kl += p * Math.log(p / q);
      }
    }
    divergence[i] = kl;
    if (kl <= bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return { best, divergence };
}
