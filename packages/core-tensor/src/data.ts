import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from './errors.js';
import { createRng, permutation } from './random.js';

/** One batch: inputs `x` (NHWC or [N, features]) and integer class labels `y` ([N], int32). The receiver disposes both. */
export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor1D;
}

/** Options for iterating a dataset in batches. */
export interface BatchOptions {
  /** Shuffle with a seeded permutation before batching. Default false. */
  shuffle?: boolean;
  /** Seed of the shuffle. Default 0. */
  seed?: number;
  /** Drop a last, smaller batch. Default false. */
  dropRemainder?: boolean;
  /**
   * Leave out this many leading batches (of the same order: shuffled or not) without building
   * them; resuming a training epoch mid-way uses it. Default 0. Every dataset must honour it.
   */
  skip?: number;
}

/**
 * A finite labelled dataset that yields batches as tensors. Memory stays on the JS side
 * until a batch is requested, so a dataset never holds GPU or wasm memory between batches.
 */
export interface Dataset {
  /** Number of examples. */
  readonly size: number;
  /** Shape of one example, e.g. [28, 28, 1]. */
  readonly exampleShape: readonly number[];
  /** Number of classes, when known. */
  readonly numClasses: number;
  /** Batches in order (or seeded-shuffled), after `options.skip` batches. Each yielded batch belongs to the caller. */
  batches(batchSize: number, options?: BatchOptions): IterableIterator<Batch>;
  /** A dataset over the examples at `indices` (no copy of the pixel data until batches are made). */
  subset(indices: ArrayLike<number>): Dataset;
}

/** Array-backed data: `x` holds `size * prod(exampleShape)` floats, `y` holds `size` class ids. */
export interface ArrayData {
  x: Float32Array;
  y: Int32Array | Uint8Array | number[];
  exampleShape: readonly number[];
  numClasses?: number;
}

/**
 * A dataset over flat arrays, with seeded shuffling and batching. Inputs are never copied
 * or modified; each batch gathers its rows into a new buffer.
 */
export function arrayDataset(data: ArrayData): Dataset {
  const exampleShape = [...data.exampleShape];
  const per = exampleShape.reduce((a, b) => a * b, 1);
  if (!Number.isInteger(per) || per <= 0) {
    throw new TensorpressError('DATA_INVALID', `exampleShape [${exampleShape.join(', ')}] must be positive integers`);
  }
  if (data.x.length % per !== 0) {
    throw new TensorpressError(
      'DATA_INVALID',
      `x has ${data.x.length} values, not a multiple of one example (${per} values for shape [${exampleShape.join(', ')}])`,
    );
  }
  const size = data.x.length / per;
  if (data.y.length !== size) {
    throw new TensorpressError('DATA_INVALID', `x holds ${size} examples but y holds ${data.y.length} labels`);
  }
  let maxLabel = -1;
  for (let i = 0; i < data.y.length; i++) {
    const v = data.y[i]!;
    if (!Number.isInteger(v) || v < 0) {
      throw new TensorpressError('DATA_INVALID', `label y[${i}] = ${v} is not a non-negative integer`);
    }
    if (v > maxLabel) maxLabel = v;
  }
  const numClasses = data.numClasses ?? maxLabel + 1;
  if (maxLabel >= numClasses) {
    throw new TensorpressError('DATA_INVALID', `label ${maxLabel} is out of range for numClasses=${numClasses}`);
  }
  return indexedDataset(data.x, data.y, exampleShape, numClasses, null);
}

function indexedDataset(
  x: Float32Array,
  y: ArrayLike<number>,
  exampleShape: number[],
  numClasses: number,
  indices: Int32Array | null,
): Dataset {
  const per = exampleShape.reduce((a, b) => a * b, 1);
  const size = indices ? indices.length : x.length / per;
  const at = (i: number): number => (indices ? indices[i]! : i);
  return {
    size,
    exampleShape,
    numClasses,
    *batches(batchSize: number, options: BatchOptions = {}): IterableIterator<Batch> {
      if (!Number.isInteger(batchSize) || batchSize <= 0) {
        throw new TensorpressError('DATA_INVALID', `batchSize must be a positive integer, got ${batchSize}`);
      }
      const skip = options.skip ?? 0;
      if (!Number.isInteger(skip) || skip < 0) {
        throw new TensorpressError('DATA_INVALID', `skip must be an integer >= 0, got ${skip}`);
      }
      const order = options.shuffle ? permutation(size, createRng(options.seed ?? 0)) : null;
      for (let start = skip * batchSize; start < size; start += batchSize) {
        const n = Math.min(batchSize, size - start);
        if (n < batchSize && options.dropRemainder) return;
        const bx = new Float32Array(n * per);
        const by = new Int32Array(n);
        for (let k = 0; k < n; k++) {
          const src = at(order ? order[start + k]! : start + k);
          bx.set(x.subarray(src * per, (src + 1) * per), k * per);
          by[k] = y[src]!;
        }
        yield { x: tf.tensor(bx, [n, ...exampleShape], 'float32'), y: tf.tensor1d(by, 'int32') };
      }
    },
    subset(sub: ArrayLike<number>): Dataset {
      const idx = new Int32Array(sub.length);
      for (let i = 0; i < sub.length; i++) {
        const v = sub[i]!;
        if (!Number.isInteger(v) || v < 0 || v >= size) {
          throw new TensorpressError('DATA_INVALID', `subset index ${v} is out of range [0, ${size})`);
        }
        idx[i] = at(v);
      }
      return indexedDataset(x, y, exampleShape, numClasses, idx);
    },
  };
}
