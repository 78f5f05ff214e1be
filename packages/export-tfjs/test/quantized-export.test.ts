import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Graph, GraphBuilder, TensorpressError, runGraph, type Node, type Param } from '@tensorpress/core-tensor';
import { exportLayersArtifacts, importLayersModel, type ExportLayersOptions } from '@tensorpress/export-tfjs';
import { maxAbsDiff, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, test } from 'vitest';

let L: typeof tfl;

beforeAll(async () => {
  await tf.setBackend('cpu');
  L = await import('@tensorflow/tfjs-layers');
});

/** A residual CNN with global pooling and a head: the shapes a stripped reference model has. */
function floatGraph(): Graph {
  const b = new GraphBuilder({ seed: 11 });
  const x = b.input('input', [null, 10, 10, 2]);
  let h = b.relu(b.conv(x, { filters: 5, kernel: 3, padding: 'same', name: 'conv1' }), 'relu1');
  const r = b.relu(b.conv(h, { filters: 5, kernel: 3, padding: 'same', name: 'conv2' }), 'relu2');
  h = b.relu(b.add(h, r, 'add'), 'relu3');
  h = b.maxPool(h, 2, { name: 'pool' });
  const gap = b.globalAvgPool(h, 'gap');
  b.output(b.dense(b.flatten(gap, 'flatten'), 3, { name: 'fc' }));
  return b.build();
}

/**
 * The QDQ form strip() produces, built by hand: per-channel symmetric int8 weights (and an int32
 * bias for the head) behind DequantizeLinear, uint8 activation pairs after every Relu and the
 * pooling (ranges a little short of the values, so they clip), and an int8 pair with a non-zero
 * zero point on the input; names as strip writes them.
 */
function quantizeByHand(g: Graph, x: tf.Tensor): Graph {
  const watched = g.nodes.filter((n) => ['Relu', 'MaxPool', 'GlobalAveragePool'].includes(n.op)).map((n) => n.outputs[0]!);
  const maxima = runGraph(g, x, { outputs: watched }).map((t) => {
    const m = tf.max(t).dataSync()[0]!;
    t.dispose();
    return m;
  });
  const params: Param[] = g.params.filter((p) => !g.nodes.some((n) => (n.op === 'Conv' || n.op === 'Gemm') && n.inputs[1] === p.name));
  const nodes: Node[] = [];
  const qdq = (value: string, name: string, scale: number, zp: Int8Array | Uint8Array): [Node, Node, string] => {
    const s = `q:${name}.scale`;
    const z = `q:${name}.zp`;
    params.push({ name: s, shape: [], dtype: 'float32', data: Float32Array.of(scale), trainable: false });
    params.push({ name: z, shape: [], dtype: zp instanceof Int8Array ? 'int8' : 'uint8', data: zp, trainable: false });
    return [
      { name: `q:${name}/q`, op: 'QuantizeLinear', inputs: [`${value}:raw`, s, z], outputs: [`q:${name}.q`], attrs: {} },
      { name: `q:${name}/dq`, op: 'DequantizeLinear', inputs: [`q:${name}.q`, s, z], outputs: [value], attrs: {} },
      `${value}:raw`,
    ];
  };
  // The input pair: [-2, 2] on int8 codes with zero point -1; the graph input becomes `input:raw`.
  const [iq, idq] = qdq('input', 'input', 4 / 255, Int8Array.of(-1));
  nodes.push(iq, idq);
  for (const n of g.nodes) {
    const inputs = [...n.inputs];
    if (n.op === 'Conv' || n.op === 'Gemm') {
      const w = g.param(n.inputs[1]!)!;
      const axis = w.shape.length - 1;
      const c = w.shape[axis]!;
      const scale = new Float32Array(c);
      for (let i = 0; i < w.data.length; i++) scale[i % c] = Math.max(scale[i % c]!, Math.abs(w.data[i]!) / 127);
      const codes = Int8Array.from(w.data, (v, i) => Math.round(v / scale[i % c]!));
      params.push({ name: `${w.name}.w_q`, shape: w.shape, dtype: 'int8', data: codes, trainable: false });
      params.push({ name: `${w.name}.w_scale`, shape: [c], dtype: 'float32', data: scale, trainable: false });
      params.push({ name: `${w.name}.w_zp`, shape: [c], dtype: 'int8', data: new Int8Array(c), trainable: false });
      nodes.push({ name: `${n.name}/dq_w`, op: 'DequantizeLinear', inputs: [`${w.name}.w_q`, `${w.name}.w_scale`, `${w.name}.w_zp`], outputs: [`${w.name}.w_dq`], attrs: { axis } });
      inputs[1] = `${w.name}.w_dq`;
    }
    if (n.op === 'Gemm') {
      const b = params.splice(params.findIndex((p) => p.name === n.inputs[2]), 1)[0]!;
      params.push({ name: `${b.name}.q`, shape: b.shape, dtype: 'int32', data: Int32Array.from(b.data, (v) => Math.round(v / 1e-3)), trainable: false });
      params.push({ name: `${b.name}.s`, shape: b.shape, dtype: 'float32', data: new Float32Array(b.data.length).fill(1e-3), trainable: false });
      nodes.push({ name: `${n.name}/dq_b`, op: 'DequantizeLinear', inputs: [`${b.name}.q`, `${b.name}.s`], outputs: [`${b.name}.dq`], attrs: { axis: 0 } });
      inputs[2] = `${b.name}.dq`;
    }
    const k = watched.indexOf(n.outputs[0]!);
    if (k < 0) {
      nodes.push({ ...n, inputs });
      continue;
    }
    // 70% of the calibrated range, so that every pair also clips.
    const [q, dq, raw] = qdq(n.outputs[0]!, `${n.name}#1`, (0.7 * Math.max(maxima[k]!, 1e-3)) / 255, Uint8Array.of(0));
    nodes.push({ ...n, inputs, outputs: [raw] }, q, dq);
  }
  return new Graph({ inputs: [{ ...g.inputs[0]!, name: 'input:raw' }], outputs: g.outputs, nodes, params });
}

