import * as tf from '@tensorflow/tfjs-core';
import { hasArrayKernel, registerArrayKernel } from '@tensorpress/kernels';
import { intsAttr, numAttr, strAttr, window2d, windowOut } from './attrs.js';
import { GraphError } from './errors.js';
import type { Dim, DType, Graph, Node, TensorInfo } from './graph.js';

/** What an op's forward function may use besides its inputs. */
export interface ForwardContext {
  /** Train mode: BN uses batch statistics and updates running ones, Dropout drops. */
  readonly training: boolean;
  /** A fresh seed for a stochastic op (dropout), drawn from the run's seeded stream. */
  nextSeed(): number;
  /** Records a new value for a non-trainable parameter (BN running statistics); the executor owns it. */
  updateParam(name: string, value: tf.Tensor): void;
  /** The graph being run (for inferred dtypes and shapes). */
  readonly graph: Graph;
}

/** Shape info of an op's output (the name is filled in by the graph). */
export type OutInfo = { shape: readonly Dim[]; dtype: DType; name: string };

/** How one op is checked, shaped and run. */
export interface OpSpec {
  readonly op: string;
  /** Minimum and maximum number of inputs. */
  readonly arity: readonly [number, number];
  /** Input ports that carry weights (Conv: 1, 2; Gemm: 1, 2; BN: 1..4). */
  readonly weightInputs: readonly number[];
  /** Output shapes from input shapes; throws a GraphError on a mismatch. */
  infer(inputs: readonly (TensorInfo | undefined)[], node: Node, graph: Graph): OutInfo[];
  /** Runs the op with tfjs ops (differentiable where it makes sense). */
  forward(inputs: readonly (tf.Tensor | undefined)[], node: Node, ctx: ForwardContext): tf.Tensor[];
}

const registry = new Map<string, OpSpec>();

/** Looks up an op by its ONNX name. */
export function getOp(op: string): OpSpec | undefined {
  return registry.get(op);
}

/** Every registered op name. */
export function listOps(): string[] {
  return [...registry.keys()].sort();
}

