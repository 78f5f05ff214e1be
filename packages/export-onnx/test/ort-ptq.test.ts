import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { fromOnnx, ortCompare, quantizeOnnx, roundHalfEven, scaleZeroPoint, type RangeObserver } from '@tensorpress/export-onnx';
import { errorOf } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { f32, i64, node, onnxModel, ortRun } from './helpers/onnx-builder.js';

const { onnx } = onnxProto;
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');

beforeAll(async () => {
  await useBackend('cpu');
});

/** Seeded uniform [-1, 1) batches of `per` values per example. */
function* uniform(examples: number, per: number, batch: number, seed: number): Generator<Float32Array> {
  let s = seed;
  for (let i = 0; i < examples; i += batch) {
    const a = new Float32Array(Math.min(batch, examples - i) * per);
    for (let j = 0; j < a.length; j++) {
      s = (s * 1103515245 + 12345) >>> 0;
      a[j] = (s / 2 ** 32) * 2 - 1;
    }
    yield a;
  }
}

/** The error a promise rejects with (fails when it resolves). */
async function failure(p: Promise<unknown>): Promise<Error & { code: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code: string };
  }
  throw new Error('expected a rejection');
}

type Model = InstanceType<typeof onnx.ModelProto>;
const decode = (b: Uint8Array): Model => onnx.ModelProto.decode(b);
function init(m: Model, name: string): { dims: number[]; dataType: number; values: number[] } {
  const t = m.graph!.initializer!.find((x) => x.name === name);
  if (!t) throw new Error(`no initializer ${name}`);
  const raw = t.rawData!;
  const buf = new Uint8Array(raw).buffer;
  const values =
    t.dataType === 1 ? [...new Float32Array(buf)] : t.dataType === 3 ? [...new Int8Array(buf)] : t.dataType === 2 ? [...new Uint8Array(buf)] : [...new Int32Array(buf)];
  return { dims: (t.dims ?? []).map(Number), dataType: t.dataType!, values };
}
type Node = onnxProto.onnx.INodeProto;
const producer = (m: Model, out: string): Node | undefined => m.graph!.node!.find((n) => n.output!.includes(out));

