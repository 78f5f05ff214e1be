/**
 * export-onnx's op families on tiny hand-built ONNX graphs: each read, run in process and in
 * onnxruntime on the same input (NCHW there, NHWC here), written back and run again, and its input
 * gradient checked against central differences.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { seededArray } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OAttr } from '../src/internal/ir.js';
import { DT } from '../src/internal/proto.js';
import { f32, i64, node, onnxModel, ortRun, type ModelSpec } from './helpers/onnx-builder.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const s = (v: string): OAttr => ({ s: v });
const ints = (v: number[]): OAttr => ({ ints: v });
const i = (v: number): OAttr => ({ i: v });
const scal = (name: string, v: number): ReturnType<typeof f32> => f32(name, [], [v]);

interface Case {
  spec: ModelSpec;
  /** Skip the gradient check (ops whose gradient is zero almost everywhere or not defined). */
  noGrad?: boolean;
}

const X = [1, 4, 5, 6];
const CASES: Record<string, Case> = {
  'Resize nearest asymmetric floor ×2 (scales)': {
    spec: { input: X, inits: [f32('sc', [4], [1, 1, 2, 2])], nodes: [node('Resize', ['x', '', 'sc'], ['y'], { mode: s('nearest'), coordinate_transformation_mode: s('asymmetric'), nearest_mode: s('floor') })] },
  },
  'Resize linear half_pixel to sizes 7×4': {
    spec: { input: X, inits: [i64('sz', [1, 4, 7, 4])], nodes: [node('Resize', ['x', '', '', 'sz'], ['y'], { mode: s('linear') })] },
  },
  'Resize linear align_corners ×1.5': {
    spec: { input: X, inits: [f32('sc', [4], [1, 1, 1.5, 1.5])], nodes: [node('Resize', ['x', '', 'sc'], ['y'], { mode: s('linear'), coordinate_transformation_mode: s('align_corners') })] },
  },
  'Resize linear pytorch_half_pixel, nearest round_prefer_ceil (opset 11)': {
    spec: {
      opset: 11,
      input: X,
      inits: [f32('roi', [0]), f32('sc', [4], [1, 1, 0.6, 1.7]), f32('none', [0]), i64('sz', [1, 4, 3, 9])],
      nodes: [
        node('Resize', ['x', 'roi', 'sc'], ['a'], { mode: s('nearest'), coordinate_transformation_mode: s('half_pixel'), nearest_mode: s('round_prefer_ceil') }, 'r1'),
        node('Resize', ['a', 'roi', 'none', 'sz'], ['y'], { mode: s('linear'), coordinate_transformation_mode: s('pytorch_half_pixel') }, 'r2'),
      ],
    },
  },
  'Resize opset 10 and Upsample opset 9 (linear)': {
    spec: { opset: 10, input: X, inits: [f32('sc', [4], [1, 1, 2, 3])], nodes: [node('Resize', ['x', 'sc'], ['y'], { mode: s('linear') })] },
  },
  'Upsample opset 9 nearest ×(2, 3)': {
    spec: { opset: 9, input: X, inits: [f32('sc', [4], [1, 1, 2, 3])], nodes: [node('Upsample', ['x', 'sc'], ['y'], { mode: s('nearest') })] },
  },
  'Upsample opset 7 (scales attribute)': {
    spec: { opset: 7, input: X, nodes: [node('Upsample', ['x'], ['y'], { mode: s('nearest'), scales: { floats: [1, 1, 2, 2] } })] },
  },
  'ConvTranspose groups 2, stride 2, pads, output_padding': {
    spec: {
      input: X,
      inits: [f32('w', [4, 3, 3, 3], Array.from(seededArray(108, 3, 0.5))), f32('b', [6], [0.1, -0.2, 0.3, 0, 0.5, -0.1])],
      nodes: [node('ConvTranspose', ['x', 'w', 'b'], ['y'], { group: i(2), strides: ints([2, 2]), pads: ints([1, 0, 0, 1]), output_padding: ints([1, 1]) })],
    },
  },
  'MaxPool ceil_mode k3 s2 p1': {
    spec: { input: [1, 2, 7, 6], nodes: [node('MaxPool', ['x'], ['y'], { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: i(1) })] },
  },
  'AveragePool ceil_mode, count_include_pad 1 then 0': {
    spec: {
      input: [1, 2, 7, 6],
      nodes: [
        node('AveragePool', ['x'], ['a'], { kernel_shape: ints([3, 3]), strides: ints([2, 2]), pads: ints([1, 1, 1, 1]), ceil_mode: i(1), count_include_pad: i(1) }, 'p1'),
        node('AveragePool', ['a'], ['y'], { kernel_shape: ints([2, 2]), strides: ints([2, 2]), pads: ints([1, 0, 1, 1]), ceil_mode: i(1) }, 'p2'),
      ],
    },
  },
  'PRelu (slope per channel), Mish (opset 18)': {
    spec: { opset: 18, input: X, inits: [f32('sl', [4, 1, 1], [0.1, 0.2, -0.3, 0.5])], nodes: [node('PRelu', ['x', 'sl'], ['a']), node('Mish', ['a'], ['y'])] },
  },
  'SiLU as PyTorch exports it (Sigmoid · x)': {
    spec: { input: X, nodes: [node('Sigmoid', ['x'], ['s']), node('Mul', ['x', 's'], ['y'])] },
  },
  'Gelu (opset 20) exact and tanh': {
    spec: { opset: 20, input: X, nodes: [node('Gelu', ['x'], ['a'], {}, 'g1'), node('Gelu', ['a'], ['y'], { approximate: s('tanh') }, 'g2')] },
  },
  'Erf, Exp, Abs, Log, Sqrt, Reciprocal, Neg, Pow, Softplus': {
    spec: {
      input: X,
      inits: [scal('one', 1), scal('two', 2), scal('tenth', 0.1)],
      nodes: [
        node('Erf', ['x'], ['e']),
        node('Mul', ['x', 'tenth'], ['x1']),
        node('Exp', ['x1'], ['ex']),
        node('Abs', ['x'], ['ab']),
        node('Add', ['ab', 'one'], ['ab1']),
        node('Log', ['ab1'], ['lg']),
        node('Sqrt', ['ab1'], ['sq']),
        node('Reciprocal', ['ab1'], ['rc']),
        node('Neg', ['rc'], ['ng']),
        node('Pow', ['e', 'two'], ['pw']),
        node('Softplus', ['x'], ['sp']),
        node('Sum', [], []),
      ].filter((n) => n.opType !== 'Sum').concat([
        node('Add', ['ex', 'lg'], ['s1'], {}, 'add1'),
        node('Add', ['s1', 'sq'], ['s2'], {}, 'add2'),
        node('Add', ['s2', 'ng'], ['s3'], {}, 'add3'),
        node('Add', ['s3', 'pw'], ['s4'], {}, 'add4'),
        node('Add', ['s4', 'sp'], ['y'], {}, 'add5'),
      ]),
    },
  },
  'LayerNormalization over W of a map (opset 17), InstanceNormalization': {
    spec: {
      opset: 17,
      input: X,
      inits: [f32('g', [6], [1, 0.5, 2, 1.5, 1, 0.7]), f32('b', [6], [0, 0.1, 0.2, 0.3, 0.4, 0.5]), f32('ig', [4], [1, 2, 0.5, 1]), f32('ib', [4], [0, 1, 0, -1])],
      nodes: [node('LayerNormalization', ['x', 'g', 'b'], ['a'], { axis: i(-1) }), node('InstanceNormalization', ['a', 'ig', 'ib'], ['y'])],
    },
  },
  'ReduceMean over C (kept), ReduceMax over H (attr), ReduceSum over C and W (input, dropped)': {
    spec: {
      input: X,
      inits: [i64('ax', [1, 3])],
      nodes: [
        node('ReduceMean', ['x'], ['a'], { axes: ints([1]), keepdims: i(1) }),
        node('ReduceMax', ['x'], ['b'], { axes: ints([2]), keepdims: i(1) }),
        node('Mul', ['a', 'b'], ['c']),
        node('ReduceSum', ['c', 'ax'], ['y'], { keepdims: i(0) }),
      ],
    },
  },
  'batched MatMul: rank-4 × constant, rank-4 × rank-4': {
    spec: {
      input: X,
      inits: [f32('w', [6, 3], Array.from(seededArray(18, 5, 0.5)))],
      nodes: [node('MatMul', ['x', 'w'], ['a'], {}, 'mm1'), node('Transpose', ['a'], ['at'], { perm: ints([0, 1, 3, 2]) }), node('MatMul', ['a', 'at'], ['y'], {}, 'mm2')],
    },
  },
  'Softmax over C, LogSoftmax over H': {
    spec: { input: X, nodes: [node('Softmax', ['x'], ['a'], { axis: i(1) }), node('LogSoftmax', ['a'], ['y'], { axis: i(2) })] },
  },
  'Where, Greater, Less, Equal': {
    spec: {
      input: X,
      inits: [scal('zero', 0), scal('tenth', 0.1), scal('big', 100)],
      nodes: [
        node('Greater', ['x', 'zero'], ['gt']),
        node('Mul', ['x', 'tenth'], ['leak']),
        node('Where', ['gt', 'x', 'leak'], ['a'], {}, 'w1'),
        node('Less', ['a', 'big'], ['lt']),
        node('Equal', ['x', 'zero'], ['eq']),
        node('Where', ['lt', 'a', 'zero'], ['b'], {}, 'w2'),
        node('Where', ['eq', 'big', 'b'], ['y'], {}, 'w3'),
      ],
    },
  },
  'Expand and Tile': {
    spec: {
      input: [1, 4, 1, 6],
      inits: [i64('shape', [1, 4, 3, 6]), i64('reps', [1, 1, 1, 2])],
      nodes: [node('Expand', ['x', 'shape'], ['a']), node('Tile', ['a', 'reps'], ['y'])],
    },
  },
  'ConstantOfShape and Range (folded)': {
    spec: {
      input: X,
      inits: [i64('shape', [6]), i64('start', [0], []), i64('limit', [6], []), i64('delta', [1], [])],
      nodes: [
        node('ConstantOfShape', ['shape'], ['c'], { value: { t: { name: 'v', dims: [1], dataType: DT.FLOAT, raw: new Uint8Array(Float32Array.of(0.5).buffer) } } }),
        node('Range', ['start', 'limit', 'delta'], ['r']),
        node('Cast', ['r'], ['rf'], { to: i(DT.FLOAT) }),
        node('Add', ['c', 'rf'], ['cr'], {}, 'add1'),
        node('Add', ['x', 'cr'], ['y'], {}, 'add2'),
      ],
    },
  },
};

