import { describe, expect, it } from 'vitest';
import { Graph, GraphBuilder, type GraphDef, type Param } from '@tensorpress/core-tensor';
import { formatStatistics, graphStatistics } from '../src/statistics.js';

const f32 = (name: string, shape: number[], trainable = true): Param => ({
  name,
  shape,
  dtype: 'float32',
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5),
  trainable,
});

function convGraph(input: [number, number, number], o: Parameters<GraphBuilder['conv']>[1]): Graph {
  const b = new GraphBuilder({ seed: 1 });
  const x = b.input('x', [null, ...input]);
  b.output(b.conv(x, { name: 'conv', ...o }));
  return b.build();
}

function nodeStats(g: Graph, name: string, batch?: number) {
  const s = graphStatistics(g, batch === undefined ? {} : { batch });
  const n = s.nodes.find((r) => r.name === name);
  if (!n) throw new Error(`no stats for ${name}`);
  return n;
}

describe('graphStatistics', () => {
  it('counts a strided, same-padded conv with bias', () => {
    // 8x8x3 -> stride 2 same -> 4x4x4; MACs = 4*4*4 * 3*3*3.
    const g = convGraph([8, 8, 3], { filters: 4, kernel: 3, strides: 2, padding: 'same' });
    const n = nodeStats(g, 'conv');
    expect(n.outputShape).toEqual([null, 4, 4, 4]);
    expect(n.macs).toBe(1728);
    expect(n.flops).toBe(3456);
    expect(n.params).toBe(3 * 3 * 3 * 4 + 4);
    expect(n.bytes).toBe(112 * 4);
    expect(n.bops).toBe(1728 * 32 * 32);
    expect(n.weightBits).toBe(32);
    expect(n.activationBits).toBe(32);
  });

  it('counts valid and explicitly padded convs', () => {
    const valid = nodeStats(convGraph([8, 8, 3], { filters: 4, kernel: 3, bias: false }), 'conv');
    expect(valid.macs).toBe(6 * 6 * 4 * 27);
    expect(valid.params).toBe(108);
    // 7x7, pads 1, stride 2, k3: floor((7 + 2 - 3) / 2) + 1 = 4.
    const padded = nodeStats(convGraph([7, 7, 2], { filters: 5, kernel: 3, strides: 2, padding: [1, 1, 1, 1] }), 'conv');
    expect(padded.outputShape).toEqual([null, 4, 4, 5]);
    expect(padded.macs).toBe(4 * 4 * 5 * 3 * 3 * 2);
  });

  it('divides the input channels by the group count', () => {
    const g = convGraph([8, 8, 4], { filters: 6, kernel: 3, group: 2, padding: 'same' });
    const n = nodeStats(g, 'conv');
    expect(n.macs).toBe(8 * 8 * 6 * 9 * 2);
    expect(n.params).toBe(3 * 3 * 2 * 6 + 6);
  });

  it('counts a depthwise conv as one input channel per output', () => {
    const b = new GraphBuilder({ seed: 1 });
    const x = b.input('x', [null, 8, 8, 4]);
    b.output(b.depthwiseConv(x, { kernel: 3, padding: 'same', name: 'dw' }));
    const n = nodeStats(b.build(), 'dw');
    expect(n.macs).toBe(8 * 8 * 4 * 9);
    expect(n.flops).toBe(2 * 8 * 8 * 4 * 9);
    expect(n.params).toBe(36 + 4);
  });

  it('counts a dense layer and scales with the batch', () => {
    const b = new GraphBuilder({ seed: 1 });
    const x = b.input('x', [null, 20]);
    b.output(b.dense(x, 5, { name: 'fc' }));
    const g = b.build();
    const n = nodeStats(g, 'fc');
    expect([n.macs, n.flops, n.params, n.bytes]).toEqual([100, 200, 105, 420]);
    const s8 = graphStatistics(g, { batch: 8 });
    expect(s8.nodes[0]!.macs).toBe(800);
    expect(s8.total.params).toBe(105);
    expect(s8.batch).toBe(8);
  });

  it('counts a whole small model, elementwise FLOPs included', () => {
    const b = new GraphBuilder({ seed: 1 });
    let h = b.input('x', [null, 6, 6, 2]);
    h = b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'conv' });
    h = b.batchNorm(h, { name: 'bn' });
    h = b.relu(h, 'relu');
    h = b.maxPool(h, 2, { name: 'pool' });
    h = b.globalAvgPool(h, 'gap');
    h = b.flatten(h, 'flatten');
    h = b.dense(h, 3, { name: 'fc' });
    b.output(h);
    const s = graphStatistics(b.build());
    const by = Object.fromEntries(s.nodes.map((n) => [n.name, n]));
    const convMacs = 6 * 6 * 4 * 3 * 3 * 2; // 2592
    expect(by['conv']!.macs).toBe(convMacs);
    expect(by['bn']!.params).toBe(16);
    expect(by['bn']!.flops).toBe(2 * 6 * 6 * 4);
    expect(by['bn']!.macs).toBe(0);
    expect(by['relu']!.flops).toBe(6 * 6 * 4);
    expect(by['pool']!.flops).toBe(3 * 3 * 4 * 4);
    expect(by['gap']!.flops).toBe(3 * 3 * 4);
    expect(by['flatten']!.flops).toBe(0);
    expect(by['fc']!.macs).toBe(12);
    expect(by['relu']!.bops).toBe(0);
    expect(s.total).toEqual({
      params: 72 + 16 + 15,
      bytes: (72 + 16 + 15) * 4,
      macs: convMacs + 12,
      flops: 2 * (convMacs + 12) + 288 + 144 + 144 + 36,
      bops: (convMacs + 12) * 1024,
    });
  });

  it('counts a shared parameter once in the total', () => {
    const def: GraphDef = {
      inputs: [{ name: 'x', shape: [null, 4], dtype: 'float32' }],
      outputs: ['b'],
      nodes: [
        { name: 'a', op: 'MatMul', inputs: ['x', 'w'], outputs: ['a'], attrs: {} },
        { name: 'b', op: 'MatMul', inputs: ['a', 'w'], outputs: ['b'], attrs: {} },
      ],
      params: [f32('w', [4, 4])],
    };
    const s = graphStatistics(new Graph(def));
    expect(s.nodes.map((n) => n.params)).toEqual([16, 16]);
    expect(s.nodes.map((n) => n.macs)).toEqual([16, 16]);
    expect(s.total.params).toBe(16);
    expect(s.total.bytes).toBe(64);
  });

  describe('quantized graphs', () => {
    const qGraph = (quantizeActivation: boolean): Graph => {
      const nodes: GraphDef['nodes'][number][] = [
        { name: 'w_dq', op: 'DequantizeLinear', inputs: ['w_q', 'w_scale', 'w_zp'], outputs: ['w'], attrs: {} },
      ];
      let a = 'x';
      if (quantizeActivation) {
        nodes.push({ name: 'x_q', op: 'QuantizeLinear', inputs: ['x', 'x_scale', 'x_zp'], outputs: ['xq'], attrs: {} });
        nodes.push({ name: 'x_dq', op: 'DequantizeLinear', inputs: ['xq', 'x_scale', 'x_zp'], outputs: ['xd'], attrs: {} });
        a = 'xd';
      }
      nodes.push({ name: 'fc', op: 'Gemm', inputs: [a, 'w', 'bias'], outputs: ['y'], attrs: {} });
      return new Graph({
        inputs: [{ name: 'x', shape: [null, 4], dtype: 'float32' }],
        outputs: ['y'],
        nodes,
        params: [
          { name: 'w_q', shape: [4, 3], dtype: 'int8', data: new Int8Array(12).fill(3), trainable: false },
          { ...f32('w_scale', [], false) },
          { name: 'w_zp', shape: [], dtype: 'int8', data: new Int8Array(1), trainable: false },
          f32('bias', [3]),
          { ...f32('x_scale', [], false) },
          { name: 'x_zp', shape: [], dtype: 'uint8', data: new Uint8Array(1), trainable: false },
        ],
      });
    };

    it('takes 8-bit weights from an int8 DequantizeLinear and folds its parameters into the layer', () => {
      const s = graphStatistics(qGraph(false));
      const by = Object.fromEntries(s.nodes.map((n) => [n.name, n]));
      expect(by['fc']!.weightBits).toBe(8);
      expect(by['fc']!.activationBits).toBe(32);
      expect(by['fc']!.macs).toBe(12);
      expect(by['fc']!.bops).toBe(12 * 8 * 32);
      // int8 weights 12 B, float scale 4 B, int8 zero point 1 B, float bias 12 B.
      expect(by['fc']!.params).toBe(12 + 1 + 1 + 3);
      expect(by['fc']!.bytes).toBe(12 + 4 + 1 + 12);
      expect(by['w_dq']!.params).toBe(0);
      expect(by['w_dq']!.flops).toBe(0);
      expect(s.total.params).toBe(17);
      expect(s.total.bytes).toBe(29);
    });

    it('takes 8-bit activations from a DequantizeLinear on the input', () => {
      const s = graphStatistics(qGraph(true));
      const by = Object.fromEntries(s.nodes.map((n) => [n.name, n]));
      expect(by['fc']!.activationBits).toBe(8);
      expect(by['fc']!.bops).toBe(12 * 8 * 8);
      expect(by['x_q']!.flops).toBe(3 * 4);
      expect(by['x_dq']!.flops).toBe(2 * 4);
      expect(by['x_q']!.params).toBe(2);
      expect(s.total.params).toBe(17 + 2);
      expect(s.total.bytes).toBe(29 + 4 + 1);
    });

    it('applies overrides by record and by function', () => {
      const g = qGraph(true);
      expect(graphStatistics(g, { weightBits: { fc: 4 } }).total.bops).toBe(12 * 4 * 8);
      expect(graphStatistics(g, { weightBits: () => 1, activationBits: (n) => (n.name === 'fc' ? 2 : undefined) }).total.bops).toBe(12 * 1 * 2);
      // A function returning undefined keeps the inferred width.
      expect(graphStatistics(g, { activationBits: () => undefined }).total.bops).toBe(12 * 8 * 8);
      expect(() => graphStatistics(g, { weightBits: { fc: 0 } })).toThrow(/weightBits/);
    });
  });

  it('rejects a bad batch', () => {
    const g = convGraph([4, 4, 1], { filters: 1, kernel: 1 });
    expect(() => graphStatistics(g, { batch: 0 })).toThrow(/\$\.batch/);
  });
});

describe('formatStatistics', () => {
  it('prints one row per node and a total row', () => {
    const b = new GraphBuilder({ seed: 1 });
    let h = b.input('x', [null, 8, 8, 3]);
    h = b.conv(h, { filters: 4, kernel: 3, padding: 'same', name: 'conv' });
    h = b.flatten(h, 'flat');
    h = b.dense(h, 10, { name: 'fc' });
    b.output(h);
    const text = formatStatistics(graphStatistics(b.build()));
    const lines = text.split('\n');
    expect(lines[0]).toBe('statistics (batch 1)');
    expect(lines[1]).toMatch(/^node\s+op\s+output\s+params\s+bytes\s+MACs\s+FLOPs\s+BOPs\s+bits w\/a$/);
    expect(lines.find((l) => l.startsWith('conv '))).toMatch(/Conv\s+\[\?,8,8,4\]\s+112\s+448\s+6,912\s+13,824\s+7,077,888\s+32\/32/);
    expect(lines.find((l) => l.startsWith('flat '))).toMatch(/Flatten/);
    expect(lines[lines.length - 1]).toMatch(/^total\s+2,682\s+10,728\s+9,472\s+18,944\s+9,699,328$/);
  });
});
