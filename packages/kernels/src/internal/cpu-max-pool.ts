/**
 * `MaxPool` (NHWC) for the cpu backend as one pass with the channels innermost (contiguous in NHWC)
 * and a running maximum per channel; tfjs' cpu kernel does per-element window bookkeeping.
 * float32 only; anything else keeps tfjs' kernel.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Scope } from './scope.js';
import { need } from './scope.js';

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
