/**
 * The reader refuses what onnxruntime refuses (a typed error naming the node, op, attribute or
 * input and the node's byte offset), bounds every tensor's volume, and computes what onnxruntime
 * computes for valid-but-odd files. Each file is built by hand; onnxruntime is the oracle.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, GraphError, TensorpressError, useBackend } from '@tensorpress/core-tensor';
import { OnnxError, checkParity, fromOnnx, toIntegerOps, type OnnxWarning } from '@tensorpress/export-onnx';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import type { ONode } from '../src/internal/ir.js';
import { f32, i64, node, onnxModel, ortRefuses, ortRejects, ortRun, type ModelSpec } from './helpers/onnx-builder.js';

const { onnx } = onnxProto;

beforeAll(async () => {
  await useBackend('cpu');
});

/** The error fromOnnx throws (fails the test when it reads the file). */
function readError(bytes: Uint8Array): TensorpressError {
  try {
    fromOnnx(bytes, { onWarning: () => {} });
  } catch (e) {
    if (e instanceof TensorpressError) return e;
    throw e;
  }
  throw new Error('the file was read');
}

/** Byte offset of node `i` in the file, found the long way: its own encoding inside the file's. */
function nodeOffset(bytes: Uint8Array, i: number): number {
  const n = onnx.ModelProto.decode(bytes).graph!.node![i]!;
  const body = Buffer.from(onnx.NodeProto.encode(n).finish());
  // The field starts with its tag (1 byte) and length (varint) before the body.
  const at = Buffer.from(bytes).indexOf(body);
  let len = body.length;
  let lenBytes = 1;
  while (len >= 128) {
    len >>>= 7;
    lenBytes++;
  }
  return at - 1 - lenBytes;
}

const conv = (attrs: ModelSpec['nodes'][number]['attrs']): ModelSpec => ({
  nodes: [node('Conv', ['x', 'w'], ['y'], { kernel_shape: { ints: [3, 3] }, ...attrs })],
  inits: [f32('w', [4, 3, 3, 3])],
});

/** Expects an ONNX_INVALID OnnxError about `node`/`op` (and `attribute`), with the node's byte offset. */
function expectNodeError(bytes: Uint8Array, where: { node: string; op: string; attribute?: string; input?: number; index?: number }, message: RegExp): OnnxError {
  const e = readError(bytes);
  expect(e).toBeInstanceOf(OnnxError);
  const err = e as OnnxError;
  expect(err.code).toBe('ONNX_INVALID');
  expect(err.message).toMatch(message);
  expect(err.node).toBe(where.node);
  expect(err.op).toBe(where.op);
  expect(err.attribute).toBe(where.attribute);
  if (where.input !== undefined) expect(err.details['input']).toBe(where.input);
  expect(err.offset).toBe(nodeOffset(bytes, where.index ?? 0));
  expect(err.message).toContain(`node "${where.node}" (${where.op})`);
  expect(err.message).toContain(`at byte offset ${err.offset}`);
  return err;
}

