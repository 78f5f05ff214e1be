/** Convolution and dense ops (Conv with group, Gemm, MatMul) and the geometry they share. */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, numAttr, window2d, windowOut, type Window2D } from '../attrs.js';
import type { Dim, DType, Node, TensorInfo } from '../graph.js';
import { broadcast, dimsEqual, fail, fmt, needFloat, req } from './helpers.js';
import type { OpSpec } from './registry.js';

/** Resolved geometry of a Conv node, shared by the executor, statistics and transformations. */
export interface ConvGeometry extends Window2D {
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
export function convOutShape(node: Node, x: TensorInfo, w: TensorInfo, b: TensorInfo | undefined, biasDtype?: DType): Dim[] {
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
export function gemmOutShape(node: Node, a: TensorInfo, w: TensorInfo, c: TensorInfo | undefined, biasDtype?: DType): Dim[] {
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

/** An optional float input (a bias): absent, or float32. */
function floatOrAbsent(node: Node, ins: readonly (TensorInfo | undefined)[], i: number): TensorInfo | undefined {
  return ins[i] ? needFloat(node, ins, i) : undefined;
}

/** The convolution and dense ops, in registration order. */
export const CONV_OPS: readonly OpSpec[] = [
  {
    op: 'Conv',
    arity: [2, 3],
    weightInputs: [1, 2],
    infer: (ins, node) => [{ name: '', shape: convOutShape(node, needFloat(node, ins, 0), needFloat(node, ins, 1), floatOrAbsent(node, ins, 2)), dtype: 'float32' }],
    forward: (ins, node) => {
      const x = req(node, ins, 0) as tf.Tensor4D;
      const w = req(node, ins, 1) as tf.Tensor4D;
      return [runConv(x, w, ins[2], convGeometry(node, x.shape, w.shape))];
    },
  },
  {
    op: 'Gemm',
    arity: [2, 3],
    weightInputs: [1, 2],
    infer: (ins, node) => {
      if (numAttr(node, 'transA', 0) !== 0 || numAttr(node, 'transB', 0) !== 0) {
        fail(node, 'transA/transB must be 0 inside tensorpress (weights are stored [in, out])', 'GRAPH_INVALID');
      }
      return [{ name: '', shape: gemmOutShape(node, needFloat(node, ins, 0), needFloat(node, ins, 1), floatOrAbsent(node, ins, 2)), dtype: 'float32' }];
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
  },
  {
    op: 'MatMul',
    arity: [2, 2],
    weightInputs: [1],
    infer: (ins, node) => {
      const a = needFloat(node, ins, 0);
      const b = needFloat(node, ins, 1);
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
      const k = a.shape[a.rank - 1]!;
      const n = b.shape[b.rank - 1]!;
      // Rows of any rank times a matrix (a Linear on tokens): one 2-D product.
      if (b.rank === 2) return [tf.reshape(tf.matMul(tf.reshape(a, [-1, k]) as tf.Tensor2D, b as tf.Tensor2D), [...a.shape.slice(0, -1), n])];
      // Batch dims broadcast explicitly: tfjs' BatchMatMul gradient does not sum over broadcast dims.
      const [ba, bb] = [a.shape.slice(0, -2), b.shape.slice(0, -2)];
      const r = Math.max(ba.length, bb.length);
      const batch = Array.from({ length: r }, (_, i) => Math.max(ba[ba.length - r + i] ?? 1, bb[bb.length - r + i] ?? 1));
      const full = (t: tf.Tensor): tf.Tensor => (t.shape.slice(0, -2).join() === batch.join() ? t : tf.broadcastTo(t, [...batch, ...t.shape.slice(-2)]));
      return [tf.matMul(full(a) as tf.Tensor3D, full(b) as tf.Tensor3D)];
    },
  },
];
