/**
 * Fast training kernels for the wasm and cpu backends, registered by {@link registerFastGradients}.
 *
 * Why: tfjs' wasm backend has no `Conv2DBackpropFilter` and no depthwise backprop kernels, and its
 * `Conv2DBackpropInput`, `MaxPoolGrad`, `Tile` and transposed `BatchMatMul` are scalar loops; the
 * cpu backend's backprop kernels walk memory with large strides. Every convolution gradient is
 * itself a convolution, so we rewrite them onto the backend's own (XNNPACK on wasm) forward kernels:
 *
 * - dW of a conv with few input taps (kh·kw·C_in ≤ C_out): im2col by a one-hot conv, then one
 *   matrix product (see im2colFilterGradient).
 * - dW of other convs: the batch becomes the reduction axis. `x` is laid out `[C_in, H, W, N]`
 *   (C_in acts as the batch, N as the channels) and `dy` as a filter `[OH, OW, N, C_out]`; the
 *   forward stride becomes the filter dilation and the forward dilation becomes the stride.
 * - dX of a conv: a stride-1 conv of the zero-dilated `dy` with the spatially flipped filter whose
 *   in/out channels are swapped, dilated like the forward filter.
 * - depthwise dX: a depthwise conv of the zero-dilated `dy` with the flipped filter (multiplier
 *   folded into the channels), then a sum over the multiplier. Depthwise dW, MaxPoolGrad and Tile
 *   are memory-bound and run as typed-array loops (kernels-depthwise / -pool / -tile); BatchMatMul
 *   is steered onto the wasm fast path (kernels-matmul).
 *
 * Kernel functions obtained with `tf.getKernel` run untaped, so nothing here is recorded for
 * higher-order gradients; intermediates are raw backend data released with `disposeData`.
 *
 * The convolution kernels accept an extra `dilations` attribute (the stock attrs of
 * `Conv2DBackprop*` have none); {@link registerDilatedConvGradients} installs gradient functions
 * that use it, which lifts tfjs' "dilation rates greater than 1 are not yet supported in
 * gradients" restriction.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { GradConfig, KernelConfig, KernelFunc, NamedAttrMap, Tensor, Tensor4D, TensorInfo } from '@tensorflow/tfjs-core';
import { cpuConv2d, cpuConv2dBackpropFilter, cpuConv2dBackpropInput } from './kernels-cpu-conv.js';
import { ARITHMETIC_KERNELS, BROADCAST_BINARY_KERNELS, arithmetic, broadcastBinary, leadingReduce } from './kernels-cpu-elementwise.js';
import { cpuBatchMatMul, cpuMaxPool, cpuRelu, cpuStep } from './kernels-cpu-misc.js';
import { depthwiseBackpropFilter } from './kernels-depthwise.js';
import { batchMatMul } from './kernels-matmul.js';
import { maxPoolGrad } from './kernels-pool.js';
import type { Impl, Scope } from './kernels-scope.js';
import { kernelFunc, need, pair } from './kernels-scope.js';
import { tile } from './kernels-tile.js';
import { wasmLeadingReduce } from './kernels-wasm-reduce.js';

type Pair = [number, number];
type Padding4 = [Pair, Pair, Pair, Pair];
type PadAttr = 'valid' | 'same' | number | Padding4;
type RoundingMode = 'floor' | 'round' | 'ceil' | undefined;
type Conv2DInfo = ReturnType<typeof tf.backend_util.computeConv2DInfo>;

/** Marks kernel configs we registered, so re-registration is idempotent across package copies. */
const FAST_MARK: unique symbol = Symbol.for('@tensorpress/core-tensor/fast-kernel') as never;

type MarkedConfig = KernelConfig & { [FAST_MARK]?: true };

/** A replacement that calls the kernel it replaces for the cases it does not handle itself. */
type Wrapper = (s: Scope, inputs: Parameters<Impl>[1], attrs: Parameters<Impl>[2], original: KernelFunc) => TensorInfo;

interface Spec {
  /** Backend kernels the replacement is built from; it is skipped if one is missing. */
  requires: readonly string[];
  /** Standalone body, or a wrapper around the original (which must then exist). */
  impl: Impl | { wraps: Wrapper };
}

