import { TensorpressError } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import { fromArrays } from './from-arrays.js';
import { checkExampleShape, checkNumClasses } from './internal/shape.js';

/** One labelled example: `prod(exampleShape)` values, row-major, and a class id. */
export interface Example {
  x: Float32Array | ArrayLike<number>;
  y: number;
}

/** Options of {@link fromIterator} and {@link fromAsyncIterator}. */
export interface FromIteratorOptions {
  /** Take at most this many examples (the source is not read further). Needed for endless sources. */
  limit?: number;
  /** Number of classes; labels must be below it. Default: largest label + 1. */
  numClasses?: number;
}

class Collector {
  private x: Float32Array;
  private y: Int32Array;
  private count = 0;

  constructor(
    private readonly shape: number[],
    private readonly per: number,
    private readonly numClasses: number | undefined,
    limit: number | undefined,
  ) {
    const cap = Math.min(limit ?? 1024, 1024);
    this.x = new Float32Array(cap * per);
    this.y = new Int32Array(cap);
  }

  get size(): number {
    return this.count;
  }

  add(example: Example, index: number): void {
    if (example === null || typeof example !== 'object' || example.x === undefined || example.x === null) {
      throw new TensorpressError('DATA_INVALID', `example ${index}: expected an object { x, y }`, { index });
    }
    const { x, y } = example;
    if (typeof x !== 'object' || typeof x.length !== 'number') {
      throw new TensorpressError('DATA_INVALID', `example ${index}: x must be a Float32Array or an array of numbers`, { index });
    }
    if (x.length !== this.per) {
      throw new TensorpressError(
        'DATA_INVALID',
        `example ${index}: x has ${x.length} values, expected ${this.per} for shape [${this.shape.join(', ')}]`,
        { index, length: x.length, expected: this.per },
      );
    }
    if (!Number.isInteger(y) || y < 0 || (this.numClasses !== undefined && y >= this.numClasses)) {
      const range = this.numClasses !== undefined ? `[0, ${this.numClasses})` : '[0, ∞)';
      throw new TensorpressError('DATA_INVALID', `example ${index}: label ${String(y)} is not an integer in ${range}`, { index });
    }
    if (this.count === this.y.length) {
      const grownX = new Float32Array(this.x.length * 2);
      grownX.set(this.x);
      this.x = grownX;
      const grownY = new Int32Array(this.y.length * 2);
      grownY.set(this.y);
      this.y = grownY;
    }
    this.x.set(x, this.count * this.per);
    this.y[this.count++] = y;
  }

  finish(): Dataset {
    if (this.count === 0) {
      throw new TensorpressError('DATA_INVALID', 'the source yielded no examples');
    }
    // exact-size copies, so the spare capacity is released
    return fromArrays(this.x.slice(0, this.count * this.per), this.y.slice(0, this.count), this.shape, this.numClasses);
  }
}

function collector(exampleShape: readonly number[], options: FromIteratorOptions): Collector {
  const { shape, per } = checkExampleShape(exampleShape);
  checkNumClasses(options.numClasses);
  const { limit } = options;
  if (limit !== undefined && (!Number.isInteger(limit) || limit <= 0)) {
    throw new TensorpressError('INPUT_INVALID', `limit must be a positive integer, got ${String(limit)}`);
  }
  return new Collector(shape, per, options.numClasses, limit);
}

/**
 * Materialises a synchronous iterable of `{ x, y }` examples into an in-memory dataset.
 * Each example's length is checked against `exampleShape`; an error names the example's
 * index. Values are copied, so the source's arrays may be reused between examples.
 *
 * @example
 * const ds = fromIterator(rows.map((r) => ({ x: r.features, y: r.label })), [16], { numClasses: 3 });
 */
export function fromIterator(source: Iterable<Example>, exampleShape: readonly number[], options: FromIteratorOptions = {}): Dataset {
  const c = collector(exampleShape, options);
  if (typeof (source as Partial<Iterable<Example>> | null)?.[Symbol.iterator] !== 'function') {
    throw new TensorpressError('INPUT_INVALID', 'fromIterator: source must be iterable (use fromAsyncIterator for async sources)');
  }
  for (const example of source) {
    c.add(example, c.size);
    if (c.size === options.limit) break;
  }
  return c.finish();
}

/** {@link fromIterator} for an async iterable (a stream, an async generator, a paged API). */
export async function fromAsyncIterator(
  source: AsyncIterable<Example> | Iterable<Example>,
  exampleShape: readonly number[],
  options: FromIteratorOptions = {},
): Promise<Dataset> {
  const c = collector(exampleShape, options);
  const s = source as Partial<AsyncIterable<Example> & Iterable<Example>> | null;
  if (typeof s?.[Symbol.asyncIterator] !== 'function' && typeof s?.[Symbol.iterator] !== 'function') {
    throw new TensorpressError('INPUT_INVALID', 'fromAsyncIterator: source must be an async iterable or an iterable');
  }
  for await (const example of source) {
    c.add(example, c.size);
    if (c.size === options.limit) break;
  }
  return c.finish();
}