function fail(node: Node, message: string, code: 'SHAPE_MISMATCH' | 'GRAPH_INVALID' | 'UNSUPPORTED_OP' = 'SHAPE_MISMATCH'): never {
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

function dimsEqual(a: Dim, b: Dim): boolean {
  return a === null || b === null || a === b;
}

function broadcast(node: Node, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const y = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (dimsEqual(x, y)) out.push(x ?? y);
    else fail(node, `shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
  }
  return out;
}

function normAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(node, `axis ${axis} is out of range for rank ${rank}`, 'GRAPH_INVALID');
  return a;
}

function register(spec: OpSpec): void {
  registry.set(spec.op, spec);
}

function unary(op: string, fn: (x: tf.Tensor, node: Node) => tf.Tensor): void {
  register({
    op,
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      return [{ name: '', shape: x.shape, dtype: x.dtype }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), node)],
  });
}

function binary(op: string, fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): void {
  register({
    op,
    arity: [2, 2],
    weightInputs: [],
    infer: (ins, node) => {
      const a = need(node, ins, 0);
      const b = need(node, ins, 1);
      return [{ name: '', shape: broadcast(node, a.shape, b.shape), dtype: a.dtype }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), req(node, ins, 1))],
  });
}

// ---------------------------------------------------------------- elementwise

unary('Identity', (x) => tf.clone(x));
unary('Relu', (x) => tf.relu(x));
unary('Sigmoid', (x) => tf.sigmoid(x));
unary('Tanh', (x) => tf.tanh(x));
unary('LeakyRelu', (x, n) => tf.leakyRelu(x, numAttr(n, 'alpha', 0.01)));
unary('Clip', (x, n) => {
  const lo = numAttr(n, 'min', -Infinity);
  const hi = numAttr(n, 'max', Infinity);
  // clipByValue's gradient passes where lo <= x <= hi, as ONNX/PyTorch's hardtanh does.
  return tf.clipByValue(x, Math.max(lo, -3.4e38), Math.min(hi, 3.4e38));
});
unary('HardSigmoid', (x, n) => {
  const alpha = numAttr(n, 'alpha', 0.2);
  const beta = numAttr(n, 'beta', 0.5);
  return tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);
});
unary('HardSwish', (x) => tf.mul(x, tf.div(tf.clipByValue(tf.add(x, 3), 0, 6), 6)));
binary('Add', (a, b) => tf.add(a, b));
binary('Sub', (a, b) => tf.sub(a, b));
binary('Mul', (a, b) => tf.mul(a, b));
binary('Div', (a, b) => tf.div(a, b));

register({
  op: 'Softmax',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    normAxis(node, numAttr(node, 'axis', -1), x.shape.length);
    return [{ name: '', shape: x.shape, dtype: x.dtype }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const axis = normAxis(node, numAttr(node, 'axis', -1), x.rank);
    if (axis === x.rank - 1) return [tf.softmax(x)];
    const perm = [...Array(x.rank).keys()];
    perm[axis] = x.rank - 1;
    perm[x.rank - 1] = axis;
    return [tf.transpose(tf.softmax(tf.transpose(x, perm)), perm)];
  },
});

register({
  op: 'Dropout',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const r = numAttr(node, 'ratio', 0.5);
    if (!(r >= 0 && r < 1)) fail(node, `ratio must be in [0, 1), got ${r}`, 'GRAPH_INVALID');
    return [{ name: '', shape: x.shape, dtype: x.dtype }];
  },
  forward: (ins, node, ctx) => {
    const x = req(node, ins, 0);
    const r = numAttr(node, 'ratio', 0.5);
    if (!ctx.training || r === 0) return [tf.clone(x)];
    return [tf.dropout(x, r, undefined, ctx.nextSeed())];
  },
});

// ---------------------------------------------------------------- conv and dense

/** Resolved geometry of a Conv node, shared by the executor, statistics and transformations. */
export interface ConvGeometry {
  kernel: [number, number];
  strides: [number, number];
  dilations: [number, number];
  pads: [number, number, number, number];
  same: boolean;
  group: number;
  inChannels: number;
  outChannels: number;
  depthwise: boolean;
}

/** Reads a Conv node's geometry from its input and weight shapes (weight layout [kh, kw, cin/group, cout]). */
export function convGeometry(node: Node, x: readonly Dim[], w: readonly Dim[]): ConvGeometry {
  if (x.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x)}`);
  if (w.length !== 4 || w.some((d) => d === null)) fail(node, `weight must be [kh, kw, cin/group, cout], got ${fmt(w)}`);
  const [kh, kw, cpg, cout] = w as number[];
  const group = numAttr(node, 'group', 1);
  const cin = x[3];
  if (!Number.isInteger(group) || group < 1) fail(node, `group must be a positive integer, got ${group}`, 'GRAPH_INVALID');
  if (cin === null || cin === undefined) fail(node, 'input channels must be static');
  if (cin !== cpg! * group) {
    fail(node, `input has ${cin} channels but weight ${fmt(w)} with group=${group} expects ${cpg! * group}`);
  }
  if (cout! % group !== 0) fail(node, `output channels ${cout} are not divisible by group=${group}`);
  const ks = intsAttr(node, 'kernel_shape', [kh!, kw!]);
  if (ks[0] !== kh || ks[1] !== kw) fail(node, `kernel_shape [${ks.join(', ')}] disagrees with weight ${fmt(w)}`);
  const win = window2d(node, x[1]!, x[2]!, [kh!, kw!]);
  if ((win.strides[0] > 1 || win.strides[1] > 1) && (win.dilations[0] > 1 || win.dilations[1] > 1)) {
    fail(node, 'strides > 1 together with dilations > 1 is not supported by the tfjs kernels', 'UNSUPPORTED_OP');
  }
  return { ...win, group, inChannels: cin, outChannels: cout!, depthwise: group > 1 && group === cin && cpg === 1 };
}

/**
 * The NHWC output shape of a Conv (or QLinearConv) from its input, weight and optional bias
 * (`[cout]`, of `biasDtype` when given); throws a GraphError on a mismatch.
 */
function convOutShape(node: Node, x: TensorInfo, w: TensorInfo, b: TensorInfo | undefined, biasDtype?: DType): Dim[] {
  const g = convGeometry(node, x.shape, w.shape);
  if (b && (b.shape.length !== 1 || b.shape[0] !== g.outChannels || (biasDtype !== undefined && b.dtype !== biasDtype))) {
    fail(node, `bias must be ${biasDtype ?? ''}${biasDtype ? ' ' : ''}[${g.outChannels}], got ${biasDtype ? `${b.dtype} ` : ''}${fmt(b.shape)}`);
  }
  const oh = windowOut(x.shape[1]!, g.kernel[0], g.strides[0], g.dilations[0], g.pads[0], g.pads[2]);
  const ow = windowOut(x.shape[2]!, g.kernel[1], g.strides[1], g.dilations[1], g.pads[1], g.pads[3]);
  if ((oh !== null && oh < 1) || (ow !== null && ow < 1)) fail(node, `input ${fmt(x.shape)} is smaller than the kernel`);
  return [x.shape[0]!, oh, ow, g.outChannels];
}

/**
 * The output shape `[n, out]` of a Gemm (or QGemm) from its rank-2 input, its `[in, out]` weight and
 * optional bias (`[out]`, of `biasDtype` when given); throws a GraphError on a mismatch.
 */
function gemmOutShape(node: Node, a: TensorInfo, w: TensorInfo, c: TensorInfo | undefined, biasDtype?: DType): Dim[] {
  if (a.shape.length !== 2 || w.shape.length !== 2) fail(node, `needs rank-2 input and weight, got ${fmt(a.shape)} and ${fmt(w.shape)}`);
  if (!dimsEqual(a.shape[1]!, w.shape[0]!)) fail(node, `input ${fmt(a.shape)} does not match weight ${fmt(w.shape)} ([in, out])`);
  if (c && (c.shape.length !== 1 || c.shape[0] !== w.shape[1] || (biasDtype !== undefined && c.dtype !== biasDtype))) {
    fail(node, `bias must be ${biasDtype ? `${biasDtype} ` : ''}[${w.shape[1]}], got ${biasDtype ? `${c.dtype} ` : ''}${fmt(c.shape)}`);
  }
  return [a.shape[0]!, w.shape[1]!];
}

function padArg(g: { pads: [number, number, number, number]; same: boolean }): 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]] {
  if (g.same) return 'same';
  const [t, l, b, r] = g.pads;
  if (t === 0 && l === 0 && b === 0 && r === 0) return 'valid';
  return [
    [0, 0],
    [t, b],
    [l, r],
    [0, 0],
  ];
}

