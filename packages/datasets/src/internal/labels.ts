import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '@tensorpress/core-tensor';

// Labels of the datasets this package builds, so a split does not have to read them back
// through tensors. Weak: a dataset that is dropped takes its labels with it.
const known = new WeakMap<Dataset, ArrayLike<number>>();

/** Records the labels of a dataset this package built (one label per example, in order). */
export function rememberLabels<D extends Dataset>(dataset: D, labels: ArrayLike<number>): D {
  known.set(dataset, labels);
  return dataset;
}

/** A subset of `dataset` that keeps the labels known, when they are. */
export function subsetWithLabels(dataset: Dataset, indices: Int32Array): Dataset {
  const sub = dataset.subset(indices);
  const parent = known.get(dataset);
  if (parent) {
    const labels = new Int32Array(indices.length);
    for (let i = 0; i < indices.length; i++) labels[i] = parent[indices[i]!]!;
    known.set(sub, labels);
  }
  return sub;
}

/**
 * The labels of any dataset, in its order. Datasets built here answer from memory; others
 * are read once through `batches` (the labels are the only part kept).
 */
export function labelsOf(dataset: Dataset): ArrayLike<number> {
  const cached = known.get(dataset);
  if (cached) return cached;
  const labels = new Int32Array(dataset.size);
  let at = 0;
  for (const batch of dataset.batches(4096)) {
    try {
      const y = batch.y.dataSync();
      labels.set(y, at);
      at += y.length;
    } finally {
      tf.dispose([batch.x, batch.y]);
    }
  }
  known.set(dataset, labels);
  return labels;
}
