import * as tf from '@tensorflow/tfjs-core';
import { Executor, createGraph, useBackend, type Graph, type Node, type Param } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadMnist } from '@tensorpress/datasets';
import { checkParity, fromOnnx, toIntegerOps, toOnnx } from '@tensorpress/export-onnx';
import { maxAbsDiff, seededArray } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { quantizeForTest } from './helpers/qdq-graph.js';

const { onnx } = onnxProto;

let calib: tf.Tensor;
let test: tf.Tensor;

beforeAll(async () => {
  await useBackend('wasm');
  const { train, test: testSet } = await loadMnist({ seed: 0 });
  const c = train.batches(256).next().value!;
  calib = c.x;
  c.y.dispose();
  const t = testSet.batches(testSet.size).next().value!;
  test = t.x;
  t.y.dispose();
});

const param = (name: string, shape: number[], dtype: Param['dtype'], data: Param['data']): Param => ({ name, shape, dtype, data, trainable: false });
const scalar = (name: string, dtype: 'float32' | 'uint8', v: number): Param => param(name, [], dtype, dtype === 'float32' ? Float32Array.of(v) : Uint8Array.of(v));
const node = (name: string, op: string, inputs: string[], outputs: string[], attrs: Node['attrs'] = {}): Node => ({ name, op, inputs, outputs, attrs });

function ops(bytes: Uint8Array): string[] {
  return onnx.ModelProto.decode(bytes).graph!.node!.map((n) => n.opType ?? '');
}

describe.each(['plainCnn', 'residualCnn'] as const)('toOnnx INT8 (%s)', (name) => {
  let float: Graph;
  let q: { graph: Graph; outputStep: number };
  beforeAll(() => {
    float = referenceModels[name]({ seed: 1 });
    q = quantizeForTest(float, calib);
  });

  it('QDQ: file ≈ 0.27× FP32, top-1 agreement ≥ 99.9% on 2,000 MNIST digits, logits within one output step', async () => {
    const fp32 = toOnnx(float);
    const bytes = toOnnx(q.graph);
    // Names are ~6% of these ~80k-parameter files (int8 weights alone are 0.256× on the residual CNN).
    const compact = toOnnx(q.graph, { compactNames: true });
    // (compact on both sides: short names, no default attributes)
    expect(compact.length / toOnnx(float, { compactNames: true }).length).toBeLessThanOrEqual(name === 'plainCnn' ? 0.265 : 0.271);
    expect(bytes.length / fp32.length).toBeLessThanOrEqual(name === 'plainCnn' ? 0.27 : 0.3);
    const small = tf.slice(test, 0, 256);
    const whole = await checkParity(q.graph, compact, small, { outputStep: q.outputStep });
    expect(whole.top1Agreement).toBeGreaterThanOrEqual(0.99);
    // In batches of 100 (100, 100, 56): the same report, summed over the batches.
    const batched = await checkParity(q.graph, compact, small, { outputStep: q.outputStep, batchSize: 100 });
    expect(batched.outputs[0]!.count).toBe(whole.outputs[0]!.count);
    expect(batched.top1Agreement).toBe(whole.top1Agreement);
    expect(batched.beyondStep).toBe(whole.beyondStep);
    expect(batched.maxAbsDiff).toBeCloseTo(whole.maxAbsDiff, 6);
    expect(batched.outputs[0]!.meanAbsDiff).toBeCloseTo(whole.outputs[0]!.meanAbsDiff, 6);
    // Unoptimised, onnxruntime runs the Q/DQ ops as written, and checkParity the graph in float.
    const plain = await checkParity(q.graph, compact, small, { outputStep: q.outputStep, optimization: 'disabled' });
    expect(plain.top1Agreement).toBeGreaterThanOrEqual(0.99);
    expect(plain.maxAbsDiff).toBeLessThanOrEqual(2 * q.outputStep);
    small.dispose();
    expect(test.shape[0]).toBe(2000);
    const before = tf.memory().numTensors;
    const r = await checkParity(q.graph, bytes, test, { outputStep: q.outputStep });
    expect(tf.memory().numTensors).toBe(before);
    expect(r.top1Agreement).toBeGreaterThanOrEqual(0.999);
    // checkParity runs the graph as onnxruntime's optimised session does (toIntegerOps): every logit
    // within one output step, on the residual CNN too.
    expect(r.beyondStep).toBe(0);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(q.outputStep);
  });

  it('QOperator: QLinearConv nodes, top-1 ≥ 99.9%, every logit within one output step', async () => {
    const bytes = toOnnx(q.graph, { format: 'qoperator' });
    const o = ops(bytes);
    expect(o.filter((x) => x === 'QLinearConv').length).toBe(q.graph.nodes.filter((n) => n.op === 'Conv').length);
    expect(o).not.toContain('Conv');
    // Adds and the global average pool as onnxruntime's com.microsoft ops: the whole CNN in integers.
    // (The one Add left is the Gemm's float bias after MatMulInteger.)
    for (const [float, fused] of [['Add', 'QLinearAdd'], ['GlobalAveragePool', 'QLinearGlobalAveragePool']] as const) {
      expect(o.filter((x) => x === fused).length).toBe(q.graph.nodes.filter((n) => n.op === float).length);
    }
    expect(o).not.toContain('GlobalAveragePool');
    // The in-process integer form is not what gets written: the QDQ graph is.
    expect(() => toOnnx(toIntegerOps(q.graph).graph)).toThrow(/integer ops run in process only/);
    const r = await checkParity(q.graph, bytes, test, { outputStep: q.outputStep });
    expect(r.top1Agreement).toBeGreaterThanOrEqual(0.999);
    expect(r.beyondStep).toBe(0);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(q.outputStep);
  });

  it('QDQ round-trips through fromOnnx with the same outputs, compact files too', () => {
    const back = fromOnnx(toOnnx(q.graph));
    // compact: no kernel_shape on convolutions, no default window attributes
    const compact = toOnnx(q.graph, { compactNames: true });
    expect(ops(compact)).toEqual(ops(toOnnx(q.graph)));
    const backCompact = fromOnnx(compact);
    const x = tf.slice(test, 0, 64);
    const run = (g: Graph): tf.Tensor => {
      const ex = new Executor(g);
      const y = ex.run(x)[0]!;
      ex.dispose();
      return y;
    };
    const a = run(q.graph);
    const b = run(back);
    const c = run(backCompact);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    expect(maxAbsDiff(a, c)).toBeLessThan(1e-5);
    tf.dispose([a, b, c, x]);
  });
});

