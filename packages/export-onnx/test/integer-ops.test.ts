import * as tf from '@tensorflow/tfjs-core';
import { createGraph, runGraph, useBackend, type Feeds, type Graph, type Node, type Param } from '@tensorpress/core-tensor';
import { clampFoldsIntoQuantizer, registerIntegerOps, toIntegerOps } from '@tensorpress/export-onnx';
import { expectNoLeak, expectParamsUntouched, seededArray, snapshotParams } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('wasm');
  // The graphs below hold integer ops directly, not only through toIntegerOps.
  registerIntegerOps();
});

const f32 = (name: string, ...v: number[]): Param => ({ name, shape: v.length === 1 ? [] : [v.length], dtype: 'float32', data: Float32Array.from(v), trainable: false });
const u8 = (name: string, v: number): Param => ({ name, shape: [], dtype: 'uint8', data: Uint8Array.of(v), trainable: false });
const node = (name: string, op: string, inputs: string[], outputs: string[], attrs: Node['attrs'] = {}): Node => ({ name, op, inputs, outputs, attrs });

/** Runs `graph` on `feeds` and returns the named values' data (codes come back as int32). */
function values(graph: Graph, feeds: Feeds, names: readonly string[] = graph.outputs): number[][] {
  const ts = runGraph(graph, feeds, { outputs: [...names] });
  const out = ts.map((t) => Array.from(t.dataSync()));
  tf.dispose(ts);
  return out;
}

/**
 * x (float, integer values) → QuantizeLinear(scale 1) → codes → QLinearConv 1×1 with `cout` filters.
 * The input quantizer has scale 1 and zero point 0, so the codes are the input values.
 */
function qlinearConvGraph(cin: number, w: Int8Array, wScale: number[], bias: number[] | undefined, o: { sx: number; sy: number; zy: number }): Graph {
  const cout = wScale.length;
  return createGraph({
    inputs: [{ name: 'x', shape: [null, 1, 1, cin], dtype: 'float32' }],
    outputs: ['yq'],
    params: [
      f32('one', 1),
      u8('zero', 0),
      f32('sx', o.sx),
      { name: 'w', shape: [1, 1, cin, cout], dtype: 'int8', data: w, trainable: false },
      { name: 'sw', shape: [cout], dtype: 'float32', data: Float32Array.from(wScale), trainable: false },
      f32('sy', o.sy),
      u8('zy', o.zy),
      ...(bias ? [{ name: 'b', shape: [cout], dtype: 'int32' as const, data: Int32Array.from(bias), trainable: false }] : []),
    ],
    nodes: [
      node('q', 'QuantizeLinear', ['x', 'one', 'zero'], ['xq']),
      node('conv', 'QLinearConv', ['xq', 'sx', 'zero', 'w', 'sw', '', 'sy', 'zy', ...(bias ? ['b'] : [])], ['yq']),
    ],
  });
}

