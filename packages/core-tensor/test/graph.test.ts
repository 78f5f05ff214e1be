import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  Graph,
  GraphBuilder,
  TensorpressError,
  listOps,
  useBackend,
  type GraphDef,
  type Node,
  type Param,
} from '@tensorpress/core-tensor';
import { expectClose, expectNoLeak, seededArray, seededTensor } from '@tensorpress/test-utils';
import { batchNormTrain } from '../src/ops/norm.js';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const p = (name: string, shape: number[], data?: Float32Array): Param => ({
  name,
  shape,
  dtype: 'float32',
  data: data ?? seededArray(shape.reduce((a, b) => a * b, 1), name.length),
  trainable: true,
});

function def(nodes: Node[], params: Param[] = [], outputs = ['y']): GraphDef {
  return { inputs: [{ name: 'x', shape: [null, 4], dtype: 'float32' }], outputs, nodes, params };
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof TensorpressError) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'no error';
}

describe('Graph', () => {
  it('supports at least the ops the design lists', () => {
    const required = [
      'Conv', 'Gemm', 'MatMul', 'BatchNormalization', 'Relu', 'Clip', 'LeakyRelu', 'Sigmoid', 'Tanh', 'HardSwish',
      'Add', 'Mul', 'Concat', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Flatten', 'Reshape', 'Softmax',
      'Dropout', 'Identity', 'Pad', 'QuantizeLinear', 'DequantizeLinear',
    ];
    for (const op of required) expect(listOps()).toContain(op);
  });

  it('rejects an unknown op, naming the node and op', () => {
    const msg = codeOf(() => new Graph(def([{ name: 'weird', op: 'FancyOp', inputs: ['x'], outputs: ['y'], attrs: {} }])));
    expect(msg).toMatch(/^UNKNOWN_OP: node "weird" has unknown op "FancyOp"/);
  });

  it('rejects a dangling edge, naming the node and the missing value', () => {
    const msg = codeOf(() => new Graph(def([{ name: 'r', op: 'Relu', inputs: ['nothing'], outputs: ['y'], attrs: {} }])));
    expect(msg).toMatch(/^GRAPH_DANGLING_EDGE: input 0 of node "r" \(Relu\) reads "nothing"/);
  });

  it('rejects a cycle and prints it', () => {
    const msg = codeOf(
      () =>
        new Graph(
          def([
            { name: 'a', op: 'Add', inputs: ['x', 'c'], outputs: ['a'], attrs: {} },
            { name: 'b', op: 'Relu', inputs: ['a'], outputs: ['b'], attrs: {} },
            { name: 'c', op: 'Relu', inputs: ['b'], outputs: ['c'], attrs: {} },
            { name: 'y', op: 'Identity', inputs: ['c'], outputs: ['y'], attrs: {} },
          ]),
        ),
    );
    expect(msg).toMatch(/^GRAPH_CYCLE: the graph has a cycle: .*a -> .*b -> .*c/);
  });

  it('rejects a shape mismatch, naming the node and both shapes', () => {
    const msg = codeOf(() => new Graph(def([{ name: 'fc', op: 'Gemm', inputs: ['x', 'w'], outputs: ['y'], attrs: {} }], [p('w', [5, 3])])));
    expect(msg).toMatch(/^SHAPE_MISMATCH: node "fc" \(Gemm\): input \[\?, 4\] does not match weight \[5, 3\]/);
    const msg2 = codeOf(() => new Graph(def([{ name: 'add', op: 'Add', inputs: ['x', 'w'], outputs: ['y'], attrs: {} }], [p('w', [3])])));
    expect(msg2).toMatch(/^SHAPE_MISMATCH: node "add" \(Add\): shapes \[\?, 4\] and \[3\] do not broadcast/);
  });

  it('rejects duplicate names and parameters whose data does not match their shape', () => {
    expect(codeOf(() => new Graph(def([{ name: 'r', op: 'Relu', inputs: ['x'], outputs: ['x'], attrs: {} }])))).toMatch(/^GRAPH_DUPLICATE_NAME/);
    expect(codeOf(() => new Graph(def([{ name: 'fc', op: 'Gemm', inputs: ['x', 'w'], outputs: ['y'], attrs: {} }], [p('w', [4, 3], new Float32Array(5))])))).toMatch(
      /^SHAPE_MISMATCH: parameter "w" has shape \[4, 3\] \(12 values\) but holds 5 values/,
    );
  });

  it('infers shapes through conv, pooling, flatten and concat, and sorts nodes topologically', () => {
    const b = new GraphBuilder({ seed: 1 });
    const x = b.input('input', [null, 9, 7, 3]);
    const c1 = b.conv(x, { filters: 8, kernel: 3, strides: 2, padding: 'same' });
    const c2 = b.conv(x, { filters: 4, kernel: [3, 1], padding: [1, 0, 1, 0], strides: 2 });
    const cat = b.concat([c1, c2]);
    const pool = b.maxPool(cat, 2, { padding: 'same' });
    b.output(b.flatten(pool));
    const g = b.build();
    expect(g.info(c1).shape).toEqual([null, 5, 4, 8]);
    expect(g.info(c2).shape).toEqual([null, 5, 4, 4]);
    expect(g.info(cat).shape).toEqual([null, 5, 4, 12]);
    expect(g.info(pool).shape).toEqual([null, 3, 2, 12]);
    expect(g.info(g.outputs[0]!).shape).toEqual([null, 72]);
    // Reversed node order in the definition still sorts.
    const rev = new Graph({ ...g.toDef(), nodes: [...g.nodes].reverse() });
    expect(rev.nodes.map((n) => n.name)).toEqual(g.nodes.map((n) => n.name));
  });
});