/** Every kernel this module can provide. */
export const FAST_GRADIENT_KERNELS = [
  'Conv2DBackpropFilter',
  'Conv2DBackpropInput',
  'DepthwiseConv2dNativeBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput',
  'MaxPoolGrad',
  'Tile',
  'BatchMatMul',
  'Conv2D',
  'MaxPool',
  'Relu',
  'Step',
  'Sum',
  'Mean',
  'OneHot',
  'Identity',
  ...BROADCAST_BINARY_KERNELS,
] as const;

/** Name of a kernel this module can provide. */
export type FastGradientKernel = (typeof FAST_GRADIENT_KERNELS)[number];

/**
 * Which kernels to install per backend, from measurements on a 2-core x86 machine (numbers in the
 * module docs of each kernel file). wasm lacks three convolution gradients, its
 * Conv2DBackpropInput, MaxPoolGrad, Tile and transposed/batched BatchMatMul are scalar loops, and
 * its Sum/Mean over leading axes (batch-norm statistics) transpose first.
 * On cpu every hot kernel of a conv/BN training step is a slow JS loop: Conv2D, its two
 * gradients and BatchMatMul get register-blocked loops; MaxPool(Grad), Tile, depthwise dW, Relu,
 * Step, the broadcasting binary ops and leading-axis reductions get typed-array fast paths.
 */
const PLAN: Readonly<Record<string, readonly FastGradientKernel[]>> = {
  wasm: [
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'DepthwiseConv2dNativeBackpropInput',
    'MaxPoolGrad',
    'Tile',
    'BatchMatMul',
    'Sum',
    'Mean',
    'OneHot',
    'Identity',
  ],
  cpu: [
    'Conv2D',
    'Conv2DBackpropFilter',
    'Conv2DBackpropInput',
    'DepthwiseConv2dNativeBackpropFilter',
    'MaxPoolGrad',
    'Tile',
    'BatchMatMul',
    'MaxPool',
    'Relu',
    'Step',
    'Sum',
    'Mean',
    ...BROADCAST_BINARY_KERNELS,
  ],
};

const wraps = (w: Wrapper) => ({ wraps: w });

/** Original kernel configs we replaced, keyed `backend/kernel`, so they can be put back. */
const originals = new Map<string, KernelConfig>();

/** True when `config` is one of the kernels this module registered. */
export function isFastGradientKernel(config: KernelConfig | undefined): boolean {
  return config != null && (config as MarkedConfig)[FAST_MARK] === true;
}

/**
 * Installs tensorpress' fast training kernels on `backendName` and returns the names of the
 * kernels now served by them: the convolution gradients (built from the backend's own Conv2D /
 * DepthwiseConv2dNative), MaxPoolGrad, Tile, and per backend the other measured hot spots (see
 * PLAN: BatchMatMul, Sum and Mean on wasm; Conv2D, broadcasting binary ops, Sum and Mean on cpu).
 * Only wasm and cpu have a plan; `kernels` overrides it. Missing kernels are added; slow ones are
 * replaced (the original is kept for {@link unregisterFastGradients}). Idempotent.
 */
export function registerFastGradients(backendName: string, kernels?: readonly FastGradientKernel[]): FastGradientKernel[] {
  const plan = kernels ?? PLAN[backendName] ?? [];
  const installed: FastGradientKernel[] = [];
  for (const name of plan) {
    const spec = BACKEND_SPECS[backendName]?.[name] ?? SPECS[name];
    if (!spec.requires.every((dep) => tf.getKernel(dep, backendName) != null)) continue;
    const existing = tf.getKernel(name, backendName);
    if (isFastGradientKernel(existing)) {
      installed.push(name);
      continue;
    }
    const impl = spec.impl;
    let fn: KernelFunc;
    if (typeof impl === 'function') {
      fn = kernelFunc(impl, backendName);
    } else {
      if (existing == null) continue;
      const original = existing.kernelFunc;
      fn = kernelFunc((s, inputs, attrs) => impl.wraps(s, inputs, attrs, original), backendName);
    }
    if (existing != null) {
      originals.set(`${backendName}/${name}`, existing);
      tf.unregisterKernel(name, backendName);
    }
    const config: MarkedConfig = { kernelName: name, backendName, kernelFunc: fn };
    config[FAST_MARK] = true;
    tf.registerKernel(config);
    installed.push(name);
  }
  return installed;
}

