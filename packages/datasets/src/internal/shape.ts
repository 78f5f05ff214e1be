import { TensorpressError } from '@tensorpress/core-tensor';

/** Validates an example shape and returns a copy with its element count. */
export function checkExampleShape(shape: readonly number[], what = 'exampleShape'): { shape: number[]; per: number } {
  if (!Array.isArray(shape) || shape.length === 0) {
    throw new TensorpressError('INPUT_INVALID', `${what} must be a non-empty array of positive integers, e.g. [28, 28, 1]`);
  }
  let per = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d <= 0) {
      throw new TensorpressError(
        'INPUT_INVALID',
        `${what} [${shape.join(', ')}] must hold positive integers; got ${String(d)}`,
      );
    }
    per *= d;
  }
  return { shape: [...shape], per };
}

/** Validates an optional class count. */
export function checkNumClasses(numClasses: number | undefined): void {
  if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses <= 0)) {
    throw new TensorpressError('INPUT_INVALID', `numClasses must be a positive integer, got ${String(numClasses)}`);
  }
}