/** Runs an NHWC convolution of any group count with a [kh, kw, cin/group, cout] weight. */
export function runConv(x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor | undefined, g: ConvGeometry): tf.Tensor4D {
  const pad = padArg(g);
  let y: tf.Tensor4D;
  if (g.group === 1) {
    y = tf.conv2d(x, w, g.strides, pad, 'NHWC', g.dilations);
  } else if (g.depthwise) {
    const mult = g.outChannels / g.inChannels;
    const dw = tf.reshape(w, [g.kernel[0], g.kernel[1], g.inChannels, mult]) as tf.Tensor4D;
    y = tf.depthwiseConv2d(x, dw, g.strides, pad, 'NHWC', g.dilations);
  } else {
    const xs = tf.split(x, g.group, 3) as tf.Tensor4D[];
    const ws = tf.split(w, g.group, 3) as tf.Tensor4D[];
    y = tf.concat(
      xs.map((xi, i) => tf.conv2d(xi, ws[i]!, g.strides, pad, 'NHWC', g.dilations)),
      3,
    );
  }
  return b ? (tf.add(y, b) as tf.Tensor4D) : y;
}

register({
  op: 'Conv',
  arity: [2, 3],
  weightInputs: [1, 2],
  infer: (ins, node) => [{ name: '', shape: convOutShape(node, need(node, ins, 0), need(node, ins, 1), ins[2]), dtype: 'float32' }],
  forward: (ins, node) => {
    const x = req(node, ins, 0) as tf.Tensor4D;
    const w = req(node, ins, 1) as tf.Tensor4D;
    return [runConv(x, w, ins[2], convGeometry(node, x.shape, w.shape))];
  },
});

