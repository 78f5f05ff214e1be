/**
 * Entropy (KL) calibration as TensorRT implements it: the GTC 2017 procedure (Migacz, "8-bit
 * Inference with TensorRT") in the form of NVIDIA's pytorch-quantization `_compute_amax_entropy`
 * (calib/histogram.py), on a histogram of |x| whose bin 0 starts at 0.
 *
 * Of the published variants this is the one that fits post-ReLU activations:
 * - bin 0 is replaced by bin 1 before the search. After a ReLU, bin 0 holds every exact zero (half
 *   the values or more); left in, that spike dominates KL(P‖Q) and any candidate that merges bin 0
 *   with its neighbours looks bad, so the search clips far too hard (the cause of the 0.7–1.0 pt
 *   PTQ loss this package measured before it followed TensorRT here). Zero is exact on every grid
 *   with a zero point, so its mass carries no information about the threshold.
 * - candidate `i` maps bin `j < i` to quantized bin `floor(j·Q/i)` (numpy's digitize over
 *   linspace(0, i, Q + 1)): groups differ in size by at most one bin. ONNX Runtime and MXNet give
 *   every group `floor(i/Q)` bins and the remainder (up to Q − 1 bins) to the last one, which makes
 *   `i = 2Q − 1` a spurious favourite (one bin per group and a huge last group).
 * - no smoothing: a bin that P has and Q lacks (only the last bin, holding the clipped mass, can be
 *   one) makes KL infinite, as scipy's `entropy` gives it.
 * - candidates from `startBin` (128) to every bin; the last minimum wins; the threshold is the right
 *   edge of the last kept bin, `i·width`.
 */

/** KL divergence of each candidate, and the chosen candidate. */
export interface KlSearch {
  /** The number of bins `i` kept by the chosen candidate (threshold = i·binWidth), or -1 if none was finite or NaN-free. */
  best: number;
  /** `divergence[i]` for candidates `i` in `[start, bins]`, NaN elsewhere (Infinity where Q misses a bin of P). */
  divergence: Float64Array;
}

/** TensorRT's first candidate (`start_bin`). */
export const KL_START_BIN = 128;

/**
 * Runs the search. `counts` is the histogram of |x| (bin 0 starting at 0, all bins of equal
 * width); `quantBins` the number of quantized levels of the target grid (2^(bits−1) signed,
 * 2^bits unsigned). For each candidate `i` in `[min(startBin, bins), bins]`: P = the first `i` bins
 * with the mass of bins `>= i` added to bin `i − 1`; Q = the first `i` bins merged into `quantBins`
 * groups (bin j into group floor(j·quantBins/i)) and each group's mass spread evenly over its bins
 * that are non-zero; KL(P‖Q) of the normalised vectors. Ties go to the largest `i`. A candidate
 * whose Q is empty (every kept bin zero) has no defined divergence and is skipped.
 */
export function klSearch(counts: ArrayLike<number>, quantBins: number, startBin = KL_START_BIN): KlSearch {
  const n = counts.length;
  const bins = Float64Array.from(counts);
  if (n > 1) bins[0] = bins[1]!;
  const divergence = new Float64Array(n + 1).fill(NaN);
  // suffix[i] = Σ bins[i..]
  const suffix = new Float64Array(n + 1);
  for (let j = n - 1; j >= 0; j--) suffix[j] = suffix[j + 1]! + bins[j]!;
  const total = suffix[0]!;
  const mass = new Float64Array(quantBins);
  const nonzero = new Int32Array(quantBins);
  let best = -1;
  let bestKl = Infinity;
  for (let i = Math.min(startBin, n); i <= n; i++) {
    mass.fill(0);
    nonzero.fill(0);
    for (let j = 0; j < i; j++) {
      const c = bins[j]!;
      if (c === 0) continue;
      const g = Math.floor((j * quantBins) / i);
      mass[g]! += c;
      nonzero[g]!++;
    }
    const sumQ = total - suffix[i]!;
    if (total === 0 || sumQ === 0) continue;
    let kl = 0;
    for (let j = 0; j < i; j++) {
      const p = j === i - 1 ? bins[j]! + suffix[i]! : bins[j]!;
      if (p === 0) continue;
      const c = bins[j]!;
      if (c === 0) {
        kl = Infinity;
        break;
      }
      const g = Math.floor((j * quantBins) / i);
      const q = mass[g]! / nonzero[g]!;
      const pn = p / total;
      kl += pn * Math.log(pn / (q / sumQ));
    }
    divergence[i] = kl;
    if (kl <= bestKl) {
      bestKl = kl;
      best = i;
    }
  }
  return { best, divergence };
}
