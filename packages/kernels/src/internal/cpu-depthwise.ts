/**
 * Depthwise weight gradient for the cpu backend as typed-array loops. A depthwise dW is a
 * per-channel correlation of x with dy summed over the batch; tfjs' cpu kernel needed 6-9 s for a
 * 64×14×14×96 map, these loops (eight channels in float64 locals per tap) ~60 ms. Any stride,
 * dilation, padding and channel multiplier; the geometry comes from the forward op's conv info.
 * (wasm uses the stacked-batch depthwise conv in wasm-conv-gradients.ts instead, ~1.3x faster there.)
 */
import type { Conv2DInfo } from './conv-info.js';
import { checkDy, convInfo } from './conv-info.js';
import type { Impl } from './scope.js';
import { need } from './scope.js';

/** `DepthwiseConv2dNativeBackpropFilter` on cpu, any multiplier. */
export const cpuDepthwiseBackpropFilter: Impl = (s, inputs, attrs) => {
  const x = need(inputs, 'x');
  const dy = need(inputs, 'dy');
  const info = convInfo(x.shape, attrs['filterShape'] as number[], attrs, true);
  checkDy(dy, info, 'DepthwiseConv2dNativeBackpropFilter');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const m = info.outChannels / c;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const cm = c * m;

  const { info: out, values: dW } = s.output([kh, kw, c, m], 'float32');
  const xv = s.values(x);
  const gv = s.values(dy);
  const acc = new Float64Array(kh * kw * cm);
  if (m === 1) {
    blockedM1(xv, gv, acc, info);
  } else {
    for (let b = 0; b < n; b++) {
      for (let r = 0; r < oh; r++) {
        for (let q = 0; q < ow; q++) {
          const g = ((b * oh + r) * ow + q) * cm;
          for (let i = 0; i < kh; i++) {
            const row = r * sh - top + i * dh;
            if (row < 0 || row >= h) continue;
            for (let j = 0; j < kw; j++) {
              const col = q * sw - left + j * dw;
              if (col < 0 || col >= w) continue;
              const xo = ((b * h + row) * w + col) * c;
              const fo = (i * kw + j) * cm;
              for (let k = 0; k < c; k++) {
                const xk = xv[xo + k]!;
                const base = k * m;
                for (let t = 0; t < m; t++) acc[fo + base + t] = acc[fo + base + t]! + xk * gv[g + base + t]!;
              }
            }
          }
        }
      }
    }
  }
  dW.set(acc);
  return out;
};

/** Multiplier 1: per tap, eight channels accumulate in locals over every output pixel. */
function blockedM1(xv: ArrayLike<number>, gv: ArrayLike<number>, acc: Float64Array, info: Conv2DInfo): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const c8 = c - (c % 8);
  for (let i = 0; i < kh; i++) {
    const r0 = Math.max(0, Math.ceil((top - i * dh) / sh));
    const r1 = Math.min(oh, Math.floor((h - 1 + top - i * dh) / sh) + 1);
    for (let j = 0; j < kw; j++) {
      const q0 = Math.max(0, Math.ceil((left - j * dw) / sw));
      const q1 = Math.min(ow, Math.floor((w - 1 + left - j * dw) / sw) + 1);
      const fo = (i * kw + j) * c;
      for (let k = 0; k < c8; k += 8) {
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let s4 = 0;
        let s5 = 0;
        let s6 = 0;
        let s7 = 0;
        for (let b = 0; b < n; b++) {
          for (let r = r0; r < r1; r++) {
            const xr = (b * h + r * sh - top + i * dh) * w;
            const gr = (b * oh + r) * ow;
            for (let q = q0; q < q1; q++) {
              const xo = (xr + q * sw - left + j * dw) * c + k;
              const g = (gr + q) * c + k;
              s0 += xv[xo]! * gv[g]!;
              s1 += xv[xo + 1]! * gv[g + 1]!;
              s2 += xv[xo + 2]! * gv[g + 2]!;
              s3 += xv[xo + 3]! * gv[g + 3]!;
              s4 += xv[xo + 4]! * gv[g + 4]!;
              s5 += xv[xo + 5]! * gv[g + 5]!;
              s6 += xv[xo + 6]! * gv[g + 6]!;
              s7 += xv[xo + 7]! * gv[g + 7]!;
            }
          }
        }
        acc[fo + k] = s0;
        acc[fo + k + 1] = s1;
        acc[fo + k + 2] = s2;
        acc[fo + k + 3] = s3;
        acc[fo + k + 4] = s4;
        acc[fo + k + 5] = s5;
        acc[fo + k + 6] = s6;
        acc[fo + k + 7] = s7;
      }
      for (let k = c8; k < c; k++) {
        let s0 = 0;
        for (let b = 0; b < n; b++) {
          for (let r = r0; r < r1; r++) {
            const xr = (b * h + r * sh - top + i * dh) * w;
            const gr = (b * oh + r) * ow;
            for (let q = q0; q < q1; q++) s0 += xv[(xr + q * sw - left + j * dw) * c + k]! * gv[(gr + q) * c + k]!;
          }
        }
        acc[fo + k] = s0;
      }
    }
  }
}