register({
  op: 'Gemm',
  arity: [2, 3],
  weightInputs: [1, 2],
  infer: (ins, node) => {
    if (numAttr(node, 'transA', 0) !== 0 || numAttr(node, 'transB', 0) !== 0) {
      fail(node, 'transA/transB must be 0 inside tensorpress (weights are stored [in, out])', 'GRAPH_INVALID');
    }
    return [{ name: '', shape: gemmOutShape(node, need(node, ins, 0), need(node, ins, 1), ins[2]), dtype: 'float32' }];
  },
  forward: (ins, node) => {
    const alpha = numAttr(node, 'alpha', 1);
    const beta = numAttr(node, 'beta', 1);
    let y = tf.matMul(req(node, ins, 0) as tf.Tensor2D, req(node, ins, 1) as tf.Tensor2D);
    if (alpha !== 1) y = tf.mul(y, alpha);
    const c = ins[2];
    if (c) y = tf.add(y, beta === 1 ? c : tf.mul(c, beta));
    return [y];
  },
});

register({
  op: 'MatMul',
  arity: [2, 2],
  weightInputs: [1],
  infer: (ins, node) => {
    const a = need(node, ins, 0);
    const b = need(node, ins, 1);
    if (a.shape.length < 2 || b.shape.length < 2) fail(node, `needs rank >= 2 operands, got ${fmt(a.shape)} and ${fmt(b.shape)}`);
    if (!dimsEqual(a.shape[a.shape.length - 1]!, b.shape[b.shape.length - 2]!)) {
      fail(node, `inner dimensions of ${fmt(a.shape)} and ${fmt(b.shape)} differ`);
    }
    const batch = broadcast(node, a.shape.slice(0, -2), b.shape.slice(0, -2));
    return [{ name: '', shape: [...batch, a.shape[a.shape.length - 2]!, b.shape[b.shape.length - 1]!], dtype: 'float32' }];
  },
  forward: (ins, node) => {
    const a = req(node, ins, 0);
    const b = req(node, ins, 1);
    if (a.rank === 2 && b.rank === 2) return [tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)];
    // Rank-3+ batch matmul with broadcasting: tfjs matMul broadcasts batch dims.
    return [tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D)];
  },
});

register({
  op: 'BatchNormalization',
  arity: [5, 5],
  weightInputs: [1, 2, 3, 4],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const c = x.shape[x.shape.length - 1];
    for (let i = 1; i <= 4; i++) {
      const p = need(node, ins, i);
      if (p.shape.length !== 1 || !dimsEqual(p.shape[0]!, c ?? null)) {
        fail(node, `input ${i} must be [${c}] (channels last), got ${fmt(p.shape)}`);
      }
    }
    return [{ name: '', shape: x.shape, dtype: 'float32' }];
  },
  forward: (ins, node, ctx) => {
    const x = req(node, ins, 0);
    const gamma = req(node, ins, 1);
    const beta = req(node, ins, 2);
    const mean = req(node, ins, 3);
    const variance = req(node, ins, 4);
    const eps = numAttr(node, 'epsilon', 1e-5);
    if (!ctx.training) return [tf.batchNorm(x, mean, variance, beta, gamma, eps)];
    const m = batchNormTrain(x, gamma, beta, eps);
    // Running statistics follow PyTorch/ONNX: momentum weights the old value; variance is unbiased.
    const momentum = numAttr(node, 'momentum', 0.9);
    const n = x.size / (x.shape[x.rank - 1] ?? 1);
    const unbiased = n > 1 ? tf.mul(m.variance, n / (n - 1)) : m.variance;
    ctx.updateParam(node.inputs[3]!, tf.add(tf.mul(mean, momentum), tf.mul(m.mean, 1 - momentum)));
    ctx.updateParam(node.inputs[4]!, tf.add(tf.mul(variance, momentum), tf.mul(unbiased, 1 - momentum)));
    return [m.y];
  },
});

/**
 * Train-mode batch normalisation over every axis but the last, with the closed-form backward
 * pass: dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)), dγ = Σ dy · x̂, dβ = Σ dy. Autodiff through
 * `moments` + `batchNorm` takes about three times as many full-size kernels. The batch mean and
 * (biased) variance are returned for the running statistics; they are not on the gradient tape.
 */
