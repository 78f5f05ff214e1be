/**
 * Convolution gradients rewritten onto the backend's own forward kernels (XNNPACK on wasm). wasm
 * has no `Conv2DBackpropFilter` and no depthwise backprop kernels, and its `Conv2DBackpropInput` is
 * a scalar loop; every convolution gradient is itself a convolution:
 *
 * - dW of a conv with few input taps (kh·kw·C_in ≤ C_out): im2col by a one-hot conv, then one
 *   matrix product (see im2colFilterGradient).
 * - dW of other convs: the batch becomes the reduction axis. `x` is laid out `[C_in, H, W, N]`
 *   (C_in acts as the batch, N as the channels) and `dy` as a filter `[OH, OW, N, C_out]`; the
 *   forward stride becomes the filter dilation and the forward dilation becomes the stride.
 * - dX of a conv: a stride-1 conv of the zero-dilated `dy` with the spatially flipped filter whose
 *   in/out channels are swapped, dilated like the forward filter.
 * - depthwise dW: the batch stacked into the height, so one depthwise conv with `dy` as the filter
 *   sums over it. depthwise dX: a depthwise conv of the zero-dilated `dy` with the flipped filter
 *   (multiplier folded into the channels), then a sum over the multiplier.
 *
 * The cpu backend has direct loops for three of these (cpu-conv.ts, cpu-depthwise.ts); it takes
 * only the depthwise input gradient from here, and only when asked for it.
 * All of them accept an extra `dilations` attribute (see dilated-conv-gradients.ts).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { TensorInfo } from '@tensorflow/tfjs-core';
import type { Conv2DInfo, Padding4 } from './conv-info.js';
import { checkDy, convInfo } from './conv-info.js';
import type { Impl, Scope } from './scope.js';
import { need } from './scope.js';

/** `Conv2DBackpropFilter` (NHWC or NCHW): im2col + product for few input taps, else batch-as-reduction. */
export const conv2dBackpropFilter: Impl = (s, inputs, attrs) => {
  const x = need(inputs, 'x');
  const dy = need(inputs, 'dy');
  const nchw = attrs['dataFormat'] === 'NCHW';
  const info = convInfo(x.shape, attrs['filterShape'] as number[], attrs, false, nchw);
  checkDy(dy, info, 'Conv2DBackpropFilter');
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co } = info;
  if (kh * kw * ci <= co && tf.getKernel('BatchMatMul', s.backendName) != null) {
    const dW = im2colFilterGradient(s, x, dy, info, nchw);
    if (dW != null) return dW;
  }
  // [C_in, H, W, N] and [OH, OW, N, C_out], straight from either layout.
  const xT = s.run('Transpose', { x }, { perm: nchw ? [1, 2, 3, 0] : [3, 1, 2, 0] });
  const dyT = s.run('Transpose', { x: dy }, { perm: nchw ? [2, 3, 0, 1] : [1, 2, 0, 3] });
  const pad = batchReductionPadding(info);
  let w = s.run(
    'Conv2D',
    { x: xT, filter: dyT },
    {
      strides: [info.dilationHeight, info.dilationWidth],
      dilations: [info.strideHeight, info.strideWidth],
      pad,
      dataFormat: 'NHWC',
    },
  );
  if (w.shape[1] !== kh || w.shape[2] !== kw) {
    w = s.run('Slice', { x: w }, { begin: [0, 0, 0, 0], size: [ci, kh, kw, co] });
  }
  return s.run('Transpose', { x: w }, { perm: [1, 2, 0, 3] });
};

/** `Conv2DBackpropInput` (NHWC or NCHW): the zero-dilated `dy` convolved with the flipped filter. */
export const conv2dBackpropInput: Impl = (s, inputs, attrs) => {
  let dy = need(inputs, 'dy');
  const filter = need(inputs, 'filter');
  const nchw = attrs['dataFormat'] === 'NCHW';
  const info = convInfo(attrs['inputShape'] as number[], filter.shape, attrs, false, nchw);
  checkDy(dy, info, 'Conv2DBackpropInput');
  if (nchw) dy = s.run('Transpose', { x: dy }, { perm: [0, 2, 3, 1] });
  const { t, pad } = spreadDy(s, dy, info);
  const flipped = s.run('Reverse', { x: filter }, { dims: [0, 1] });
  const dilations = [info.dilationHeight, info.dilationWidth];
  let dx: TensorInfo;
  if (info.inChannels === 1) {
    // One input channel (a network's first conv, when a learned input quantizer needs its input
    // gradient): a conv with a single output channel is slow in XNNPACK; a depthwise conv of dy
    // with the flipped filter (a [kh, kw, 1, cout] filter is already laid out as depthwise
    // [kh, kw, cout, 1]) and a sum over the channels computes the same, faster.
    const [kh, kw, , co] = filter.shape as [number, number, number, number];
    const z = s.run('DepthwiseConv2dNative', { x: t, filter: s.view(flipped, [kh, kw, co, 1]) }, { strides: [1, 1], dilations, pad, dataFormat: 'NHWC' });
    dx = s.run('Sum', { x: z }, { axis: [3], keepDims: true });
  } else {
    const swapped = s.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] });
    dx = s.run('Conv2D', { x: t, filter: swapped }, { strides: [1, 1], dilations, pad, dataFormat: 'NHWC' });
  }
  return nchw ? s.run('Transpose', { x: dx }, { perm: [0, 3, 1, 2] }) : dx;
};