describe('fromOnnx: attributes are checked for type and range', () => {
  it.each([
    ['strides as a STRING', { strides: { s: '2' } }, /attribute strides: must be INTS, got a STRING \("2"\)/],
    ['strides as a FLOAT', { strides: { f: 2 } }, /attribute strides: must be INTS, got a FLOAT \(2\)/],
    ['group as FLOATS', { group: { floats: [1] } }, /attribute group: must be INT, got FLOATS/],
    ['kernel_shape of 0', { kernel_shape: { ints: [0, 3] } }, /attribute kernel_shape: every kernel size must be >= 1, got \[0, 3\]/],
    ['a negative pad', { pads: { ints: [0, -1, 0, 0] } }, /attribute pads: every pad must be >= 0/],
    ['dilations of 0', { dilations: { ints: [0, 1] } }, /attribute dilations: every dilation must be >= 1/],
    ['group 0', { group: { i: 0 } }, /attribute group: must be >= 1, got 0/],
    ['three strides for two axes', { strides: { ints: [1, 1, 1] } }, /attribute strides: has 3 values for 2 spatial axes/],
    ['an unknown auto_pad', { auto_pad: { s: 'SAME' } }, /attribute auto_pad: must be one of NOTSET, SAME_UPPER, SAME_LOWER, VALID, got "SAME"/],
    ['an attribute Conv does not have', { axis: { i: 1 } }, /attribute axis: is not an attribute of Conv/],
  ])('Conv with %s: ONNX_INVALID naming node, op, attribute and offset; onnxruntime refuses it too', async (_, attrs, message) => {
    const bytes = onnxModel(conv(attrs));
    const attribute = Object.keys(attrs)[0]!;
    expectNodeError(bytes, { node: 'conv', op: 'Conv', attribute }, message);
    expect(await ortRejects(bytes)).toBeDefined();
  });

  it.each([
    ['LeakyRelu alpha as an INT', node('LeakyRelu', ['x'], ['y'], { alpha: { i: 1 } }), 'alpha', /must be FLOAT, got an INT \(1\)/],
    ['Softmax axis as INTS', node('Softmax', ['x'], ['y'], { axis: { ints: [1] } }), 'axis', /must be INT, got INTS/],
    ['Flatten axis 7 of a rank-4 input', node('Flatten', ['x'], ['y'], { axis: { i: 7 } }), 'axis', /7 is out of range for a rank-4 input \(\[-4, 4\]\)/],
    ['Softmax axis -5', node('Softmax', ['x'], ['y'], { axis: { i: -5 } }), 'axis', /-5 is out of range for a rank-4 input/],
    ['Transpose perm that is no permutation', node('Transpose', ['x'], ['y'], { perm: { ints: [0, 1, 1, 3] } }), 'perm', /must be a permutation of 0\.\.3/],
    ['Transpose perm of the wrong rank', node('Transpose', ['x'], ['y'], { perm: { ints: [1, 0] } }), 'perm', /has 2 values for a rank-4 input/],
    ['Cast to 99', node('Cast', ['x'], ['y'], { to: { i: 99 } }), 'to', /is not an ONNX data type/],
    ['Squeeze axes as an attribute at opset 13', node('Squeeze', ['x'], ['y'], { axes: { ints: [0] } }), 'axes', /is not an attribute of Squeeze at opset 13 \(it exists before opset 13\)/],
    ['Relu with an unknown attribute', node('Relu', ['x'], ['y'], { foo: { i: 1 } }), 'foo', /is not an attribute of Relu/],
  ])('%s: refused with the node, op and attribute', async (_, n, attribute, message) => {
    const bytes = onnxModel({ nodes: [n] });
    expectNodeError(bytes, { node: n.name, op: n.opType, attribute }, message);
    expect(await ortRejects(bytes)).toBeDefined();
  });

  it('BatchNormalization epsilon must be finite and >= 0; Concat needs its axis', () => {
    const bn = (eps: number): Uint8Array =>
      onnxModel({
        nodes: [node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], { epsilon: { f: eps } }, 'bn')],
        inits: [f32('s', [3]), f32('b', [3]), f32('m', [3]), f32('v', [3])],
      });
    expectNodeError(bn(Number.NaN), { node: 'bn', op: 'BatchNormalization', attribute: 'epsilon' }, /must be finite, got NaN/);
    expectNodeError(bn(-1), { node: 'bn', op: 'BatchNormalization', attribute: 'epsilon' }, /must be >= 0, got -1/);
    expect(() => fromOnnx(bn(1e-5))).not.toThrow();
    expectNodeError(onnxModel({ nodes: [node('Concat', ['x', 'x'], ['y'])] }), { node: 'concat', op: 'Concat', attribute: 'axis' }, /attribute axis: is required/);
  });
});