describe('roundHalfEven and scaleZeroPoint', () => {
  it('round ties to even, like QuantizeLinear', () => {
    expect([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(roundHalfEven)).toEqual([0, 2, 2, 0, -2, -2, 2, 3]);
  });
  it('follow onnxruntime compute_scale_zp', () => {
    // [-1, 3] in uint8: scale 4/255, zero point round(1/(4/255)) = round(63.75) = 64
    const a = scaleZeroPoint(-1, 3, 0, 255);
    expect(a.scale).toBe(Math.fround(4 / 255));
    expect(a.zeroPoint).toBe(64);
    // positive-only ranges are widened to contain 0
    expect(scaleZeroPoint(0.5, 2, 0, 255)).toEqual({ scale: Math.fround(2 / 255), zeroPoint: 0 });
    // int8 activations: zero point -128 for [0, m]
    expect(scaleZeroPoint(0, 2, -128, 127).zeroPoint).toBe(-128);
    // symmetric narrow int8 weights: m/127, zero point 0
    expect(scaleZeroPoint(-0.5, 0.25, -127, 127, true)).toEqual({ scale: Math.fround(1 / 254), zeroPoint: 0 });
    // an empty range
    expect(scaleZeroPoint(0, 0, 0, 255)).toEqual({ scale: 1, zeroPoint: 0 });
  });
});

/** x [N,1,2,2] → Conv 1×1 (w, b) → Relu → r; y = r + x. */
function tinyModel(w: number[]): Uint8Array {
  const c = w.length;
  return onnxModel({
    input: ['N', 1, 2, 2],
    nodes: [
      node('Conv', ['x', 'w', 'b'], ['c'], {}, 'conv'),
      node('Relu', ['c'], ['r'], {}, 'relu'),
      node('Add', ['r', 'x'], ['y'], {}, 'add'),
    ],
    inits: [f32('w', [c, 1, 1, 1], w), f32('b', [c], Array.from({ length: c }, () => 0.25))],
  });
}

describe('quantizeOnnx: exact parameters on a hand-made case', () => {
  it('streams min-max, puts QDQ where onnxruntime fuses and stores int8 weights, int32 bias', async () => {
    const bytes = tinyModel([0.5]);
    const before = Uint8Array.from(bytes);
    const r = await quantizeOnnx(bytes, [Float32Array.of(-1, 0, 2, 3), Float32Array.of(0, 1, 1, 1)]);
    expect(Uint8Array.from(bytes)).toEqual(before);
    expect(r.examples).toBe(2);
    expect(r.batches).toBe(2);
    expect(r.quantized.map((q) => q.node)).toEqual(['conv', 'add']);
    const sx = Math.fround(4 / 255);
    // relu(0.5 x + 0.25) over the data: 0, 0.25, 1.25, 1.75 → [0, 1.75]
    const sr = Math.fround(1.75 / 255);
    expect(r.tensors).toEqual([
      { name: 'x', scale: sx, zeroPoint: 64, min: -1, max: 3 },
      { name: 'r', scale: sr, zeroPoint: 0, min: 0, max: 1.75 },
    ]);
    const m = decode(r.bytes);
    const ops = m.graph!.node!.map((n) => n.opType);
    expect(ops).toEqual(['QuantizeLinear', 'DequantizeLinear', 'DequantizeLinear', 'DequantizeLinear', 'Conv', 'Relu', 'QuantizeLinear', 'DequantizeLinear', 'Add']);
    const conv = m.graph!.node!.find((n) => n.name === 'conv')!;
    // Conv reads DQ(Q(x)), DQ(int8 w), DQ(int32 b)
    const [dx, dw, db] = conv.input!.map((i) => producer(m, i)!) as [Node, Node, Node];
    expect(dx.opType).toBe('DequantizeLinear');
    expect(producer(m, dx.input![0]!)!.opType).toBe('QuantizeLinear');
    expect(init(m, dx.input![1]!).values).toEqual([sx]);
    expect(init(m, dx.input![2]!)).toEqual({ dims: [], dataType: 2, values: [64] });
    const sw = Math.fround(0.5 / 127);
    expect(init(m, dw.input![0]!)).toEqual({ dims: [1, 1, 1, 1], dataType: 3, values: [127] });
    expect(init(m, dw.input![1]!).values).toEqual([sw]);
    const sb = Math.fround(sx * sw);
    expect(init(m, db.input![0]!)).toEqual({ dims: [1], dataType: 6, values: [roundHalfEven(Math.fround(0.25 / sb))] });
    expect(init(m, db.input![1]!).values).toEqual([sb]);
    // the Relu is kept, its output quantized (onnxruntime folds it into the Q); the Add reads both DQs
    const add = m.graph!.node!.find((n) => n.name === 'add')!;
    expect(add.input!.map((i) => producer(m, i)!.opType)).toEqual(['DequantizeLinear', 'DequantizeLinear']);
    expect(m.graph!.initializer!.map((t) => t.name)).not.toContain('w');
    // onnxruntime runs it and agrees with the QDQ arithmetic: y = DQ(Q(relu(DQ(Q(x))·ŵ + b̂))) + DQ(Q(x))
    const out = await ortRun(r.bytes, Float32Array.of(-1, 0, 2, 3), [1, 1, 2, 2]);
    if (typeof out === 'string') throw new Error(out);
    const qx = (v: number) => (Math.max(0, Math.min(255, roundHalfEven(v / sx) + 64)) - 64) * sx;
    const want = [-1, 0, 2, 3].map((v) => {
      const c = Math.max(0, qx(v) * 127 * sw + roundHalfEven(Math.fround(0.25 / sb)) * sb);
      return Math.min(255, roundHalfEven(c / sr)) * sr + qx(v);
    });
    [...out].forEach((v, i) => expect(v).toBeCloseTo(want[i]!, 5));
  });

  it('per-channel weights: one symmetric scale per output channel, the bias scaled by each', async () => {
    const r = await quantizeOnnx(
      onnxModel({
        input: ['N', 1, 2, 2],
        nodes: [node('Conv', ['x', 'w', 'b'], ['c'], {}, 'conv'), node('ReduceSum', ['c'], ['y'], { keepdims: { i: 0 } }, 'sum')],
        inits: [f32('w', [2, 1, 1, 1], [0.5, -0.25]), f32('b', [2], [0.25, 0.25])],
      }),
      [Float32Array.of(-1, 0, 2, 3)],
      { perChannel: true },
    );
    const m = decode(r.bytes);
    const conv = m.graph!.node!.find((n) => n.name === 'conv')!;
    const dw = producer(m, conv.input![1]!)!;
    expect(Number(dw.attribute!.find((a) => a.name === 'axis')!.i)).toBe(0);
    expect(init(m, dw.input![0]!).values).toEqual([127, -127]);
    expect(init(m, dw.input![1]!).values).toEqual([Math.fround(0.5 / 127), Math.fround(0.25 / 127)]);
    const db = producer(m, conv.input![2]!)!;
    const sx = Math.fround(4 / 255);
    expect(init(m, db.input![1]!).values).toEqual([Math.fround(sx * Math.fround(0.5 / 127)), Math.fround(sx * Math.fround(0.25 / 127))]);
    // the conv output feeds a non-quantized op and is quantized (QLinearConv), the graph output is not
    expect(r.tensors.map((t) => t.name)).toEqual(['x', 'c']);
    expect(typeof (await ortRun(r.bytes, Float32Array.of(1, 2, 3, 4), [1, 1, 2, 2]))).not.toBe('string');
  });

  it('uses the injected range collectors, one per tensor, batch by batch', async () => {
    const seen = new Map<string, number>();
    const made: string[] = [];
    const factory = (name: string, o: { symmetric: boolean; bits: number }): RangeObserver => {
      made.push(`${name}:${o.symmetric}:${o.bits}`);
      return {
        observe(x: tf.Tensor) {
          seen.set(name, (seen.get(name) ?? 0) + x.shape[0]!);
        },
        range: () => ({ min: -2, max: 6 }),
      };
    };
    const r = await quantizeOnnx(tinyModel([0.5]), uniform(10, 4, 3, 1), { collector: factory, samples: 7 });
    expect(made).toEqual(['x:false:8', 'r:false:8']);
    // 7 examples: batches of 3, 3, then 1 of the third
    expect([...seen.values()]).toEqual([7, 7]);
    expect(r.examples).toBe(7);
    expect(r.batches).toBe(3);
    expect(r.tensors.every((t) => t.scale === Math.fround(8 / 255) && t.zeroPoint === 64)).toBe(true);
  });

  it('a model with a fixed batch of 1 takes batches of several examples, one run each', async () => {
    const fixed = onnxModel({ input: [1, 1, 2, 2], nodes: [node('Conv', ['x', 'w'], ['c'], {}, 'conv'), node('Relu', ['c'], ['y'], {}, 'relu')], inits: [f32('w', [1, 1, 1, 1], [2])] });
    const r = await quantizeOnnx(fixed, [Float32Array.of(-1, 0, 2, 3, 0, 1, 1, 1, 4, 0, 0, 0)]);
    expect(r.examples).toBe(3);
    expect(r.batches).toBe(3);
    expect(r.tensors[0]).toMatchObject({ name: 'x', min: -1, max: 4 });
    const c = await ortCompare(fixed, r.bytes, [Float32Array.of(1, 2, 3, 4, 0, 0, 0, 1)]);
    expect(c.examples).toBe(2);
  });

  it('an observer with observeData gets the plain arrays, no tensors', async () => {
    const seen: number[] = [];
    const r = await quantizeOnnx(tinyModel([0.5]), [Float32Array.of(-1, 0, 2, 3)], {
      collector: () => ({
        observe: () => {
          throw new Error('observe must not be called');
        },
        observeData: (d: Float32Array) => void seen.push(d.length),
        range: () => ({ min: -1, max: 3 }),
      }),
    });
    expect(seen).toEqual([4, 4]);
    expect(r.tensors.map((t) => t.zeroPoint)).toEqual([64, 64]);
  });

  it('int8 activations: zero points in int8', async () => {
    const r = await quantizeOnnx(tinyModel([0.5]), [Float32Array.of(-1, 0, 2, 3)], { activationType: 'int8' });
    expect(r.tensors.map((t) => t.zeroPoint)).toEqual([roundHalfEven(-128 + 63.75), -128]);
    const m = decode(r.bytes);
    const q = m.graph!.node!.find((n) => n.opType === 'QuantizeLinear')!;
    expect(init(m, q.input![2]!).dataType).toBe(3);
    expect(typeof (await ortRun(r.bytes, Float32Array.of(1, 2, 3, 4), [1, 1, 2, 2]))).not.toBe('string');
  });
});

/** x [N,1,4,4] → Conv 3×3 → Relu → CumSum (no in-process kernel) → Conv 1×1 → GlobalAveragePool → Flatten → Gemm → y [N,4]. */
function cumsumModel(opset = 13): Uint8Array {
  const vals = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * 0.5);
  return onnxModel({
    opset,
    input: ['N', 1, 4, 4],
    nodes: [
      // torch's exporter shares parameters through Identity at older opsets
      node('Identity', ['b1'], ['b1_shared'], {}, 'share'),
      node('Conv', ['x', 'w1', 'b1_shared'], ['c1'], { pads: { ints: [1, 1, 1, 1] } }, 'conv1'),
      node('Relu', ['c1'], ['r1'], {}, 'relu1'),
      node('CumSum', ['r1', 'axis'], ['cs'], {}, 'cumsum'),
      node('Conv', ['cs', 'w2'], ['c2'], {}, 'conv2'),
      node('GlobalAveragePool', ['c2'], ['g'], {}, 'gap'),
      node('Flatten', ['g'], ['f'], {}, 'flatten'),
      node('Gemm', ['f', 'w3', 'b3'], ['y'], { transB: { i: 1 } }, 'fc'),
    ],
    inits: [f32('w1', [4, 1, 3, 3], vals(36, 1)), f32('b1', [4], vals(4, 2)), i64('axis', [3], []), f32('w2', [6, 4, 1, 1], vals(24, 3)), f32('w3', [4, 6], vals(24, 4)), f32('b3', [4], vals(4, 5))],
  });
}