/**
 * Removes the kernels {@link registerFastGradients} installed on `backendName` and puts back the
 * backend's originals where there were any. Used to measure before/after and by tests.
 */
export function unregisterFastGradients(backendName: string): void {
  for (const name of FAST_GRADIENT_KERNELS) {
    if (!isFastGradientKernel(tf.getKernel(name, backendName))) continue;
    tf.unregisterKernel(name, backendName);
    const original = originals.get(`${backendName}/${name}`);
    if (original != null) tf.registerKernel(original);
    originals.delete(`${backendName}/${name}`);
  }
}

const IMPLS = {
  Conv2DBackpropFilter: (s, inputs, attrs) => {
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
  },

  Conv2DBackpropInput: (s, inputs, attrs) => {
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
  },

  DepthwiseConv2dNativeBackpropFilter: (s, inputs, attrs) => {
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
  },

  DepthwiseConv2dNativeBackpropInput: (s, inputs, attrs) => {
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
  },
} satisfies Record<string, Impl>;

const SPECS: Readonly<Record<FastGradientKernel, Spec>> = {
  Conv2DBackpropFilter: { requires: ['Conv2D', 'Transpose', 'Slice'], impl: IMPLS.Conv2DBackpropFilter },
  Conv2DBackpropInput: { requires: ['Conv2D', 'DepthwiseConv2dNative', 'Sum', 'Transpose', 'Reverse', 'PadV2', 'Slice'], impl: IMPLS.Conv2DBackpropInput },
  DepthwiseConv2dNativeBackpropFilter: {
    requires: ['DepthwiseConv2dNative', 'PadV2', 'Slice'],
    impl: IMPLS.DepthwiseConv2dNativeBackpropFilter,
  },
  DepthwiseConv2dNativeBackpropInput: {
    requires: ['DepthwiseConv2dNative', 'Reverse', 'PadV2', 'Slice', 'Sum'],
    impl: IMPLS.DepthwiseConv2dNativeBackpropInput,
  },
  MaxPoolGrad: { requires: [], impl: maxPoolGrad },
  Tile: { requires: [], impl: wraps((s, inputs, attrs, original) => (need(inputs, 'x').dtype === 'string' ? s.call(original, inputs, attrs) : tile(s, inputs, attrs))) },
  BatchMatMul: { requires: ['Transpose', 'Slice', 'Concat'], impl: wraps(batchMatMul) },
  Conv2D: { requires: [], impl: wraps(cpuConv2d) },
  MaxPool: { requires: [], impl: wraps(cpuMaxPool) },
  Relu: { requires: [], impl: wraps(cpuRelu) },
  Step: { requires: [], impl: wraps(cpuStep) },
  Sum: { requires: [], impl: wraps(leadingReduce(false)) },
  Mean: { requires: [], impl: wraps(leadingReduce(true)) },
  // tfjs-backend-wasm 4.22's OneHot ignores its dtype attribute and writes int32 bits into a
  // float32 tensor (a 1 reads as 1.4e-45): make it in int32 and cast with the backend's own kernel.
  OneHot: {
    requires: ['Cast'],
    impl: wraps((s, inputs, attrs, original) =>
      attrs['dtype'] === undefined || attrs['dtype'] === 'int32'
        ? s.call(original, inputs, attrs)
        : s.run('Cast', { x: s.call(original, inputs, { ...attrs, dtype: 'int32' }) }, { dtype: attrs['dtype'] }),
    ),
  },
  // While recording gradients, tfjs clones every tensor a kernel saves for its backward pass
  // (engine.saveTensorsForBackwardMode), and tf.customGrad clones what `save` gets. The cpu backend's
  // Identity shares the data (tensors are immutable; a variable's assign swaps data ids); wasm's
  // copies it, a full pass over every saved activation of a training step. Share it on wasm too,
  // as wasm's own Reshape does.
  Identity: {
    requires: [],
    impl: wraps((s, inputs, attrs, original) => {
      const x = need(inputs, 'x');
      if (x.dtype === 'string') return s.call(original, inputs, attrs);
      (s.backend as { incRef(dataId: object): void }).incRef(x.dataId);
      return s.view(x, x.shape);
    }),
  },
  ...binarySpecs(),
};