describe('QLinearConv (exact tier)', () => {
  it('requantises per channel with the int32 bias, rounds half to even and clamps to uint8', () => {
    // channel 0: w 1, scale 1 → multiplier 0.5·1/1 = 0.5, bias 0; channel 1: w −1, scale 2 → 1, bias 3.
    const g = qlinearConvGraph(1, Int8Array.of(1, -1), [1, 2], [0, 3], { sx: 0.5, sy: 1, zy: 10 });
    const codes = [0, 1, 3, 5, 7, 255];
    const x = tf.tensor4d(codes, [codes.length, 1, 1, 1]);
    const [y] = values(g, x, ['yq']);
    // channel 0: 10 + rne(c/2): 0.5 → 0, 1.5 → 2, 2.5 → 2, 3.5 → 4, 127.5 → 128
    // channel 1: 10 + 3 − c, clamped at 0
    expect(y).toEqual([10, 13, 10, 12, 12, 10, 12, 8, 14, 6, 138, 0]);
    x.dispose();
  });

  it('stays exact when sums of products pass 2^24, where float32 accumulation rounds', () => {
    // 4096 channels of codes 128..255 against weights 64..127: a sum near 7·10^7 (float32 steps of 8).
    const cin = 4096;
    const xs = Array.from(seededArray(cin, 11, 128, 255.99), Math.floor);
    const w = Int8Array.from(seededArray(cin, 12, 64, 127.99), Math.floor);
    let acc = 0; // exact in float64: every partial sum is far below 2^53
    for (let c = 0; c < cin; c++) acc += xs[c]! * w[c]!;
    expect(acc).toBeGreaterThan(2 ** 24);
    // The int32 bias brings the exact sum to 100 (multiplier 1): any rounding on the way shows.
    const g = qlinearConvGraph(cin, w, [1], [100 - acc], { sx: 1, sy: 1, zy: 0 });
    const x = tf.tensor4d(xs, [1, 1, 1, cin]);
    expect(values(g, x, ['yq'])[0]).toEqual([100]);
    // A plain float32 convolution of the same codes does not get this sum right.
    const naive = tf.conv2d(x as tf.Tensor4D, tf.tensor4d(Array.from(w), [1, 1, cin, 1]), 1, 'valid');
    expect(naive.dataSync()[0]).not.toBe(acc);
    tf.dispose([naive, x]);
  });
});

describe('QLinearGlobalAveragePool (exact tier)', () => {
  it('sums codes, removes the zero point and requantises by x_scale / (y_scale · size)', () => {
    const g = createGraph({
      inputs: [{ name: 'x', shape: [null, 2, 2, 4], dtype: 'float32' }],
      outputs: ['yq'],
      params: [f32('one', 1), u8('zero', 0), u8('zx', 2), f32('sy', 1), u8('zy', 5)],
      nodes: [
        node('q', 'QuantizeLinear', ['x', 'one', 'zero'], ['xq']),
        node('gap', 'QLinearGlobalAveragePool', ['xq', 'one', 'zx', 'sy', 'zy'], ['yq']),
      ],
    });
    // channels (pixels in order): [1,2,3,4] → (10−8)/4 = 0.5 → 0; [3,3,3,4] → 1.25 → 1;
    // [4,4,3,4] → 1.75 → 2; [2,3,4,5] → 1.5 → 2; plus the output zero point 5
    const px = [
      [1, 3, 4, 2],
      [2, 3, 4, 3],
      [3, 3, 3, 4],
      [4, 4, 4, 5],
    ];
    const x = tf.tensor4d(px.flat(), [1, 2, 2, 4]);
    expect(values(g, x, ['yq'])[0]).toEqual([5, 6, 7, 7]);
    x.dispose();
  });
});

/**
 * A stripped QDQ graph by hand: input Q/DQ → Conv 3×3 (per-channel int8 weights, int32 bias with
 * scale s_x·s_w) → Relu → Q/DQ → GlobalAveragePool → Q/DQ → Flatten → Gemm (float logits).
 */
