/**
 * `Conv2D` and its two gradients for the cpu backend, register-blocked. tfjs' cpu conv adds every
 * product into the float32 output array (a load, a convert and a store per multiply-add) and its
 * weight gradient walks memory with large strides (17-20 s for one 64×14×14 3×3 layer of a
 * batch-64 step). These loops keep eight output values in float64 locals over the whole
 * receptive field and read float64 copies of their inputs, which V8 compiles to straight scalar
 * multiply-adds: forward 2-3x faster (e.g. 243 → 115 ms for 64×14×14, 16→32, 3×3), weight
 * gradient ~150x. NHWC float32 only; anything else keeps tfjs' kernel.
 */
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Conv2DInfo } from './conv-info.js';
import { checkDy, convInfo } from './conv-info.js';
import type { Scope } from './scope.js';
import { need } from './scope.js';

export function cpuConv2d(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  const filter = need(inputs, 'filter');
  if (attrs['dataFormat'] === 'NCHW' || x.dtype !== 'float32' || filter.dtype !== 'float32') return s.call(original, inputs, attrs);
  const info = convInfo(x.shape, filter.shape, attrs);
  const { info: out, values: y } = s.output(info.outShape, 'float32');
  conv2dNhwc(new Float64Array(s.values(x)), new Float64Array(s.values(filter)), y, info);
  return out;
}

