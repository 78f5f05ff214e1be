/**
 * Depthwise weight gradient for the cpu backend as typed-array loops. A depthwise dW is a
 * per-channel correlation of x with dy summed over the batch; tfjs' cpu kernel needed 6-9 s for a
 * 64×14×14×96 map, these loops (eight channels in float64 locals per tap, dot-lanes.ts) ~60 ms.
 * Any stride, dilation, padding and channel multiplier; the geometry comes from the forward op's
 * conv info. (wasm uses the stacked-batch depthwise conv in wasm-conv-gradients.ts instead, ~1.3x
 * faster there.)
 */
import type { Conv2DInfo } from './conv-info.js';
import { checkDy, convInfo } from './conv-info.js';
import { dotLanes } from './dot-lanes.js';
import type { DotWalk } from './dot-lanes.js';
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
  if (m === 1) {
    blockedM1(s.values(x) as Float32Array, s.values(dy) as Float32Array, dW as Float32Array, info);
    return out;
  }
  const xv = s.values(x);
  const gv = s.values(dy);
  // Any multiplier: every (channel, multiplier) pair accumulates into acc directly.
  const acc = new Float64Array(kh * kw * cm);
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
  dW.set(acc);
  return out;
};

/**
 * Multiplier 1: per tap, eight channels accumulate in locals over every output pixel. One run per
 * image and output row: the row's input pixels the tap reads (every sw-th) against dy's row, the
 * channels as lanes of both; read as float32 (see DotWalk).
 */
function blockedM1(x: Float32Array, g: Float32Array, dW: Float32Array, info: Conv2DInfo): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const walk: DotWalk = { a: x, aStarts: new Int32Array(n * oh), aStep: sw * c, aLane: 1, b: g, bStarts: new Int32Array(n * oh), bStep: c, runs: 0, length: 0 };
  for (let i = 0; i < kh; i++) {
    const r0 = Math.max(0, Math.ceil((top - i * dh) / sh));
    const r1 = Math.min(oh, Math.floor((h - 1 + top - i * dh) / sh) + 1);
    for (let j = 0; j < kw; j++) {
      const q0 = Math.max(0, Math.ceil((left - j * dw) / sw));
      const q1 = Math.min(ow, Math.floor((w - 1 + left - j * dw) / sw) + 1);
      let runs = 0;
      for (let b = 0; b < n; b++) {
        for (let r = r0; r < r1; r++) {
          walk.aStarts[runs] = ((b * h + r * sh - top + i * dh) * w + q0 * sw - left + j * dw) * c;
          walk.bStarts[runs] = ((b * oh + r) * ow + q0) * c;
          runs++;
        }
      }
      walk.runs = runs;
      walk.length = q1 - q0;
      dotLanes(dW, (i * kw + j) * c, c, walk);
    }
  }
}
