/**
 * onnxruntime's integer kernels as executor ops: QLinearConv, QGemm, QLinearAdd and
 * QLinearGlobalAveragePool, the ops `toIntegerOps` rewrites a stripped QDQ graph into, so that
 * tensorpress runs a quantized graph code for code as onnxruntime's optimised session does. They
 * are not core vocabulary (a stripped graph never holds them): {@link registerIntegerOps} adds them
 * to core's registry when they are first needed.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  GraphError,
  convGeometry,
  convOutShape,
  gemmOutShape,
  qRange,
  registerOp,
  runConv,
  type Dim,
  type DType,
  type ForwardContext,
  type Node,
  type OpSpec,
  type TensorInfo,
} from '@tensorpress/core-tensor';
import { hasArrayKernel, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/kernels';

// Core's op checks are internal to it; these four keep its error codes and message format.
function fail(node: Node, message: string, code: 'SHAPE_MISMATCH' | 'GRAPH_INVALID' = 'SHAPE_MISMATCH'): never {
  throw new GraphError(code, `node "${node.name}" (${node.op}): ${message}`, { node: node.name, op: node.op });
}

function need(node: Node, inputs: readonly (TensorInfo | undefined)[], i: number): TensorInfo {
  const t = inputs[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

function req(node: Node, inputs: readonly (tf.Tensor | undefined)[], i: number): tf.Tensor {
  const t = inputs[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

function fmt(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]`;
}


/** A scalar float32 input as a JavaScript number (scales, read once per run). */
function scalarOf(node: Node, t: tf.Tensor, what: string): number {
  if (t.size !== 1) fail(node, `${what} must be a scalar, got shape ${fmt(t.shape)}`);
  return t.dataSync()[0]!;
}

/**
 * The requantisation of an integer runtime (onnxruntime's MLAS, TFLite's float path): the int32
 * accumulator converted to float32, times the float32 multiplier, clamped to the output range
 * minus the zero point, rounded half to even, plus the zero point. Returns codes in an int32 tensor.
 */
function requantize(acc: tf.Tensor, multiplier: tf.Tensor | number, zp: number, [lo, hi]: [number, number]): tf.Tensor {
  return tf.cast(tf.add(tf.round(tf.clipByValue(tf.mul(acc, multiplier), lo - zp, hi - zp)), zp), 'int32');
}

/** Dtype of the codes a QLinear op writes: that of its output zero point (uint8 when absent). */
function outCodes(node: Node, ins: readonly (TensorInfo | undefined)[], zpIndex: number): DType {
  const dtype = ins[zpIndex]?.dtype ?? 'uint8';
  if (dtype !== 'int8' && dtype !== 'uint8') fail(node, `output zero point must be int8 or uint8, got ${dtype}`, 'GRAPH_INVALID');
  return dtype;
}

/** Kernel of QLinearAdd on wasm and cpu: onnxruntime's x86 (AVX2) arithmetic, value by value. */
const QLINEAR_ADD_KERNEL = 'TensorpressQLinearAdd';

const QLINEAR_ADD_ARRAY_KERNEL: ArrayKernelSpec = {
  kernelName: QLINEAR_ADD_KERNEL,
  inputs: ['a', 'b'],
  outputs: (shapes) => [{ shape: [...shapes[0]!], dtype: 'int32' }],
  compute: ([a, b], [c], _shapes, attrs) => {
    const [rAC, rBC, fixed, lo, hi] = (['rAC', 'rBC', 'fixed', 'lo', 'hi'] as const).map((k) => attrs[k] as number) as [number, number, number, number, number];
    const f = Math.fround;
    const n = c!.length;
    for (let i = 0; i < n; i++) {
      // Two float32 fused multiply-adds: x·y is exact in a double and x·y + z (magnitudes below
      // 2^17, steps above 2^-40) too, so one fround is the single rounding of an FMA.
      const v = f(a![i]! * rAC + f(b![i]! * rBC + fixed));
      let r = Math.round(v);
      if (r - v === 0.5 && r % 2 !== 0) r -= 1;
      c![i] = r < lo ? lo : r > hi ? hi : r;
    }
  },
};

