import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadMnist } from '@tensorpress/datasets';
import { checkParity, fromOnnx, toIntegerOps, toOnnx } from '@tensorpress/export-onnx';
import { errorOf, maxAbsDiff, seededArray } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeModel, type ONode, type OTensor } from '../src/internal/ir.js';
import { DT, rawBytes } from '../src/internal/proto.js';
import { quantizeForTest, type QdqOptions } from './helpers/qdq-graph.js';

const { onnx } = onnxProto;

let calib: tf.Tensor;
let digits: tf.Tensor;

beforeAll(async () => {
  await useBackend('wasm');
  const { train, test } = await loadMnist({ seed: 0 });
  const c = train.batches(256).next().value!;
  calib = c.x;
  c.y.dispose();
  const t = test.batches(256).next().value!;
  digits = t.x;
  t.y.dispose();
});

const cases: [string, 'plainCnn' | 'residualCnn' | 'mobileNetCnn' | 'mlp', QdqOptions][] = [
  ['plain CNN', 'plainCnn', {}],
  ['residual CNN', 'residualCnn', {}],
  ['MobileNet CNN (Clips folded into QLinearConv)', 'mobileNetCnn', {}],
  ['MLP (QLinearMatMul / MatMulInteger)', 'mlp', {}],
  ['MLP, dynamic (DynamicQuantizeLinear + MatMulInteger)', 'mlp', { dynamicGemm: true }],
  ['plain CNN, dynamic (ConvInteger)', 'plainCnn', { dynamicGemm: true, dynamicConv: true }],
];

describe('fromOnnx on QOperator files', () => {
  it.each(cases)('%s: reads the QOperator file as QDQ; onnxruntime agrees with it, every logit within one step', async (_, model, options) => {
    const q = quantizeForTest(referenceModels[model]({ seed: 1 }), calib, options);
    const bytes = toOnnx(q.graph, { format: 'qoperator' });
    const back = fromOnnx(bytes);
    const ops = new Set(back.nodes.map((n) => n.op));
    expect(ops.has('DequantizeLinear')).toBe(true);
    // The static convolutions come back in the pattern toIntegerOps fuses again.
    const convs = q.graph.nodes.filter((n) => n.op === 'Conv').length;
    if (!options.dynamicConv) expect(toIntegerOps(back).fused.filter((n) => back.node(n)?.op === 'Conv')).toHaveLength(convs);
    const r = await checkParity(back, bytes, digits, { outputStep: q.outputStep });
    expect(r.top1Agreement).toBe(1);
    expect(r.beyondStep).toBe(0);
    // And the graph read back computes what the graph that was written does.
    const a = new Executor(q.graph);
    const b = new Executor(back);
    const ya = a.run(digits)[0]!;
    const yb = b.run(digits)[0]!;
    expect(maxAbsDiff(ya, yb)).toBeLessThanOrEqual(q.outputStep);
    tf.dispose([ya, yb]);
    a.dispose();
    b.dispose();
  });
});