export function batchNormTrain(
  x: tf.Tensor,
  gamma: tf.Tensor,
  beta: tf.Tensor,
  eps: number,
): { y: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor } {
  const axes = [...Array(x.rank - 1).keys()];
  const count = x.size / x.shape[x.rank - 1]!;
  let mean: tf.Tensor | undefined;
  let variance: tf.Tensor | undefined;
  const f = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, g, b, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // The kernel's scope disposes everything but its output and saved tensors: keep the moments.
    mean = tf.keep(tf.mean(xi, axes));
    const xc = tf.sub(xi, mean);
    variance = tf.keep(tf.mean(tf.square(xc), axes));
    const invStd = tf.rsqrt(tf.add(variance, eps));
    const xhat = tf.mul(xc, invStd);
    save([xhat, invStd, g]);
    return {
      value: tf.add(tf.mul(xhat, g), b),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        const d = Array.isArray(dy) ? dy[0]! : dy;
        const [xh, is, gm] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const dBeta = tf.sum(d, axes);
        const dGamma = tf.sum(tf.mul(d, xh), axes);
        const centred = tf.sub(tf.sub(d, tf.div(dBeta, count)), tf.mul(xh, tf.div(dGamma, count)));
        return [tf.mul(centred, tf.mul(gm, is)), dGamma, dBeta];
      },
    };
  });
  const y = f(x, gamma, beta);
  // Clones share the data but belong to the caller's scope, so tidy frees them as usual.
  const out = { y, mean: tf.clone(mean!), variance: tf.clone(variance!) };
  mean!.dispose();
  variance!.dispose();
  return out;
}

// ---------------------------------------------------------------- pooling

function poolInfer(ins: readonly (TensorInfo | undefined)[], node: Node): OutInfo[] {
  const x = need(node, ins, 0);
  if (x.shape.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x.shape)}`);
  const k = intsAttr(node, 'kernel_shape', []);
  if (k.length !== 2 || !k.every((v) => v >= 1)) fail(node, 'kernel_shape must be two positive integers', 'GRAPH_INVALID');
  const win = window2d(node, x.shape[1]!, x.shape[2]!, [k[0]!, k[1]!]);
  if (win.dilations[0] !== 1 || win.dilations[1] !== 1) fail(node, 'dilated pooling is not supported', 'UNSUPPORTED_OP');
  if (intsAttr(node, 'ceil_mode', []).length > 0 || numAttr(node, 'ceil_mode', 0) !== 0) {
    fail(node, 'ceil_mode=1 is not supported; pad explicitly instead', 'UNSUPPORTED_OP');
  }
  if (node.op === 'AveragePool' && !win.same && numAttr(node, 'count_include_pad', 0) === 0 && win.pads.some((p) => p > 0)) {
    fail(node, 'explicit pads with count_include_pad=0 are only supported when they equal SAME padding', 'UNSUPPORTED_OP');
  }
  const oh = windowOut(x.shape[1]!, win.kernel[0], win.strides[0], 1, win.pads[0], win.pads[2]);
  const ow = windowOut(x.shape[2]!, win.kernel[1], win.strides[1], 1, win.pads[1], win.pads[3]);
  if ((oh !== null && oh < 1) || (ow !== null && ow < 1)) fail(node, `input ${fmt(x.shape)} is smaller than the window`);
  return [{ name: '', shape: [x.shape[0]!, oh, ow, x.shape[3]!], dtype: x.dtype }];
}

function poolForward(ins: readonly (tf.Tensor | undefined)[], node: Node): tf.Tensor[] {
  const x = req(node, ins, 0) as tf.Tensor4D;
  const k = intsAttr(node, 'kernel_shape', []);
  const win = window2d(node, x.shape[1], x.shape[2], [k[0]!, k[1]!]);
  const size: [number, number] = win.kernel;
  const max = node.op === 'MaxPool';
  const zero = win.pads.every((p) => p === 0);
  if (win.same || zero) {
    const pad = win.same ? 'same' : 'valid';
    return [max ? tf.maxPool(x, size, win.strides, pad) : tf.avgPool(x, size, win.strides, pad)];
  }
  const [t, l, b, r] = win.pads;
  const padded = tf.pad(x, [[0, 0], [t, b], [l, r], [0, 0]], max ? -3.4e38 : 0);
  return [max ? tf.maxPool(padded, size, win.strides, 'valid') : tf.avgPool(padded, size, win.strides, 'valid')];
}

register({ op: 'MaxPool', arity: [1, 1], weightInputs: [], infer: poolInfer, forward: poolForward });
register({ op: 'AveragePool', arity: [1, 1], weightInputs: [], infer: poolInfer, forward: poolForward });

register({
  op: 'GlobalAveragePool',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    if (x.shape.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x.shape)}`);
    return [{ name: '', shape: [x.shape[0]!, 1, 1, x.shape[3]!], dtype: x.dtype }];
  },
  forward: (ins, node) => [tf.mean(req(node, ins, 0), [1, 2], true)],
});

