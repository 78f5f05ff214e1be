/**
 * Elementwise ops that ONNX models use beyond core's activations: Exp, Log, Sqrt, Reciprocal, Neg,
 * Abs, Erf, Gelu, Mish, Softplus, PRelu and Pow (float, differentiable through tfjs autodiff), the
 * comparisons Equal, Less and Greater (uint8 0/1) and Where. Layout-free: every op is applied per
 * element (broadcast operands are already laid out like the data by the reader).
 */
import * as tf from '@tensorflow/tfjs-core';
import { strAttr, type Node, type OpSpec } from '@tensorpress/core-tensor';
import { broadcast, fail, need, needFloat, req } from './helpers.js';

function unary(op: string, fn: (x: tf.Tensor, node: Node) => tf.Tensor): OpSpec {
  return {
    op,
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = needFloat(node, ins, 0);
      return [{ name: '', shape: x.shape, dtype: x.dtype }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), node)],
  };
}

function binary(op: string, fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor, out: 'float32' | 'uint8', weightInputs: number[] = []): OpSpec {
  return {
    op,
    arity: [2, 2],
    weightInputs,
    infer: (ins, node) => {
      const a = out === 'float32' ? needFloat(node, ins, 0) : need(node, ins, 0);
      const b = out === 'float32' ? needFloat(node, ins, 1) : need(node, ins, 1);
      if (a.dtype !== b.dtype) fail(node, `operands must have one dtype, got ${a.dtype} and ${b.dtype}`, 'GRAPH_INVALID');
      return [{ name: '', shape: broadcast(node, a.shape, b.shape), dtype: out }];
    },
    forward: (ins, node) => [fn(req(node, ins, 0), req(node, ins, 1))],
  };
}

/** softplus(x) = log(1 + e^x), computed without overflow: max(x, 0) + log1p(e^-|x|). */
function softplus(x: tf.Tensor): tf.Tensor {
  return tf.add(tf.relu(x), tf.log1p(tf.exp(tf.neg(tf.abs(x)))));
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** 0/1 as uint8 codes held in an int32 tensor (how core holds uint8 values); no gradient flows back. */
function compare(fn: (a: tf.Tensor, b: tf.Tensor) => tf.Tensor): (a: tf.Tensor, b: tf.Tensor) => tf.Tensor {
  return (a, b) =>
    tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [x, y] = args as [tf.Tensor, tf.Tensor];
      return { value: tf.cast(fn(x, y), 'int32'), gradFunc: () => [tf.zerosLike(x), tf.zerosLike(y)] };
    })(a, b);
}

/** The elementwise op family. */
export const ELEMENTWISE_ONNX_OPS: readonly OpSpec[] = [
  unary('Exp', (x) => tf.exp(x)),
  unary('Log', (x) => tf.log(x)),
  unary('Sqrt', (x) => tf.sqrt(x)),
  unary('Reciprocal', (x) => tf.reciprocal(x)),
  unary('Neg', (x) => tf.neg(x)),
  unary('Abs', (x) => tf.abs(x)),
  unary('Erf', (x) => tf.erf(x)),
  unary('Softplus', softplus),
  unary('Mish', (x) => tf.mul(x, tf.tanh(softplus(x)))),
  unary('Gelu', (x, n) => {
    if (strAttr(n, 'approximate', 'none') === 'tanh') {
      const inner = tf.mul(tf.add(x, tf.mul(tf.pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
      return tf.mul(tf.mul(x, 0.5), tf.add(tf.tanh(inner), 1));
    }
    return tf.mul(tf.mul(x, 0.5), tf.add(tf.erf(tf.mul(x, Math.SQRT1_2)), 1));
  }),
  // x for x >= 0, slope·x below; the slope (input 1) is a weight broadcast against x.
  binary('PRelu', (x, s) => tf.add(tf.relu(x), tf.mul(s, tf.neg(tf.relu(tf.neg(x))))), 'float32', [1]),
  binary('Pow', (a, b) => tf.pow(a, b), 'float32'),
  binary('Equal', compare((a, b) => tf.equal(a, b)), 'uint8'),
  binary('Less', compare((a, b) => tf.less(a, b)), 'uint8'),
  binary('Greater', compare((a, b) => tf.greater(a, b)), 'uint8'),
  {
    op: 'Where',
    arity: [3, 3],
    weightInputs: [],
    infer: (ins, node) => {
      const c = need(node, ins, 0);
      const x = need(node, ins, 1);
      const y = need(node, ins, 2);
      if (c.dtype !== 'uint8') fail(node, `the condition must be uint8 (0/1), got ${c.dtype}`, 'GRAPH_INVALID');
      if (x.dtype !== y.dtype) fail(node, `x and y must have one dtype, got ${x.dtype} and ${y.dtype}`, 'GRAPH_INVALID');
      return [{ name: '', shape: broadcast(node, c.shape, x.shape, y.shape), dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const c = req(node, ins, 0);
      const x = req(node, ins, 1);
      const y = req(node, ins, 2);
      const dims = broadcast(node, c.shape, x.shape, y.shape) as number[];
      const cond = tf.broadcastTo(tf.cast(c, 'bool'), dims);
      return [tf.where(cond, tf.broadcastTo(x, dims), tf.broadcastTo(y, dims))];
    },
  },
];