describe('quantizeOnnx: graphs the in-process executor cannot run', () => {
  it('keeps the CumSum verbatim, quantizes around it, onnxruntime runs the result and agrees', async () => {
    const bytes = cumsumModel();
    expect(errorOf(() => fromOnnx(bytes)).code).toBe('ONNX_UNSUPPORTED');
    const r = await quantizeOnnx(bytes, uniform(64, 16, 16, 3));
    expect(r.quantized.map((q) => q.node)).toEqual(['conv1', 'conv2', 'gap', 'fc']);
    expect(r.weights).toBe(3);
    const m = decode(r.bytes);
    const cs = m.graph!.node!.find((n) => n.name === 'cumsum')!;
    const orig = decode(bytes).graph!.node!.find((n) => n.name === 'cumsum')!;
    expect(cs.opType).toBe('CumSum');
    expect(cs.attribute).toEqual(orig.attribute);
    expect(cs.input![1]).toBe('axis');
    // it reads the DQ of the (relu-fused) conv1 output, and conv2 reads the DQ of its output
    expect(producer(m, cs.input![0]!)!.opType).toBe('DequantizeLinear');
    const conv2 = m.graph!.node!.find((n) => n.name === 'conv2')!;
    expect(producer(m, conv2.input![0]!)!.opType).toBe('DequantizeLinear');
    expect(r.tensors.map((t) => t.name)).toEqual(['x', 'r1', 'cs', 'c2', 'g', 'f']);
    const c = await ortCompare(bytes, r.bytes, uniform(256, 16, 64, 4));
    expect(c.examples).toBe(256);
    expect(c.relMaxAbsDiff).toBeLessThan(0.05);
    expect(c.top1Agreement).toBeGreaterThan(0.9);
  });

  it('below opset 13 uses com.microsoft QuantizeLinear/DequantizeLinear, per-channel included', async () => {
    const r = await quantizeOnnx(cumsumModel(11), uniform(16, 16, 16, 3), { perChannel: true });
    const m = decode(r.bytes);
    // the bias behind the Identity is quantized (int32) like any constant bias
    const conv1 = m.graph!.node!.find((n) => n.name === 'conv1')!;
    const db = producer(m, conv1.input![2]!)!;
    expect(db.opType).toBe('DequantizeLinear');
    expect(init(m, db.input![0]!).dataType).toBe(6);
    // the float bias and its Identity alias are gone
    expect(m.graph!.initializer!.map((t) => t.name)).not.toContain('b1');
    expect(m.graph!.node!.map((n) => n.name)).not.toContain('share');
    const qdq = m.graph!.node!.filter((n) => n.opType === 'QuantizeLinear' || n.opType === 'DequantizeLinear');
    expect(qdq.length).toBeGreaterThan(0);
    expect(qdq.every((n) => n.domain === 'com.microsoft')).toBe(true);
    expect(m.opsetImport!.some((o) => o.domain === 'com.microsoft')).toBe(true);
    const c = await ortCompare(cumsumModel(11), r.bytes, uniform(64, 16, 64, 4));
    expect(c.top1Agreement).toBeGreaterThan(0.85);
  });
});