describe('fromOnnx: valid attributes whose meaning core lacks are refused, never ignored', () => {
  it.each([
    [
      'BatchNormalization training_mode=1',
      { nodes: [node('BatchNormalization', ['x', 's', 'b', 'm', 'v'], ['y'], { training_mode: { i: 1 } }, 'bn')], inits: [f32('s', [3]), f32('b', [3]), f32('m', [3]), f32('v', [3])], opset: 14 },
      /"bn" \(BatchNormalization: training_mode=1 \(batch statistics\) is not supported\)/,
    ],
    ['Reshape allowzero=1 with a 0', { nodes: [node('Reshape', ['x', 'shape'], ['y'], { allowzero: { i: 1 } })], inits: [i64('shape', [0, -1])], opset: 14 }, /allowzero=1 with a 0 in the shape/],
    [
      'DequantizeLinear block_size 2',
      { nodes: [node('QuantizeLinear', ['x', 's'], ['q']), node('DequantizeLinear', ['q', 's'], ['y'], { block_size: { i: 2 } })], inits: [f32('s', [], [0.1])], opset: 21 },
      /blocked quantization \(block_size > 0\) is not supported/,
    ],
  ] as [string, ModelSpec, RegExp][])('%s: ONNX_UNSUPPORTED naming the node', (_, spec, message) => {
    const e = readError(onnxModel(spec));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(message);
  });
});

describe('fromOnnx: inputs are checked against each op (onnxruntime rejects these files)', () => {
  it('an Add with three inputs', async () => {
    const bytes = onnxModel({ nodes: [node('Add', ['x', 'x', 'x'], ['y'])] });
    expectNodeError(bytes, { node: 'add', op: 'Add' }, /takes 2 inputs at opset 13, got 3/);
    expect(await ortRefuses(bytes)).toBeDefined();
  });

  it('a node missing a required input names the node and port (not `value "undefined"`)', async () => {
    const empty = onnxModel({ nodes: [node('Add', ['x', ''], ['y'])] });
    const e = expectNodeError(empty, { node: 'add', op: 'Add', input: 1 }, /input 1 is required but missing/);
    expect(e.message).not.toMatch(/undefined/);
    expect(await ortRefuses(empty)).toBeDefined();
    const short = onnxModel({ nodes: [node('Conv', ['x'], ['y'])] });
    expectNodeError(short, { node: 'conv', op: 'Conv' }, /takes 2 to 3 inputs at opset 13, got 1/);
    expect(await ortRefuses(short)).toBeDefined();
    const undefinedValue = onnxModel({ nodes: [node('Conv', ['x', 'w_missing'], ['y'])] });
    expectNodeError(undefinedValue, { node: 'conv', op: 'Conv', input: 1 }, /input 1 "w_missing" is not a graph input, an initializer or the output of any node/);
    expect(await ortRefuses(undefinedValue)).toBeDefined();
  });

  it('a Concat with no inputs says so (not "the graph output is a constant")', async () => {
    const bytes = onnxModel({ nodes: [node('Concat', [], ['y'], { axis: { i: 1 } })] });
    const e = expectNodeError(bytes, { node: 'concat', op: 'Concat' }, /takes at least 1 input at opset 13, got 0/);
    expect(e.message).not.toMatch(/constant/);
    expect(await ortRefuses(bytes)).toBeDefined();
  });

  it('a node whose output another node already writes, and a cycle, name the node', () => {
    const twice = onnxModel({ nodes: [node('Relu', ['x'], ['y'], {}, 'a'), node('Sigmoid', ['x'], ['y'], {}, 'b')] });
    expectNodeError(twice, { node: 'b', op: 'Sigmoid', index: 1 }, /its output "y" is already the output of node "a"/);
    const cycle = onnxModel({ nodes: [node('Relu', ['t'], ['u'], {}, 'a'), node('Relu', ['u'], ['t'], {}, 'b'), node('Relu', ['x'], ['y'], {}, 'c')] });
    expect(readError(cycle).message).toMatch(/node "[ab]" \(Relu\): the graph has a cycle through this node/);
  });
});

