/**
 * Typed-array loops for the remaining cpu hot spots of a training step: BatchMatMul (dense layers
 * and their gradients), MaxPool, Relu and Step (the relu gradient). tfjs' cpu versions index
 * through variable strides (matmul), per-element window bookkeeping (pooling) or an operator
 * closure shared by all unary kernels; these are monomorphic loops (matmul: eight outputs in
 * float64 locals by dot-lanes.ts, 5-10x faster). float32 only; anything else keeps tfjs' kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { dotLanes } from './dot-lanes.js';
import type { DotWalk } from './dot-lanes.js';
import type { Scope } from './scope.js';
import { matMulArgs, need } from './scope.js';

export function cpuBatchMatMul(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const args = matMulArgs(inputs, attrs);
  if (args == null) return s.call(original, inputs, attrs);
  const { a, b, ta, tb, batchA, batchB, m, k, n, outShape } = args;
  const batch = Math.max(batchA, batchB);
  const { info, values: out } = s.output(outShape, 'float32');
  const av = s.values(a);
  const bv = s.values(b);
  const A = new Float64Array(m * k);
  const B = new Float64Array(k * n);
  for (let t = 0; t < batch; t++) {
    if (t === 0 || batchA > 1) {
      const off = (batchA === 1 ? 0 : t) * m * k;
      if (ta) {
        for (let q = 0; q < k; q++) for (let i = 0; i < m; i++) A[i * k + q] = av[off + q * m + i]!;
      } else {
        A.set(av.subarray(off, off + m * k));
      }
    }
    if (t === 0 || batchB > 1) {
      const off = (batchB === 1 ? 0 : t) * k * n;
      if (tb) {
        for (let j = 0; j < n; j++) for (let q = 0; q < k; q++) B[q * n + j] = bv[off + j * k + q]!;
      } else {
        B.set(bv.subarray(off, off + k * n));
      }
    }
    gemm(A, B, out as Float32Array, t * m * n, m, k, n);
  }
  return info;
}

/** out[base + i·n + j] = Σ_q A[i·k + q] · B[q·n + j]: one run of k steps per row of A. */
function gemm(A: Float64Array, B: Float64Array, out: Float32Array, base: number, m: number, k: number, n: number): void {
  const walk: DotWalk = { a: A, aStarts: new Int32Array(1), aStep: 1, aLane: 0, b: B, bStarts: new Int32Array(1), bStep: n, runs: 1, length: k };
  for (let i = 0; i < m; i++) {
    walk.aStarts[0] = i * k;
    dotLanes(out, base + i * n, n, walk);
  }
}

/** MaxPool (NHWC), tfjs cpu semantics: strict `>` from -Infinity, padded cells never win. */
export function cpuMaxPool(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  if (x.dtype !== 'float32' || x.shape.length !== 4) return s.call(original, inputs, attrs);
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs['filterSize'] as [number, number] | number,
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as 'valid' | 'same' | number,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const { info: out, values: y } = s.output([n, oh, ow, c], 'float32');
  const xv = s.values(x);
  const best = new Float64Array(c);
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const i0 = Math.max(0, top - r * sh);
      const i1 = Math.min(fh, h + top - r * sh);
      for (let q = 0; q < ow; q++) {
        const j0 = Math.max(0, left - q * sw);
        const j1 = Math.min(fw, w + left - q * sw);
        best.fill(-Infinity);
        for (let i = i0; i < i1; i++) {
          const row = (b * h + r * sh - top + i) * w;
          for (let j = j0; j < j1; j++) {
            const base = (row + q * sw - left + j) * c;
            for (let kk = 0; kk < c; kk++) {
              const v = xv[base + kk]!;
              if (v > best[kk]!) best[kk] = v;
            }
          }
        }
        const o = ((b * oh + r) * ow + q) * c;
        for (let kk = 0; kk < c; kk++) y[o + kk] = best[kk]!;
      }
    }
  }
  return out;
}

/** Relu: `max(0, x)` as tfjs computes it (NaN stays NaN). */
export function cpuRelu(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  if (x.dtype !== 'float32') return s.call(original, inputs, attrs);
  const { info, values: y } = s.output(x.shape, 'float32');
  const xv = s.values(x);
  for (let i = 0; i < y.length; i++) y[i] = Math.max(0, xv[i]!);
  return info;
}

/** Step: 1 where x > 0, `alpha` elsewhere, NaN for NaN (tfjs' definition). */
export function cpuStep(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  if (x.dtype !== 'float32') return s.call(original, inputs, attrs);
  const alpha = (attrs['alpha'] as number | undefined) ?? 0;
  const { info, values: y } = s.output(x.shape, 'float32');
  const xv = s.values(x);
  for (let i = 0; i < y.length; i++) {
    const v = xv[i]!;
    y[i] = v > 0 ? 1 : v !== v ? NaN : alpha;
  }
  return info;
}
