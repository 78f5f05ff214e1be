/**
 * Depthwise weight gradient as one pass over typed arrays. A depthwise dW is a per-channel
 * correlation of x with dy summed over the batch: few multiply-adds (9 per activation for 3×3),
 * which no GEMM formulation uses well: as a depthwise conv with batch×channels groups XNNPACK
 * needed 80 ms for a 64×14×14×96 map, tfjs' cpu kernel 6 s; this loop (channels innermost,
 * contiguous in NHWC, float64 accumulators) needs a few milliseconds. Any stride, dilation,
 * padding and channel multiplier; the geometry comes from the forward op's own conv info.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Impl } from './kernels-scope.js';
import { need, pair } from './kernels-scope.js';

export const depthwiseBackpropFilter: Impl = (s, inputs, attrs) => {
  const x = need(inputs, 'x');
  const dy = need(inputs, 'dy');
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    attrs['filterShape'] as [number, number, number, number],
    pair(attrs['strides'], 1),
    pair(attrs['dilations'], 1),
    attrs['pad'] as 'valid',
    attrs['dimRoundingMode'] as 'floor' | undefined,
    true,
  );
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw } = info;
  const m = info.outChannels / c;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  const cm = c * m;
  if (dy.shape[0] !== n || dy.shape[1] !== oh || dy.shape[2] !== ow || dy.shape[3] !== cm) {
    throw new Error(`DepthwiseConv2dNativeBackpropFilter: dy has shape [${dy.shape.join(',')}], expected [${info.outShape.join(',')}]`);
  }

  const { info: out, values: dW } = s.output([kh, kw, c, m], 'float32');
  const xv = s.values(x);
  const gv = s.values(dy);
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
            if (m === 1) {
              for (let k = 0; k < c; k++) acc[fo + k] = acc[fo + k]! + xv[xo + k]! * gv[g + k]!;
            } else {
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