describe('quantizeOnnx: decomposed normalizations', () => {
  it('leaves the square and the Add that feed a Sqrt (variance + eps) in float, quantizes the rest', async () => {
    // y = (x - mean) / sqrt(mean((x - mean)^2) + eps) + x: a LayerNorm as torch writes it below opset 17
    const bytes = onnxModel({
      input: ['N', 8],
      nodes: [
        node('ReduceMean', ['x'], ['m'], { axes: { ints: [1] } }, 'mean'),
        node('Sub', ['x', 'm'], ['d'], {}, 'sub'),
        node('Mul', ['d', 'd'], ['d2'], {}, 'square'),
        node('ReduceMean', ['d2'], ['v'], { axes: { ints: [1] } }, 'var'),
        node('Add', ['v', 'eps'], ['ve'], {}, 'add_eps'),
        node('Sqrt', ['ve'], ['s'], {}, 'sqrt'),
        node('Div', ['d', 's'], ['n'], {}, 'div'),
        node('Add', ['n', 'x'], ['y'], {}, 'residual'),
      ],
      inits: [f32('eps', [], [1e-5])],
    });
    const r = await quantizeOnnx(bytes, uniform(16, 8, 8, 1));
    expect(r.skipped.map((s) => s.node)).toEqual(['square', 'add_eps']);
    expect(r.skipped[0]!.reason).toMatch(/feeds the Sqrt of a normalization/);
    expect(r.quantized.map((q) => q.node)).toEqual(['residual']);
  });
});

