/**
 * QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear: the quantization vocabulary a
 * stripped graph carries (integer initializers, scales and zero points per tensor or per axis).
 */
import * as tf from '@tensorflow/tfjs-core';
import { numAttr } from '../attrs.js';
import type { DType, Node, TensorInfo } from '../graph.js';
import { dimsEqual, fail, fmt, need, needFloat, normAxis, req } from './helpers.js';
import type { OpSpec } from './registry.js';

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
  const s = needFloat(node, ins, 1);
  const z = ins[2];
  if (node.op === 'QuantizeLinear' && x.dtype !== 'float32') fail(node, `input 0 must be float32, got ${x.dtype}`, 'GRAPH_INVALID');
  if (node.op === 'DequantizeLinear' && x.dtype === 'float32') fail(node, 'input 0 must hold integer codes (int8, uint8 or int32), got float32', 'GRAPH_INVALID');
  if (z && z.dtype === 'float32') fail(node, 'zero point must be an integer tensor, got float32', 'GRAPH_INVALID');
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

/** The quantization ops, in registration order. */
export const QUANTIZE_OPS: readonly OpSpec[] = [
  {
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
  },
  {
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
  },
  {
    op: 'DynamicQuantizeLinear',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
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
  },
];