describe('toOnnx INT8 variants', () => {
  it('dynamic quantization of the MLP writes DynamicQuantizeLinear + MatMulInteger and matches ORT', async () => {
    const q = quantizeForTest(referenceModels.mlp({ seed: 2 }), calib, { dynamicGemm: true });
    const bytes = toOnnx(q.graph, { format: 'qoperator' });
    const o = ops(bytes);
    expect(o).toContain('DynamicQuantizeLinear');
    expect(o.filter((x) => x === 'MatMulInteger')).toHaveLength(3);
    const r = await checkParity(q.graph, bytes, tf.slice(test, 0, 256), { outputStep: q.outputStep });
    expect(r.top1Agreement).toBeGreaterThanOrEqual(0.99);
    expect(r.maxAbsDiff).toBeLessThan(q.outputStep * 2);
  });

  it('dynamic quantization of conv inputs writes DynamicQuantizeLinear + ConvInteger and matches ORT', async () => {
    const q = quantizeForTest(referenceModels.plainCnn({ seed: 2 }), calib, { dynamicGemm: true, dynamicConv: true });
    const convs = q.graph.nodes.filter((n) => n.op === 'Conv').length;
    const bytes = toOnnx(q.graph, { format: 'qoperator' });
    const o = ops(bytes);
    expect(o.filter((x) => x === 'ConvInteger')).toHaveLength(convs);
    expect(o).not.toContain('Conv');
    const x = tf.slice(test, 0, 256);
    const r = await checkParity(q.graph, bytes, x, { outputStep: q.outputStep });
    expect(r.top1Agreement).toBeGreaterThanOrEqual(0.99);
    expect(r.maxAbsDiff).toBeLessThan(q.outputStep * 2);
    // ConvInteger takes one weight zero point: a conv whose channels differ keeps its QDQ form.
    const first = q.graph.nodes.find((n) => n.op === 'Conv')!.name;
    const mixed = q.graph.with({
      params: q.graph.params.map((p) => (p.name === `${first}.w_zp` ? { ...p, data: Int8Array.from(p.data, (_, i) => i % 2) } : p)),
    });
    const mixedOps = ops(toOnnx(mixed, { format: 'qoperator' }));
    expect(mixedOps.filter((x) => x === 'ConvInteger')).toHaveLength(convs - 1);
    expect(mixedOps.filter((x) => x === 'Conv')).toHaveLength(1);
    const m = await checkParity(mixed, toOnnx(mixed, { format: 'qoperator' }), x, { outputStep: q.outputStep });
    x.dispose();
    expect(m.top1Agreement).toBeGreaterThanOrEqual(0.99);
  });

  it('MobileNet CNN: each ReLU6 Clip folds into its QLinearConv (QOperator), every logit within one step in both formats', async () => {
    const q = quantizeForTest(referenceModels.mobileNetCnn({ seed: 1 }), calib);
    const convs = q.graph.nodes.filter((n) => n.op === 'Conv').length;
    const clips = q.graph.nodes.filter((n) => n.op === 'Clip').length;
    expect(clips).toBeGreaterThan(0);
    expect(toIntegerOps(q.graph).fused.filter((n) => q.graph.node(n)!.op === 'Conv')).toHaveLength(convs);
    const qdq = toOnnx(q.graph);
    const qop = toOnnx(q.graph, { format: 'qoperator' });
    expect(ops(qdq).filter((x) => x === 'Clip')).toHaveLength(clips);
    expect(ops(qop).filter((x) => x === 'QLinearConv')).toHaveLength(convs);
    expect(ops(qop)).not.toContain('Clip');
    // No bias scales, no Clip bounds, fewer nodes.
    expect(qop.length).toBeLessThan(qdq.length);
    for (const bytes of [qdq, qop]) {
      // In batches: 2,000 digits at once exceed the wasm heap on this model's 14×14×64 maps.
      const r = await checkParity(q.graph, bytes, test, { outputStep: q.outputStep, batchSize: 250 });
      expect(r.top1Agreement).toBeGreaterThanOrEqual(0.999);
      expect(r.beyondStep).toBe(0);
    }
  });

  it("QDQ Add runs as onnxruntime's QLinearAdd code for code (integer arithmetic); float arithmetic rounds some ties the other way", async () => {
    let seed = 11;
    const rnd = (): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    let floatMisses = 0;
    // Case 0: every pair of codes with scale ratios of exactly 1/2, so half of the sums are ties
    // that onnxruntime rounds to even. Case 1: a residual CNN's Add (block 3 of the bench's PTQ
    // graph), where the zero-point constant onnxruntime computes with a fused multiply-add differs
    // in its last bit from two rounded products. Then 20 random settings.
    const fixedCases: [number, number, number, number, number, number][] = [
      [0.01, 0, 0.01, 0, 0.02, 0],
      [0.07637704908847809, 113, 0.09777012467384338, 109, 0.06195351108908653, 0],
    ];
    const random = (): [number, number, number, number, number, number] => {
      const [sa, sb, sc] = [0.005 + rnd() * 0.05, 0.005 + rnd() * 0.05, 0.01 + rnd() * 0.08];
      return [sa, Math.floor(rnd() * 256), sb, Math.floor(rnd() * 256), sc, Math.floor(rnd() * 256)];
    };
    for (let k = 0; k < 22; k++) {
      const [sa, za, sb, zb, sc, zc] = fixedCases[k] ?? random();
      const g = createGraph({
        inputs: [
          { name: 'a', shape: [null, 4096], dtype: 'float32' },
          { name: 'b', shape: [null, 4096], dtype: 'float32' },
        ],
        outputs: ['y'],
        params: [scalar('sa', 'float32', sa), scalar('za', 'uint8', za), scalar('sb', 'float32', sb), scalar('zb', 'uint8', zb), scalar('sc', 'float32', sc), scalar('zc', 'uint8', zc)],
        nodes: [
          node('qa', 'QuantizeLinear', ['a', 'sa', 'za'], ['aq']),
          node('dqa', 'DequantizeLinear', ['aq', 'sa', 'za'], ['ad']),
          node('qb', 'QuantizeLinear', ['b', 'sb', 'zb'], ['bq']),
          node('dqb', 'DequantizeLinear', ['bq', 'sb', 'zb'], ['bd']),
          node('add', 'Add', ['ad', 'bd'], ['s']),
          node('qs', 'QuantizeLinear', ['s', 'sc', 'zc'], ['sq']),
          node('dqs', 'DequantizeLinear', ['sq', 'sc', 'zc'], ['y']),
        ],
      });
      expect(toIntegerOps(g).fused).toEqual(['add']);
      // The fixed cases take every pair of codes once: codes 0..255 along (div 1) or across
      // (div 256) the 65,536 values; the random ones values over each quantizer's whole range.
      const grid = (div: number, s: number, z: number): tf.Tensor =>
        tf.tidy(() => tf.mul(tf.sub(tf.cast(tf.reshape(tf.mod(tf.floorDiv(tf.range(0, 65536, 1, 'int32'), div), 256), [16, 4096]), 'float32'), z), s));
      const feed = (s: number, z: number): tf.Tensor => tf.tidy(() => tf.mul(tf.sub(tf.randomUniform([16, 4096], -2, 258, 'float32', k), z), s));
      const feeds = fixedCases[k] ? { a: grid(1, sa, za), b: grid(256, sb, zb) } : { a: feed(sa, za), b: feed(sb, zb) };
      const bytes = toOnnx(g);
      const exact = await checkParity(g, bytes, feeds, { outputStep: sc });
      expect(exact.maxAbsDiff).toBe(0);
      const fl = await checkParity(g, bytes, feeds, { outputStep: sc, arithmetic: 'float' });
      floatMisses += fl.maxAbsDiff > 0 ? 1 : 0;
      tf.dispose(Object.values(feeds));
    }
    expect(floatMisses).toBeGreaterThan(0);
  });

  it("QDQ Gemm runs as onnxruntime's QGemm: requantised hidden codes equal, float logits within 1e-5", async () => {
    // x → Q/DQ → Gemm (per-column 7-bit weights, int32 bias) → Relu → Q/DQ → Gemm → float logits.
    const [k, m, o] = [1024, 128, 10];
    const codes = (n: number, seed: number): Int8Array => Int8Array.from(seededArray(n, seed, -63.99, 63.99), Math.trunc);
    const sx = 1 / 255;
    const s1 = Float32Array.from(seededArray(m, 43, 0.002, 0.004));
    const sh = 0.05;
    const g = createGraph({
      inputs: [{ name: 'x', shape: [null, k], dtype: 'float32' }],
      outputs: ['y'],
      params: [
        param('sx', [], 'float32', Float32Array.of(sx)),
        param('zx', [], 'uint8', Uint8Array.of(0)),
        param('w1', [k, m], 'int8', codes(k * m, 41)),
        param('s1', [m], 'float32', s1),
        param('b1', [m], 'int32', Int32Array.from(seededArray(m, 45, -2000, 2000), Math.trunc)),
        param('bs1', [m], 'float32', Float32Array.from(s1, (v) => v * sx)),
        param('sh', [], 'float32', Float32Array.of(sh)),
        param('zh', [], 'uint8', Uint8Array.of(0)),
        param('w2', [m, o], 'int8', codes(m * o, 42)),
        param('s2', [o], 'float32', Float32Array.from(seededArray(o, 44, 0.01, 0.02))),
      ],
      nodes: [
        node('qx', 'QuantizeLinear', ['x', 'sx', 'zx'], ['xq']),
        node('dqx', 'DequantizeLinear', ['xq', 'sx', 'zx'], ['xd']),
        node('dqw1', 'DequantizeLinear', ['w1', 's1'], ['w1d'], { axis: 1 }),
        node('dqb1', 'DequantizeLinear', ['b1', 'bs1'], ['b1d'], { axis: 0 }),
        node('fc1', 'Gemm', ['xd', 'w1d', 'b1d'], ['h']),
        node('relu', 'Relu', ['h'], ['r']),
        node('qh', 'QuantizeLinear', ['r', 'sh', 'zh'], ['hq']),
        node('dqh', 'DequantizeLinear', ['hq', 'sh', 'zh'], ['hd']),
        node('dqw2', 'DequantizeLinear', ['w2', 's2'], ['w2d'], { axis: 1 }),
        node('fc2', 'Gemm', ['hd', 'w2d'], ['y']),
      ],
    });
    const fused = toIntegerOps(g);
    expect(fused.fused).toEqual(['fc1', 'fc2']);
    expect(fused.graph.nodes.map((n) => n.op)).toEqual(['QuantizeLinear', 'QGemm', 'QGemm']);
    const x = tf.tidy(() => tf.randomUniform([512, k], 0, 1, 'float32', 46));
    // The hidden codes: exactly onnxruntime's (65,536 of them; the multiplier, the bias and the
    // per-column scales all have to be right for that).
    const hidden = g.with({ outputs: ['hd'] });
    const exact = await checkParity(hidden, toOnnx(hidden), x, { outputStep: sh });
    expect(exact.maxAbsDiff).toBe(0);
    // The logits: float32(accumulator) · float32(x_scale · w_scale), QGemm's float output.
    const logits = await checkParity(g, toOnnx(g), x);
    expect(logits.maxAbsDiff).toBeLessThan(1e-5);
    x.dispose();
  });

  it('4-bit weights: int8 codes at opset 13, INT4 initializers at opset 21, both run in ORT', async () => {
    const float = referenceModels.residualCnn({ seed: 1 });
    const q = quantizeForTest(float, calib, { weightBits: 4 });
    const x = tf.slice(test, 0, 256);
    const b8 = toOnnx(q.graph);
    const b4 = toOnnx(q.graph, { opset: 21, int4: true });
    const inits = onnx.ModelProto.decode(b4).graph!.initializer!;
    expect(inits.filter((t) => t.dataType === 22).length).toBeGreaterThan(0);
    expect(b4.length).toBeLessThan(b8.length);
    for (const bytes of [b8, b4]) {
      const r = await checkParity(q.graph, bytes, x, { outputStep: q.outputStep });
      expect(r.top1Agreement).toBeGreaterThanOrEqual(0.99);
    }
    const back = fromOnnx(b4);
    expect(back.params.filter((p) => p.dtype === 'int8').length).toBeGreaterThan(0);
    x.dispose();
  });
});
