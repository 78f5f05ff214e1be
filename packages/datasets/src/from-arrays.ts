import { arrayDataset, TensorpressError } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import { rememberLabels } from './internal/labels.js';
import { checkExampleShape, checkNumClasses } from './internal/shape.js';

/** Numbers accepted as example values: float32 is used as is, anything else is converted once. */
export type NumericArray = Float32Array | Float64Array | Int32Array | Int16Array | Int8Array | Uint32Array | Uint16Array | Uint8Array | Uint8ClampedArray | number[];

/**
 * A dataset over flat arrays: `x` holds `N * prod(exampleShape)` values, row-major, and `y`
 * holds `N` integer class ids. A `Float32Array` `x` is used without a copy (do not change it
 * afterwards); other numeric arrays are converted to float32 once. Neither input is modified.
 *
 * @example
 * const ds = fromArrays(pixels, labels, [28, 28, 1], 10);
 */
export function fromArrays(x: NumericArray, y: NumericArray, exampleShape: readonly number[], numClasses?: number): Dataset {
  const { shape } = checkExampleShape(exampleShape);
  checkNumClasses(numClasses);
  if (!ArrayBuffer.isView(x) && !Array.isArray(x)) {
    throw new TensorpressError('INPUT_INVALID', 'fromArrays: x must be a typed array or an array of numbers');
  }
  if (!ArrayBuffer.isView(y) && !Array.isArray(y)) {
    throw new TensorpressError('INPUT_INVALID', 'fromArrays: y must be a typed array or an array of numbers');
  }
  const xs = x instanceof Float32Array ? x : Float32Array.from(x);
  // Labels go through as given when core accepts the type, so non-integers are reported, not truncated.
  const ys = y instanceof Int32Array || y instanceof Uint8Array || Array.isArray(y) ? y : Array.from(y);
  const ds = arrayDataset({ x: xs, y: ys, exampleShape: shape, ...(numClasses !== undefined ? { numClasses } : {}) });
  return rememberLabels(ds, ys);
}
