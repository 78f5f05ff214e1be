import * as tf from '@tensorflow/tfjs-core';
import { Graph, TensorpressError, getOp, listOps, registerOp, runGraph, useBackend, type OpSpec } from '@tensorpress/core-tensor';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

/** A one-input op that adds `k`, for registering under test-only names. */
function addConst(op: string, k: number): OpSpec {
  return {
    op,
    arity: [1, 1],
    weightInputs: [],
    infer: (ins) => [{ name: '', shape: ins[0]!.shape, dtype: 'float32' }],
    forward: (ins) => [tf.add(ins[0]!, k)],
  };
}

describe('listOps', () => {
  it("holds exactly core's op families once core is loaded: nothing from another package", () => {
    expect(listOps()).toEqual([
      'Add', 'AveragePool', 'BatchNormalization', 'Clip', 'Concat', 'Conv', 'DequantizeLinear', 'Div', 'Dropout',
      'DynamicQuantizeLinear', 'Flatten', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'HardSigmoid', 'HardSwish',
      'Identity', 'LeakyRelu', 'MatMul', 'MaxPool', 'Mul', 'Pad', 'QuantizeLinear', 'Relu', 'Reshape', 'Sigmoid', 'Sign',
      'Softmax', 'Split', 'Sub', 'Tanh', 'Transpose',
    ]);
  });
});

describe('registerOp', () => {
  it('adds an op that graphs may hold and the executor runs; the same spec again is a no-op', () => {
    const spec = addConst('TestAddOne', 1);
    expect(getOp('TestAddOne')).toBeUndefined();
    registerOp(spec);
    registerOp(spec);
    expect(getOp('TestAddOne')).toBe(spec);
    expect(listOps()).toContain('TestAddOne');
    const g = new Graph({
      inputs: [{ name: 'x', shape: [null, 2], dtype: 'float32' }],
      outputs: ['y'],
      nodes: [{ name: 'a', op: 'TestAddOne', inputs: ['x'], outputs: ['y'], attrs: {} }],
      params: [],
    });
    const x = tf.tensor2d([[1, 2]]);
    const [y] = runGraph(g, x);
    expect(Array.from(y!.dataSync())).toEqual([2, 3]);
    tf.dispose([x, y!]);
  });

  it("throws OP_CONFLICT when another spec claims a taken name, core's own ops included, and keeps the first", () => {
    const first = addConst('TestAddTwo', 2);
    registerOp(first);
    const codeOf = (spec: OpSpec): string => {
      try {
        registerOp(spec);
      } catch (e) {
        if (e instanceof TensorpressError) return `${e.code}: ${e.message}`;
        throw e;
      }
      return 'no error';
    };
    expect(codeOf(addConst('TestAddTwo', 3))).toMatch(/^OP_CONFLICT: op "TestAddTwo" is already registered with another definition/);
    expect(getOp('TestAddTwo')).toBe(first);
    const relu = getOp('Relu')!;
    expect(codeOf(addConst('Relu', 0))).toMatch(/^OP_CONFLICT: op "Relu"/);
    expect(getOp('Relu')).toBe(relu);
  });
});
