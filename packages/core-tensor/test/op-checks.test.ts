/**
 * What shape inference and the executor refuse (with a typed error naming the node) instead of
 * letting tfjs throw a RangeError or a plain Error when the graph runs, and Clip's min > max case.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, Graph, GraphError, TensorpressError, useBackend, type GraphDef, type Node, type Param, type TensorInfo } from '@tensorpress/core-tensor';
import { expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const map: TensorInfo = { name: 'x', shape: [null, 4, 4, 2], dtype: 'float32' };

function graph(nodes: Node[], params: Param[] = [], inputs: TensorInfo[] = [map], outputs = ['y']): GraphDef {
  return { inputs, outputs, nodes, params };
}

function errorOf(fn: () => unknown): TensorpressError {
  try {
    fn();
  } catch (e) {
    if (e instanceof TensorpressError) return e;
    throw e;
  }
  throw new Error('no error');
}

const scalar = (name: string, v: number, dtype: 'float32' | 'uint8' = 'float32'): Param => ({
  name,
  shape: [],
  dtype,
  data: dtype === 'float32' ? Float32Array.of(v) : Uint8Array.of(v),
  trainable: false,
});

describe('Clip', () => {
  it('with min > max gives max everywhere (ONNX: min(max(x, lo), hi)), as onnxruntime does', async () => {
    const g = new Graph(graph([{ name: 'clip', op: 'Clip', inputs: ['x'], outputs: ['y'], attrs: { min: 6, max: 1 } }]));
    const ex = new Executor(g);
    const x = tf.tensor4d(Array.from({ length: 32 }, (_, i) => i - 16), [1, 4, 4, 2]);
    await expectNoLeak(() => {
      const [y] = ex.run(x);
      expect([...y!.dataSync()].every((v) => v === 1)).toBe(true);
      y!.dispose();
    });
    x.dispose();
    ex.dispose();
  });
});

describe('Graph (shape inference refuses what tfjs cannot run)', () => {
  it('a reflection larger than the axis, naming the node', () => {
    const e = errorOf(() => new Graph(graph([{ name: 'pad', op: 'Pad', inputs: ['x'], outputs: ['y'], attrs: { mode: 'reflect', pads: [0, 4, 0, 0, 0, 0, 0, 0] } }])));
    expect(e).toBeInstanceOf(GraphError);
    expect(`${e.code}: ${e.message}`).toBe('GRAPH_INVALID: node "pad" (Pad): reflect padding of 4 on axis 1 is larger than the input\'s size 4 - 1');
    expect(() => new Graph(graph([{ name: 'pad', op: 'Pad', inputs: ['x'], outputs: ['y'], attrs: { mode: 'reflect', pads: [0, 3, 3, 0, 0, 3, 3, 0] } }]))).not.toThrow();
  });

  it('a value of more than 2^31 - 1 elements per example, before anything is allocated', () => {
    const big = 2 ** 30;
    const e = errorOf(() => new Graph(graph([{ name: 'pad', op: 'Pad', inputs: ['x'], outputs: ['y'], attrs: { pads: [0, big, big, 0, 0, big, big, 0] } }])));
    expect(e.code).toBe('GRAPH_INVALID');
    expect(e.message).toMatch(/^output 0 of node "pad" \(Pad\) would hold \d+ elements per example \(shape \[\?, 2147483652, 2147483652, 2\]\), more than a tensor can hold \(2\^31 - 1\)$/);
    expect(e.details).toMatchObject({ node: 'pad', op: 'Pad' });
    const input = errorOf(() => new Graph(graph([{ name: 'r', op: 'Relu', inputs: ['x'], outputs: ['y'], attrs: {} }], [], [{ name: 'x', shape: [null, 2 ** 24, 2 ** 24], dtype: 'float32' }])));
    expect(input.message).toMatch(/^graph input "x" would hold 281474976710656 elements per example/);
  });

  it('ops that compute in floats refuse integer inputs; binary ops refuse mixed dtypes', () => {
    const q: Node = { name: 'q', op: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['c'], attrs: {} };
    const params = [scalar('s', 0.1), scalar('z', 128, 'uint8')];
    const sig = errorOf(() => new Graph(graph([q, { name: 'sig', op: 'Sigmoid', inputs: ['c'], outputs: ['y'], attrs: {} }], params)));
    expect(`${sig.code}: ${sig.message}`).toBe('GRAPH_INVALID: node "sig" (Sigmoid): input 0 must be float32, got uint8');
    const conv = errorOf(() =>
      new Graph(graph([q, { name: 'conv', op: 'Conv', inputs: ['c', 'w'], outputs: ['y'], attrs: {} }], [...params, { name: 'w', shape: [1, 1, 2, 2], dtype: 'float32', data: new Float32Array(4), trainable: true }])),
    );
    expect(conv.message).toBe('node "conv" (Conv): input 0 must be float32, got uint8');
    const add = errorOf(() => new Graph(graph([q, { name: 'add', op: 'Add', inputs: ['c', 'x'], outputs: ['y'], attrs: {} }], params)));
    expect(add.message).toBe('node "add" (Add): operands must have one dtype, got uint8 and float32');
    const dq = errorOf(() => new Graph(graph([{ name: 'dq', op: 'DequantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'], attrs: {} }], params)));
    expect(dq.message).toBe('node "dq" (DequantizeLinear): input 0 must hold integer codes (int8, uint8 or int32), got float32');
  });
});

describe('Executor', () => {
  it('turns a failure that only the run reveals into EXECUTION_FAILED naming the node and its input shapes', () => {
    const g = new Graph(graph([{ name: 'reshape', op: 'Reshape', inputs: ['x'], outputs: ['y'], attrs: { shape: [3, 12] } }], [], [{ name: 'x', shape: [null, 12], dtype: 'float32' }]));
    const ex = new Executor(g);
    const ok = tf.zeros([3, 12]);
    tf.dispose(ex.run(ok));
    const x = tf.zeros([2, 12]);
    const e = errorOf(() => ex.run(x));
    expect(e).toBeInstanceOf(GraphError);
    expect(e.code).toBe('EXECUTION_FAILED');
    expect(e.message).toMatch(/^node "reshape" \(Reshape\) failed on inputs \[2, 12\]: /);
    expect(e.details).toEqual({ node: 'reshape', op: 'Reshape', inputShapes: [[2, 12]] });
    tf.dispose([ok, x]);
    ex.dispose();
  });

  it.each([0, -1, Number.NaN, -Infinity])('refuses a Q/DQ scale of %s before running anything (NUMERIC_INVALID)', (v) => {
    const g = new Graph(
      graph([
        { name: 'q', op: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['c'], attrs: {} },
        { name: 'dq', op: 'DequantizeLinear', inputs: ['c', 'ok', 'z'], outputs: ['y'], attrs: {} },
      ], [scalar('s', v), scalar('ok', 0.5), scalar('z', 128, 'uint8')]),
    );
    const e = errorOf(() => new Executor(g));
    expect(e.code).toBe('NUMERIC_INVALID');
    expect(e.message).toBe(`node "q" (QuantizeLinear): scale "s" holds ${v} at index 0; a quantization scale must be finite and positive`);
    expect(e.details).toEqual({ node: 'q', op: 'QuantizeLinear', param: 's', index: 0 });
  });
});