function qdqGraph(o: { reluZp?: number; floatBias?: boolean; clip?: [number, number]; outScale?: number } = {}): Graph {
  const cin = 3;
  const cout = 4;
  const wf = seededArray(9 * cin * cout, 21);
  const sw = Float32Array.from({ length: cout }, (_, c) => Math.max(...Array.from(wf).filter((_, i) => i % cout === c).map(Math.abs)) / 127);
  const sx = 2 / 255;
  const bias = seededArray(cout, 22, -0.5, 0.5);
  const bs = Float32Array.from(sw, (s) => s * sx);
  const params: Param[] = [
    f32('in.s', sx),
    u8('in.z', 128),
    { name: 'w.q', shape: [3, 3, cin, cout], dtype: 'int8', data: Int8Array.from(wf, (v, i) => Math.round(v / sw[i % cout]!)), trainable: false },
    { name: 'w.s', shape: [cout], dtype: 'float32', data: sw, trainable: false },
    f32('c.s', o.outScale ?? 0.02),
    u8('c.z', o.reluZp ?? 0),
    f32('p.s', 0.01),
    u8('p.z', 0),
    { name: 'fc.w', shape: [cout, 2], dtype: 'float32', data: seededArray(cout * 2, 23), trainable: false },
  ];
  const nodes: Node[] = [
    node('in/q', 'QuantizeLinear', ['x', 'in.s', 'in.z'], ['x.q']),
    node('in/dq', 'DequantizeLinear', ['x.q', 'in.s', 'in.z'], ['x.dq']),
    node('w/dq', 'DequantizeLinear', ['w.q', 'w.s'], ['w.dq'], { axis: 3 }),
  ];
  if (o.floatBias) {
    params.push({ name: 'b', shape: [cout], dtype: 'float32', data: bias, trainable: false });
  } else {
    params.push({ name: 'b.q', shape: [cout], dtype: 'int32', data: Int32Array.from(bias, (v, c) => Math.round(v / bs[c]!)), trainable: false });
    params.push({ name: 'b.s', shape: [cout], dtype: 'float32', data: bs, trainable: false });
    nodes.push(node('b/dq', 'DequantizeLinear', ['b.q', 'b.s'], ['b'], { axis: 0 }));
  }
  nodes.push(
    node('conv', 'Conv', ['x.dq', 'w.dq', 'b'], ['c'], { pads: [1, 1, 1, 1] }),
    o.clip ? node('relu6', 'Clip', ['c'], ['r'], { min: o.clip[0], max: o.clip[1] }) : node('relu', 'Relu', ['c'], ['r']),
    node('r/q', 'QuantizeLinear', ['r', 'c.s', 'c.z'], ['r.q']),
    node('r/dq', 'DequantizeLinear', ['r.q', 'c.s', 'c.z'], ['r.dq']),
    node('gap', 'GlobalAveragePool', ['r.dq'], ['p']),
    node('p/q', 'QuantizeLinear', ['p', 'p.s', 'p.z'], ['p.q']),
    node('p/dq', 'DequantizeLinear', ['p.q', 'p.s', 'p.z'], ['p.dq']),
    node('flat', 'Flatten', ['p.dq'], ['f']),
    node('fc', 'Gemm', ['f', 'fc.w'], ['y']),
  );
  return createGraph({ inputs: [{ name: 'x', shape: [null, 6, 6, cin], dtype: 'float32' }], outputs: ['y'], nodes, params });
}

