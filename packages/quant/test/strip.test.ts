import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  GraphBuilder,
  arrayDataset,
  compress,
  useBackend,
  type CompressionBuilder,
  type Dataset,
  type Graph,
} from '@tensorpress/core-tensor';
import { buildQuantizedGraph, dorefa, lsq, pact, quantization, tqt } from '@tensorpress/quant';
import { expectNoLeak, maxAbsDiff, randomizeBnStats, runOutput, seededArray, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const IN = [6, 6, 2];
const N = 12;

/** input → c1 (3×3, no bias) → bn1 → relu → pool → c2 (1×1, bias) → relu → flatten → fc → logits. */
function tinyGraph(seed = 3): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...IN]);
  h = b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'c1' });
  h = b.batchNorm(h, { name: 'bn1' });
  h = b.relu(h, 'r1');
  h = b.maxPool(h, 2, { name: 'pool' });
  h = b.conv(h, { filters: 3, kernel: 1, name: 'c2' });
  h = b.relu(h, 'r2');
  h = b.flatten(h, 'flat');
  h = b.dense(h, 2, { name: 'fc' });
  b.output(h);
  return randomizeBnStats(b.build(), 11);
}

function tinyData(seed = 1): Dataset {
  return arrayDataset({ x: seededArray(N * 72, seed, -1, 1), y: new Int32Array(N), exampleShape: IN, numClasses: 2 });
}

