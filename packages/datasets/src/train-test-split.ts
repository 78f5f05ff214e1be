import { createRng, permutation, TensorpressError } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import { labelsOf, subsetWithLabels } from './internal/labels.js';
import type { DatasetSplit } from './types.js';

/** Options of {@link trainTestSplit}. */
export interface TrainTestSplitOptions {
  /** Share of examples that go to test, strictly between 0 and 1. */
  testFraction: number;
  /** Seed of the shuffle. Default 0. */
  seed?: number;
  /** Keep each class's share in both parts: `round(testFraction * n_c)` of class c go to test. Default false. */
  stratify?: boolean;
}

/**
 * Splits a dataset into train and test by a seeded shuffle: `round(testFraction * size)`
 * examples go to test (per class when `stratify`). Both parts come out in shuffled order and
 * share the parent's memory (`subset`, no copy). The same seed gives the same split.
 * Stratifying needs the labels: datasets made by this package know them; others are read
 * once through `batches`.
 */
export function trainTestSplit(dataset: Dataset, options: TrainTestSplitOptions): DatasetSplit {
  const { testFraction, seed = 0, stratify = false } = options;
  if (!(testFraction > 0 && testFraction < 1)) {
    throw new TensorpressError('INPUT_INVALID', `trainTestSplit: testFraction must be in (0, 1), got ${String(testFraction)}`);
  }
  if (!Number.isInteger(seed)) {
    throw new TensorpressError('INPUT_INVALID', `trainTestSplit: seed must be an integer, got ${String(seed)}`);
  }
  const n = dataset.size;
  const rng = createRng(seed);
  let train: Int32Array;
  let test: Int32Array;
  if (!stratify) {
    const p = permutation(n, rng);
    const nTest = Math.round(testFraction * n);
    test = p.slice(0, nTest);
    train = p.slice(nTest);
  } else {
    const labels = labelsOf(dataset);
    const byClass = new Map<number, number[]>();
    for (let i = 0; i < n; i++) {
      const c = labels[i]!;
      let list = byClass.get(c);
      if (!list) byClass.set(c, (list = []));
      list.push(i);
    }
    const trainList: number[] = [];
    const testList: number[] = [];
    for (const c of [...byClass.keys()].sort((a, b) => a - b)) {
      const members = byClass.get(c)!;
      const p = permutation(members.length, rng);
      const nTest = Math.round(testFraction * members.length);
      for (let k = 0; k < p.length; k++) (k < nTest ? testList : trainList).push(members[p[k]!]!);
    }
    // mix the classes, so each part's order is shuffled like the unstratified split
    const mix = (list: number[]): Int32Array => {
      const p = permutation(list.length, rng);
      return Int32Array.from(p, (k) => list[k]!);
    };
    train = mix(trainList);
    test = mix(testList);
  }
  if (train.length === 0 || test.length === 0) {
    throw new TensorpressError(
      'INPUT_INVALID',
      `trainTestSplit: testFraction ${testFraction} of ${n} examples leaves ${train.length} for train and ${test.length} for test; both need at least one`,
    );
  }
  return { train: subsetWithLabels(dataset, train), test: subsetWithLabels(dataset, test) };
}