describe('toIntegerOps', () => {
  it('fuses DQ → Conv → Relu → Q into QLinearConv and DQ → GAP → Q into QLinearGlobalAveragePool; codes within one of the float graph', async () => {
    const g = qdqGraph();
    const snap = snapshotParams(g);
    const r = toIntegerOps(g);
    expect(r.fused).toEqual(['conv', 'gap']);
    // The Gemm (float weights, behind a Flatten) stays float, and says why.
    expect(r.skipped).toEqual([{ node: 'fc', reason: 'its input "f" does not come from a DequantizeLinear' }]);
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['QuantizeLinear', 'QLinearConv', 'QLinearGlobalAveragePool', 'DequantizeLinear', 'Flatten', 'Gemm']);
    expect(r.graph.node('conv')!.inputs).toEqual(['x.q', 'in.s', 'in.z', 'w.q', 'w.s', '', 'c.s', 'c.z', 'b.q']);
    expect(r.graph.params.map((p) => p.name)).not.toContain('b.s');
    expectParamsUntouched(g, snap);
    const x = tf.tensor4d(seededArray(8 * 6 * 6 * 3, 24), [8, 6, 6, 3]);
    await expectNoLeak(() => {
      const [cf, pf, yf] = values(g, x, ['r.q', 'p.q', 'y']);
      const [ci, pi, yi] = values(r.graph, x, ['r.q', 'p.q', 'y']);
      // The integer graph rounds a few ties the other way; never by more than one code.
      expect(Math.max(...ci!.map((v, i) => Math.abs(v - cf![i]!)))).toBeLessThanOrEqual(1);
      expect(ci!.filter((v, i) => v !== cf![i]).length).toBeLessThanOrEqual(ci!.length / 50);
      expect(Math.max(...pi!.map((v, i) => Math.abs(v - pf![i]!)))).toBeLessThanOrEqual(1);
      expect(yi!.length).toBe(yf!.length);
    });
    x.dispose();
  });

  it('leaves a pattern float and says why: Relu over a zero point above the range bottom, a float bias', () => {
    const relu = toIntegerOps(qdqGraph({ reluZp: 3 }));
    expect(relu.fused).toEqual(['gap']);
    expect(relu.skipped).toEqual([{ node: 'conv', reason: 'Relu "relu" cannot fold: the zero point of "r/q" is not the bottom of its range' }, { node: 'fc', reason: 'its input "f" does not come from a DequantizeLinear' }]);
    expect(relu.graph.node('conv')!.op).toBe('Conv');
    const bias = toIntegerOps(qdqGraph({ floatBias: true }));
    expect(bias.skipped).toEqual([{ node: 'conv', reason: 'its bias is not a DequantizeLinear of int32 codes' }, { node: 'fc', reason: 'its input "f" does not come from a DequantizeLinear' }]);
  });

  it('folds a Clip that the output range makes redundant (ReLU6 over codes of scale 6/255), and says why it keeps a narrower one', async () => {
    const g = qdqGraph({ clip: [0, 6], outScale: 6 / 255 });
    const r = toIntegerOps(g);
    expect(r.fused).toEqual(['conv', 'gap']);
    expect(r.graph.nodes.map((n) => n.op)).not.toContain('Clip');
    const x = tf.tensor4d(seededArray(8 * 6 * 6 * 3, 25, -3, 3), [8, 6, 6, 3]);
    await expectNoLeak(() => {
      const [cf] = values(g, x, ['r.q']);
      const [ci] = values(r.graph, x, ['r.q']);
      expect(Math.max(...ci!.map((v, i) => Math.abs(v - cf![i]!)))).toBeLessThanOrEqual(1);
      // The saturated codes (the Clip's work) are there in the integer graph too.
      expect(ci!.filter((v) => v === 255).length).toBe(cf!.filter((v) => v === 255).length);
    });
    x.dispose();
    // Codes of scale 0.03 reach 7.65: the Clip at 6 does work the quantizer cannot, so it stays.
    const narrow = toIntegerOps(qdqGraph({ clip: [0, 6], outScale: 0.03 }));
    expect(narrow.skipped).toEqual([{ node: 'conv', reason: 'Clip "relu6" cannot fold: the range of "r/q" is not inside [0, 6]' }, { node: 'fc', reason: 'its input "f" does not come from a DequantizeLinear' }]);
  });

  it('folds a Relu after a global average pool into QLinearGlobalAveragePool (its saturation is the Relu)', () => {
    const g = createGraph({
      inputs: [{ name: 'x', shape: [null, 4, 4, 3], dtype: 'float32' }],
      outputs: ['y'],
      params: [f32('in.s', 0.05), u8('in.z', 128), f32('p.s', 0.01), u8('p.z', 0)],
      nodes: [
        node('in/q', 'QuantizeLinear', ['x', 'in.s', 'in.z'], ['x.q']),
        node('in/dq', 'DequantizeLinear', ['x.q', 'in.s', 'in.z'], ['x.dq']),
        node('gap', 'GlobalAveragePool', ['x.dq'], ['p']),
        node('relu', 'Relu', ['p'], ['r']),
        node('p/q', 'QuantizeLinear', ['r', 'p.s', 'p.z'], ['y']),
      ],
    });
    const r = toIntegerOps(g);
    expect(r.fused).toEqual(['gap']);
    expect(r.graph.nodes.map((n) => n.op)).toEqual(['QuantizeLinear', 'QLinearGlobalAveragePool']);
    // Channel means on both sides of zero: the negative ones end at code 0 either way.
    const x = tf.tensor4d(seededArray(2 * 16 * 3, 26, -1, 1), [2, 4, 4, 3]);
    const [yf] = values(g, x, ['y']);
    const [yi] = values(r.graph, x, ['y']);
    x.dispose();
    expect(yf!.filter((v) => v === 0).length).toBeGreaterThan(0);
    expect(yf!.filter((v) => v > 0).length).toBeGreaterThan(0);
    expect(Math.max(...yi!.map((v, i) => Math.abs(v - yf![i]!)))).toBeLessThanOrEqual(1);
  });

  it('fuses DQ, DQ → Add → Q into QLinearAdd: ties to even, zero points folded, saturation; a broadcasting Add stays float', () => {
    const addGraph = (zc: number, bShape: number[]): Graph =>
      createGraph({
        inputs: [
          { name: 'a', shape: [null, 4], dtype: 'float32' },
          { name: 'b', shape: [null, ...bShape], dtype: 'float32' },
        ],
        outputs: ['y'],
        params: [f32('s1', 0.01), u8('z0', 0), f32('s2', 0.02), u8('zc', zc)],
        nodes: [
          node('qa', 'QuantizeLinear', ['a', 's1', 'z0'], ['aq']),
          node('dqa', 'DequantizeLinear', ['aq', 's1', 'z0'], ['ad']),
          node('qb', 'QuantizeLinear', ['b', 's1', 'z0'], ['bq']),
          node('dqb', 'DequantizeLinear', ['bq', 's1', 'z0'], ['bd']),
          node('add', 'Add', ['ad', 'bd'], ['s']),
          node('qs', 'QuantizeLinear', ['s', 's2', 'zc'], ['y']),
        ],
      });
    const r = toIntegerOps(addGraph(0, [4]));
    expect(r.fused).toEqual(['add']);
    expect(r.graph.node('add')!.op).toBe('QLinearAdd');
    // Codes a + b over 2: 0.5 → 0, 1.5 → 2, 2.5 → 2, 255 stays.
    const a = tf.tensor2d([[0.01, 0.03, 0.04, 2.55]]);
    const b = tf.tensor2d([[0, 0, 0.01, 2.55]]);
    const run = (g: Graph): number[] => values(g, { a, b })[0]!;
    expect(run(r.graph)).toEqual([0, 2, 2, 255]);
    // Zero point 200: 0 + 200, 2 + 200, …, 255 + 200 saturates at 255.
    expect(run(toIntegerOps(addGraph(200, [4])).graph)).toEqual([200, 202, 202, 255]);
    const broadcast = toIntegerOps(addGraph(0, [1]));
    expect(broadcast.skipped).toEqual([{ node: 'add', reason: 'its inputs have different shapes (broadcasting)' }]);
    tf.dispose([a, b]);
  });

  it('QGemm: int32 accumulation plus the int32 bias, float output or requantised codes (ties to even)', () => {
    const gemm = (requant: boolean): Graph =>
      createGraph({
        inputs: [{ name: 'x', shape: [null, 2], dtype: 'float32' }],
        outputs: ['y'],
        params: [
          f32('sa', 0.5),
          u8('za', 0),
          { name: 'w', shape: [2, 2], dtype: 'int8', data: Int8Array.of(1, -1, 2, 3), trainable: false },
          f32('sw', 0.25, 0.5),
          { name: 'b', shape: [2], dtype: 'int32', data: Int32Array.of(1, 0), trainable: false },
          f32('sy', 0.5),
          u8('zy', 10),
        ],
        nodes: [
          node('q', 'QuantizeLinear', ['x', 'sa', 'za'], ['xq']),
          node('g', 'QGemm', ['xq', 'sa', 'za', 'w', 'sw', '', 'b', ...(requant ? ['sy', 'zy'] : [])], ['y']),
        ],
      });
    // Codes [1, 2]: accumulators 1·1 + 2·2 + 1 = 6 and 1·(−1) + 2·3 + 0 = 5.
    const x = tf.tensor2d([[0.5, 1]]);
    const run = (g: Graph): number[] => values(g, x)[0]!;
    // Float: 6 · (0.5 · 0.25), 5 · (0.5 · 0.5).
    expect(run(gemm(false))).toEqual([0.75, 1.25]);
    // Requantised: 6 · 0.25 = 1.5 → 2 and 5 · 0.5 = 2.5 → 2 (ties to even); plus the zero point 10.
    expect(run(gemm(true))).toEqual([12, 12]);
    x.dispose();
  });

  it('returns a float graph as it is', () => {
    const g = createGraph({
      inputs: [{ name: 'x', shape: [null, 4, 4, 1], dtype: 'float32' }],
      outputs: ['y'],
      params: [{ name: 'w', shape: [1, 1, 1, 2], dtype: 'float32', data: Float32Array.of(1, 2), trainable: false }],
      nodes: [node('conv', 'Conv', ['x', 'w'], ['y'])],
    });
    const r = toIntegerOps(g);
    expect(r.graph).toBe(g);
    expect(r.skipped).toEqual([{ node: 'conv', reason: 'its input "x" does not come from a DequantizeLinear' }]);
  });
});

