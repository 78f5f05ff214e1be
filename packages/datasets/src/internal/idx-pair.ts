import { arrayDataset, TensorpressError } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import type { IdxArray } from '../read-idx.js';
import { rememberLabels } from './labels.js';

// uint8 -> [0, 1]: the exact float32 of k / 255, looked up rather than divided per pixel
const UNIT = Float32Array.from({ length: 256 }, (_, k) => k / 255);

/** Options shared by the IDX pair loaders. */
export interface IdxPairOptions {
  numClasses?: number;
  flatten?: boolean;
}

/**
 * Turns an images array `[N, ...example]` and a labels array `[N]` into a dataset.
 * A 2-D example (`[H, W]`) gains a channel axis (`[H, W, 1]`, NHWC).
 */
export function idxPairToDataset(
  images: IdxArray,
  labels: IdxArray,
  names: { images: string; labels: string },
  options: IdxPairOptions = {},
): Dataset {
  if (images.shape.length < 2) {
    throw new TensorpressError(
      'DATA_INVALID',
      `${names.images}: images need at least 2 dimensions [count, ...example], got [${images.shape.join(', ')}]`,
      { file: names.images },
    );
  }
  if (labels.shape.length !== 1) {
    throw new TensorpressError(
      'DATA_INVALID',
      `${names.labels}: labels need 1 dimension [count], got [${labels.shape.join(', ')}]`,
      { file: names.labels },
    );
  }
  const n = images.shape[0]!;
  if (labels.shape[0] !== n) {
    throw new TensorpressError(
      'DATA_INVALID',
      `${names.images} holds ${n} images but ${names.labels} holds ${labels.shape[0]} labels`,
      { images: names.images, labels: names.labels },
    );
  }
  if (n === 0) {
    throw new TensorpressError('DATA_INVALID', `${names.images} holds no images`, { file: names.images });
  }
  const y = labels.data;
  const numClasses = options.numClasses;
  if (numClasses !== undefined) {
    for (let i = 0; i < n; i++) {
      if (y[i]! >= numClasses) {
        throw new TensorpressError(
          'DATA_INVALID',
          `${names.labels}: label ${i} is ${y[i]}, out of range for ${numClasses} classes (byte offset ${8 + i})`,
          { file: names.labels, index: i },
        );
      }
    }
  }
  const example = images.shape.slice(1);
  if (example.length === 2) example.push(1);
  const per = example.reduce((a, b) => a * b, 1);
  const px = images.data;
  const x = new Float32Array(px.length);
  for (let i = 0; i < px.length; i++) x[i] = UNIT[px[i]!]!;
  const exampleShape = options.flatten ? [per] : example;
  return rememberLabels(arrayDataset({ x, y, exampleShape, ...(numClasses !== undefined ? { numClasses } : {}) }), y);
}