/** y = conv(x, w) in NHWC, any stride, dilation and padding from `info`. */
function conv2dNhwc(x: Float64Array, w: Float64Array, y: ArrayLike<number> & { [i: number]: number }, info: Conv2DInfo): void {
  const { batchSize: n, inHeight: h, inWidth: iw, inChannels: ci, outHeight: oh, outWidth: ow, outChannels: co } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const co8 = co - (co % 8);
  for (let b = 0; b < n; b++) {
    for (let r = 0; r < oh; r++) {
      const r0 = r * sh - top;
      const i0 = Math.max(0, Math.ceil(-r0 / dh));
      const i1 = Math.min(kh, Math.floor((h - 1 - r0) / dh) + 1);
      for (let q = 0; q < ow; q++) {
        const c0 = q * sw - left;
        const j0 = Math.max(0, Math.ceil(-c0 / dw));
        const j1 = Math.min(kw, Math.floor((iw - 1 - c0) / dw) + 1);
        const yo = ((b * oh + r) * ow + q) * co;
        for (let o = 0; o < co8; o += 8) {
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          let s4 = 0;
          let s5 = 0;
          let s6 = 0;
          let s7 = 0;
          for (let i = i0; i < i1; i++) {
            const xr = (b * h + r0 + i * dh) * iw;
            for (let j = j0; j < j1; j++) {
              const xo = (xr + c0 + j * dw) * ci;
              let wo = (i * kw + j) * ci * co + o;
              for (let k = 0; k < ci; k++) {
                const v = x[xo + k]!;
                s0 += v * w[wo]!;
                s1 += v * w[wo + 1]!;
                s2 += v * w[wo + 2]!;
                s3 += v * w[wo + 3]!;
                s4 += v * w[wo + 4]!;
                s5 += v * w[wo + 5]!;
                s6 += v * w[wo + 6]!;
                s7 += v * w[wo + 7]!;
                wo += co;
              }
            }
          }
          y[yo + o] = s0;
          y[yo + o + 1] = s1;
          y[yo + o + 2] = s2;
          y[yo + o + 3] = s3;
          y[yo + o + 4] = s4;
          y[yo + o + 5] = s5;
          y[yo + o + 6] = s6;
          y[yo + o + 7] = s7;
        }
        for (let o = co8; o < co; o++) {
          let s0 = 0;
          for (let i = i0; i < i1; i++) {
            const xr = (b * h + r0 + i * dh) * iw;
            for (let j = j0; j < j1; j++) {
              const xo = (xr + c0 + j * dw) * ci;
              let wo = (i * kw + j) * ci * co + o;
              for (let k = 0; k < ci; k++) {
                s0 += x[xo + k]! * w[wo]!;
                wo += co;
              }
            }
          }
          y[yo + o] = s0;
        }
      }
    }
  }
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
  const { info: out, values: dW } = s.output([kh, kw, ci, co], 'float32');
  const xd = new Float64Array(s.values(x));
  const gd = new Float64Array(s.values(dy));
  const co8 = co - (co % 8);
  for (let i = 0; i < kh; i++) {
    // Output rows r whose tap i reads an input row inside the image.
    const r0 = Math.max(0, Math.ceil((top - i * dh) / sh));
    const r1 = Math.min(oh, Math.floor((h - 1 + top - i * dh) / sh) + 1);
    for (let j = 0; j < kw; j++) {
      const q0 = Math.max(0, Math.ceil((left - j * dw) / sw));
      const q1 = Math.min(ow, Math.floor((iw - 1 + left - j * dw) / sw) + 1);
      for (let k = 0; k < ci; k++) {
        const wo = ((i * kw + j) * ci + k) * co;
        for (let o = 0; o < co8; o += 8) {
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
              const xrow = (b * h + r * sh - top + i * dh) * iw;
              const grow = (b * oh + r) * ow;
              for (let q = q0; q < q1; q++) {
                const v = xd[(xrow + q * sw - left + j * dw) * ci + k]!;
                const g = (grow + q) * co + o;
                s0 += v * gd[g]!;
                s1 += v * gd[g + 1]!;
                s2 += v * gd[g + 2]!;
                s3 += v * gd[g + 3]!;
                s4 += v * gd[g + 4]!;
                s5 += v * gd[g + 5]!;
                s6 += v * gd[g + 6]!;
                s7 += v * gd[g + 7]!;
              }
            }
          }
          dW[wo + o] = s0;
          dW[wo + o + 1] = s1;
          dW[wo + o + 2] = s2;
          dW[wo + o + 3] = s3;
          dW[wo + o + 4] = s4;
          dW[wo + o + 5] = s5;
          dW[wo + o + 6] = s6;
          dW[wo + o + 7] = s7;
        }
        for (let o = co8; o < co; o++) {
          let s0 = 0;
          for (let b = 0; b < n; b++) {
            for (let r = r0; r < r1; r++) {
              const xrow = (b * h + r * sh - top + i * dh) * iw;
              const grow = (b * oh + r) * ow;
              for (let q = q0; q < q1; q++) s0 += xd[(xrow + q * sw - left + j * dw) * ci + k]! * gd[(grow + q) * co + o]!;
            }
          }
          dW[wo + o] = s0;
        }
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
  const { info: out, values: dx } = s.output([n, h, iw, ci], 'float32');
  const gd = new Float64Array(s.values(dy));
  const fv = s.values(filter);
  const wt = new Float64Array(kh * kw * co * ci);
  for (let t = 0; t < kh * kw; t++) {
    for (let k = 0; k < ci; k++) for (let o = 0; o < co; o++) wt[(t * co + o) * ci + k] = fv[(t * ci + k) * co + o]!;
  }
  const ci8 = ci - (ci % 8);
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
        const xo = ((b * h + y) * iw + x) * ci;
        for (let k = 0; k < ci8; k += 8) {
          let s0 = 0;
          let s1 = 0;
          let s2 = 0;
          let s3 = 0;
          let s4 = 0;
          let s5 = 0;
          let s6 = 0;
          let s7 = 0;
          for (let i = 0; i < kh; i++) {
            const r = rows[i]!;
            if (r < 0) continue;
            for (let j = 0; j < kw; j++) {
              const q = cols[j]!;
              if (q < 0) continue;
              const g = ((b * oh + r) * ow + q) * co;
              let wo = (i * kw + j) * co * ci + k;
              for (let o = 0; o < co; o++) {
                const v = gd[g + o]!;
                s0 += v * wt[wo]!;
                s1 += v * wt[wo + 1]!;
                s2 += v * wt[wo + 2]!;
                s3 += v * wt[wo + 3]!;
                s4 += v * wt[wo + 4]!;
                s5 += v * wt[wo + 5]!;
                s6 += v * wt[wo + 6]!;
                s7 += v * wt[wo + 7]!;
                wo += ci;
              }
            }
          }
          dx[xo + k] = s0;
          dx[xo + k + 1] = s1;
          dx[xo + k + 2] = s2;
          dx[xo + k + 3] = s3;
          dx[xo + k + 4] = s4;
          dx[xo + k + 5] = s5;
          dx[xo + k + 6] = s6;
          dx[xo + k + 7] = s7;
        }
        for (let k = ci8; k < ci; k++) {
          let s0 = 0;
          for (let i = 0; i < kh; i++) {
            const r = rows[i]!;
            if (r < 0) continue;
            for (let j = 0; j < kw; j++) {
              const q = cols[j]!;
              if (q < 0) continue;
              const g = ((b * oh + r) * ow + q) * co;
              let wo = (i * kw + j) * co * ci + k;
              for (let o = 0; o < co; o++) {
                s0 += gd[g + o]! * wt[wo]!;
                wo += ci;
              }
            }
          }
          dx[xo + k] = s0;
        }
      }
    }
  }
  return out;
}