const QLINEAR_ADD: OpSpec = {
  op: 'QLinearAdd',
  // a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point (com.microsoft)
  arity: [8, 8],
  weightInputs: [1, 2, 4, 5, 6, 7],
  infer: (ins, node) => {
    const a = need(node, ins, 0);
    const b = need(node, ins, 3);
    if (fmt(a.shape) !== fmt(b.shape)) fail(node, `inputs must have one shape (no broadcasting), got ${fmt(a.shape)} and ${fmt(b.shape)}`);
    return [{ name: '', shape: [...a.shape], dtype: outCodes(node, ins, 7) }];
  },
  forward: (ins, node, ctx) => {
    // onnxruntime's MLAS kernel: ratios a_scale/c_scale and b_scale/c_scale, the zero points folded
    // into one constant, then c = round_half_even(fma(a, r_ac, fma(b, r_bc, fixed))), saturated.
    const f = Math.fround;
    const scalar = (i: number, what: string): number => scalarOf(node, req(node, ins, i), what);
    const [za, zb, zc] = [scalar(2, 'a_zero_point'), scalar(5, 'b_zero_point'), scalar(7, 'c_zero_point')];
    const sc = f(scalar(6, 'c_scale'));
    const rAC = f(f(scalar(1, 'a_scale')) / sc);
    const rBC = f(f(scalar(4, 'b_scale')) / sc);
    // The compiler contracts r_ac·z_a + r_bc·z_b into one FMA (what onnxruntime's x86 build computes).
    const fixed = f(zc - f(rAC * za + f(rBC * zb)));
    const [lo, hi] = qRange(ctx.graph.info(node.outputs[0]!).dtype);
    const a = req(node, ins, 0);
    const b = req(node, ins, 3);
    if (hasArrayKernel(QLINEAR_ADD_KERNEL)) {
      return [tf.engine().runKernel(QLINEAR_ADD_KERNEL, { a, b }, { rAC, rBC, fixed, lo, hi }) as tf.Tensor];
    }
    // Other backends: the same sum in float32 tensor ops (two roundings where the kernel has one).
    const sum = tf.add(tf.mul(tf.cast(a, 'float32'), rAC), tf.add(tf.mul(tf.cast(b, 'float32'), rBC), fixed));
    return [tf.cast(tf.clipByValue(tf.round(sum), lo, hi), 'int32')];
  },
};

/**
 * Largest magnitude below which float32 sums of integer products are exact (2^24). Above it,
 * QLinearConv splits the weight into w = 16·hi + lo so that each partial sum stays exact, and adds
 * the parts in int32. Exact while k·max|x − x_zp|·16 < 2^24 (k = kh·kw·cin/group up to 4,112).
 */
const EXACT_SUM = 2 ** 24;

/**
 * The int32 accumulator of an integer conv or GEMM: Σ (x − x_zp)(w − w_zp) over `k` products per
 * output, with `product` (conv or matmul) run in float32 on the centred codes. Integer products
 * summed in float32 are exact while every partial sum stays below 2^24: the codes' bound comes from
 * their dtype (no pass over the activation), the weights' from the data; above it the weight is
 * split as w = 16·hi + lo and the two partial results are combined in int32, like the runtime's
 * accumulator. Inputs in ONNX order: x, x_scale, x_zero_point, w, w_scale, w_zero_point (port
 * `wZpPort`).
 */
