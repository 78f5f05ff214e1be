/** Older opsets' forms adapted on read (7 to 21), weights in Constant nodes, dynamic dimensions, typed refusals. */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { OnnxError, fromOnnx, type FromOnnxOptions } from '@tensorpress/export-onnx';
import { errorOf, seededArray } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeModel, type OAttr } from '../src/internal/ir.js';
import { DT } from '../src/internal/proto.js';
import { f32, i64, node, onnxModel, ortRun, type ModelSpec } from './helpers/onnx-builder.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const i = (v: number): OAttr => ({ i: v });
const f = (v: number): OAttr => ({ f: v });
const ints = (v: number[]): OAttr => ({ ints: v });
const tensor = (name: string, dims: number[], values: number[]): OAttr => ({ t: { name, dims, dataType: DT.FLOAT, raw: new Uint8Array(Float32Array.from(values).buffer) } });

/** Reads the model, runs it in process and in onnxruntime on the same input; returns the largest difference. */
async function agree(spec: ModelSpec, dims: number[], options: FromOnnxOptions = {}): Promise<number> {
  const bytes = onnxModel(spec);
  const xd = seededArray(dims.reduce((p, d) => p * d, 1), 11, 2);
  const want = await ortRun(bytes, xd, dims);
  if (typeof want === 'string') throw new Error(want);
  const ex = new Executor(fromOnnx(bytes, options));
  const y = tf.tidy(() => {
    const out = ex.run(dims.length === 4 ? tf.transpose(tf.tensor(xd, dims), [0, 2, 3, 1]) : tf.tensor(xd, dims))[0]!;
    return out.rank === 4 ? tf.transpose(out, [0, 3, 1, 2]) : out;
  });
  const got = Array.from(y.dataSync());
  ex.dispose();
  y.dispose();
  expect(got.length).toBe(want.length);
  return got.reduce((m, v, k) => Math.max(m, Math.abs(v - want[k]!)), 0);
}