async function predictions(graph: Graph, options: ExportLayersOptions, x: tf.Tensor): Promise<{ got: tf.Tensor; model: tfl.LayersModel }> {
  const model = await L.loadLayersModel(tf.io.fromMemory(exportLayersArtifacts(graph, options)));
  return { got: model.predict(x) as tf.Tensor, model };
}

describe('exportLayersArtifacts (quantized graphs)', () => {
  const x = (): tf.Tensor => seededTensor([8, 10, 10, 2], 3, -2.5, 2.5);

  test('fake-quant activations: tfjs computes what the QDQ graph computes, to float32 rounding', async () => {
    const input = x();
    const q = quantizeByHand(floatGraph(), input);
    expect(q.params.some((p) => p.dtype === 'int8') && q.params.some((p) => p.dtype === 'int32')).toBe(true);
    const [want] = runGraph(q, input);
    const { got, model } = await predictions(q, {}, input);
    // The division, rounding and clipping are exact on the cpu backend; the convolutions' sums may differ in the last bit.
    expect(maxAbsDiff(got, want!)).toBeLessThanOrEqual(1e-5);
    // Graph names tfjs-layers refuses (':' and '#') are cleaned up.
    const names = model.layers.map((l) => l.name);
    expect(names).toEqual(expect.arrayContaining(['q_input/q/divide', 'q_relu1_1/q/to_integer', 'q_relu1_1/q/clip', 'q_input/q/zero_point', 'q_relu1_1/q/dequantize']));
    expect(names).not.toContain('q_relu1_1/q/zero_point');
    // Read back by importLayersModel, the fake-quant layers run in the executor too.
    const [back] = runGraph(importLayersModel(exportLayersArtifacts(q)), input);
    expect(maxAbsDiff(back!, got)).toBeLessThanOrEqual(1e-5);
    back!.dispose();
    // The pairs clip: the top code is reached.
    const codes = runGraph(q, input, { outputs: ['q:relu1#1.q'] })[0]!;
    expect(tf.max(codes).dataSync()[0]).toBe(255);
    tf.dispose([input, want!, got, codes]);
    model.dispose();
  });

  test('ties round to even and values beyond the range clip, as QuantizeLinear does (uint8 and int8 with a zero point)', async () => {
    const pair = (zp: Uint8Array | Int8Array): Graph =>
      new Graph({
        inputs: [{ name: 'x', shape: [null, 8], dtype: 'float32' }],
        outputs: ['y'],
        nodes: [
          { name: 'q', op: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['q'], attrs: {} },
          { name: 'dq', op: 'DequantizeLinear', inputs: ['q', 's', 'z'], outputs: ['y'], attrs: {} },
        ],
        params: [
          { name: 's', shape: [], dtype: 'float32', data: Float32Array.of(0.5), trainable: false },
          { name: 'z', shape: [], dtype: zp instanceof Int8Array ? 'int8' : 'uint8', data: zp, trainable: false },
        ],
      });
    const input = tf.tensor2d([[0.25, 0.75, 1.25, -0.1, 200, -70, 63.75, 64.25]]);
    // Codes 0.5 → 0, 1.5 → 2, 2.5 → 2; uint8 clips at 0 and 255; int8 with zero point 3 at -128 and 127.
    const expected = { uint8: [0, 1, 1, 0, 127.5, 0, 64, 64], int8: [0, 1, 1, 0, 62, -65.5, 62, 62] };
    for (const [kind, zp] of [['uint8', Uint8Array.of(0)], ['int8', Int8Array.of(3)]] as const) {
      const g = pair(zp);
      const [want] = runGraph(g, input);
      expect(Array.from(want!.dataSync()), kind).toEqual(expected[kind]);
      const { got, model } = await predictions(g, {}, input);
      expect(Array.from(got.dataSync()), kind).toEqual(expected[kind]);
      tf.dispose([want!, got]);
      model.dispose();
    }
    input.dispose();
  });

  test('float activations: the pairs are dropped and the model is the graph with dequantized weights', async () => {
    const input = x();
    const q = quantizeByHand(floatGraph(), input);
    const { got, model } = await predictions(q, { activations: 'float' }, input);
    expect(model.layers.some((l) => l.getClassName() === 'BatchNormalization')).toBe(false);
    const [want] = runGraph(dropActivationPairs(q), input);
    expect(maxAbsDiff(got, want!)).toBeLessThanOrEqual(1e-4);
    tf.dispose([input, want!, got]);
    model.dispose();
  });

  test('a per-channel activation quantizer and a DequantizeLinear of a computed value are listed with the way around', () => {
    const input = x();
    const q = quantizeByHand(floatGraph(), input);
    input.dispose();
    const c = 5;
    const perChannel = q.with({
      params: [...q.params, { name: 'pc.scale', shape: [c], dtype: 'float32', data: new Float32Array(c).fill(0.1), trainable: false }],
      nodes: q.nodes.map((n) => (n.name === 'q:relu2#1/q' || n.name === 'q:relu2#1/dq' ? { ...n, inputs: [n.inputs[0]!, 'pc.scale'], attrs: { axis: 3 } } : n)),
    });
    let err: unknown;
    try {
      exportLayersArtifacts(perChannel);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    expect((err as TensorpressError).code).toBe('UNSUPPORTED_OP');
    expect((err as TensorpressError).message).toContain(
      '"q:relu2#1/q" (QuantizeLinear): only per-tensor activation quantization (a scalar scale and zero point parameter) has a tfjs-layers form',
    );
    expect((err as TensorpressError).message).toMatch(/Way around: export the graph to ONNX/);
  });
});

/** The QDQ graph without its activation pairs (each DQ output read straight from the Q input). */
function dropActivationPairs(q: Graph): Graph {
  const pairs = q.nodes.filter((n) => n.op === 'QuantizeLinear');
  const source = new Map<string, string>();
  for (const p of pairs) for (const c of q.consumers(p.outputs[0]!)) source.set(c.node.outputs[0]!, p.inputs[0]!);
  const drop = new Set([...pairs.map((p) => p.name), ...pairs.flatMap((p) => q.consumers(p.outputs[0]!).map((c) => c.node.name))]);
  const rewire = (v: string): string => source.get(v) ?? v;
  return q.with({
    inputs: q.inputs,
    outputs: q.outputs.map(rewire),
    nodes: q.nodes.filter((n) => !drop.has(n.name)).map((n) => ({ ...n, inputs: n.inputs.map(rewire) })),
  });
}