/** `DepthwiseConv2dNativeBackpropFilter`: the batch stacked into the height, `dy` as the filter. */
export const depthwiseBackpropFilter: Impl = (s, inputs, attrs) => {
  const x = need(inputs, 'x');
  const dy = need(inputs, 'dy');
  const info = convInfo(x.shape, attrs['filterShape'] as number[], attrs, true, false);
  checkDy(dy, info, 'DepthwiseConv2dNativeBackpropFilter');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw, dilationHeight: dh, dilationWidth: dw, outHeight: oh, outWidth: ow } = info;
  const m = info.outChannels / c;
  const top = info.padInfo.top;
  // The batch goes into the height: images are stacked every P = Q*sh rows and dy every Q rows,
  // so one depthwise conv (dy as the filter, dilated by the stride) sums over the batch itself.
  const q = oh - 1 + Math.ceil(((kh - 1) * dh + 1) / sh);
  const p = q * sh;
  let xs = x;
  if (h + top > p) xs = s.run('Slice', { x }, { begin: [0, 0, 0, 0], size: [n, p - top, w, c] });
  const rows = xs.shape[1]!;
  const stacked = s.run('PadV2', { x: xs }, { paddings: [[0, 0], [top, p - rows - top], [0, 0], [0, 0]], constantValue: 0 });
  const filter = q > oh ? s.run('PadV2', { x: dy }, { paddings: [[0, 0], [0, q - oh], [0, 0], [0, 0]], constantValue: 0 }) : dy;
  const pad = batchReductionPadding(info);
  let z = s.run(
    'DepthwiseConv2dNative',
    { x: s.view(stacked, [1, n * p, w, c]), filter: s.view(filter, [n * q, ow, c, m]) },
    {
      strides: [dh, dw],
      dilations: [sh, sw],
      pad: [[0, 0], [0, (kh - 1) * dh], pad[2], [0, 0]],
      dataFormat: 'NHWC',
    },
  );
  if (z.shape[1] !== kh || z.shape[2] !== kw) {
    z = s.run('Slice', { x: z }, { begin: [0, 0, 0, 0], size: [1, kh, kw, c * m] });
  }
  return s.view(z, [kh, kw, c, m]);
};

/** `DepthwiseConv2dNativeBackpropInput`: the zero-dilated `dy` with the flipped filter, summed over the multiplier. */
export const depthwiseBackpropInput: Impl = (s, inputs, attrs) => {
  const dy = need(inputs, 'dy');
  const filter = need(inputs, 'filter');
  const info = convInfo(attrs['inputShape'] as number[], filter.shape, attrs, true, false);
  checkDy(dy, info, 'DepthwiseConv2dNativeBackpropInput');
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, filterHeight: kh, filterWidth: kw } = info;
  const m = info.outChannels / c;
  const { t, pad } = spreadDy(s, dy, info);
  // The multiplier folds into the channels (filter index c*M+m matches dy's channel order).
  const flipped = s.view(s.run('Reverse', { x: filter }, { dims: [0, 1] }), [kh, kw, c * m, 1]);
  const z = s.run(
    'DepthwiseConv2dNative',
    { x: t, filter: flipped },
    { strides: [1, 1], dilations: [info.dilationHeight, info.dilationWidth], pad, dataFormat: 'NHWC' },
  );
  if (m === 1) return z;
  return s.run('Sum', { x: s.view(z, [n, h, w, c, m]) }, { axis: [4], keepDims: false });
};

/**
 * Weight gradient as im2col + one matrix product, for layers with few input taps (K = kh·kw·C_in
 * at most C_out, e.g. a first layer on 1-channel images). The patches come from a conv with the
 * forward strides and dilations, padding reaching exactly what the forward conv read, and a
 * one-hot filter `[kh, kw, C_in, K]`; their column order (tap row, tap column, channel) is
 * already dW's row order: dW = patchesᵀ · dy. The one-hot conv costs P·K² multiply-adds against
 * the product's P·K·C_out, hence the rule. On wasm, 64×28×28×1 → 16 channels inside a training
 * step: ~17 → ~14 ms; what remains is mostly XNNPACK packing dy as the product's weights (the
 * batch-as-reduction conv packs it too, after transposing it).
 * Returns undefined (nothing computed) when explicit padding cannot reproduce the forward
 * geometry.
 */