function integerAccumulate(
  node: Node,
  ins: readonly (tf.Tensor | undefined)[],
  wZpPort: number,
  k: number,
  ctx: ForwardContext,
  product: (x: tf.Tensor, w: tf.Tensor) => tf.Tensor,
): tf.Tensor {
  const zx = ins[2] ? scalarOf(node, ins[2], 'x_zero_point') : 0;
  const x = tf.sub(tf.cast(req(node, ins, 0), 'float32'), zx);
  const wq = req(node, ins, 3);
  const w = ins[wZpPort] ? tf.sub(tf.cast(wq, 'float32'), tf.cast(ins[wZpPort]!, 'float32')) : tf.cast(wq, 'float32');
  const [xlo, xhi] = qRange(ctx.graph.info(node.inputs[0]!).dtype);
  const mx = Math.max(zx - xlo, xhi - zx);
  const mw = tf.max(tf.abs(w)).dataSync()[0]!;
  const exact = (ww: tf.Tensor): tf.Tensor => tf.cast(product(x, ww), 'int32');
  if (k * mx * mw < EXACT_SUM) return exact(w);
  const hi = tf.floor(tf.div(tf.add(w, 8), 16));
  return tf.add(tf.mul(exact(hi), tf.scalar(16, 'int32')), exact(tf.sub(w, tf.mul(hi, 16))));
}

/**
 * onnxruntime's requantisation of an int32 accumulator (bias included): per output channel the
 * float32 multiplier (x_scale · w_scale) / y_scale, rounded half to even, clamped, plus y_zero_point.
 * x_scale is input 1, w_scale input 4, y_scale input `yScalePort` (its zero point the next one).
 */
function requantizeLinear(node: Node, ins: readonly (tf.Tensor | undefined)[], acc: tf.Tensor, yScalePort: number, ctx: ForwardContext): tf.Tensor {
  const zy = ins[yScalePort + 1] ? scalarOf(node, ins[yScalePort + 1]!, 'y_zero_point') : 0;
  const range = qRange(ctx.graph.info(node.outputs[0]!).dtype);
  return requantize(tf.cast(acc, 'float32'), outputScales(node, ins, yScalePort), zy, range);
}

/**
 * onnxruntime's output scales of an integer conv or GEMM, one per output channel: float32
 * (x_scale · w_scale), divided in float32 by y_scale (input `yScalePort`) when the output is
 * requantised. A number when there is one channel scale.
 */
function outputScales(node: Node, ins: readonly (tf.Tensor | undefined)[], yScalePort?: number): tf.Tensor | number {
  const sx = Math.fround(scalarOf(node, req(node, ins, 1), 'x_scale'));
  const sy = yScalePort === undefined ? 1 : Math.fround(scalarOf(node, req(node, ins, yScalePort), 'y_scale'));
  const m = Float32Array.from(req(node, ins, 4).dataSync(), (s) => Math.fround(Math.fround(sx * s) / sy));
  return m.length === 1 ? m[0]! : tf.tensor1d(m);
}

/** Fails unless the weight scale (input 4) has one value or one per output channel. */
function checkChannelScales(node: Node, ins: readonly (TensorInfo | undefined)[], channels: Dim, what: string): void {
  const n = need(node, ins, 4).shape.reduce<number>((p, d) => p * (d ?? 1), 1);
  if (n !== 1 && n !== channels) fail(node, `${what} has ${n} values; needs 1 or ${channels} (one per output channel)`);
}

const QLINEAR_CONV: OpSpec = {
  op: 'QLinearConv',
  // x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, [B] (ONNX order)
  arity: [8, 9],
  weightInputs: [1, 2, 3, 4, 5, 6, 7, 8],
  infer: (ins, node) => {
    const shape = convOutShape(node, need(node, ins, 0), need(node, ins, 3), ins[8], 'int32');
    checkChannelScales(node, ins, shape[3]!, 'w_scale');
    return [{ name: '', shape, dtype: outCodes(node, ins, 7) }];
  },
  forward: (ins, node, ctx) => {
    const xq = req(node, ins, 0);
    const wq = req(node, ins, 3);
    const g = convGeometry(node, xq.shape, wq.shape);
    const k = g.kernel[0] * g.kernel[1] * (g.inChannels / g.group);
    const acc = integerAccumulate(node, ins, 5, k, ctx, (x, w) => runConv(x as tf.Tensor4D, w as tf.Tensor4D, undefined, g));
    return [requantizeLinear(node, ins, ins[8] ? tf.add(acc, tf.cast(ins[8], 'int32')) : acc, 6, ctx)];
  },
};

