/**
 * A fixed-size histogram whose range grows with the data, for streaming calibration.
 *
 * The range of an activation is unknown until its first batch, and later batches may exceed it.
 * ORT's HistogramCollector appends bins (memory grows with the data); PyTorch's HistogramObserver
 * re-interpolates the old counts into the new range (approximate). Here the range only ever grows
 * by an integer factor `k` of the bin width, with the new origin on the old grid, so every old bin
 * lies inside exactly one new bin: re-binning is an exact merge and memory stays O(bins).
 */
import * as tf from '@tensorflow/tfjs-core';

/** Streaming histogram over `[origin, origin + bins·width]`; counts live in a Float64Array of `bins`. */
export class StreamingHistogram {
  /** Number of bins (fixed). */
  readonly bins: number;
  /** Counts per bin; never reallocated. */
  readonly counts: Float64Array;
  /** Whether the histogram is of non-negative values anchored at 0 (a histogram of |x|). */
  readonly anchoredAtZero: boolean;
  /** Left edge of bin 0. */
  origin = 0;
  /** Bin width; 0 while every value seen so far is the same (then all mass sits in bin 0 at `origin`). */
  width = 0;
  /** Right edge of the last bin (kept explicitly: `origin + bins·width` may round below the data max). */
  top = 0;
  /** Total count. */
  total = 0;

  constructor(bins: number, anchoredAtZero: boolean) {
    this.bins = bins;
    this.counts = new Float64Array(bins);
    this.anchoredAtZero = anchoredAtZero;
  }

  /** Numbers held by this histogram (constant). */
  get stateSize(): number {
    return this.counts.length + 4;
  }

  /**
   * Adds the values of a float32 tensor whose smallest and largest elements are `lo` and `hi`
   * (already read by the caller, who has checked that they are finite).
   */
  add(values: tf.Tensor, lo: number, hi: number): void {
    if (values.size === 0) return;
    if (this.anchoredAtZero) lo = 0;
    if (this.total === 0) {
      this.origin = lo;
      this.width = (hi - lo) / this.bins;
      this.top = hi;
    } else {
      this.grow(lo, hi);
    }
    if (this.width === 0) {
      // Still a single point (every value so far equals `origin`).
      this.counts[0]! += values.size;
      this.total += values.size;
      return;
    }
    const binCounts = tf.tidy(() => {
      const flat = tf.reshape(tf.cast(values, 'float32'), [-1]) as tf.Tensor1D;
      const idx = tf.clipByValue(
        tf.floor(tf.div(tf.sub(flat, this.origin), this.width)),
        0,
        this.bins - 1,
      );
      return tf.bincount(tf.cast(idx, 'int32') as tf.Tensor1D, tf.tensor1d([], 'int32'), this.bins);
    });
    const data = binCounts.dataSync();
    binCounts.dispose();
    for (let j = 0; j < this.bins; j++) this.counts[j]! += data[j]!;
    this.total += values.size;
  }

  /** Widens the grid so that it covers `[lo, hi]`, merging old bins exactly. */
  private grow(lo: number, hi: number): void {
    if (this.width === 0) {
      const point = this.origin;
      const newLo = Math.min(point, lo);
      const newHi = Math.max(point, hi);
      if (newHi === newLo) return;
      const n = this.counts[0]!;
      this.counts[0] = 0;
      this.origin = newLo;
      this.width = (newHi - newLo) / this.bins;
      this.top = newHi;
      this.counts[this.indexOf(point)]! += n;
      return;
    }
    if (lo >= this.origin && hi <= this.top) return;
    const w = this.width;
    const B = this.bins;
    // Shift the origin down by a whole number of old bins, then widen bins by an integer factor.
    let a = lo < this.origin ? Math.ceil((this.origin - lo) / w) : 0;
    while (this.origin - a * w > lo) a++;
    const newOrigin = this.origin - a * w;
    const newHi = Math.max(hi, this.top);
    let k = Math.max(1, Math.ceil((newHi - newOrigin) / (B * w)));
    while (newOrigin + k * B * w < newHi) k++;
    const old = Float64Array.from(this.counts);
    this.counts.fill(0);
    for (let j = 0; j < B; j++) {
      const c = old[j]!;
      if (c !== 0) this.counts[Math.min(B - 1, Math.floor((j + a) / k))]! += c;
    }
    this.origin = newOrigin;
    this.width = k * w;
    this.top = Math.max(newHi, newOrigin + B * this.width);
  }

  /** Bin holding value `v` (clamped to the grid). */
  indexOf(v: number): number {
    if (this.width === 0) return 0;
    return Math.min(this.bins - 1, Math.max(0, Math.floor((v - this.origin) / this.width)));
  }

  /** Left edge of bin `j` (`j = bins` gives the right edge of the last bin). */
  edge(j: number): number {
    return this.origin + j * this.width;
  }

  /** Index of the last bin with a non-zero count, or -1 when empty. */
  lastNonzero(): number {
    for (let j = this.bins - 1; j >= 0; j--) if (this.counts[j]! > 0) return j;
    return -1;
  }

  /**
   * The value below which a fraction `q` (0..1) of the mass lies, interpolating linearly inside
   * the bin where the cumulative count crosses `q·total` (mass assumed uniform within a bin).
   */
  quantile(q: number): number {
    if (this.width === 0) return this.origin;
    const target = q * this.total;
    let cum = 0;
    let last = 0;
    for (let j = 0; j < this.bins; j++) {
      const c = this.counts[j]!;
      if (c === 0) continue;
      if (cum + c >= target) return this.edge(j) + this.width * Math.max(0, (target - cum) / c);
      cum += c;
      last = j;
    }
    return this.edge(last + 1);
  }
}
