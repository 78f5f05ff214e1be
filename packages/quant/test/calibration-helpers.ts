/** Helpers shared by the calibration tests: feeding batches, seeded samples, numpy's percentile. */
import * as tf from '@tensorflow/tfjs-core';
import { createRng } from '@tensorpress/core-tensor';
import { createCollector, type CalibrationMethod, type CollectorOptions, type RangeCollector, type RangeInitMethod } from '../src/calibration.js';

/** Every calibration and range-init method name. */
export type Method = CalibrationMethod | RangeInitMethod;
/** Every method, for checks that hold for all of them. */
export const ALL_METHODS: Method[] = [
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
export function feed(c: RangeCollector, batches: ReadonlyArray<ArrayLike<number>>, shape?: number[]): RangeCollector {
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

/** The range a collector of `method` gives after observing `batches`. */
export function collect(method: Method, batches: ReadonlyArray<ArrayLike<number>>, options: Partial<CollectorOptions> = {}) {
  return feed(createCollector(method, { name: 'act', ...options }), batches).range();
}

/** numpy.percentile(values, p) with the default linear interpolation. */
export function npPercentile(values: ArrayLike<number>, p: number): number {
  const s = Float64Array.from(values).sort();
  const pos = (p / 100) * (s.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(s.length - 1, lo + 1);
  return s[lo]! + (pos - lo) * (s[hi]! - s[lo]!);
}

/** Seeded Laplace(0, 1) samples (heavy tails: clipping calibrators have something to clip). */
export function seededLaplace(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const u = rng.next() - 0.5;
    out.push(-Math.sign(u) * Math.log(1 - 2 * Math.abs(u)));
  }
  return out;
}

/** Seeded standard normal samples (Box-Muller). */
export function seededGauss(n: number, seed: number): number[] {
  const rng = createRng(seed);
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()));
  return out;
}