const QGEMM: OpSpec = {
  op: 'QGemm',
  // a, a_scale, a_zero_point, b, b_scale, b_zero_point, [C (int32 bias)], [y_scale, y_zero_point]
  // (onnxruntime's com.microsoft QGemm; weights [in, out]). Without y_scale the output is float:
  // the accumulator times x_scale · w_scale.
  arity: [6, 9],
  weightInputs: [1, 2, 3, 4, 5, 6, 7, 8],
  infer: (ins, node) => {
    const shape = gemmOutShape(node, need(node, ins, 0), need(node, ins, 3), ins[6], 'int32');
    checkChannelScales(node, ins, shape[1]!, 'b_scale');
    return [{ name: '', shape, dtype: ins[7] ? outCodes(node, ins, 8) : 'float32' }];
  },
  forward: (ins, node, ctx) => {
    const k = req(node, ins, 3).shape[0]!;
    let acc = integerAccumulate(node, ins, 5, k, ctx, (x, w) => tf.matMul(x as tf.Tensor2D, w as tf.Tensor2D));
    if (ins[6]) acc = tf.add(acc, tf.cast(ins[6], 'int32'));
    if (ins[7]) return [requantizeLinear(node, ins, acc, 7, ctx)];
    // Float output: float32(acc) · float32(x_scale · w_scale), per column.
    return [tf.mul(tf.cast(acc, 'float32'), outputScales(node, ins))];
  },
};

const QLINEAR_GLOBAL_AVERAGE_POOL: OpSpec = {
  op: 'QLinearGlobalAveragePool',
  // x, x_scale, x_zero_point, y_scale, y_zero_point (com.microsoft, channels last)
  arity: [5, 5],
  weightInputs: [1, 2, 3, 4],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    if (x.shape.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x.shape)}`);
    return [{ name: '', shape: [x.shape[0]!, 1, 1, x.shape[3]!], dtype: outCodes(node, ins, 4) }];
  },
  forward: (ins, node, ctx) => {
    const xq = req(node, ins, 0);
    const size = xq.shape[1]! * xq.shape[2]!;
    const zx = scalarOf(node, req(node, ins, 2), 'x_zero_point');
    const zy = scalarOf(node, req(node, ins, 4), 'y_zero_point');
    const sx = Math.fround(scalarOf(node, req(node, ins, 1), 'x_scale'));
    const sy = Math.fround(scalarOf(node, req(node, ins, 3), 'y_scale'));
    // Integer sum over the image minus the zero point's share, requantised by x_scale / (y_scale · size).
    const acc = tf.cast(tf.sub(tf.sum(tf.cast(xq, 'int32'), [1, 2], true), tf.scalar(zx * size, 'int32')), 'float32');
    return [requantize(acc, Math.fround(sx / Math.fround(sy * size)), zy, qRange(ctx.graph.info(node.outputs[0]!).dtype))];
  },
};

/**
 * Adds QLinearConv, QGemm, QLinearAdd and QLinearGlobalAveragePool to core's op registry (and
 * QLinearAdd's array kernel to the wasm and cpu backends), so that graphs may hold them and the
 * executor runs them. `toIntegerOps` (and so `checkParity`) calls it; call it yourself before
 * building, loading (`loadGraph`) or running a graph that holds these ops by another way. Idempotent;
 * nothing registers them on import.
 */
export function registerIntegerOps(): void {
  registerArrayKernel(QLINEAR_ADD_ARRAY_KERNEL);
  for (const spec of [QLINEAR_CONV, QGEMM, QLINEAR_ADD, QLINEAR_GLOBAL_AVERAGE_POOL]) registerOp(spec);
}