describe('fromOnnx: Unsqueeze, Squeeze and Slice axes', () => {
  const unsqueeze = (axes: number[]): Uint8Array =>
    onnxModel({ nodes: [node('Unsqueeze', ['x', 'axes'], ['y'])], inits: [i64('axes', axes)], input: [2, 3] });

  it.each([
    [[5], /axes \[5\] holds 5, out of range \[-3, 2\]/],
    [[-4], /axes \[-4\] holds -4, out of range \[-3, 2\]/],
    [[1, 1], /axes \[1, 1\] repeats an axis/],
    [[3, -1], /axes \[3, -1\] repeats an axis/],
  ])('Unsqueeze axes %j: refused naming the node and its axes input; onnxruntime refuses it too', async (axes, message) => {
    const bytes = unsqueeze(axes);
    expectNodeError(bytes, { node: 'unsqueeze', op: 'Unsqueeze', input: 1 }, message);
    expect(await ortRefuses(bytes)).toBeDefined();
  });

  it('Unsqueeze with valid axes still reads, and Squeeze of a size-3 axis is refused', async () => {
    expect(fromOnnx(unsqueeze([0, -1])).info('y').shape).toEqual([1, 2, 3, 1]);
    const sq = onnxModel({ nodes: [node('Squeeze', ['x', 'axes'], ['y'])], inits: [i64('axes', [1])], input: [2, 3] });
    expectNodeError(sq, { node: 'squeeze', op: 'Squeeze', input: 1 }, /cannot squeeze axis 1 of size 3/);
    expect(await ortRefuses(sq)).toBeDefined();
  });

  it('Slice with axis 10 of a rank-4 input says the axis is out of range (not "slicing a dynamic axis")', async () => {
    const bytes = onnxModel({
      nodes: [node('Slice', ['x', 'starts', 'ends', 'axes'], ['y'])],
      inits: [i64('starts', [0]), i64('ends', [2]), i64('axes', [10])],
    });
    const e = expectNodeError(bytes, { node: 'slice', op: 'Slice', input: 3 }, /axes \[10\] holds 10, out of range for a rank-4 input \(\[-4, 3\]\)/);
    expect(e.message).not.toMatch(/dynamic/);
    // onnxruntime takes the file and fails when it runs it.
    expect(await ortRun(bytes, new Float32Array(192), [1, 3, 8, 8])).toMatch(/axes|axis/i);
  });
});

