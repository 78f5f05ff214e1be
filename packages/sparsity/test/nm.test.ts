import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, checkCompression, compress, createBuilders, fit, parsePipelineConfig, useBackend, type CompressionController } from '@tensorpress/core-tensor';
import { nmKeptAt, nmSparsity, sparsityAlgorithms } from '@tensorpress/sparsity';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { nmMask } from '../src/internal/selection.js';
import { paramArray, smallData, smallGraph } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Non-zeros per group of m consecutive input channels (conv [kh, kw, cin, cout]: axis 2; dense [in, out]: axis 0). */
function keptPerGroup(values: ArrayLike<number>, shape: readonly number[], m: number): number[] {
  const inAxis = shape.length === 4 ? 2 : 0;
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const counts = new Map<string, number>();
  for (let flat = 0; flat < values.length; flat++) {
    const idx = shape.map((d, i) => Math.floor(flat / strides[i]!) % d);
    const key = idx.map((v, i) => (i === inAxis ? Math.floor(v / m) : v)).join(',');
    counts.set(key, (counts.get(key) ?? 0) + (values[flat] !== 0 ? 1 : 0));
  }
  return [...counts.values()];
}

function weightOf(ctrl: CompressionController, name: string): { values: Float32Array; shape: number[] } {
  const v = ctrl.model.executor.variables().get(name)!;
  return { values: v.dataSync() as Float32Array, shape: v.shape };
}

const WEIGHTS = ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight'];

describe('nmMask', () => {
  it('keeps the n largest |w| of every m consecutive input channels (ties: lower channel)', () => {
    // Gemm [in = 8, out = 2]; column 0 groups (rows 0-3, 4-7).
    const w = tf.tensor2d([[0.1, 5], [-4, 5], [3, 5], [-0.2, 5], [1, 1], [1, 1], [2, -9], [0.5, 0]], [8, 2]);
    const m = nmMask(w, 0, 2, 4);
    // Rows 0-3: col 0 keeps rows 1, 2; col 1 (all 5) rows 0, 1. Rows 4-7: col 0 keeps 6 and 4 (1 = 1: lower); col 1 keeps 6 and 4.
    expect(Array.from(m.dataSync())).toEqual([0, 1, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0]);
    tf.dispose([w, m]);
  });
});

describe('nmSparsity', () => {
  for (const [n, m] of [[2, 4], [1, 4], [4, 8]] as const) {
    it(`${n}:${m}: exactly ${n} of every ${m} input-channel weights are kept, in every layer, through training`, async () => {
      const before = tf.memory().numTensors;
      const g = smallGraph();
      const targets = m === 8 ? WEIGHTS.filter((w) => !w.startsWith('conv1') && !w.startsWith('fc2')) : WEIGHTS;
      const ctrl = compress(g, [nmSparsity({ n, m, ...(m === 8 ? { ignoredScopes: ['conv1', 'fc2'] } : {}) })]);
      await fit(ctrl.model.executor, smallData(), { epochs: 2, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.05 }, controller: ctrl, progress: false });
      for (const name of targets) {
        const { values, shape } = weightOf(ctrl, name);
        const counts = keptPerGroup(values, shape, m);
        expect(new Set(counts), name).toEqual(new Set([n]));
        expect(counts.length * m, name).toBe(values.length);
      }
      const s = ctrl.statistics().algorithms[0]!;
      expect(s.total['pattern']).toBe(`${n}:${m}`);
      expect(s.total['sparsity']).toBeCloseTo(1 - n / m, 12);
      const stripped = ctrl.strip();
      for (const name of targets) {
        const p = stripped.param(name)!;
        expect(new Set(keptPerGroup(p.data as Float32Array, p.shape, m)), name).toEqual(new Set([n]));
      }
      ctrl.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it('one-shot keeps the largest |w| of the starting weights', () => {
    const g = smallGraph();
    const ctrl = compress(g, [nmSparsity()]);
    const orig = paramArray(g, 'fc1.weight'); // [8, 4]
    const now = weightOf(ctrl, 'fc1.weight').values;
    for (let col = 0; col < 4; col++) {
      for (let grp = 0; grp < 2; grp++) {
        const rows = [0, 1, 2, 3].map((r) => grp * 4 + r);
        const top = [...rows].sort((a, b) => Math.abs(orig[b * 4 + col]!) - Math.abs(orig[a * 4 + col]!)).slice(0, 2);
        expect(rows.filter((r) => now[r * 4 + col] !== 0).sort()).toEqual(top.sort());
      }
    }
    ctrl.dispose();
  });

  it('gradual: the kept count per group steps from m down to n with the schedule', () => {
    expect([0, 0.25, 0.3, 0.5].map((l) => nmKeptAt(l, 2, 4))).toEqual([4, 3, 3, 2]);
    const ctrl = compress(smallGraph(), [nmSparsity({ schedule: { type: 'polynomial', targetEpoch: 2, power: 1 } })]);
    const seen: string[] = [];
    for (let e = 0; e < 3; e++) {
      seen.push(String(ctrl.statistics().algorithms[0]!.total['pattern']));
      const { values, shape } = weightOf(ctrl, 'conv2.weight');
      expect(new Set(keptPerGroup(values, shape, 4))).toEqual(new Set([4 - e]));
      ctrl.scheduler.epochStep();
    }
    expect(seen).toEqual(['4:4', '3:4', '2:4']);
    ctrl.dispose();
  });

  it('m not dividing a layer’s input channels: ConfigError at $.m naming the node', () => {
    const before = tf.memory().numTensors;
    const e = errorOf(() => checkCompression(smallGraph(), [nmSparsity({ n: 2, m: 8 })]));
    expect(e).toBeInstanceOf(ConfigError);
    expect((e as ConfigError).path).toBe('$.m');
    expect(e.message).toMatch(/^\$\.m: nm_sparsity: "conv1" \(Conv\) has 4 input channels, not a multiple of m = 8; .*ignoredScopes.*skipIndivisible/);
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'nm_sparsity', params: { n: 2, m: 8 } }] }, sparsityAlgorithms);
    expect((errorOf(() => checkCompression(smallGraph(), createBuilders(cfg, sparsityAlgorithms))) as ConfigError).path).toBe('$.compression[0].params.m');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('skipIndivisible: such layers stay dense and are reported', () => {
    const ctrl = compress(smallGraph(), [nmSparsity({ n: 2, m: 8, skipIndivisible: true })]);
    const s = ctrl.statistics().algorithms[0]!;
    expect(s.layers.map((l) => l.node)).toEqual(['conv2', 'fc1']);
    expect(s.skipped).toEqual([
      { node: 'conv1', reason: 'left dense: 4 input channels, not a multiple of m = 8' },
      { node: 'fc2', reason: 'left dense: 4 input channels, not a multiple of m = 8' },
    ]);
    ctrl.dispose();
  });
});
