/**
 * Reductions over any axes (ReduceMean, ReduceSum, ReduceMax with `axes` in core's layout and
 * `keepdims`), LogSoftmax on any axis and ArgMax (int32 indices, first maximum).
 */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, numAttr, type Dim, type OpSpec } from '@tensorpress/core-tensor';
import { fail, needFloat, normAxes, normAxis, req } from './helpers.js';

function reduce(op: string, fn: (x: tf.Tensor, axes: number[], keep: boolean) => tf.Tensor): OpSpec {
  return {
    op,
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      const axes = normAxes(node, intsAttr(node, 'axes', []), x.shape.length);
      const keep = numAttr(node, 'keepdims', 1) !== 0;
      const shape: Dim[] = [];
      x.shape.forEach((d, i) => {
        if (!axes.includes(i)) shape.push(d);
        else if (keep) shape.push(1);
      });
      return [{ name: '', shape, dtype: 'float32' }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      return [fn(x, normAxes(node, intsAttr(node, 'axes', []), x.rank), numAttr(node, 'keepdims', 1) !== 0)];
    },
  };
}

/** Moves `axis` last, applies `fn` along the last axis, and moves it back. */
function alongAxis(x: tf.Tensor, axis: number, fn: (t: tf.Tensor) => tf.Tensor): tf.Tensor {
  if (axis === x.rank - 1) return fn(x);
  const perm = [...Array(x.rank).keys()];
  perm[axis] = x.rank - 1;
  perm[x.rank - 1] = axis;
  return tf.transpose(fn(tf.transpose(x, perm)), perm);
}

/** The reduction op family. */
export const REDUCE_ONNX_OPS: readonly OpSpec[] = [
  reduce('ReduceMean', (x, a, k) => tf.mean(x, a, k)),
  reduce('ReduceSum', (x, a, k) => tf.sum(x, a, k)),
  reduce('ReduceMax', (x, a, k) => tf.max(x, a, k)),
  {
    op: 'LogSoftmax',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      normAxis(node, numAttr(node, 'axis', -1), x.shape.length);
      return [{ name: '', shape: x.shape, dtype: 'float32' }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      return [alongAxis(x, normAxis(node, numAttr(node, 'axis', -1), x.rank), (t) => tf.logSoftmax(t))];
    },
  },
  {
    op: 'ArgMax',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', 0), x.shape.length);
      if (numAttr(node, 'select_last_index', 0) !== 0) fail(node, 'select_last_index=1 is not supported', 'UNSUPPORTED_OP');
      const keep = numAttr(node, 'keepdims', 1) !== 0;
      const shape = x.shape.flatMap((d, i) => (i !== axis ? [d] : keep ? [1] : []));
      return [{ name: '', shape, dtype: 'int32' }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', 0), x.rank);
      const y = tf.argMax(x, axis);
      return [numAttr(node, 'keepdims', 1) !== 0 ? tf.expandDims(y, axis) : y];
    },
  },
];