describe('clampFoldsIntoQuantizer', () => {
  it('drops a Relu only over a zero point at the bottom of the code range', () => {
    expect(clampFoldsIntoQuantizer({ min: 0 }, 0.1, 0, 'uint8')).toBe(true);
    expect(clampFoldsIntoQuantizer({ min: 0 }, 0.1, 1, 'uint8')).toBe(false);
    expect(clampFoldsIntoQuantizer({ min: 0 }, 0.1, -128, 'int8')).toBe(true);
    expect(clampFoldsIntoQuantizer({ min: 0 }, 0.1, 0, 'int8')).toBe(false);
  });

  it('drops a Clip when the quantizer range [s·(qmin − zp), s·(qmax − zp)] lies inside it, in float32', () => {
    expect(clampFoldsIntoQuantizer({ min: 0, max: 6 }, 6 / 255, 0, 'uint8')).toBe(true);
    expect(clampFoldsIntoQuantizer({ min: -1, max: 6 }, 0.02, 0, 'uint8')).toBe(true);
    expect(clampFoldsIntoQuantizer({ min: 0, max: 6 }, 0.02, -128, 'int8')).toBe(true);
    // The quantizer reaches below the Clip's min, or above its max: the Clip stays.
    expect(clampFoldsIntoQuantizer({ min: 0.5, max: 6 }, 0.02, 0, 'uint8')).toBe(false);
    expect(clampFoldsIntoQuantizer({ min: 0, max: 6 }, 0.02, 10, 'uint8')).toBe(false);
    expect(clampFoldsIntoQuantizer({ min: 0, max: 6 }, 0.025, 0, 'uint8')).toBe(false);
    // The next float32 scale above 6/255 puts the top code at 6 + 4.8e-7, beyond float32 epsilon.
    const next = new Float32Array(1);
    const bits = new Uint32Array(next.buffer);
    next[0] = 6 / 255;
    bits[0] = bits[0]! + 1;
    expect(clampFoldsIntoQuantizer({ min: 0, max: 6 }, next[0]!, 0, 'uint8')).toBe(false);
    // An unbounded Clip changes nothing, whatever the zero point.
    expect(clampFoldsIntoQuantizer({ min: -Infinity, max: Infinity }, 0.02, 7, 'uint8')).toBe(true);
  });
});