/** cpu-specific replacements: direct typed-array loops instead of the conv rewrites. */
const CPU_SPECS: Partial<Record<FastGradientKernel, Spec>> = {
  Conv2DBackpropFilter: { requires: [], impl: wraps(cpuConv2dBackpropFilter) },
  Conv2DBackpropInput: { requires: [], impl: wraps(cpuConv2dBackpropInput) },
  BatchMatMul: { requires: [], impl: wraps(cpuBatchMatMul) },
  DepthwiseConv2dNativeBackpropFilter: { requires: [], impl: depthwiseBackpropFilter },
};

/** wasm-specific replacements. */
const WASM_SPECS: Partial<Record<FastGradientKernel, Spec>> = {
  Sum: { requires: ['AvgPool'], impl: wraps(wasmLeadingReduce(false)) },
  Mean: { requires: ['AvgPool'], impl: wraps(wasmLeadingReduce(true)) },
};

const BACKEND_SPECS: Readonly<Record<string, Partial<Record<FastGradientKernel, Spec>>>> = { cpu: CPU_SPECS, wasm: WASM_SPECS };

function binarySpecs(): Record<(typeof BROADCAST_BINARY_KERNELS)[number], Spec> {
  const out = {} as Record<(typeof BROADCAST_BINARY_KERNELS)[number], Spec>;
  for (const k of BROADCAST_BINARY_KERNELS) out[k] = { requires: [], impl: wraps(broadcastBinary) };
  for (const k of ARITHMETIC_KERNELS) out[k] = { requires: [], impl: wraps(arithmetic(k)) };
  return out;
}

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

/** Shapes, strides and the forward padding, exactly as the forward kernel computed them. */
function convInfo(inShape: number[], filterShape: number[], attrs: NamedAttrMap, depthwise: boolean, nchw: boolean): Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    pair(attrs['strides'], 1),
    pair(attrs['dilations'], 1),
    attrs['pad'] as PadAttr as never,
    attrs['dimRoundingMode'] as RoundingMode,
    depthwise,
    nchw ? 'channelsFirst' : 'channelsLast',
  );
}