register({
  op: 'GlobalMaxPool',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    if (x.shape.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x.shape)}`);
    return [{ name: '', shape: [x.shape[0]!, 1, 1, x.shape[3]!], dtype: x.dtype }];
  },
  forward: (ins, node) => [tf.max(req(node, ins, 0), [1, 2], true)],
});

// ---------------------------------------------------------------- shape ops

register({
  op: 'Flatten',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const axis = numAttr(node, 'axis', 1);
    const a = axis < 0 ? axis + x.shape.length : axis;
    if (a < 0 || a > x.shape.length) fail(node, `axis ${axis} out of range`, 'GRAPH_INVALID');
    const prod = (ds: readonly Dim[]): Dim => (ds.some((d) => d === null) ? null : ds.reduce<number>((p, d) => p * d!, 1));
    return [{ name: '', shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))], dtype: x.dtype }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const axis = numAttr(node, 'axis', 1);
    const a = axis < 0 ? axis + x.rank : axis;
    const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
    return [tf.reshape(x, [outer, -1])];
  },
});

function resolveReshape(node: Node, input: readonly Dim[], target: readonly number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => {
    if (d === 0) {
      if (i >= input.length) fail(node, `0 at position ${i} copies a dimension the input does not have`, 'GRAPH_INVALID');
      return input[i]!;
    }
    if (d < -1) fail(node, `shape value ${d} is invalid`, 'GRAPH_INVALID');
    return d;
  });
  const minus = out.filter((d) => d === -1).length;
  if (minus > 1) fail(node, 'shape may hold at most one -1', 'GRAPH_INVALID');
  const staticIn = input.reduce<number>((p, d) => p * (d ?? 1), 1);
  const dynamicIn = input.filter((d) => d === null).length;
  const staticOut = out.reduce<number>((p, d) => (d === -1 || d === null ? p : p * d), 1);
  const dynamicOut = out.filter((d) => d === null).length;
  if (minus === 1) {
    const i = out.indexOf(-1);
    // A dynamic batch either stays in a copied 0 (then -1 is static) or flows into the -1.
    if (dynamicIn === dynamicOut) {
      if (staticIn % staticOut !== 0) fail(node, `cannot reshape ${fmt(input)} to [${target.join(', ')}]`);
      out[i] = staticIn / staticOut;
    } else if (staticIn % staticOut === 0) {
      out[i] = null;
    } else {
      fail(node, `cannot reshape ${fmt(input)} to [${target.join(', ')}]`);
    }
  } else if (dynamicIn === dynamicOut && staticIn !== staticOut) {
    fail(node, `cannot reshape ${fmt(input)} (${staticIn} values per batch) to [${target.join(', ')}]`);
  }
  return out;
}

register({
  op: 'Reshape',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const shape = intsAttr(node, 'shape', []);
    if (shape.length === 0) fail(node, 'attribute shape is required', 'GRAPH_INVALID');
    return [{ name: '', shape: resolveReshape(node, x.shape, shape), dtype: x.dtype }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const shape = intsAttr(node, 'shape', []).map((d, i) => (d === 0 ? x.shape[i]! : d));
    return [tf.reshape(x, shape)];
  },
});

register({
  op: 'Transpose',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const perm = intsAttr(node, 'perm', [...Array(x.shape.length).keys()].reverse());
    if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
      fail(node, `perm [${perm.join(', ')}] is not a permutation of rank ${x.shape.length}`, 'GRAPH_INVALID');
    }
    return [{ name: '', shape: perm.map((p) => x.shape[p]!), dtype: x.dtype }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    return [tf.transpose(x, intsAttr(node, 'perm', [...Array(x.rank).keys()].reverse()))];
  },
});

register({
  op: 'Concat',
  arity: [1, 64],
  weightInputs: [],
  infer: (ins, node) => {
    const xs = ins.map((_, i) => need(node, ins, i));
    const rank = xs[0]!.shape.length;
    const axis = normAxis(node, numAttr(node, 'axis', -1), rank);
    let total: Dim = 0;
    for (const x of xs) {
      if (x.shape.length !== rank) fail(node, `inputs have different ranks: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
      x.shape.forEach((d, i) => {
        if (i !== axis && !dimsEqual(d, xs[0]!.shape[i]!)) {
          fail(node, `inputs differ outside axis ${axis}: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
        }
      });
      const d = x.shape[axis]!;
      total = total === null || d === null ? null : total + d;
    }
    const shape = [...xs[0]!.shape];
    shape[axis] = total;
    return [{ name: '', shape, dtype: xs[0]!.dtype }];
  },
  forward: (ins, node) => {
    const xs = ins.map((_, i) => req(node, ins, i));
    return [tf.concat(xs, normAxis(node, numAttr(node, 'axis', -1), xs[0]!.rank))];
  },
});

register({
  op: 'Split',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const axis = normAxis(node, numAttr(node, 'axis', 0), x.shape.length);
    const split = intsAttr(node, 'split', []);
    const d = x.shape[axis]!;
    const n = node.outputs.length;
    const sizes = split.length > 0 ? split : d === null ? fail(node, 'split sizes are needed for a dynamic axis') : Array(n).fill(d / n);
    if (sizes.length !== n) fail(node, `split has ${sizes.length} sizes for ${n} outputs`, 'GRAPH_INVALID');
    if (d !== null && sizes.reduce((a, b) => a + b, 0) !== d) fail(node, `split sizes [${sizes.join(', ')}] do not sum to ${d}`);
    if (!sizes.every((s) => Number.isInteger(s) && s > 0)) fail(node, `axis size ${d} does not split evenly into ${n}`);
    return sizes.map((s) => {
      const shape = [...x.shape];
      shape[axis] = s;
      return { name: '', shape, dtype: x.dtype };
    });
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const axis = normAxis(node, numAttr(node, 'axis', 0), x.rank);
    const split = intsAttr(node, 'split', []);
    return tf.split(x, split.length > 0 ? split : node.outputs.length, axis);
  },
});

register({
  op: 'Pad',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    const pads = intsAttr(node, 'pads', []);
    const r = x.shape.length;
    if (pads.length !== 2 * r || pads.some((p) => p < 0)) fail(node, `pads must hold ${2 * r} non-negative values`, 'GRAPH_INVALID');
    const mode = strAttr(node, 'mode', 'constant');
    if (mode !== 'constant' && mode !== 'reflect') fail(node, `mode "${mode}" is not supported (constant, reflect)`, 'UNSUPPORTED_OP');
    return [{ name: '', shape: x.shape.map((d, i) => (d === null ? null : d + pads[i]! + pads[i + r]!)), dtype: x.dtype }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const pads = intsAttr(node, 'pads', []);
    const r = x.rank;
    const p = [...Array(r).keys()].map((i) => [pads[i]!, pads[i + r]!] as [number, number]);
    if (strAttr(node, 'mode', 'constant') === 'reflect') return [tf.mirrorPad(x, p, 'reflect')];
    return [tf.pad(x, p, numAttr(node, 'value', 0))];
  },
});

// ---------------------------------------------------------------- quantization (what strip() produces)

function qParams(node: Node, x: tf.Tensor, scale: tf.Tensor, zp: tf.Tensor | undefined): { s: tf.Tensor; z: tf.Tensor } {
  if (scale.rank === 0 || scale.size === 1) {
    return { s: tf.reshape(scale, []), z: zp ? tf.cast(tf.reshape(zp, []), 'float32') : tf.scalar(0) };
  }
  const axis = normAxis(node, numAttr(node, 'axis', 1), x.rank);
  const shape = Array(x.rank).fill(1) as number[];
  shape[axis] = scale.size;
  return { s: tf.reshape(scale, shape), z: zp ? tf.cast(tf.reshape(zp, shape), 'float32') : tf.zeros(shape) };
}

function qInfer(ins: readonly (TensorInfo | undefined)[], node: Node): void {
  const x = need(node, ins, 0);
  const s = need(node, ins, 1);
  const z = ins[2];
  const n = s.shape.reduce<number>((p, d) => p * (d ?? 1), 1);
  if (n > 1) {
    const axis = normAxis(node, numAttr(node, 'axis', 1), x.shape.length);
    if (!dimsEqual(x.shape[axis]!, n)) fail(node, `per-axis scale has ${n} values but axis ${axis} of ${fmt(x.shape)} has ${x.shape[axis]}`);
  }
  if (z && z.shape.reduce<number>((p, d) => p * (d ?? 1), 1) !== n) fail(node, 'zero point and scale sizes differ');
}

/** Integer range of a quantized dtype. */
export function qRange(dtype: DType): [number, number] {
  return dtype === 'uint8' ? [0, 255] : dtype === 'int8' ? [-128, 127] : [-2147483648, 2147483647];
}

register({
  op: 'QuantizeLinear',
  arity: [2, 3],
  weightInputs: [1, 2],
  infer: (ins, node) => {
    qInfer(ins, node);
    const x = need(node, ins, 0);
    const dtype = ins[2]?.dtype ?? 'uint8';
    if (dtype !== 'int8' && dtype !== 'uint8') fail(node, `zero point must be int8 or uint8, got ${dtype}`, 'GRAPH_INVALID');
    return [{ name: '', shape: x.shape, dtype }];
  },
  forward: (ins, node, ctx) => {
    const x = req(node, ins, 0);
    const { s, z } = qParams(node, x, req(node, ins, 1), ins[2]);
    // Integer dtypes travel as int32 tensors (tfjs has no int8); the inferred dtype tells the range.
    const [lo, hi] = qRange(ctx.graph.info(node.outputs[0]!).dtype);
    return [tf.cast(tf.clipByValue(tf.add(tf.round(tf.div(x, s)), z), lo, hi), 'int32')];
  },
});

register({
  op: 'DequantizeLinear',
  arity: [2, 3],
  weightInputs: [0, 1, 2],
  infer: (ins, node) => {
    qInfer(ins, node);
    return [{ name: '', shape: need(node, ins, 0).shape, dtype: 'float32' }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const { s, z } = qParams(node, x, req(node, ins, 1), ins[2]);
    return [tf.mul(tf.sub(tf.cast(x, 'float32'), z), s)];
  },
});

/**
 * Scale and zero point of ONNX DynamicQuantizeLinear for `x` (scalar tensors, float32): the range
 * [min(0, min x), max(0, max x)] of this very tensor mapped onto uint8 0..255. Call inside a tidy.
 */
export function dynamicQuantParams(x: tf.Tensor): { scale: tf.Tensor; zeroPoint: tf.Tensor } {
  const lo = tf.minimum(tf.min(x), 0);
  const hi = tf.maximum(tf.max(x), 0);
  const range = tf.sub(hi, lo);
  // An all-zero tensor has range 0: any positive scale maps it to code zp exactly.
  const scale = tf.where(tf.greater(range, 0), tf.div(range, 255), tf.onesLike(range));
  return { scale, zeroPoint: tf.clipByValue(tf.round(tf.neg(tf.div(lo, scale))), 0, 255) };
}

register({
  op: 'DynamicQuantizeLinear',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = need(node, ins, 0);
    if (node.outputs.length !== 3) fail(node, `needs 3 outputs (y, y_scale, y_zero_point), has ${node.outputs.length}`, 'GRAPH_INVALID');
    return [
      { name: '', shape: x.shape, dtype: 'uint8' },
      { name: '', shape: [], dtype: 'float32' },
      { name: '', shape: [], dtype: 'uint8' },
    ];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const { scale, zeroPoint: zp } = dynamicQuantParams(x);
    const y = tf.clipByValue(tf.add(tf.round(tf.div(x, scale)), zp), 0, 255);
    return [tf.cast(y, 'int32'), scale, tf.cast(zp, 'int32')];
  },
});

// ---------------------------------------------------------------- integer ops (what toIntegerOps makes)

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

registerArrayKernel({
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
});

register({
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
});

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

register({
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
});

register({
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
});

register({
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
});