describe('quantizeOnnx: opset 9', () => {
  const model = (extra: ReturnType<typeof node>[] = []) =>
    onnxModel({
      opset: 9,
      input: ['N', 1, 4, 4],
      nodes: [
        node('Conv', ['x', 'w'], ['c'], {}, 'conv'),
        node('Relu', ['c'], ['r'], {}, 'relu'),
        node('MaxPool', ['r'], ['p'], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }, 'pool'),
        node('Flatten', ['p'], ['f'], {}, 'flatten'),
        node('Gemm', ['f', 'g', 'gb'], extra.length ? ['z'] : ['y'], { transB: { i: 1 } }, 'fc'),
        ...extra,
      ],
      inits: [f32('w', [4, 1, 3, 3]), f32('g', [3, 4]), f32('gb', [3])],
    });
  it('moves the model to opset 10, where onnxruntime fuses QDQ into its quantized kernels', async () => {
    const r = await quantizeOnnx(model(), uniform(16, 16, 8, 1), { perChannel: true });
    const m = decode(r.bytes);
    expect(Number(m.opsetImport!.find((o) => !o.domain)!.version)).toBe(10);
    // ortCompare runs both at the 'all' optimisation level (the fused kernels)
    const c = await ortCompare(model(), r.bytes, uniform(32, 16, 8, 2));
    expect(c.top1Agreement).toBeGreaterThan(0.8);
  });
  it('an opset-9 op that changed at opset 10 is refused naming the node and the way around', async () => {
    const e = await failure(quantizeOnnx(model([node('Slice', ['z'], ['y'], { starts: { ints: [0] }, ends: { ints: [2] }, axes: { ints: [1] } }, 'cut')]), uniform(4, 16, 4, 1)));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(/node "cut" \(Slice\).*convert_version/);
  });
});