describe('fromOnnx: files that used to fail only when run', () => {
  it('Clip with min > max is valid ONNX: every output is max, as onnxruntime computes', async () => {
    const bytes = onnxModel({ nodes: [node('Clip', ['x', 'lo', 'hi'], ['y'])], inits: [f32('lo', [], [6]), f32('hi', [], [1])] });
    const x = Float32Array.from({ length: 192 }, (_, i) => (i - 96) / 8);
    const expected = await ortRun(bytes, x, [1, 3, 8, 8]);
    expect(expected).toBeInstanceOf(Float32Array);
    expect([...(expected as Float32Array)].every((v) => v === 1)).toBe(true);
    const g = fromOnnx(bytes);
    const ex = new Executor(g);
    // The graph is NHWC inside: feed the same values transposed, compare transposed back.
    const xt = tf.transpose(tf.tensor(x, [1, 3, 8, 8]), [0, 2, 3, 1]);
    const [y] = ex.run(xt);
    const back = tf.transpose(y!, [0, 3, 1, 2]);
    expect(Array.from(back.dataSync())).toEqual(Array.from(expected as Float32Array));
    tf.dispose([xt, y!, back]);
    ex.dispose();
  });

  it('a Reshape whose sizes cannot match: refused at read time when they are static, EXECUTION_FAILED when the batch decides', async () => {
    const fixed = onnxModel({ nodes: [node('Reshape', ['x', 'shape'], ['y'])], inits: [i64('shape', [5, -1])] });
    const e = readError(fixed);
    expect(e).toBeInstanceOf(GraphError);
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toMatch(/node "reshape" \(Reshape\): cannot reshape \[1, 3, 8, 8\] to \[5, -1\].*\(ONNX node "reshape" \(Reshape\) at byte offset \d+\)/);
    expect(await ortRun(fixed, new Float32Array(192), [1, 3, 8, 8])).toMatch(/reshape|shape/i);
    // [?, 12] to [3, 12] holds for a batch of 3 only: the run with a batch of 2 is the error.
    const batchBound = onnxModel({ nodes: [node('Reshape', ['x', 'shape'], ['y'])], inits: [i64('shape', [3, 12])], input: ['n', 12] });
    const g = fromOnnx(batchBound);
    const ex = new Executor(g);
    const x = tf.zeros([2, 12]);
    let err: unknown;
    try {
      ex.run(x);
    } catch (caught) {
      err = caught;
    }
    expect(err).toBeInstanceOf(GraphError);
    expect((err as GraphError).code).toBe('EXECUTION_FAILED');
    expect((err as GraphError).message).toMatch(/^node "reshape" \(Reshape\) failed on inputs \[2, 12\]: /);
    expect((err as GraphError).details).toMatchObject({ node: 'reshape', op: 'Reshape' });
    expect(await ortRun(batchBound, new Float32Array(24), [2, 12])).toMatch(/reshape|shape/i);
    x.dispose();
    ex.dispose();
  });

  it('reflect padding larger than the input: refused at read time, naming the node and its pads input', async () => {
    const bytes = onnxModel({
      nodes: [node('Pad', ['x', 'pads'], ['y'], { mode: { s: 'reflect' } })],
      inits: [i64('pads', [0, 0, 8, 0, 0, 0, 8, 0])],
    });
    expectNodeError(bytes, { node: 'pad', op: 'Pad', input: 1 }, /reflect padding of 8 on axis 2 is larger than the input's size 8 - 1/);
    expect(await ortRun(bytes, new Float32Array(192), [1, 3, 8, 8])).toMatch(/pad/i);
    const ok = onnxModel({ nodes: [node('Pad', ['x', 'pads'], ['y'], { mode: { s: 'reflect' } })], inits: [i64('pads', [0, 0, 7, 7, 0, 0, 7, 7])] });
    expect(fromOnnx(ok).info('y').shape).toEqual([1, 22, 22, 3]);
  });

  it('pads of 2^30: the volume is bounded (limits.maxTensorElements), not only each dimension', () => {
    const bytes = onnxModel({ nodes: [node('Pad', ['x', 'pads'], ['y'])], inits: [i64('pads', [0, 0, 2 ** 30, 2 ** 30, 0, 0, 2 ** 30, 2 ** 30])] });
    expectNodeError(bytes, { node: 'pad', op: 'Pad' }, /its output would hold \d+ elements per example \(shape \[1, 2147483656, 2147483656, 3\]\), above limits\.maxTensorElements 268435456/);
    const conv2 = onnxModel(conv({ pads: { ints: [2 ** 20, 2 ** 20, 2 ** 20, 2 ** 20] } }));
    expectNodeError(conv2, { node: 'conv', op: 'Conv' }, /its output would hold \d+ elements per example/);
  });

  it('input dims of 2^24 × 2^24: each dim is within maxDim, the volume is refused', () => {
    const bytes = onnxModel({ nodes: [node('Relu', ['x'], ['y'])], input: [1, 1, 2 ** 24, 2 ** 24] });
    const e = readError(bytes);
    expect(e).toBeInstanceOf(OnnxError);
    expect(e.code).toBe('ONNX_INVALID');
    expect(e.message).toMatch(/GraphProto\.input\[0\] "x": shape \[1, 1, 16777216, 16777216\] holds 281474976710656 elements per example, above limits\.maxTensorElements/);
  });
});

describe('fromOnnx: non-finite weights and scales', () => {
  const qdq = (scale: number): Uint8Array =>
    onnxModel({
      nodes: [node('QuantizeLinear', ['x', 's', 'z'], ['q'], {}, 'quant'), node('DequantizeLinear', ['q', 's', 'z'], ['y'], {}, 'dequant')],
      inits: [f32('s', [], [scale]), { name: 'z', dims: [], dataType: 2, raw: Uint8Array.of(128) }],
    });

  it('a NaN weight is read with a warning naming the tensor (by default on console.warn)', () => {
    const values = Array.from({ length: 108 }, (_, i) => (i === 5 ? Number.NaN : i === 6 ? Infinity : 0.1));
    const bytes = onnxModel({ nodes: [node('Conv', ['x', 'w'], ['y'])], inits: [f32('w', [4, 3, 3, 3], values)] });
    const warnings: OnnxWarning[] = [];
    fromOnnx(bytes, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([{ code: 'NONFINITE_VALUES', tensor: 'w', message: 'initializer "w" holds 1 NaN and 1 infinite value(s) of 108' }]);
    const spy = vi.spyOn(console, 'warn').mockImplementation(() => {});
    fromOnnx(bytes);
    expect(spy).toHaveBeenCalledWith('tensorpress: warning: initializer "w" holds 1 NaN and 1 infinite value(s) of 108');
  });

  it.each([0, -0.5, Number.NaN, Infinity])('a quantization scale of %s: a warning at read time, NUMERIC_INVALID when the executor would compute with it', (scale) => {
    const warnings: OnnxWarning[] = [];
    const g = fromOnnx(qdq(scale), { onWarning: (w) => warnings.push(w) });
    expect(warnings.map((w) => [w.code, w.tensor])).toContainEqual(['INVALID_SCALE', 's']);
    expect(warnings.find((w) => w.code === 'INVALID_SCALE')!.message).toMatch(/quantization scale "s" of node "quant" \(QuantizeLinear\) holds 1 value\(s\) that are not finite and positive/);
    let err: unknown;
    try {
      new Executor(g).dispose();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    expect((err as TensorpressError).code).toBe('NUMERIC_INVALID');
    expect((err as TensorpressError).message).toMatch(/node "quant" \(QuantizeLinear\): scale "s" holds .* at index 0; a quantization scale must be finite and positive/);
  });

  it('toIntegerOps and checkParity refuse a NaN scale with NUMERIC_INVALID (before any arithmetic)', async () => {
    const bytes = qdq(Number.NaN);
    const g = fromOnnx(bytes, { onWarning: () => {} });
    expect(() => toIntegerOps(g)).toThrow(expect.objectContaining({ code: 'NUMERIC_INVALID', details: expect.objectContaining({ node: 'quant', param: 's' }) }));
    const x = tf.zeros([1, 8, 8, 3]);
    await expect(checkParity(g, bytes, x)).rejects.toMatchObject({ code: 'NUMERIC_INVALID' });
    await expect(checkParity(g, bytes, x, { arithmetic: 'float' })).rejects.toMatchObject({ code: 'NUMERIC_INVALID' });
    x.dispose();
  });

  it('a valid scale gives no warning', () => {
    const warnings: OnnxWarning[] = [];
    new Executor(fromOnnx(qdq(0.05), { onWarning: (w) => warnings.push(w) })).dispose();
    expect(warnings).toEqual([]);
  });
});

describe('fromOnnx: the byte offset of a node', () => {
  it('is the offset of its NodeProto in the file, for the nth node too', () => {
    const nodes: ONode[] = [node('Relu', ['x'], ['a'], {}, 'first'), node('Sigmoid', ['a'], ['b'], {}, 'second'), node('Add', ['b', 'b', 'b'], ['y'], {}, 'third')];
    const bytes = onnxModel({ nodes });
    const e = expectNodeError(bytes, { node: 'third', op: 'Add', index: 2 }, /takes 2 inputs/);
    expect(e.offset).toBeGreaterThan(nodeOffset(bytes, 1));
  });
});
