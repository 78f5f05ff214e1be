/**
 * Activation statistics collectors: the ranges post-training calibration and QAT range
 * initialisation give to activation quantizers. Every collector streams: it keeps O(bins)
 * numbers however many batches it sees.
 *
 * Methods follow their reference descriptions: min-max and moving-average min-max (PyTorch
 * MinMaxObserver / MovingAverageMinMaxObserver, ONNX Runtime MinMaxCalibrater), percentile and
 * entropy (ONNX Runtime PercentileCalibrater / EntropyCalibrater, TensorRT's KL procedure), MSE
 * (an exhaustive variant of PyTorch HistogramObserver's search), and NNCF's range initialisers
 * (min_max, mean_min_max, threesigma, percentile, mean_percentile).
 */
import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, TensorpressError } from '@tensorpress/core-tensor';
import { batchExtrema, batchMoments, batchQuantile, type BatchExtrema } from './internal/calib-stats.js';
import { klSearch } from './internal/calib-kl.js';
import { mseAsymmetricEdges, mseSymmetricEdge } from './internal/calib-mse.js';
import { StreamingHistogram } from './internal/histogram.js';

/** Post-training calibration methods. */
export type CalibrationMethod = 'minmax' | 'moving_average_minmax' | 'percentile' | 'kl' | 'mse';

/** QAT range-initialisation methods (NNCF's names). */
export type RangeInitMethod = 'min_max' | 'mean_min_max' | 'threesigma' | 'percentile' | 'mean_percentile';

/** Options of {@link createCollector}. */
export interface CollectorOptions {
  /** Node/value name, used in error messages. */
  name: string;
  /**
   * Bit width the range will be used with (KL: 2^(bits-1) quantized bins for a symmetric signed
   * range, 2^bits for unsigned; MSE: the grid it evaluates). Integer in [2, 16]. Default 8.
   */
  bits?: number;
  /**
   * Whether the range will be used symmetrically, [-t, t] (histogram of |x|), or as [min, max].
   * Default false. `kl` always searches |x| and returns [-t, t] unless the data had no negatives
   * and this is false ([0, t] then).
   */
  symmetric?: boolean;
  /**
   * Upper percentile in (0, 100] for 'percentile' (default 99.99, the PTQ convention) and
   * 'mean_percentile' (default 99.9, NNCF's range-init default). Symmetric: percentile of |x|.
   */
  percentile?: number;
  /**
   * Lower percentile in [0, 100) for the asymmetric 'percentile' / 'mean_percentile' ranges.
   * Default `100 - percentile` (NNCF's range init: 0.1 with 99.9).
   */
  lowerPercentile?: number;
  /**
   * Histogram bins for 'percentile', 'kl' and 'mse': an integer >= 16, and for 'kl' at least the
   * number of quantized bins (2^(bits-1) symmetric, 2^bits otherwise). Default 2048.
   */
  bins?: number;
  /** Averaging constant c in (0, 1] of 'moving_average_minmax' (PyTorch's default 0.01). */
  averagingConstant?: number;
  /**
   * 'kl': a percentile of |x| in [0, 100] below which the threshold may not go, so that KL clips at
   * most `100 − klFloorPercentile` % of the values (the percentile calibrator as the fallback where
   * the entropy search clips too hard). Default 99.99; 0 keeps TensorRT's threshold as it is.
   */
  klFloorPercentile?: number;
}

/** Streaming statistics of one tensor: memory does not grow with the number of observed samples. */
export interface RangeCollector {
  /** The method this collector implements. */
  readonly method: CalibrationMethod | RangeInitMethod;
  /**
   * Adds one batch (any shape, any numeric dtype; an empty tensor is ignored and not counted).
   * NaN or ±Inf → TensorpressError `QUANT_NONFINITE` naming `options.name` and how many
   * non-finite values were met; the collector is left as it was. The tensor is not disposed.
   */
  observe(x: tf.Tensor): void;
  /** Number of observed (non-empty) batches. */
  readonly batches: number;
  /**
   * How many numbers the collector's state holds: constant in the number of batches
   * (a histogram's bins plus a few scalars). Exposed so callers and tests can check that.
   */
  readonly stateSize: number;
  /**
   * The chosen range (min <= 0 <= max is NOT enforced here; min may be > 0 for positive data).
   * Throws TensorpressError `STATE_INVALID` if nothing was observed.
   */
  range(): { min: number; max: number };
}

