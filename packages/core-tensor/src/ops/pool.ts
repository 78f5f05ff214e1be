/** Pooling ops over NHWC maps: windowed max and average, global average and max. */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, numAttr, window2d, windowOut } from '../attrs.js';
import type { Node, TensorInfo } from '../graph.js';
import { fail, fmt, needFloat, req } from './helpers.js';
import type { OpSpec, OutInfo } from './registry.js';

function poolInfer(ins: readonly (TensorInfo | undefined)[], node: Node): OutInfo[] {
  const x = needFloat(node, ins, 0);
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

/** A global pool's output: one value per image and channel, `[n, 1, 1, c]`. */
function globalPoolInfer(ins: readonly (TensorInfo | undefined)[], node: Node): OutInfo[] {
  const x = needFloat(node, ins, 0);
  if (x.shape.length !== 4) fail(node, `input must be NHWC rank 4, got ${fmt(x.shape)}`);
  return [{ name: '', shape: [x.shape[0]!, 1, 1, x.shape[3]!], dtype: x.dtype }];
}

/** The pooling ops, in registration order. */
export const POOL_OPS: readonly OpSpec[] = [
  { op: 'MaxPool', arity: [1, 1], weightInputs: [], infer: poolInfer, forward: poolForward },
  { op: 'AveragePool', arity: [1, 1], weightInputs: [], infer: poolInfer, forward: poolForward },
  { op: 'GlobalAveragePool', arity: [1, 1], weightInputs: [], infer: globalPoolInfer, forward: (ins, node) => [tf.mean(req(node, ins, 0), [1, 2], true)] },
  { op: 'GlobalMaxPool', arity: [1, 1], weightInputs: [], infer: globalPoolInfer, forward: (ins, node) => [tf.max(req(node, ins, 0), [1, 2], true)] },
];