describe('Executor', () => {
  it('matches closed forms for BN in train and eval mode and updates running statistics (PyTorch semantics)', async () => {
    const b = new GraphBuilder();
    const x = b.input('input', [null, 3]);
    b.output(b.batchNorm(x, { name: 'bn', momentum: 0.9 }));
    const g = b.build();
    const ex = new Executor(g);
    const data = [1, 2, 3, 3, 6, 9, 5, 10, 15, 7, 14, 21];
    const xt = tf.tensor2d(data, [4, 3]);
    await expectNoLeak(() => {
      const [yTrain] = ex.run(xt, { training: true });
      // Column 0: mean 4, biased var 5; normalised (x-4)/sqrt(5+1e-5).
      const col0 = tf.slice(yTrain!, [0, 0], [4, 1]);
      expectClose(col0, [1, 3, 5, 7].map((v) => (v - 4) / Math.sqrt(5 + 1e-5)), { atol: 1e-5 });
      tf.dispose([yTrain!, col0]);
    });
    // Running mean 0.9*0 + 0.1*batch mean; running var 0.9*1 + 0.1*unbiased var (20/3 for column 0).
    expectClose(ex.variables().get('bn.mean')!, [0.4, 0.8, 1.2], { atol: 1e-6 });
    expectClose(ex.variables().get('bn.var')!, [0.9 + (0.1 * 20) / 3, 0.9 + (0.1 * 80) / 3, 0.9 + (0.1 * 180) / 3], { atol: 1e-5 });
    const [yEval] = ex.run(xt);
    expectClose(tf.slice(yEval!, [0, 0], [1, 1]), [(1 - 0.4) / Math.sqrt(0.9 + 2 / 3 + 1e-5)], { atol: 1e-5 });
    tf.dispose([xt, yEval!]);
    ex.dispose();
  });

  it('trains BN with a closed-form backward pass equal to autodiff through moments + batchNorm', () => {
    for (const shape of [[4, 3, 5, 6], [7, 6]]) {
      const x = seededTensor(shape, 31, -2, 3);
      const gamma = seededTensor([6], 32, 0.5, 1.5);
      const beta = seededTensor([6], 33);
      const w = seededTensor(shape, 34);
      const axes = [...Array(shape.length - 1).keys()];
      const ours = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(batchNormTrain(a, g, b, 1e-5).y, w)));
      const reference = tf.grads((a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => {
        const m = tf.moments(a, axes);
        return tf.sum(tf.mul(tf.batchNorm(a, m.mean, m.variance, b, g, 1e-5), w));
      });
      const got = ours([x, gamma, beta]);
      const want = reference([x, gamma, beta]);
      got.forEach((t, i) => expectClose(t, want[i]!, { atol: 1e-5, rtol: 1e-3, label: `grad ${i} of ${shape.join('x')}` }));
      const fwd = batchNormTrain(x, gamma, beta, 1e-5);
      const m = tf.moments(x, axes);
      expectClose(fwd.mean, m.mean, { atol: 1e-6 });
      expectClose(fwd.variance, m.variance, { atol: 1e-5 });
      tf.dispose([x, gamma, beta, w, ...got, ...want, fwd.y, fwd.mean, fwd.variance, m.mean, m.variance]);
    }
  });

  it('drops out only in train mode, reproducibly for a seed', () => {
    const b = new GraphBuilder();
    const x = b.input('input', [null, 100]);
    b.output(b.dropout(x, 0.5));
    const g = b.build();
    const xt = tf.ones([2, 100]);
    const run = (seed: number): Float32Array => {
      const ex = new Executor(g, { seed });
      const [y] = ex.run(xt, { training: true });
      const d = y!.dataSync() as Float32Array;
      y!.dispose();
      ex.dispose();
      return d;
    };
    const a = run(1);
    expect(Array.from(a)).toEqual(Array.from(run(1)));
    expect(Array.from(a)).not.toEqual(Array.from(run(2)));
    expect(a.filter((v) => v === 0).length).toBeGreaterThan(50);
    expect(new Set(a.filter((v) => v !== 0))).toEqual(new Set([2]));
    const ex = new Executor(g);
    const [y] = ex.run(xt);
    expectClose(y!, xt);
    tf.dispose([xt, y!]);
    ex.dispose();
  });

  it('runs grouped and depthwise convs like per-group convs', () => {
    const b = new GraphBuilder({ seed: 5 });
    const x = b.input('input', [null, 6, 6, 4]);
    const grouped = b.conv(x, { filters: 6, kernel: 3, group: 2, padding: 'same', name: 'g' });
    const dw = b.depthwiseConv(x, { kernel: 3, multiplier: 2, padding: 'valid', name: 'dw' });
    b.output(grouped, dw);
    const g = b.build();
    const ex = new Executor(g);
    const xt = seededTensor([2, 6, 6, 4], 9);
    const [yg, yd] = ex.run(xt);
    const w = ex.variables().get('g.weight')!;
    const bias = ex.variables().get('g.bias')!;
    const ref = tf.concat(
      [0, 1].map((i) => tf.conv2d(tf.slice(xt, [0, 0, 0, 2 * i], [-1, -1, -1, 2]) as tf.Tensor4D, tf.slice(w, [0, 0, 0, 3 * i], [-1, -1, -1, 3]) as tf.Tensor4D, 1, 'same')),
      3,
    );
    expectClose(yg!, tf.add(ref, bias), { atol: 1e-5 });
    // Depthwise: output channel c*2+m uses input channel c.
    const dwW = ex.variables().get('dw.weight')!;
    const refDw = tf.depthwiseConv2d(xt as tf.Tensor4D, tf.reshape(dwW, [3, 3, 4, 2]) as tf.Tensor4D, 1, 'valid');
    expectClose(yd!, tf.add(refDw, ex.variables().get('dw.bias')!), { atol: 1e-5 });
    ex.dispose();
  });

  it('quantizes and dequantizes with half-to-even rounding and per-axis scales', () => {
    const g = new Graph({
      inputs: [{ name: 'x', shape: [null, 2], dtype: 'float32' }],
      outputs: ['q', 'dq'],
      params: [
        { name: 's', shape: [2], dtype: 'float32', data: new Float32Array([0.5, 1]), trainable: false },
        { name: 'z', shape: [2], dtype: 'int8', data: new Int8Array([0, 1]), trainable: false },
      ],
      nodes: [
        { name: 'quant', op: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['q'], attrs: { axis: 1 } },
        { name: 'dequant', op: 'DequantizeLinear', inputs: ['q', 's', 'z'], outputs: ['dq'], attrs: { axis: 1 } },
      ],
    });
    expect(g.info('q').dtype).toBe('int8');
    const ex = new Executor(g);
    // Column 0 (scale 0.5): 0.25→0.5→0 (even), 0.75→1.5→2; column 1: 2.5→2 (+1 zp = 3), -300→clip -128.
    const [q, dq] = ex.run(tf.tensor2d([0.25, 2.5, 0.75, -300], [2, 2]));
    expect(Array.from(q!.dataSync())).toEqual([0, 3, 2, -128]);
    expectClose(dq!, [0, 2, 1, -129]);
    ex.dispose();
  });

  it('rejects inputs of the wrong shape with the expected and actual shapes', () => {
    const b = new GraphBuilder();
    const x = b.input('input', [null, 4]);
    b.output(b.dense(x, 2));
    const ex = new Executor(b.build());
    expect(() => ex.run(tf.zeros([2, 5]))).toThrow(/input "input" expects shape \[\?, 4\] but got \[2, 5\]/);
    ex.dispose();
  });
});