const METHODS: ReadonlyArray<CalibrationMethod | RangeInitMethod> = [
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

interface Resolved {
  name: string;
  bits: number;
  symmetric: boolean;
  percentile: number;
  lowerPercentile: number;
  bins: number;
  averagingConstant: number;
  klFloorPercentile: number;
}

/**
 * Creates a streaming range collector.
 *
 * | method | range |
 * |---|---|
 * | `minmax`, `min_max` | global min and max |
 * | `moving_average_minmax` | first batch sets min/max, then min += c·(batchMin − min), same for max |
 * | `mean_min_max` | mean over batches of per-batch min and max |
 * | `threesigma` | mean ± 3·std over all values (population std, streaming) |
 * | `percentile` | from a streaming histogram: [P(lower), P(upper)], or [-t, t] with t = P(upper) of \|x\| when symmetric |
 * | `mean_percentile` | mean over batches of each batch's exact percentiles (same conventions) |
 * | `kl` | TensorRT's entropy calibration on a histogram of \|x\| (bin 0 replaced by bin 1), never below the `klFloorPercentile` (99.99) percentile of \|x\| |
 * | `mse` | range minimising the expected quantise-dequantise squared error at `bits` (exact per histogram bin): symmetric, every t on a bin edge with the grid q·t/qmax (qmax = 2^(bits−1)−1, or 2^bits−1 when no value was negative); asymmetric, PyTorch's shrinking path over [min, max] with 2^bits levels over the range widened to contain 0 |
 *
 * With `symmetric`, min-max style methods return [-m, m] with m the larger magnitude of their
 * min and max.
 *
 * @throws ConfigError for an unknown method or an option out of range.
 */
export function createCollector(method: CalibrationMethod | RangeInitMethod, options: CollectorOptions): RangeCollector {
  const o = resolveOptions(method, options);
  switch (method) {
    case 'minmax':
    case 'min_max':
      return new MinMaxCollector(method, o);
    case 'moving_average_minmax':
      return new MovingAverageCollector(method, o);
    case 'mean_min_max':
      return new MeanMinMaxCollector(method, o);
    case 'threesigma':
      return new ThreeSigmaCollector(method, o);
    case 'mean_percentile':
      return new MeanPercentileCollector(method, o);
    case 'percentile':
    case 'kl':
    case 'mse':
      return new HistogramCollector(method, o);
    default:
      throw new ConfigError('$.method', `unknown calibration method ${JSON.stringify(method)}; expected one of ${METHODS.join(', ')}`);
  }
}

function resolveOptions(method: string, options: CollectorOptions): Resolved {
  if (!METHODS.includes(method as CalibrationMethod)) {
    throw new ConfigError('$.method', `unknown calibration method ${JSON.stringify(method)}; expected one of ${METHODS.join(', ')}`);
  }
  if (typeof options?.name !== 'string' || options.name === '') {
    throw new ConfigError('$.name', 'expected a non-empty node/value name');
  }
  const bits = options.bits ?? 8;
  if (!Number.isInteger(bits) || bits < 2 || bits > 16) {
    throw new ConfigError('$.bits', `expected an integer in [2, 16], got ${bits} (for "${options.name}")`);
  }
  const percentile = options.percentile ?? (method === 'mean_percentile' ? 99.9 : 99.99);
  if (!(percentile > 0 && percentile <= 100)) {
    throw new ConfigError('$.percentile', `expected a number in (0, 100], got ${percentile} (for "${options.name}")`);
  }
  const lowerPercentile = options.lowerPercentile ?? 100 - percentile;
  if (!(lowerPercentile >= 0 && lowerPercentile < 100) || lowerPercentile > percentile) {
    throw new ConfigError(
      '$.lowerPercentile',
      `expected a number in [0, 100) not above percentile ${percentile}, got ${lowerPercentile} (for "${options.name}")`,
    );
  }
  const symmetric = options.symmetric ?? false;
  const bins = options.bins ?? 2048;
  const minBins = method === 'kl' ? 2 ** (symmetric ? bits - 1 : bits) : 16;
  if (!Number.isInteger(bins) || bins < minBins || bins > 1 << 20) {
    throw new ConfigError(
      '$.bins',
      `expected an integer in [${minBins}, ${1 << 20}]${method === 'kl' ? ` (kl needs at least one histogram bin per quantized bin at ${bits} bits)` : ''}, got ${bins} (for "${options.name}")`,
    );
  }
  const averagingConstant = options.averagingConstant ?? 0.01;
  if (!(averagingConstant > 0 && averagingConstant <= 1)) {
    throw new ConfigError('$.averagingConstant', `expected a number in (0, 1], got ${averagingConstant} (for "${options.name}")`);
  }
  const klFloorPercentile = options.klFloorPercentile ?? 99.99;
  if (!(klFloorPercentile >= 0 && klFloorPercentile <= 100)) {
    throw new ConfigError('$.klFloorPercentile', `expected a number in [0, 100], got ${klFloorPercentile} (for "${options.name}")`);
  }
  return { name: options.name, bits, symmetric, percentile, lowerPercentile, bins, averagingConstant, klFloorPercentile };
}

/** Shared bookkeeping: the non-finite check, batch count, global extrema. */
abstract class BaseCollector implements RangeCollector {
  readonly method: CalibrationMethod | RangeInitMethod;
  protected readonly o: Resolved;
  batches = 0;
  /** Global min / max of everything observed. */
  protected min = Infinity;
  protected max = -Infinity;

  constructor(method: CalibrationMethod | RangeInitMethod, o: Resolved) {
    this.method = method;
    this.o = o;
  }

  get stateSize(): number {
    return 3 + this.extraState();
  }

  observe(x: tf.Tensor): void {
    const s = batchExtrema(x, this.o.name);
    if (s === null) return;
    this.update(x, s);
    this.min = Math.min(this.min, s.min);
    this.max = Math.max(this.max, s.max);
    this.batches++;
  }

  range(): { min: number; max: number } {
    if (this.batches === 0) {
      throw new TensorpressError(
        'STATE_INVALID',
        `calibration of "${this.o.name}" (${this.method}): range() was called before any batch was observed; run calibration data through the model first`,
        { name: this.o.name, method: this.method },
      );
    }
    return this.compute();
  }

  /** Folds one checked, non-empty batch into the state (`this.min/max` still exclude it). */
  protected abstract update(x: tf.Tensor, s: BatchExtrema): void;
  protected abstract compute(): { min: number; max: number };
  protected abstract extraState(): number;

  /** [lo, hi], or [-m, m] with m = max(|lo|, |hi|) when symmetric. */
  protected shape(lo: number, hi: number): { min: number; max: number } {
    if (!this.o.symmetric) return { min: lo, max: hi };
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    return symmetricRange(m);
  }
}

class MinMaxCollector extends BaseCollector {
  protected update(): void {}
  protected extraState(): number {
    return 0;
  }
  protected compute(): { min: number; max: number } {
    return this.shape(this.min, this.max);
  }
}

class MovingAverageCollector extends BaseCollector {
  private avgMin = 0;
  private avgMax = 0;
  protected update(_x: tf.Tensor, s: BatchExtrema): void {
    if (this.batches === 0) {
      this.avgMin = s.min;
      this.avgMax = s.max;
      return;
    }
    const c = this.o.averagingConstant;
    this.avgMin += c * (s.min - this.avgMin);
    this.avgMax += c * (s.max - this.avgMax);
  }
  protected extraState(): number {
    return 2;
  }
  protected compute(): { min: number; max: number } {
    return this.shape(this.avgMin, this.avgMax);
  }
}

class MeanMinMaxCollector extends BaseCollector {
  private sumMin = 0;
  private sumMax = 0;
  protected update(_x: tf.Tensor, s: BatchExtrema): void {
    this.sumMin += s.min;
    this.sumMax += s.max;
  }
  protected extraState(): number {
    return 2;
  }
  protected compute(): { min: number; max: number } {
    return this.shape(this.sumMin / this.batches, this.sumMax / this.batches);
  }
}

/** Mean ± 3σ with batch moments merged by Chan et al.'s parallel formula (float64 on the host). */
class ThreeSigmaCollector extends BaseCollector {
  private n = 0;
  private mean = 0;
  private m2 = 0;
  protected update(x: tf.Tensor): void {
    const b = batchMoments(x);
    const n = this.n + b.n;
    const delta = b.mean - this.mean;
    this.mean += (delta * b.n) / n;
    this.m2 += b.m2 + ((delta * delta * this.n) / n) * b.n;
    this.n = n;
  }
  protected extraState(): number {
    return 3;
  }
  protected compute(): { min: number; max: number } {
    const std = Math.sqrt(Math.max(0, this.m2 / this.n));
    return this.shape(this.mean - 3 * std, this.mean + 3 * std);
  }
}

class MeanPercentileCollector extends BaseCollector {
  private sumLo = 0;
  private sumHi = 0;
  protected update(x: tf.Tensor): void {
    const { symmetric, percentile, lowerPercentile } = this.o;
    if (symmetric) {
      this.sumHi += batchQuantile(x, percentile / 100, true);
      return;
    }
    this.sumLo += batchQuantile(x, lowerPercentile / 100, false);
    this.sumHi += batchQuantile(x, percentile / 100, false);
  }
  protected extraState(): number {
    return 2;
  }
  protected compute(): { min: number; max: number } {
    const hi = this.sumHi / this.batches;
    if (this.o.symmetric) return symmetricRange(hi);
    return { min: this.sumLo / this.batches, max: hi };
  }
}

/** 'percentile', 'kl' and 'mse': a streaming histogram of x (or of |x|) and a search on it. */
class HistogramCollector extends BaseCollector {
  private readonly hist: StreamingHistogram;

  constructor(method: 'percentile' | 'kl' | 'mse', o: Resolved) {
    super(method, o);
    this.hist = new StreamingHistogram(o.bins, method === 'kl' || o.symmetric);
  }

  protected update(x: tf.Tensor, s: BatchExtrema): void {
    if (!this.hist.anchoredAtZero) {
      this.hist.add(x, s.min, s.max);
      return;
    }
    const absMax = Math.max(Math.abs(s.min), Math.abs(s.max));
    // |x| is made and freed here; the histogram's own ops are tidied inside add().
    const abs = absOf(x);
    try {
      this.hist.add(abs, 0, absMax);
    } finally {
      abs.dispose();
    }
  }

  protected extraState(): number {
    return this.hist.stateSize;
  }

  protected compute(): { min: number; max: number } {
    const h = this.hist;
    const absMax = Math.max(Math.abs(this.min), Math.abs(this.max));
    switch (this.method) {
      case 'percentile': {
        if (h.anchoredAtZero) {
          return symmetricRange(Math.min(absMax, h.quantile(this.o.percentile / 100)));
        }
        const lo = clamp(h.quantile(this.o.lowerPercentile / 100), this.min, this.max);
        const hi = clamp(h.quantile(this.o.percentile / 100), this.min, this.max);
        return { min: lo, max: hi };
      }
      case 'kl': {
        const unsigned = this.min >= 0 && !this.o.symmetric;
        const quantBins = 2 ** (unsigned ? this.o.bits : this.o.bits - 1);
        let t = absMax;
        if (h.width > 0) {
          const { best } = klSearch(h.counts, quantBins);
          if (best >= 0) t = Math.min(absMax, best * h.width);
          if (this.o.klFloorPercentile > 0) t = Math.min(absMax, Math.max(t, h.quantile(this.o.klFloorPercentile / 100)));
        }
        return unsigned ? { min: 0, max: t } : symmetricRange(t);
      }
      default: {
        if (h.width === 0) return this.shape(this.min, this.max);
        if (h.anchoredAtZero) {
          // Non-negative data gets the unsigned symmetric grid (as quantParams gives it): 2^bits levels on [0, t].
          const k = mseSymmetricEdge(h.counts, h.width, this.o.bits, this.min >= 0);
          return symmetricRange(Math.min(absMax, k * h.width));
        }
        const [a, b] = mseAsymmetricEdges(h.counts, h.origin, h.width, this.o.bits);
        return { min: clamp(h.edge(a), this.min, this.max), max: clamp(h.edge(b), this.min, this.max) };
      }
    }
  }
}

function absOf(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.abs(tf.cast(x, 'float32')));
}

/** [-t, t] without a negative zero (ranges are compared and serialised). */
function symmetricRange(t: number): { min: number; max: number } {
  return { min: 0 - t, max: t };
}

function clamp(v: number, lo: number, hi: number): number {
  return Math.min(hi, Math.max(lo, v));
}