describe('opsets 7 to 21', () => {
  it.each([6, 22])('refuses opset %i with a typed error', (opset) => {
    const e = errorOf(() => fromOnnx(onnxModel({ opset, nodes: [node('Relu', ['x'], ['y'])] })));
    expect(e).toBeInstanceOf(OnnxError);
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(new RegExp(`opset ${opset} is not supported \\(7 to 21\\)`));
  });

  it('refuses a node of an unknown domain, naming the domain', () => {
    const m = encodeModel({
      opset: 13,
      producer: 't',
      inputs: [{ name: 'x', elemType: DT.FLOAT, dims: [1, 3, 8, 8] }],
      outputs: [{ name: 'y', elemType: DT.FLOAT, dims: [] }],
      nodes: [{ ...node('Frobnicate', ['x'], ['y']), domain: 'com.example' }],
      initializers: new Map(),
    });
    const e = errorOf(() => fromOnnx(m));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(/domain "com\.example"/);
  });

  it('opset 9: Clip, Pad and Slice with attributes, BatchNormalization, Dropout with a ratio attribute', async () => {
    const spec: ModelSpec = {
      opset: 9,
      inits: [f32('g', [3], [1, 2, 0.5]), f32('b', [3], [0, 0.1, -0.1]), f32('m', [3], [0.1, 0, -0.2]), f32('v', [3], [1, 0.5, 2])],
      nodes: [
        node('Clip', ['x'], ['c'], { min: f(-0.5), max: f(1.5) }),
        node('Pad', ['c'], ['p'], { pads: ints([0, 0, 1, 2, 0, 0, 1, 0]), value: f(0.25) }),
        node('Slice', ['p'], ['s'], { starts: ints([1, 0]), ends: ints([Number.MAX_SAFE_INTEGER, -1]), axes: ints([2, 3]) }),
        node('BatchNormalization', ['s', 'g', 'b', 'm', 'v'], ['n'], { epsilon: f(1e-3) }),
        node('Dropout', ['n'], ['y'], { ratio: f(0.3) }),
      ],
    };
    expect(await agree(spec, [1, 3, 8, 8])).toBeLessThan(1e-5);
  });

  it('opsets 7 and 8: BatchNormalization spatial=1 reads, spatial=0 is refused', async () => {
    const bn = (opset: number, spatial: number): ModelSpec => ({
      opset,
      inits: [f32('g', [3]), f32('b', [3]), f32('m', [3]), f32('v', [3], [1, 1, 1])],
      nodes: [node('BatchNormalization', ['x', 'g', 'b', 'm', 'v'], ['y'], { spatial: i(spatial) })],
    });
    expect(await agree(bn(7, 1), [1, 3, 8, 8])).toBeLessThan(1e-5);
    expect(await agree(bn(8, 1), [1, 3, 8, 8])).toBeLessThan(1e-5);
    expect(errorOf(() => fromOnnx(onnxModel(bn(8, 0)))).message).toMatch(/spatial=0/);
  });

  it('opset 11: Squeeze/Unsqueeze/ReduceMean/Split with axes and split attributes', async () => {
    const spec: ModelSpec = {
      opset: 11,
      nodes: [
        node('Split', ['x'], ['a', 'b'], { axis: i(1), split: ints([1, 2]) }),
        node('ReduceMean', ['b'], ['r'], { axes: ints([2, 3]), keepdims: i(0) }),
        node('Unsqueeze', ['r'], ['u'], { axes: ints([2]) }),
        node('Squeeze', ['u'], ['y'], { axes: ints([2]) }),
      ],
    };
    expect(await agree(spec, [1, 3, 8, 8])).toBeLessThan(1e-5);
  });

  it('opset 11: Softmax and LogSoftmax over the input coerced to 2-D at their axis', async () => {
    const spec: ModelSpec = { opset: 11, input: [2, 3, 4, 5], nodes: [node('Softmax', ['x'], ['a'], { axis: i(1) }), node('LogSoftmax', ['a'], ['y'], { axis: i(2) })] };
    expect(await agree(spec, [2, 3, 4, 5])).toBeLessThan(1e-5);
  });

  it('opset 13: Dropout with ratio and training_mode inputs; weights held in Constant nodes (paddle2onnx style)', async () => {
    const w = seededArray(4 * 3 * 3 * 3, 2, 0.5);
    const spec: ModelSpec = {
      inits: [f32('ratio', [], [0.5])],
      nodes: [
        node('Constant', [], ['w'], { value: tensor('w', [4, 3, 3, 3], Array.from(w)) }, 'cw'),
        node('Constant', [], ['b'], { value: tensor('b', [4], [0.1, 0.2, 0.3, 0.4]) }, 'cb'),
        node('Conv', ['x', 'w', 'b'], ['c'], { pads: ints([1, 1, 1, 1]) }),
        node('Dropout', ['c', 'ratio'], ['y']),
      ],
    };
    expect(await agree(spec, [1, 3, 8, 8])).toBeLessThan(1e-5);
    const g = fromOnnx(onnxModel(spec));
    // The Constant-node weight is a trainable parameter in core's layout, like an initializer.
    expect(g.params.find((p) => p.shape.join() === '3,3,3,4')?.trainable).toBe(true);
  });

  it('dynamic dimensions: named ones take their size from dims, unnamed ones from inputShapes', async () => {
    const spec = (input: (number | string)[]): ModelSpec => ({ input, nodes: [node('Relu', ['x'], ['a']), node('GlobalAveragePool', ['a'], ['y'])] });
    const named = errorOf(() => fromOnnx(onnxModel(spec(['N', 3, 'height', 'width']))));
    expect(named.code).toBe('ONNX_UNSUPPORTED');
    expect(named.message).toMatch(/dimension 2 \(named "height"\) is dynamic.*dims: \{ "height": <size> \}/);
    expect(await agree(spec(['N', 3, 'height', 'width']), [2, 3, 6, 5], { dims: { height: 6, width: 5 } })).toBeLessThan(1e-5);
    const unnamed = errorOf(() => fromOnnx(onnxModel(spec(['', 3, '', 8]))));
    expect(unnamed.message).toMatch(/dimension 2 \(unnamed\) is dynamic.*inputShapes/);
    const g = fromOnnx(onnxModel(spec(['', 3, '', 8])), { inputShapes: { x: [null, 3, 7, 8] } });
    expect(g.inputs[0]!.shape).toEqual([null, 7, 8, 3]);
    expect(errorOf(() => fromOnnx(onnxModel(spec([1, 3, 8, 8])), { inputShapes: { x: [1, 3, 9, 8] } })).message).toMatch(/dimension 2 is 8 in the file, not 9/);
  });

  it('a graph with an int64 shape arithmetic chain at opset 9 still folds (Shape, Gather, Unsqueeze, Concat, Reshape)', async () => {
    const spec: ModelSpec = {
      opset: 9,
      inits: [i64('zero', [0], []), i64('minus', [-1])],
      nodes: [
        node('Shape', ['x'], ['s']),
        node('Gather', ['s', 'zero'], ['n'], { axis: i(0) }),
        node('Unsqueeze', ['n'], ['nu'], { axes: ints([0]) }),
        node('Concat', ['nu', 'minus'], ['shape'], { axis: i(0) }),
        node('Reshape', ['x', 'shape'], ['y']),
      ],
    };
    expect(await agree(spec, [1, 3, 8, 8])).toBeLessThan(1e-6);
  });

  it("attention's Reshape to [T, batch·heads, d] and back: a run-time size that is a multiple of the batch", async () => {
    // x [N, T=4, E=6] → [T, N, E] → [T, N·2, 3] (two heads) → [N·2, T, 3] → [N, 24]: the computed
    // N·2 is not the batch, so copying a dimension (0) would be wrong; the reader writes -1.
    const spec: ModelSpec = {
      input: ['N', 4, 6],
      inits: [i64('one', [1], []), i64('zero', [0], []), i64('two', [2], []), i64('t', [4]), i64('d', [3]), i64('flat', [24])],
      nodes: [
        node('Transpose', ['x'], ['xt'], { perm: ints([1, 0, 2]) }, 'transpose1'),
        node('Shape', ['xt'], ['s'], {}, 'shape1'),
        node('Gather', ['s', 'one'], ['n'], { axis: i(0) }, 'gather1'),
        node('Mul', ['n', 'two'], ['nh'], {}, 'mul1'),
        node('Unsqueeze', ['nh', 'zero1'], ['nhu'], {}, 'unsqueeze1'),
        node('Concat', ['t', 'nhu', 'd'], ['shape'], { axis: i(0) }, 'concat1'),
        node('Reshape', ['xt', 'shape'], ['heads'], {}, 'reshape1'),
        node('Transpose', ['heads'], ['ht'], { perm: ints([1, 0, 2]) }, 'transpose2'),
        node('Gather', ['s', 'one'], ['n2'], { axis: i(0) }, 'gather2'),
        node('Unsqueeze', ['n2', 'zero1'], ['n2u'], {}, 'unsqueeze2'),
        node('Concat', ['n2u', 'flat'], ['shape2'], { axis: i(0) }, 'concat2'),
        node('Reshape', ['ht', 'shape2'], ['y'], {}, 'reshape2'),
      ],
    };
    spec.inits!.push(i64('zero1', [0]));
    expect(await agree(spec, [3, 4, 6])).toBeLessThan(1e-6);
    expect(fromOnnx(onnxModel(spec)).info('heads').shape).toEqual([4, null, 3]);
  });
});