describe('quantizeOnnx: PyTorch exports (the committed fixtures)', () => {
  it.each(['resnet-tiny', 'mobilenetv2-tiny', 'mobilenetv3-tiny', 'shufflenetv2-tiny'])('%s: every Conv and Gemm quantized, onnxruntime agrees with FP32', async (name) => {
    const bytes = new Uint8Array(readFileSync(path.join(dir, `${name}.onnx`)));
    const r = await quantizeOnnx(bytes, uniform(32, 3 * 32 * 32, 16, 5), { perChannel: true });
    const convs = decode(bytes).graph!.node!.filter((n) => n.opType === 'Conv' || n.opType === 'Gemm').length;
    expect(r.quantized.filter((q) => q.op === 'Conv' || q.op === 'Gemm').length).toBe(convs);
    expect(r.weights).toBe(convs);
    // shape-arithmetic Concats (int64) are left alone, and said so
    for (const s of r.skipped) expect(s.reason).toMatch(/not float/);
    const c = await ortCompare(bytes, r.bytes, uniform(128, 3 * 32 * 32, 64, 6));
    expect(c.relMaxAbsDiff).toBeLessThan(0.05);
    expect(c.top1Agreement).toBeGreaterThanOrEqual(0.95);
  });
});

describe('quantizeOnnx: bad input', () => {
  it('calibration data of the wrong shape names the input and the expected shape', async () => {
    const e = await failure(quantizeOnnx(tinyModel([0.5]), [new Float32Array(5)]));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toMatch(/5 values are not whole examples of input "x" \[N, 1, 2, 2\] \(4 values each\)/);
  });
  it('feeds of the wrong dtype name the input', async () => {
    const e = await failure(quantizeOnnx(tinyModel([0.5]), [{ x: { data: new Int32Array(4), dims: [1, 1, 2, 2] } }]));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toMatch(/input "x" is float32, the feed is int32/);
  });
  it('an op onnxruntime has no kernel for is named', async () => {
    const bytes = onnxModel({ input: ['N', 1, 2, 2], nodes: [node('Conv', ['x', 'w'], ['c'], {}, 'conv'), node('NoSuchOp', ['c'], ['y'], {}, 'mystery')], inits: [f32('w', [1, 1, 1, 1], [1])] });
    const e = await failure(quantizeOnnx(bytes, [new Float32Array(4)]));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect(e.message).toMatch(/mystery|NoSuchOp/);
    expect(e.message.split('\n')).toHaveLength(1);
  });
  it('a model over the size limit', async () => {
    const e = await failure(quantizeOnnx(tinyModel([0.5]), [], { limits: { maxBytes: 10 } }));
    expect(e.code).toBe('ONNX_INVALID');
    expect(e.message).toMatch(/above the limit of 10 \(limits\.maxBytes\)/);
  });
  it('no calibration data', async () => {
    const e = await failure(quantizeOnnx(tinyModel([0.5]), []));
    expect(e.code).toBe('DATA_INVALID');
  });
});
