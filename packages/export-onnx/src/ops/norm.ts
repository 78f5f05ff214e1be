/**
 * LayerNormalization (over the axes from `axis` to the last, with a scale and an optional bias
 * shaped like them) and InstanceNormalization (an NHWC map normalised per example and channel over
 * H and W, scale and bias `[C]`). Differentiable through tfjs autodiff.
 */
import * as tf from '@tensorflow/tfjs-core';
import { numAttr, type OpSpec } from '@tensorpress/core-tensor';
import { broadcast, fail, fmt, needFloat, normAxis, req } from './helpers.js';

/** The normalisation op family. */
export const NORM_ONNX_OPS: readonly OpSpec[] = [
  {
    op: 'LayerNormalization',
    arity: [2, 3],
    weightInputs: [1, 2],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', -1), x.shape.length);
      const normed = x.shape.slice(axis);
      for (const i of [1, 2]) {
        if (!ins[i]) continue;
        const p = needFloat(node, ins, i);
        if (broadcast(node, normed, p.shape).length !== normed.length) fail(node, `input ${i} ${fmt(p.shape)} does not broadcast to the normalised axes ${fmt(normed)}`);
      }
      return [{ name: '', shape: x.shape, dtype: 'float32' }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', -1), x.rank);
      const axes = [...Array(x.rank - axis).keys()].map((i) => i + axis);
      const { mean, variance } = tf.moments(x, axes, true);
      let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, numAttr(node, 'epsilon', 1e-5))));
      y = tf.mul(y, req(node, ins, 1));
      return [ins[2] ? tf.add(y, ins[2]) : y];
    },
  },
  {
    op: 'InstanceNormalization',
    arity: [3, 3],
    weightInputs: [1, 2],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      if (x.shape.length !== 4) fail(node, `input must be an NHWC map, got ${fmt(x.shape)}`);
      const c = x.shape[3]!;
      for (const i of [1, 2]) {
        const p = needFloat(node, ins, i);
        if (p.shape.length !== 1 || (c !== null && p.shape[0] !== c)) fail(node, `input ${i} must be [${c}], got ${fmt(p.shape)}`);
      }
      return [{ name: '', shape: x.shape, dtype: 'float32' }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const { mean, variance } = tf.moments(x, [1, 2], true);
      const y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, numAttr(node, 'epsilon', 1e-5))));
      return [tf.add(tf.mul(y, req(node, ins, 1)), req(node, ins, 2))];
    },
  },
];
