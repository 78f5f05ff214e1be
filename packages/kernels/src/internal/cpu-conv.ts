/**
 * `Conv2D` and its two gradients for the cpu backend, register-blocked. tfjs' cpu conv adds every
 * product into the float32 output array (a load, a convert and a store per multiply-add) and its
 * weight gradient walks memory with large strides (17-20 s for one 64×14×14 3×3 layer of a
 * batch-64 step). These kernels keep eight output values in float64 locals over the whole
 * receptive field (dot-lanes.ts) and read float64 copies of their inputs, which V8 compiles to
 * straight scalar multiply-adds: forward 2-3x faster (e.g. 243 → 115 ms for 64×14×14, 16→32,
 * 3×3), weight gradient ~150x. NHWC float32 only; anything else keeps tfjs' kernel.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import { checkDy, convInfo } from './conv-info.js';
import { dotLanes } from './dot-lanes.js';
import type { DotWalk } from './dot-lanes.js';
import type { Scope } from './scope.js';
import { need } from './scope.js';

/**
 * Conv2D forward on cpu: every output pixel's channels, eight at a time, over the taps of its
 * receptive field that fall inside the image (any stride, dilation and padding).
 */
export function cpuConv2d(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  const filter = need(inputs, 'filter');
  if (attrs['dataFormat'] === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32') return s.call(original, inputs, attrs);
  const info = convInfo(x.shape, filter.shape, attrs);
  const { info: out, values } = s.output(info.outShape, 'float32');
  const y = values as Float32Array;
  const { batchSize: n, inHeight: h, inWidth: iw, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  // One run per tap: the input pixel's channels against the filter's [C_in, C_out] block.
  const walk: DotWalk = {
    a: new Float64Array(s.values(x)),
    aStarts: new Int32Array(kh * kw),
    aStep: 1,
    aLane: 0,
    b: new Float64Array(s.values(filter)),
    bStarts: new Int32Array(kh * kw),
    bStep: co,
    runs: 0,
    length: ci,
  };
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const r0 = r * sh - top;
      const i0 = Math.max(0, Math.ceil(-r0 / dh));
      const i1 = Math.min(kh, Math.floor((h - 1 - r0) / dh) + 1);
      for (let q = 0; q < ow; q++) {
        const c0 = q * sw - left;
        const j0 = Math.max(0, Math.ceil(-c0 / dw));
        const j1 = Math.min(kw, Math.floor((iw - 1 - c0) / dw) + 1);
        let runs = 0;
        for (let i = i0; i < i1; i++) {
          const xr = (b * h + r0 + i * dh) * iw;
          for (let j = j0; j < j1; j++) {
            walk.aStarts[runs] = (xr + c0 + j * dw) * ci;
            walk.bStarts[runs] = (i * kw + j) * ci * co;
            runs++;
          }
        }
        walk.runs = runs;
        dotLanes(y, ((b * oh + r) * ow + q) * co, co, walk);
      }
    }
  }
  return out;
}

/**
 * Conv2D weight gradient on cpu, directly: for every tap and input channel, eight output channels
 * accumulate in locals over all output pixels. No transposes (tfjs' cpu Transpose computes a
 * multi-index per element, which made the conv rewrite spend most of its time moving data).
 */