function im2colFilterGradient(s: Scope, x: TensorInfo, dy: TensorInfo, info: Conv2DInfo, nchw: boolean): TensorInfo | undefined {
  const { filterHeight: kh, filterWidth: kw, inChannels: ci, outChannels: co, inHeight: h, inWidth: w } = info;
  // Explicit padding reaching exactly the rows/columns the forward conv read; where it read less
  // than the whole image (and tfjs' numeric-padding quirk), the output would be larger: skip.
  const pad = batchReductionPadding(info);
  const outH = Math.floor((h + pad[1][0] + pad[1][1] - ((kh - 1) * info.dilationHeight + 1)) / info.strideHeight) + 1;
  const outW = Math.floor((w + pad[2][0] + pad[2][1] - ((kw - 1) * info.dilationWidth + 1)) / info.strideWidth) + 1;
  if (outH !== info.outHeight || outW !== info.outWidth) return undefined;
  const k = kh * kw * ci;
  const { info: oneHot, values } = s.output([kh, kw, ci, k], 'float32');
  values.fill(0);
  for (let i = 0; i < k; i++) values[i * k + i] = 1;
  const xs = nchw ? s.run('Transpose', { x }, { perm: [0, 2, 3, 1] }) : x;
  const dys = nchw ? s.run('Transpose', { x: dy }, { perm: [0, 2, 3, 1] }) : dy;
  const patches = s.run(
    'Conv2D',
    { x: xs, filter: oneHot },
    {
      strides: [info.strideHeight, info.strideWidth],
      dilations: [info.dilationHeight, info.dilationWidth],
      pad,
      dataFormat: 'NHWC',
    },
  );
  const p = info.batchSize * outH * outW;
  // Explicit transpose: BatchMatMul's fast path takes untransposed operands only.
  const pt = s.run('Transpose', { x: s.view(patches, [p, k]) }, { perm: [1, 0] });
  const dW = s.run('BatchMatMul', { a: s.view(pt, [1, k, p]), b: s.view(dys, [1, p, co]) }, { transposeA: false, transposeB: false });
  return s.view(dW, [kh, kw, ci, co]);
}

/**
 * Padding of the batch-as-reduction conv for a weight gradient: the forward top/left padding, and
 * as much bottom/right padding as the last filter tap reads (never negative: surplus output rows
 * are sliced away instead).
 */
function batchReductionPadding(info: Conv2DInfo): Padding4 {
  const { top, left } = info.padInfo;
  const reachH = (info.filterHeight - 1) * info.dilationHeight + (info.outHeight - 1) * info.strideHeight + 1;
  const reachW = (info.filterWidth - 1) * info.dilationWidth + (info.outWidth - 1) * info.strideWidth + 1;
  return [
    [0, 0],
    [top, Math.max(0, reachH - top - info.inHeight)],
    [left, Math.max(0, reachW - left - info.inWidth)],
    [0, 0],
  ];
}

/**
 * Prepares NHWC `dy` for an input gradient: inserts `stride - 1` zeros between its pixels and
 * returns the padding the stride-1 conv with the flipped filter needs. Negative padding (large
 * explicit forward padding) becomes a crop.
 */
function spreadDy(s: Scope, dy: TensorInfo, info: Conv2DInfo): { t: TensorInfo; pad: Padding4 } {
  const [n, oh, ow, ch] = dy.shape as [number, number, number, number];
  const sh = info.strideHeight;
  const sw = info.strideWidth;
  let t = dy;
  if (sh > 1 || sw > 1) {
    const padded = s.run(
      'PadV2',
      { x: s.view(dy, [n, oh, 1, ow, 1, ch]) },
      { paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]], constantValue: 0 },
    );
    t = s.view(padded, [n, oh * sh, ow * sw, ch]);
  }
  const lenH = oh * sh;
  const lenW = ow * sw;
  let top = (info.filterHeight - 1) * info.dilationHeight - info.padInfo.top;
  let left = (info.filterWidth - 1) * info.dilationWidth - info.padInfo.left;
  let bottom = info.inHeight + info.padInfo.top - lenH;
  let right = info.inWidth + info.padInfo.left - lenW;
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    const cropTop = Math.max(0, -top);
    const cropLeft = Math.max(0, -left);
    const size = [n, lenH - cropTop - Math.max(0, -bottom), lenW - cropLeft - Math.max(0, -right), ch];
    t = s.run('Slice', { x: t }, { begin: [0, cropTop, cropLeft, 0], size });
    top = Math.max(0, top);
    left = Math.max(0, left);
    bottom = Math.max(0, bottom);
    right = Math.max(0, right);
  }
  return {
    t,
    pad: [
      [0, 0],
      [top, bottom],
      [left, right],
      [0, 0],
    ],
  };
}
