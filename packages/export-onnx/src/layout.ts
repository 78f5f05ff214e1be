/**
 * NHWC (inside tensorpress) ↔ NCHW (inside ONNX files). The rule both the writer and the reader
 * follow: a rank-4 activation is NHWC in the core graph and NCHW in the file; every other value is
 * the same on both sides. Weights are converted once, at the boundary.
 */
import type { ParamData } from '@tensorpress/core-tensor';

/** Axes of an NCHW tensor, taken in NHWC order: `transpose(nchw, NCHW_TO_NHWC)` is NHWC. */
export const NCHW_TO_NHWC = [0, 2, 3, 1] as const;
/** Axes of an NHWC tensor, taken in NCHW order. */
export const NHWC_TO_NCHW = [0, 3, 1, 2] as const;

/** The NCHW axis of a (possibly negative) NHWC axis of a rank-4 tensor. */
export function nhwcAxisToNchw(axis: number): number {
  const a = axis < 0 ? axis + 4 : axis;
  return [0, 2, 3, 1][a] ?? a;
}

/** The NHWC axis of a (possibly negative) NCHW axis of a rank-4 tensor. */
export function nchwAxisToNhwc(axis: number): number {
  const a = axis < 0 ? axis + 4 : axis;
  return [0, 3, 1, 2][a] ?? a;
}

/** Permutes a shape: `out[i] = shape[perm[i]]`. */
export function permuteShape<T>(shape: readonly T[], perm: readonly number[]): T[] {
  return perm.map((p) => shape[p]!);
}

/**
 * Transposes dense row-major data of `shape` by `perm` (out axis i = in axis perm[i]). A one-time
 * weight conversion at the file boundary, not a hot path.
 */
export function transposeData<T extends ParamData>(data: T, shape: readonly number[], perm: readonly number[]): T {
  const rank = shape.length;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  if (data.length === 0) return out;
  const outShape = permuteShape(shape, perm);
  const inStrides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1]! * shape[i + 1]!;
  const stridesByOut = perm.map((p) => inStrides[p]!);
  const idx = new Array<number>(rank).fill(0);
  let src = 0;
  for (let o = 0; o < data.length; o++) {
    out[o] = data[src]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      src += stridesByOut[d]!;
      if (idx[d]! < outShape[d]!) break;
      src -= stridesByOut[d]! * idx[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

/** Conv weight [kh, kw, cin/group, cout] (core) → [cout, cin/group, kh, kw] (ONNX). */
export const HWIO_TO_OIHW = [3, 2, 0, 1] as const;
/** Conv weight [cout, cin/group, kh, kw] (ONNX) → [kh, kw, cin/group, cout] (core). */
export const OIHW_TO_HWIO = [2, 3, 1, 0] as const;

/**
 * Row order of a Gemm weight behind a Flatten of an [h, w, c] map: ONNX flattens NCHW in C,H,W
 * order, tensorpress flattens NHWC in H,W,C order. Returns `rows` with `rows[chwIndex] = hwcIndex`.
 */
export function chwRowsFromHwc(h: number, w: number, c: number): Int32Array {
  const rows = new Int32Array(h * w * c);
  for (let ci = 0; ci < c; ci++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) rows[ci * h * w + y * w + x] = (y * w + x) * c + ci;
    }
  }
  return rows;
}

/** Gathers rows of a row-major [rows, cols] matrix: `out[i] = data[index[i]]`. */
export function gatherRows<T extends ParamData>(data: T, cols: number, index: Int32Array): T {
  const out = new (data.constructor as new (n: number) => T)(data.length);
  for (let i = 0; i < index.length; i++) out.set(data.subarray(index[i]! * cols, (index[i]! + 1) * cols) as never, i * cols);
  return out;
}

/** Inverse of a permutation given as an index array. */
export function invertIndex(index: Int32Array): Int32Array {
  const inv = new Int32Array(index.length);
  for (let i = 0; i < index.length; i++) inv[index[i]!] = i;
  return inv;
}