function nchw(t: tf.Tensor): tf.Tensor {
  return t.rank === 4 ? tf.transpose(t, [0, 3, 1, 2]) : tf.clone(t);
}

describe('ONNX op families', () => {
  it.each(Object.keys(CASES))('%s: matches onnxruntime, written back, gradient', async (name) => {
    const c = CASES[name]!;
    const dims = (c.spec.input ?? [1, 3, 8, 8]) as number[];
    const bytes = onnxModel(c.spec);
    const xd = seededArray(dims.reduce((p, d) => p * d, 1), 3, 2);
    const want = await ortRun(bytes, xd, dims);
    if (typeof want === 'string') throw new Error(want);
    const g = fromOnnx(bytes);
    const x = tf.tidy(() => tf.transpose(tf.tensor(xd, dims), [0, 2, 3, 1]));
    const ex = new Executor(g);
    const y = ex.run(x)[0]!;
    const got = nchw(y);
    const data = got.dataSync();
    expect(data.length).toBe(want.length);
    let worst = 0;
    data.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - want[k]!) / Math.max(1, Math.abs(want[k]!)))));
    expect(worst).toBeLessThan(1e-5);
    // Written back: onnxruntime computes the same again.
    const again = await ortRun(toOnnx(g, { opset: Math.max(13, c.spec.opset ?? 13) }), xd, dims);
    if (typeof again === 'string') throw new Error(again);
    let worstBack = 0;
    data.forEach((v, k) => (worstBack = Math.max(worstBack, Math.abs(v - again[k]!) / Math.max(1, Math.abs(again[k]!)))));
    expect(worstBack).toBeLessThan(1e-5);
    got.dispose();
    if (!c.noGrad) {
      const wts = tf.tensor(seededArray(y.size, 9, 1), y.shape);
      const loss = (t: tf.Tensor): tf.Scalar => tf.sum(tf.mul(ex.run(t)[0]!, wts));
      const dx = tf.grad(loss)(x);
      const grad = dx.dataSync();
      expect(grad.every(Number.isFinite)).toBe(true);
      expect(grad.some((v) => v !== 0)).toBe(true);
      const flat = x.dataSync();
      for (const k of [0, Math.floor(flat.length / 3), flat.length - 1]) {
        const h = 1e-2;
        const at = (d: number): number => tf.tidy(() => {
          const p = Float32Array.from(flat);
          p[k] = p[k]! + d;
          return loss(tf.tensor(p, x.shape)).dataSync()[0]!;
        });
        const numeric = (at(h) - at(-h)) / (2 * h);
        expect(Math.abs(numeric - grad[k]!)).toBeLessThan(0.05 * Math.max(1, Math.abs(numeric)));
      }
      wts.dispose();
      dx.dispose();
    }
    y.dispose();
    ex.dispose();
    x.dispose();
  });

  it('ArgMax over C: first maximum, int32, keepdims 0', () => {
    const g = fromOnnx(onnxModel({ input: [1, 3, 2, 2], nodes: [node('ArgMax', ['x'], ['y'], { axis: i(1), keepdims: i(0) })] }));
    const x = tf.tensor([[[[1, 5], [3, 3]], [[2, 5], [0, 9]], [[7, 1], [3, 2]]]]);
    const ex = new Executor(g);
    const y = ex.run(tf.transpose(x, [0, 2, 3, 1]))[0]!;
    expect(y.dtype).toBe('int32');
    expect(Array.from(y.dataSync())).toEqual([2, 0, 0, 1]);
    ex.dispose();
  });
});
