/**
 * `Tile` by block copies. tfjs' batch-norm gradient tiles per-channel statistics to the full
 * activation shape; the wasm and cpu kernels compute a multi-index per output element and took
 * up to half a second per step on a 64×28×28×16 map. Here each input row is copied once and every
 * repetition is a `copyWithin` doubling (memcpy speed). Strings keep the backend's own kernel.
 */
import type { TypedArray } from '@tensorflow/tfjs-core';
import type { Impl } from './scope.js';
import { need } from './scope.js';

export const tile: Impl = (s, inputs, attrs) => {
  const x = need(inputs, 'x');
  const reps = attrs['reps'] as number[];
  const shape = x.shape;
  if (reps.length !== shape.length) throw new Error(`Tile: reps [${reps.join(',')}] do not match rank ${shape.length}`);
  const outShape = shape.map((d, i) => d * reps[i]!);
  const { info, values: out } = s.output(outShape, x.dtype);
  if (out.length === 0) return info;
  tileInto(s.values(x), shape, reps, out);
  return info;
};

/** Writes `tile(src, reps)` into `out` (row-major). */
export function tileInto(src: TypedArray, shape: readonly number[], reps: readonly number[], out: TypedArray): void {
  const rank = shape.length;
  if (rank === 0) {
    out[0] = src[0]!;
    return;
  }
  const srcStride = new Array<number>(rank + 1).fill(1);
  const outStride = new Array<number>(rank + 1).fill(1);
  for (let d = rank - 1; d >= 0; d--) {
    srcStride[d] = srcStride[d + 1]! * shape[d]!;
    outStride[d] = outStride[d + 1]! * shape[d]! * reps[d]!;
  }
  const fill = (d: number, from: number, to: number): void => {
    const size = shape[d]!;
    if (d === rank - 1) {
      out.set(src.subarray(from, from + size), to);
    } else {
      for (let i = 0; i < size; i++) fill(d + 1, from + i * srcStride[d + 1]!, to + i * outStride[d + 1]!);
    }
    // Repeat the block just written reps[d] times, doubling the copied span each round.
    const block = size * outStride[d + 1]!;
    const total = block * reps[d]!;
    for (let done = block; done < total; ) {
      const n = Math.min(done, total - done);
      out.copyWithin(to + done, to, to + n);
      done += n;
    }
  };
  fill(0, 0, 0);
}