/** A hand-made model of onnxruntime's com.microsoft QLinear ops on a 1×2×4×4 NCHW input. */
function contribModel(o: { channelsLast?: number; runtimeScale?: boolean } = {}): Uint8Array {
  const inits = new Map<string, OTensor>();
  const f = (name: string, v: number): string => {
    inits.set(name, { name, dims: [], dataType: DT.FLOAT, raw: rawBytes(Float32Array.of(v)) });
    return name;
  };
  const u = (name: string, v: number): string => {
    inits.set(name, { name, dims: [], dataType: DT.UINT8, raw: rawBytes(Uint8Array.of(v)) });
    return name;
  };
  const [s1, z1, s2, z2, s3, z3] = [f('s1', 0.02), u('z1', 128), f('s2', 0.04), u('z2', 120), f('s3', 0.05), u('z3', 100)];
  const ms = (name: string, opType: string, inputs: string[], outputs: string[], attrs: ONode['attrs'] = {}): ONode => ({ name, opType, domain: 'com.microsoft', inputs, outputs, attrs });
  const nodes: ONode[] = [
    { name: 'q', opType: 'QuantizeLinear', inputs: ['x', s1, z1], outputs: ['xq'], attrs: {} },
    ms('add', 'QLinearAdd', ['xq', s1, z1, 'xq', s1, z1, s2, z2], ['a']),
    ms('mul', 'QLinearMul', ['xq', s1, z1, 'a', o.runtimeScale ? 'rs' : s2, z2, s3, z3], ['m']),
    ms('cat', 'QLinearConcat', [s2, z2, 'a', s2, z2, 'xq', s1, z1], ['c'], { axis: { i: 1 } }),
    ms('avg', 'QLinearAveragePool', ['c', s2, z2, s2, z2], ['p'], { kernel_shape: { ints: [2, 2] }, strides: { ints: [2, 2] } }),
    ms('gap', 'QLinearGlobalAveragePool', ['m', s3, z3, s3, z3], ['g'], { channels_last: { i: o.channelsLast ?? 0 } }),
    { name: 'dq_p', opType: 'DequantizeLinear', inputs: ['p', s2, z2], outputs: ['pool'], attrs: {} },
    { name: 'dq_g', opType: 'DequantizeLinear', inputs: ['g', s3, z3], outputs: ['mean'], attrs: {} },
  ];
  if (o.runtimeScale) nodes.unshift({ name: 'rs', opType: 'ReduceMax', inputs: ['x'], outputs: ['rs'], attrs: { keepdims: { i: 0 } } });
  const m = onnx.ModelProto.decode(
    encodeModel({
      opset: 13,
      inputs: [{ name: 'x', elemType: DT.FLOAT, dims: ['N', 2, 4, 4] }],
      outputs: [
        { name: 'pool', elemType: DT.FLOAT, dims: ['N', 4, 2, 2] },
        { name: 'mean', elemType: DT.FLOAT, dims: ['N', 2, 1, 1] },
      ],
      nodes,
      initializers: inits,
      producer: 'test',
    }),
  );
  m.opsetImport.push(onnx.OperatorSetIdProto.create({ domain: 'com.microsoft', version: 1 }));
  return onnx.ModelProto.encode(m).finish();
}

describe("fromOnnx on onnxruntime's com.microsoft QLinear ops", () => {
  it('reads QLinearAdd, QLinearMul, QLinearConcat, QLinearAveragePool and QLinearGlobalAveragePool as QDQ; onnxruntime agrees within one step', async () => {
    const bytes = contribModel();
    const g = fromOnnx(bytes);
    const ops = g.nodes.map((n) => n.op);
    for (const op of ['Add', 'Mul', 'Concat', 'AveragePool', 'GlobalAveragePool']) expect(ops).toContain(op);
    const x = tf.tensor4d(seededArray(3 * 4 * 4 * 2, 31, -2, 2), [3, 4, 4, 2]);
    const r = await checkParity(g, bytes, x);
    x.dispose();
    expect(r.outputs).toHaveLength(2);
    expect(r.beyondStep).toBe(0);
    // Within one output step of each output (the steps are the DequantizeLinear scales): the
    // integer pooling kernels round a tie of a window mean one code the other way now and then.
    expect(r.outputs[0]!.maxAbsDiff).toBeLessThanOrEqual(0.04 * (1 + 1e-5));
    expect(r.outputs[1]!.maxAbsDiff).toBeLessThanOrEqual(0.05 * (1 + 1e-5));
  });

  it('names every QOperator node it cannot read, with the reason', () => {
    const e = errorOf(() => fromOnnx(contribModel({ channelsLast: 1, runtimeScale: true })));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    const nodes = (e.details as { nodes: { node: string; why: string }[] }).nodes;
    expect(nodes).toEqual(
      expect.arrayContaining([
        { node: 'gap', op: 'QLinearGlobalAveragePool', why: 'channels_last inputs are not supported' },
        { node: 'mul', op: 'QLinearMul', why: 'its scale at input 4 is not a constant' },
      ]),
    );
    // An integer op whose int32 output is not cast back to float.
    const q = quantizeForTest(referenceModels.mlp({ seed: 1 }), calib, { dynamicGemm: true });
    const m = onnx.ModelProto.decode(toOnnx(q.graph, { format: 'qoperator' }));
    const cast = m.graph!.node!.find((n) => n.opType === 'Cast')!;
    cast.opType = 'Identity';
    cast.attribute = [];
    const e2 = errorOf(() => fromOnnx(onnx.ModelProto.encode(m).finish()));
    expect(e2.code).toBe('ONNX_UNSUPPORTED');
    expect(e2.message).toMatch(/MatMulInteger: its int32 output must be read only by Casts to float/);
  });
});