function fakeQuantOutput(ctrl: ReturnType<typeof compress>, x: tf.Tensor): Float32Array {
  const [y] = ctrl.model.executor.run(x);
  const out = Float32Array.from(y!.dataSync());
  y!.dispose();
  return out;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

const param = (g: Graph, name: string) => {
  const p = g.param(name);
  expect(p, `param ${name}`).toBeDefined();
  return p!;
};

/** Every input of a Conv/Gemm reads a DequantizeLinear output (or a graph input it may not quantize). */
function expectQdqAroundOps(g: Graph, floatBias = false): void {
  for (const n of g.nodes.filter((x) => x.op === 'Conv' || x.op === 'Gemm')) {
    for (const [port, v] of n.inputs.entries()) {
      if (!v) continue;
      if (floatBias && port === 2) {
        expect(g.param(v)?.dtype, `${n.name} bias ${v}`).toBe('float32');
        continue;
      }
      const p = g.producer(v);
      expect(p?.node.op, `${n.name} reads ${v}`).toBe('DequantizeLinear');
    }
  }
  for (const n of g.nodes.filter((x) => x.op === 'DequantizeLinear' && !g.isParam(x.inputs[0]!))) {
    expect(g.producer(n.inputs[0]!)!.node.op).toMatch(/^(QuantizeLinear|DynamicQuantizeLinear)$/);
  }
}

describe('strip (quantization)', () => {
  it('fake-quant eval output equals the stripped int8 graph, BN folded into the per-channel scale', async () => {
    const g = tinyGraph();
    const data = tinyData();
    const x = seededTensor([4, ...IN], 2);
    {
      // Float biases: the stripped graph must then equal the fake-quant one exactly (int32 biases below).
      const ctrl = compress(g, [quantization({ quantizeBias: false })]);
      await ctrl.initialize(data, { samples: N });
      const yq = fakeQuantOutput(ctrl, x);
      const s = ctrl.strip();
      const ys = runOutput(s, x);
      const yf = runOutput(g, x);
      expect(maxAbsDiff(ys, yq)).toBeLessThanOrEqual(1e-5 * maxAbs(yq));
      // and quantization did change something (the comparison is not float vs float)
      expect(maxAbsDiff(yf, yq)).toBeGreaterThan(0);

      // no BN left; c1 carries int8 codes per channel along axis 3
      expect(s.nodes.some((n) => n.op === 'BatchNormalization')).toBe(false);
      for (const [node, axis, cout] of [
        ['c1', 3, 4],
        ['c2', 3, 3],
        ['fc', 1, 2],
      ] as const) {
        const wq = param(s, `${node}.w_q`);
        expect(wq.dtype).toBe('int8');
        expect(wq.shape).toEqual(g.param(`${node}.weight`)!.shape);
        for (const c of wq.data) expect(Math.abs(c)).toBeLessThanOrEqual(127);
        expect(Math.max(...Array.from(wq.data, Math.abs))).toBe(127);
        const ws = param(s, `${node}.w_scale`);
        expect(ws.dtype).toBe('float32');
        expect(ws.shape).toEqual([cout]);
        const wz = param(s, `${node}.w_zp`);
        expect(wz.dtype).toBe('int8');
        expect(Array.from(wz.data)).toEqual(new Array(cout).fill(0));
        const dq = s.requireNode(`${node}/dq_w`);
        expect(dq.op).toBe('DequantizeLinear');
        expect(dq.inputs).toEqual([`${node}.w_q`, `${node}.w_scale`, `${node}.w_zp`]);
        expect(dq.attrs).toEqual({ axis });
        expect(s.requireNode(node).inputs[1]).toBe(`${node}.w_dq`);
        expect(s.param(`${node}.weight`)).toBeUndefined();
      }
      // BN folded: the c1 scale is the grid scale times |γ / sqrt(var + eps)|
      const grid = ctrl.statistics().algorithms[0]!.layers.find((l) => l.node === 'c1');
      expect(grid).toBeDefined();
      const gamma = g.param('bn1.gamma')!.data;
      const variance = g.param('bn1.var')!.data;
      const absMax = [0, 1, 2, 3].map((c) => Math.max(...Array.from(g.param('c1.weight')!.data).filter((_, i) => i % 4 === c).map(Math.abs)));
      const c1Scale = param(s, 'c1.w_scale').data;
      for (let c = 0; c < 4; c++) {
        const want = (absMax[c]! / 127) * Math.abs(gamma[c]! / Math.sqrt(variance[c]! + 1e-5));
        expect(Math.abs(c1Scale[c]! - want) / want).toBeLessThan(1e-4);
      }

      // activation Q/DQ pairs with the contract's names, consumers read the DQ output
      expectQdqAroundOps(s, true);
      const qIn = s.requireNode('q:input/q');
      expect(qIn.op).toBe('QuantizeLinear');
      expect(qIn.inputs).toEqual(['input', 'q:input.scale', 'q:input.zp']);
      expect(s.requireNode('q:input/dq').inputs).toEqual(['q:input.q', 'q:input.scale', 'q:input.zp']);
      expect(param(s, 'q:input.scale').shape).toEqual([]);
      expect(param(s, 'q:input.zp').dtype).toBe('int8');
      // r1 → pool: the pool output is a carrier and gets its own Q/DQ pair with the same params
      const carrierQ = s.nodes.filter((n) => n.op === 'QuantizeLinear' && n.inputs[1] === 'q:r1.scale');
      expect(carrierQ.length).toBe(2);
      expect(s.producer(s.requireNode('c2').inputs[0]!)!.node.name).toBe('q:r1#1/dq');

      // int32 biases at scale s_x · s_w (the default): the same quantizers, only the biases rounded,
      // which moves outputs by at most the bias rounding (½·s_x·s_w per channel) carried downstream.
      const ctrl2 = compress(g, [quantization()]);
      ctrl2.loadState(ctrl.state());
      const s2 = ctrl2.strip();
      const ys2 = runOutput(s2, x);
      expect(maxAbsDiff(ys2, yq)).toBeLessThanOrEqual(2e-2 * maxAbs(yq));
      for (const [node, sx] of [
        ['c1', 'q:input.scale'],
        ['c2', 'q:r1.scale'],
        ['fc', 'q:r2.scale'],
      ] as const) {
        const bq = param(s2, `${node}.b_q`);
        expect(bq.dtype).toBe('int32');
        const bs = param(s2, `${node}.b_scale`).data;
        const ws = param(s2, `${node}.w_scale`).data;
        const sxv = param(s2, sx).data[0]!;
        for (let c = 0; c < bs.length; c++) expect(bs[c]).toBeCloseTo(Math.fround(sxv * ws[c]!), 12);
        const dqb = s2.requireNode(`${node}/dq_b`);
        expect(dqb.inputs).toEqual([`${node}.b_q`, `${node}.b_scale`]);
        expect(dqb.attrs).toEqual({ axis: 0 });
        expect(s2.requireNode(node).inputs[2]).toBe(`${node}.b_dq`);
      }
      // the stripped graph's float32 params are only scales (no float weights left)
      expect(s2.params.filter((p) => p.dtype === 'float32').every((p) => /(scale)$/.test(p.name))).toBe(true);
      ctrl2.dispose();
      ctrl.dispose();
    }
    x.dispose();
  });

  it('per-tensor weights (perChannel: false) still fold BN into a per-channel scale', async () => {
    const g = tinyGraph(4);
    const x = seededTensor([3, ...IN], 8);
    const ctrl = compress(g, [quantization({ weights: { perChannel: false } })]);
    await ctrl.initialize(tinyData(2), { samples: N });
    const s = ctrl.strip();
    expect(param(s, 'c2.w_scale').shape).toEqual([]);
    expect(s.requireNode('c2/dq_w').attrs).toEqual({});
    expect(param(s, 'c1.w_scale').shape).toEqual([4]);
    expect(s.requireNode('c1/dq_w').attrs).toEqual({ axis: 3 });
    const yq = fakeQuantOutput(ctrl, x);
    expect(maxAbsDiff(runOutput(s, x), yq)).toBeLessThanOrEqual(1e-5 * maxAbs(yq));
    ctrl.dispose();
    x.dispose();
  });

  it("preset 'mixed' (asymmetric uint8 activations) strips to uint8 zero points and agrees", async () => {
    const g = tinyGraph(5);
    const x = seededTensor([3, ...IN], 9);
    const ctrl = compress(g, [quantization({ preset: 'mixed', quantizeBias: false })]);
    await ctrl.initialize(tinyData(3), { samples: N });
    const s = ctrl.strip();
    expect(param(s, 'q:input.zp').dtype).toBe('uint8');
    expect(param(s, 'q:r1.zp').dtype).toBe('uint8');
    const yq = fakeQuantOutput(ctrl, x);
    expect(maxAbsDiff(runOutput(s, x), yq)).toBeLessThanOrEqual(1e-5 * maxAbs(yq));
    ctrl.dispose();
    x.dispose();
  });

  const lowBit: [string, () => CompressionBuilder, (c: number) => boolean][] = [
    ['dorefa', () => dorefa({ quantizeBias: false, plan: [{ node: 'c1', weightBits: 8, activationBits: 8 }] }), (c) => Math.abs(c) <= 15 && Math.abs(c) % 2 === 1],
    ['pact', () => pact({ quantizeBias: false, plan: [{ node: 'c1', weightBits: 8, activationBits: 8 }] }), (c) => Math.abs(c) <= 15 && Math.abs(c) % 2 === 1],
    ['lsq', () => lsq({ quantizeBias: false, weights: { bits: 4 }, activations: { bits: 4 }, plan: [{ node: 'c1', weightBits: 8, activationBits: 8 }] }), (c) => Math.abs(c) <= 7],
    ['tqt', () => tqt({ quantizeBias: false, weights: { bits: 4 }, activations: { bits: 4 }, plan: [{ node: 'c1', weightBits: 8, activationBits: 8 }] }), (c) => Math.abs(c) <= 7],
  ];
  for (const [name, make, codeOk] of lowBit) {
    it(`${name} at 4 bits (first conv at 8): stripped graph equals fake-quant, codes on the 4-bit grid`, async () => {
      const g = tinyGraph(6);
      const x = seededTensor([3, ...IN], 10);
      {
        const ctrl = compress(g, [make()]);
        await ctrl.initialize(tinyData(4), { samples: N });
        const yq = fakeQuantOutput(ctrl, x);
        const s = ctrl.strip();
        const ys = runOutput(s, x);
        expect(maxAbsDiff(ys, yq)).toBeLessThanOrEqual(1e-5 * maxAbs(yq) + 1e-7);
        // first conv: 8-bit symmetric codes
        const c1 = param(s, 'c1.w_q');
        expect(c1.dtype).toBe('int8');
        expect(Math.max(...Array.from(c1.data, Math.abs))).toBeGreaterThan(15);
        for (const c of c1.data) expect(Math.abs(c)).toBeLessThanOrEqual(127);
        // the others: 4-bit codes stored as int8
        for (const node of ['c2', 'fc']) {
          const wq = param(s, `${node}.w_q`);
          expect(wq.dtype).toBe('int8');
          for (const c of wq.data) expect(codeOk(c), `${name} ${node} code ${c}`).toBe(true);
        }
        expectQdqAroundOps(s, true);
        const stats = ctrl.statistics().algorithms[0]!;
        expect(stats.layers.filter((l) => l['kind'] === 'weight').map((l) => [l.node, l['bits']])).toEqual([
          ['c1', 8],
          ['c2', 4],
          ['fc', 4],
        ]);
        // the input quantizer is 8 bit (c1 reads it), the others 4
        const acts = stats.layers.filter((l) => l['kind'] === 'activation');
        expect(acts.find((l) => l.node === 'input')!['bits']).toBe(8);
        expect(acts.filter((l) => l.node !== 'input').every((l) => l['bits'] === 4)).toBe(true);
        ctrl.dispose();
      }
      x.dispose();
    });
  }

  for (const [name, make] of [
    ['quantization', () => quantization({ preset: 'mixed' })],
    ['pact', () => pact()],
    ['lsq', () => lsq()],
    ['tqt', () => tqt()],
    ['dorefa', () => dorefa()],
  ] as [string, () => CompressionBuilder][]) {
    it(`${name}: no tensor leaks across compress → initialize → run → state → loadState → strip → dispose`, async () => {
      const g = tinyGraph(9);
      const x = seededTensor([2, ...IN], 13);
      await expectNoLeak(async () => {
        const a = compress(g, [make()]);
        await a.initialize(tinyData(7), { samples: N });
        fakeQuantOutput(a, x);
        const b = compress(g, [make()]);
        b.loadState(a.state());
        runOutput(b.strip(), x);
        a.dispose();
        b.dispose();
      });
      x.dispose();
    });
  }

  it('statistics() lists every quantized layer and the skipped nodes with reasons', async () => {
    const g = tinyGraph(7);
    const ctrl = compress(g, [quantization({}, { ignoredScopes: ['fc'] })]);
    await ctrl.initialize(tinyData(5), { samples: N });
    const st = ctrl.controllers[0]!.statistics();
    expect(st.algorithm).toBe('quantization');
    expect(st.layers.filter((l) => l['kind'] === 'weight').map((l) => l.node)).toEqual(['c1', 'c2']);
    const acts = st.layers.filter((l) => l['kind'] === 'activation');
    expect(acts.map((l) => l.node).sort()).toEqual(['input', 'r1']);
    for (const a of acts) {
      expect(a['initialized']).toBe(true);
      expect(typeof a['scale']).toBe('number');
    }
    expect(st.skipped).toEqual([{ node: 'fc', reason: expect.stringContaining('ignoredScopes') }]);
    expect(st.total).toMatchObject({ weightQuantizers: 2, activationQuantizers: 2, meanWeightBits: 8 });
    // fc stays float in the stripped graph
    const s = ctrl.strip();
    expect(s.param('fc.w_q')).toBeUndefined();
    expect(s.requireNode('fc').inputs[1]).toBe('fc.weight');
    ctrl.dispose();
  });

  it('state() / loadState() restores identical outputs in a new controller (no initialize needed)', async () => {
    const g = tinyGraph(8);
    const x = seededTensor([2, ...IN], 12);
    for (const make of [() => quantization({ preset: 'mixed' }), () => pact(), () => lsq(), () => tqt(), () => dorefa()]) {
      const a = compress(g, [make()]);
      await a.initialize(tinyData(6), { samples: N });
      const state = JSON.parse(JSON.stringify(a.state())) as ReturnType<typeof a.state>;
      const b = compress(g, [make()]);
      b.loadState(state);
      expect(Array.from(fakeQuantOutput(b, x))).toEqual(Array.from(fakeQuantOutput(a, x)));
      expect(runOutput(b.strip(), x)).toEqual(runOutput(a.strip(), x));
      a.dispose();
      b.dispose();
    }
    x.dispose();
  });
});

describe('buildQuantizedGraph', () => {
  /** x [N,1,1,1] → Conv 1×1 (1 → 2, bias) → BN → output, with hand-chosen numbers. */
  function handGraph(gamma: [number, number]): Graph {
    const b = new GraphBuilder();
    const x = b.input('x', [null, 1, 1, 1]);
    const w = b.param('w', [1, 1, 1, 2], Float32Array.of(0.5, -0.75));
    const bias = b.param('b', [2], Float32Array.of(0.3125, -0.1875));
    const c = b.node('Conv', [x, w, bias], { kernel_shape: [1, 1], strides: [1, 1], dilations: [1, 1], group: 1 }, { exactName: 'conv' })[0]!;
    const bn = b.batchNorm(c, { name: 'bn' });
    b.output(bn);
    const g = b.build();
    return g.withParams(
      new Map([
        ['bn.gamma', { data: Float32Array.of(...gamma) }],
        ['bn.beta', { data: Float32Array.of(0.1, 0.2) }],
        ['bn.mean', { data: Float32Array.of(0.05, -0.05) }],
        ['bn.var', { data: Float32Array.of(1 - 1e-5, 4 - 1e-5) }],
      ]),
    );
  }

  it('rounds the int32 bias half to even (bias / (s_x·s_w) = 2.5 → 2)', () => {
    const b = new GraphBuilder();
    const x = b.input('x', [null, 1, 1, 1]);
    const w = b.param('w', [1, 1, 1, 2], Float32Array.of(0.25, 0.5));
    const bias = b.param('b', [2], Float32Array.of(0.3125, 0.4375));
    b.output(b.node('Conv', [x, w, bias], { kernel_shape: [1, 1], strides: [1, 1], dilations: [1, 1], group: 1 }, { exactName: 'conv' })[0]!);
    const g = b.build();
    const s = buildQuantizedGraph(g, {
      weights: [{ node: 'conv', codes: Int32Array.of(1, 2), scale: Float32Array.of(0.25), zeroPoint: Int32Array.of(0) }],
      activations: [{ id: 'act:x', values: ['x'], carriers: [], scale: 0.5, zeroPoint: 0, signed: true }],
    });
    // b_scale = 0.5 · 0.25 = 0.125: 0.3125 / 0.125 = 2.5 → 2 (even), 0.4375 / 0.125 = 3.5 → 4
    expect(Array.from(s.param('conv.b_q')!.data)).toEqual([2, 4]);
    expect(Array.from(s.param('conv.b_scale')!.data)).toEqual([0.125, 0.125]);
  });

  it('folds a BN with a negative γ: codes and zero points flip sign, output matches the float graph on grid values', () => {
    const g = handGraph([-2, 1]);
    // weights exactly on the grid 0.25: codes 2, -3
    const s = buildQuantizedGraph(g, {
      weights: [{ node: 'conv', codes: Int32Array.of(2, -3), scale: Float32Array.of(0.25), zeroPoint: Int32Array.of(0) }],
      activations: [],
    });
    expect(s.nodes.some((n) => n.op === 'BatchNormalization')).toBe(false);
    expect(Array.from(s.param('conv.w_q')!.data)).toEqual([-2, -3]);
    // |γ / sqrt(var + eps)| = 2 and 0.5
    expect(Array.from(s.param('conv.w_scale')!.data)).toEqual([0.5, 0.125]);
    expect(s.requireNode('conv/dq_w').attrs).toEqual({ axis: 3 });
    // no quantized input: the folded bias stays float
    expect(s.param('conv.b')!.dtype).toBe('float32');
    const x = tf.tensor4d([1, -0.5, 2], [3, 1, 1, 1]);
    expect(maxAbsDiff(runOutput(s, x), runOutput(g, x))).toBeLessThan(1e-6);
    x.dispose();
  });

  it('never modifies the input graph', () => {
    const g = handGraph([1, 1]);
    const before = JSON.stringify(g.toDef(), (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v));
    buildQuantizedGraph(g, {
      weights: [{ node: 'conv', codes: Int32Array.of(2, -3), scale: Float32Array.of(0.25), zeroPoint: Int32Array.of(0) }],
      activations: [{ id: 'act:x', values: ['x'], carriers: [], scale: 0.5, zeroPoint: 0, signed: true }],
    });
    expect(JSON.stringify(g.toDef(), (_k, v: unknown) => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v))).toBe(before);
  });

  it('refuses codes that do not fit int8 and a code count that does not match the weight', () => {
    const g = handGraph([1, 1]);
    expect(() =>
      buildQuantizedGraph(g, { weights: [{ node: 'conv', codes: Int32Array.of(200, 1), scale: Float32Array.of(0.25), zeroPoint: Int32Array.of(0) }], activations: [] }),
    ).toThrow(/conv/);
    expect(() =>
      buildQuantizedGraph(g, { weights: [{ node: 'conv', codes: Int32Array.of(1), scale: Float32Array.of(0.25), zeroPoint: Int32Array.of(0) }], activations: [] }),
    ).toThrow(/1 codes/);
  });

  it('DynamicQuantizeLinear before a Gemm input', () => {
    const b = new GraphBuilder({ seed: 3 });
    const x = b.input('x', [null, 3]);
    b.output(b.dense(x, 2, { name: 'fc' }));
    const g = b.build();
    const s = buildQuantizedGraph(g, { weights: [], activations: [], dynamic: [{ node: 'fc', input: 0 }] });
    const dql = s.nodes.find((n) => n.op === 'DynamicQuantizeLinear')!;
    expect(dql.inputs).toEqual(['x']);
    expect(dql.outputs.length).toBe(3);
    expect(s.producer(s.requireNode('fc').inputs[0]!)!.node.op).toBe('DequantizeLinear');
    const ex = new Executor(s);
    const xt = tf.tensor2d([0.1, -0.4, 0.9], [1, 3]);
    const [y] = ex.run(xt);
    expect(y!.shape).toEqual([1, 2]);
    tf.dispose([xt, y!]);
    ex.dispose();
  });
});