function checkDy(dy: TensorInfo, info: Conv2DInfo, kernel: string): void {
  const expected = info.outShape;
  if (dy.shape.length !== 4 || dy.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${kernel}: dy has shape [${dy.shape.join(',')}], expected [${expected.join(',')}]`);
  }
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

// ---------------------------------------------------------------------------------------------
// Gradient functions that accept dilations.

function runKernel(name: string, inputs: Record<string, Tensor>, attrs: NamedAttrMap): Tensor4D {
  return tf.engine().runKernel(name, inputs as never, attrs) as Tensor4D;
}

/** Inserts `d - 1` zeros between filter taps: a dilated filter as an ordinary one. */
function dilateFilter(f: Tensor4D, dh: number, dw: number): Tensor4D {
  const [kh, kw, a, b] = f.shape;
  return tf.tidy(() => {
    const spread = tf.pad(tf.reshape(f, [kh, 1, kw, 1, a, b]), [
      [0, 0],
      [0, dh - 1],
      [0, 0],
      [0, dw - 1],
      [0, 0],
      [0, 0],
    ]);
    const full = tf.reshape(spread, [kh * dh, kw * dw, a, b]);
    return tf.slice(full, [0, 0, 0, 0], [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b]);
  }) as Tensor4D;
}

/** Every `d`-th tap of a gradient computed for the zero-dilated filter. */
function undilate(g: Tensor4D, dh: number, dw: number): Tensor4D {
  const [h, w, a, b] = g.shape;
  return tf.stridedSlice(g, [0, 0, 0, 0], [h, w, a, b], [dh, dw, 1, 1]) as Tensor4D;
}

function nativeDilation(kernelName: string): boolean {
  return isFastGradientKernel(tf.getKernel(kernelName, tf.getBackend()));
}

const conv2dGrad: GradConfig = {
  kernelName: 'Conv2D',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dyIn, saved, attrs) => {
    const dy = dyIn as Tensor4D;
    const [x, filter] = saved as [Tensor4D, Tensor4D];
    const { strides, pad, dataFormat, dimRoundingMode } = attrs;
    const [dh, dw] = pair(attrs['dilations'], 1);
    const common = { strides, pad, dataFormat, dimRoundingMode } as NamedAttrMap;
    if (dh === 1 && dw === 1) {
      return {
        x: () => runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, inputShape: x.shape }),
        filter: () => runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: filter.shape }),
      };
    }
    const dilations = [dh, dw];
    return {
      x: () =>
        nativeDilation('Conv2DBackpropInput')
          ? runKernel('Conv2DBackpropInput', { dy, filter }, { ...common, dilations, inputShape: x.shape })
          : tf.tidy(() => {
              const fd = dilateFilter(filter, dh, dw);
              return runKernel('Conv2DBackpropInput', { dy, filter: fd }, { ...common, inputShape: x.shape });
            }),
      filter: () =>
        nativeDilation('Conv2DBackpropFilter')
          ? runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, dilations, filterShape: filter.shape })
          : tf.tidy(() => {
              const [kh, kw, a, b] = filter.shape;
              const shape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
              return undilate(runKernel('Conv2DBackpropFilter', { x, dy }, { ...common, filterShape: shape }), dh, dw);
            }),
    };
  },
};

const depthwiseGrad: GradConfig = {
  kernelName: 'DepthwiseConv2dNative',
  inputsToSave: ['x', 'filter'],
  gradFunc: (dyIn, saved, attrs) => {
    const dy = dyIn as Tensor4D;
    const [x, filter] = saved as [Tensor4D, Tensor4D];
    const { strides, pad, dimRoundingMode } = attrs;
    const [dh, dw] = pair(attrs['dilations'], 1);
    const dilations = [dh, dw];
    const common = { strides, pad, dimRoundingMode } as NamedAttrMap;
    const plain = dh === 1 && dw === 1;
    return {
      x: () =>
        plain || nativeDilation('DepthwiseConv2dNativeBackpropInput')
          ? runKernel('DepthwiseConv2dNativeBackpropInput', { dy, filter }, { ...common, dilations, inputShape: x.shape })
          : tf.tidy(() => {
              const fd = dilateFilter(filter, dh, dw);
              return runKernel(
                'DepthwiseConv2dNativeBackpropInput',
                { dy, filter: fd },
                { ...common, dilations: [1, 1], inputShape: x.shape },
              );
            }),
      filter: () =>
        plain || nativeDilation('DepthwiseConv2dNativeBackpropFilter')
          ? runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, dilations, filterShape: filter.shape })
          : tf.tidy(() => {
              const [kh, kw, a, b] = filter.shape;
              const shape = [(kh - 1) * dh + 1, (kw - 1) * dw + 1, a, b];
              const g = runKernel('DepthwiseConv2dNativeBackpropFilter', { x, dy }, { ...common, dilations: [1, 1], filterShape: shape });
              return undilate(g, dh, dw);
            }),
    };
  },
};

/**
 * Registers gradient functions for `Conv2D` and `DepthwiseConv2dNative` that also handle dilation
 * rates above 1 (tfjs' own assert they are 1). Undilated convolutions take exactly tfjs' path.
 * With dilation, backends running our kernels get the dilation natively; others get the
 * equivalent zero-inserted filter. Call after the stock gradients are loaded (idempotent).
 */
export function registerDilatedConvGradients(): void {
  if (tf.getGradient('Conv2D') !== conv2dGrad) tf.registerGradient(conv2dGrad);
  if (tf.getGradient('DepthwiseConv2dNative') !== depthwiseGrad) tf.registerGradient(depthwiseGrad);
}
