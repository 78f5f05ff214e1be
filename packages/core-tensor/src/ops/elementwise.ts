/** Elementwise ops: activations, the four arithmetic binaries, Softmax and Dropout. */
import * as tf from '@tensorflow/tfjs-core';
import { numAttr } from '../attrs.js';
import type { Node } from '../graph.js';
import { broadcast, fail, need, needFloat, normAxis, req } from './helpers.js';
import type { OpSpec } from './registry.js';

/**
 * An op of one input whose output has the input's shape and dtype; `floatOnly` ops compute in
 * floats (integer inputs are refused at inference, as onnxruntime does).
 */
function unary(op: string, fn: (x: tf.Tensor, node: Node) => tf.Tensor, floatOnly = false): OpSpec {
  return {
    op,
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = floatOnly ? needFloat(node, ins, 0) : need(node, ins, 0);
      return [{ name: '', shape: x.shape, dtype: x.dtype }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), node)],
  };
}

/** An op of two inputs that broadcast against each other. */
function binary(op: string, fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): OpSpec {
  return {
    op,
    arity: [2, 2],
    weightInputs: [],
    infer: (ins, node) => {
      const a = need(node, ins, 0);
      const b = need(node, ins, 1);
      if (a.dtype !== b.dtype) fail(node, `operands must have one dtype, got ${a.dtype} and ${b.dtype}`, 'GRAPH_INVALID');
      return [{ name: '', shape: broadcast(node, a.shape, b.shape), dtype: a.dtype }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), req(node, ins, 1))],
  };
}

/** The elementwise ops, in registration order. */
export const ELEMENTWISE_OPS: readonly OpSpec[] = [
  unary('Identity', (x) => tf.clone(x)),
  unary('Relu', (x) => tf.relu(x)),
  unary('Sigmoid', (x) => tf.sigmoid(x), true),
  unary('Tanh', (x) => tf.tanh(x), true),
  // ONNX Sign: −1, 0 or +1 (sign(0) = 0); binary activations in stripped graphs.
  unary('Sign', (x) => tf.sign(x), true),
  unary('LeakyRelu', (x, n) => tf.leakyRelu(x, numAttr(n, 'alpha', 0.01)), true),
  unary('Clip', (x, n) => {
    const lo = Math.max(numAttr(n, 'min', -Infinity), -3.4e38);
    const hi = Math.min(numAttr(n, 'max', Infinity), 3.4e38);
    // ONNX (and onnxruntime) compute min(max(x, lo), hi): with lo > hi every output is hi.
    if (lo > hi) return tf.minimum(tf.maximum(x, lo), hi);
    // clipByValue's gradient passes where lo <= x <= hi, as ONNX/PyTorch's hardtanh does.
    return tf.clipByValue(x, lo, hi);
  }),
  unary('HardSigmoid', (x, n) => {
    const alpha = numAttr(n, 'alpha', 0.2);
    const beta = numAttr(n, 'beta', 0.5);
    return tf.clipByValue(tf.add(tf.mul(x, alpha), beta), 0, 1);
  }, true),
  unary('HardSwish', (x) => tf.mul(x, tf.div(tf.clipByValue(tf.add(x, 3), 0, 6), 6)), true),
  binary('Add', (a, b) => tf.add(a, b)),
  binary('Sub', (a, b) => tf.sub(a, b)),
  binary('Mul', (a, b) => tf.mul(a, b)),
  binary('Div', (a, b) => tf.div(a, b)),
  {
    op: 'Softmax',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
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
  },
  {
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
  },
];