export function cpuConv2dBackpropFilter(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  const dy = need(inputs, 'dy');
  if (attrs['dataFormat'] === 'NCHW' || x.dtype !== 'float32' || dy.dtype !== 'float32') return s.call(original, inputs, attrs);
  const info = convInfo(x.shape, attrs['filterShape'] as number[], attrs);
  checkDy(dy, info, 'Conv2DBackpropFilter');
  const { batchSize: n, inHeight: h, inWidth: iw, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const { info: out, values } = s.output([kh, kw, ci, co], 'float32');
  const dW = values as Float32Array;
  // One run per image and output row: the tap's input pixels along the row (every sw-th, one
  // channel) against dy's [OW, C_out] row.
  const walk: DotWalk = {
    a: new Float64Array(s.values(x)),
    aStarts: new Int32Array(n * oh),
    aStep: sw * ci,
    aLane: 0,
    b: new Float64Array(s.values(dy)),
    bStarts: new Int32Array(n * oh),
    bStep: co,
    runs: 0,
    length: 0,
  };
  const rowStarts = new Int32Array(n * oh);
  for (let i = 0; i < kh; i++) {
    // Output rows r whose tap i reads an input row inside the image.
    const r0 = Math.max(0, Math.ceil((top - i * dh) / sh));
    const r1 = Math.min(oh, Math.floor((h - 1 + top - i * dh) / sh) + 1);
    for (let j = 0; j < kw; j++) {
      const q0 = Math.max(0, Math.ceil((left - j * dw) / sw));
      const q1 = Math.min(ow, Math.floor((iw - 1 + left - j * dw) / sw) + 1);
      let runs = 0;
      for (let b = 0; b < n; b++) {
        for (let r = r0; r < r1; r++) {
          rowStarts[runs] = ((b * h + r * sh - top + i * dh) * iw + q0 * sw - left + j * dw) * ci;
          walk.bStarts[runs] = ((b * oh + r) * ow + q0) * co;
          runs++;
        }
      }
      walk.runs = runs;
      walk.length = q1 - q0;
      for (let k = 0; k < ci; k++) {
        for (let t = 0; t < runs; t++) walk.aStarts[t] = rowStarts[t]! + k;
        dotLanes(dW, ((i * kw + j) * ci + k) * co, co, walk);
      }
    }
  }
  return out;
}

/**
 * Conv2D input gradient on cpu, directly: every input pixel gathers the output pixels its taps
 * reached, with eight input channels in locals and the filter pre-transposed to
 * `[kh, kw, C_out, C_in]` so the inner loop reads it contiguously.
 */
export function cpuConv2dBackpropInput(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const dy = need(inputs, 'dy');
  const filter = need(inputs, 'filter');
  if (attrs['dataFormat'] === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32') return s.call(original, inputs, attrs);
  const info = convInfo(attrs['inputShape'] as number[], filter.shape, attrs);
  checkDy(dy, info, 'Conv2DBackpropInput');
  const { batchSize: n, inHeight: h, inWidth: iw, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const { info: out, values } = s.output([n, h, iw, ci], 'float32');
  const dx = values as Float32Array;
  const fv = s.values(filter);
  const wt = new Float64Array(kh * kw * co * ci);
  for (let t = 0; t < kh * kw; t++) {
    for (let k = 0; k < ci; k++) for (let o = 0; o < co; o++) wt[(t * co + o) * ci + k] = fv[(t * ci + k) * co + o]!;
  }
  // One run per tap that an output pixel reached: dy's channels against the tap's [C_out, C_in] block.
  const walk: DotWalk = {
    a: new Float64Array(s.values(dy)),
    aStarts: new Int32Array(kh * kw),
    aStep: 1,
    aLane: 0,
    b: wt,
    bStarts: new Int32Array(kh * kw),
    bStep: ci,
    runs: 0,
    length: co,
  };
  const rows = new Int32Array(kh);
  const cols = new Int32Array(kw);
  for (let b = 0; b < n; b++) {
    for (let y = 0; y < h; y++) {
      // Output row each tap row came from, or -1.
      for (let i = 0; i < kh; i++) {
        const t = y + top - i * dh;
        rows[i] = t >= 0 && t % sh === 0 && t / sh < oh ? t / sh : -1;
      }
      for (let x = 0; x < iw; x++) {
        for (let j = 0; j < kw; j++) {
          const t = x + left - j * dw;
          cols[j] = t >= 0 && t % sw === 0 && t / sw < ow ? t / sw : -1;
        }
        let runs = 0;
        for (let i = 0; i < kh; i++) {
          const r = rows[i]!;
          if (r < 0) continue;
          for (let j = 0; j < kw; j++) {
            const q = cols[j]!;
            if (q < 0) continue;
            walk.aStarts[runs] = ((b * oh + r) * ow + q) * co;
            walk.bStarts[runs] = (i * kw + j) * co * ci;
            runs++;
          }
        }
        walk.runs = runs;
        dotLanes(dx, ((b * h + y) * iw + x) * ci, ci, walk);
      }
    }
  }
  return out;
}
