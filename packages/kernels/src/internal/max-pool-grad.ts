/**
 * `MaxPoolGrad` as one pass over typed arrays. The wasm backend's kernel and the cpu backend's
 * (which first materializes a positions buffer through per-element `TensorBuffer.get`) spend
 * hundreds of milliseconds per training step on a pooled 28×28 map; this loop reads each window
 * once with the channel axis innermost (contiguous in NHWC) and costs a few milliseconds.
 *
 * Semantics are tfjs' (cpu `maxPoolPositions`): the gradient goes to the FIRST maximum in window
 * scan order (rows, then columns), comparisons are strict so NaN never wins, padded cells never
 * win, and a window without any maximum passes no gradient.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Impl } from './scope.js';
import { need } from './scope.js';

type PadAttr = 'valid' | 'same' | number;

export const maxPoolGrad: Impl = (s, inputs, attrs) => {
  const dy = need(inputs, 'dy');
  const x = need(inputs, 'input');
  const info = tf.backend_util.computePool2DInfo(
    x.shape as [number, number, number, number],
    attrs['filterSize'] as [number, number] | number,
    attrs['strides'] as [number, number] | number,
    1,
    attrs['pad'] as PadAttr,
    attrs['dimRoundingMode'] as 'floor' | 'round' | 'ceil' | undefined,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const { effectiveFilterHeight: fh, effectiveFilterWidth: fw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  if (dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== c) {
    throw new Error(`MaxPoolGrad: dy has shape [${dy.shape.join(',')}], expected [${[n, oh, ow, c].join(',')}]`);
  }

  const { info: out, values: dx } = s.output([n, h, w, c], 'float32');
  const xv = s.values(x);
  const gv = s.values(dy);
  if (fh === 2 && fw === 2 && sh === 2 && sw === 2 && dh === 1 && dw === 1 && top === 0 && left === 0 && 2 * oh <= h && 2 * ow <= w) {
    pool2x2Grad(xv, gv, dx, n, h, w, c, oh, ow);
    return out;
  }
  dx.fill(0);
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const r0 = r * sh - top;
      for (let q = 0; q < ow; q++) {
        const c0 = q * sw - left;
        best.fill(-Infinity);
        where.fill(-1);
        for (let i = 0; i < fh; i += dh) {
          const row = r0 + i;
          if (row < 0 || row >= h) continue;
          for (let j = 0; j < fw; j += dw) {
            const col = c0 + j;
            if (col < 0 || col >= w) continue;
            const base = ((b * h + row) * w + col) * c;
            for (let k = 0; k < c; k++) {
              const v = xv[base + k]!;
              if (v > best[k]!) {
                best[k] = v;
                where[k] = base + k;
              }
            }
          }
        }
        const g = ((b * oh + r) * ow + q) * c;
        for (let k = 0; k < c; k++) {
          const at = where[k]!;
          if (at >= 0) dx[at] = dx[at]! + gv[g + k]!;
        }
      }
    }
  }
  return out;
};

type Values = ArrayLike<number> & { [i: number]: number; fill(v: number): unknown };

/**
 * The common 2×2, stride-2, unpadded case: windows tile the image, so every input cell is written
 * exactly once (dy or 0) with no clearing pass, no per-window scratch arrays and the four taps
 * unrolled: about twice as fast as the general loop (64×28×28×16 → 14×14: ~20 → ~10 ms on a busy
 * 2-core x86; it is bound by JS loads and stores). Same first-maximum/NaN rules as above.
 */
function pool2x2Grad(xv: Values, gv: Values, dx: Values, n: number, h: number, w: number, c: number, oh: number, ow: number): void {
  // A last odd row or column belongs to no window.
  if (2 * oh < h || 2 * ow < w) dx.fill(0);
  const rowStep = w * c;
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      let p0 = (b * h + 2 * r) * rowStep;
      let g = (b * oh + r) * ow * c;
      for (let q = 0; q < ow; q++) {
        const p1 = p0 + c;
        const p2 = p0 + rowStep;
        const p3 = p2 + c;
        for (let k = 0; k < c; k++) {
          const v0 = xv[p0 + k]!;
          const v1 = xv[p1 + k]!;
          const v2 = xv[p2 + k]!;
          const v3 = xv[p3 + k]!;
          let best = -Infinity;
          let at = -1;
          if (v0 > best) {
            best = v0;
            at = 0;
          }
          if (v1 > best) {
            best = v1;
            at = 1;
          }
          if (v2 > best) {
            best = v2;
            at = 2;
          }
          if (v3 > best) at = 3;
          const d = gv[g + k]!;
          dx[p0 + k] = at === 0 ? d : 0;
          dx[p1 + k] = at === 1 ? d : 0;
          dx[p2 + k] = at === 2 ? d : 0;
          dx[p3 + k] = at === 3 ? d : 0;
        }
        p0 += 2 * c;
        g += c;
      }
    }
  }
}
