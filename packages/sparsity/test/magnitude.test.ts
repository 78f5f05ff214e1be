import * as tf from '@tensorflow/tfjs-core';
import { Executor, compress, fit, useBackend, type CompressionController } from '@tensorpress/core-tensor';
import { magnitudeSparsity, reportAccuracy } from '@tensorpress/sparsity';
import { maxAbsDiff } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { paramArray, smallData, smallGraph, smallInput } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const WEIGHTS = ['conv1.weight', 'conv2.weight', 'fc1.weight', 'fc2.weight'];

function weights(ctrl: CompressionController, name: string): Float32Array {
  return ctrl.model.executor.variables().get(name)!.dataSync() as Float32Array;
}

function zerosOf(a: ArrayLike<number>): number[] {
  return Array.from(a).flatMap((v, i) => (v === 0 ? [i] : []));
}

describe('magnitudeSparsity', () => {
  it('per layer: round(level·n) zeros in every weight, exactly the smallest |w|', () => {
    const g = smallGraph();
    const ctrl = compress(g, [magnitudeSparsity({ level: 0.6, ranking: 'layer', schedule: { type: 'constant' } })]);
    for (const name of WEIGHTS) {
      const orig = paramArray(g, name);
      const w = weights(ctrl, name);
      const zeros = Math.round(0.6 * orig.length);
      const sorted = orig.map((v, i) => [Math.abs(v), i] as const).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      const expected = sorted.slice(0, zeros).map(([, i]) => i).sort((a, b) => a - b);
      expect(zerosOf(w), name).toEqual(expected);
      // Kept weights are untouched.
      w.forEach((v, i) => {
        if (v !== 0) expect(v).toBe(orig[i]);
      });
    }
    ctrl.dispose();
  });

  it('global: one threshold over every layer, round(level·N) zeros in total', () => {
    const g = smallGraph();
    const ctrl = compress(g, [magnitudeSparsity({ level: 0.7, ranking: 'global', importance: 'abs', schedule: { type: 'constant' } })]);
    const all = WEIGHTS.flatMap((n) => paramArray(g, n).map(Math.abs));
    const kept = WEIGHTS.flatMap((n) => Array.from(weights(ctrl, n)).filter((v) => v !== 0).map(Math.abs));
    const zeroed = WEIGHTS.flatMap((n) => {
      const orig = paramArray(g, n);
      return Array.from(weights(ctrl, n)).flatMap((v, i) => (v === 0 ? [Math.abs(orig[i]!)] : []));
    });
    expect(zeroed.length).toBe(Math.round(0.7 * all.length));
    expect(Math.max(...zeroed)).toBeLessThanOrEqual(Math.min(...kept));
    const s = ctrl.statistics().algorithms[0]!;
    expect(s.total['zeros']).toBe(zeroed.length);
    expect(s.total['sparsity']).toBeCloseTo(zeroed.length / all.length, 12);
    ctrl.dispose();
  });

  it('normalized_abs global: |w| / ‖W‖₂ per layer decides', () => {
    const g = smallGraph();
    const ctrl = compress(g, [magnitudeSparsity({ level: 0.5, ranking: 'global', importance: 'normalized_abs', schedule: { type: 'constant' } })]);
    const scored = WEIGHTS.flatMap((n) => {
      const w = paramArray(g, n);
      const norm = Math.sqrt(w.reduce((a, v) => a + v * v, 0));
      const now = weights(ctrl, n);
      return w.map((v, i) => ({ s: Math.abs(v) / norm, zero: now[i] === 0 }));
    });
    const maxZero = Math.max(...scored.filter((x) => x.zero).map((x) => x.s));
    const minKept = Math.min(...scored.filter((x) => !x.zero).map((x) => x.s));
    expect(maxZero).toBeLessThanOrEqual(minKept * (1 + 1e-6));
    expect(scored.filter((x) => x.zero).length).toBe(Math.round(0.5 * scored.length));
    ctrl.dispose();
  });

  it('masked weights stay exactly zero through Adam (no regrowth), and masks only grow under a rising schedule', async () => {
    const before = tf.memory().numTensors;
    const ctrl = compress(smallGraph(), [magnitudeSparsity({ level: 0.8, ranking: 'layer', schedule: { type: 'polynomial', targetEpoch: 3, power: 1, initialLevel: 0.2 } })]);
    let prev = new Map(WEIGHTS.map((n) => [n, zerosOf(weights(ctrl, n))]));
    const checks: string[] = [];
    await fit(ctrl.model.executor, smallData(), {
      epochs: 5,
      batchSize: 8,
      // A large rate and Adam's momentum would move a masked weight at once if it were not held at 0.
      optimizer: { type: 'adam', learningRate: 0.05 },
      controller: ctrl,
      progress: false,
      callbacks: {
        onBatchEnd: () => {
          for (const n of WEIGHTS) {
            const z = new Set(zerosOf(weights(ctrl, n)));
            for (const i of prev.get(n)!) if (!z.has(i)) checks.push(`${n}[${i}] regrew`);
          }
          prev = new Map(WEIGHTS.map((n) => [n, zerosOf(weights(ctrl, n))]));
        },
      },
    });
    expect(checks).toEqual([]);
    const s = ctrl.statistics().algorithms[0]!;
    expect(s.total['level']).toBeCloseTo(0.8, 12);
    expect(s.total['frozen']).toBe(true);
    for (const n of WEIGHTS) {
      const w = weights(ctrl, n);
      expect(zerosOf(w).length, n).toBe(Math.round(0.8 * w.length));
    }
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('statistics(): per layer and total; a layer that cannot reach its level is reported', () => {
    const ctrl = compress(smallGraph(), [magnitudeSparsity({ level: 0.95, ranking: 'layer', schedule: { type: 'constant' } })]);
    const s = ctrl.statistics().algorithms[0]!;
    expect(s.layers.map((l) => l.node)).toEqual(['conv1', 'conv2', 'fc1', 'fc2']);
    const fc2 = s.layers.find((l) => l.node === 'fc2')!;
    // fc2 has 8 weights: round(0.95·8) = 8 would empty it; it keeps one (7/8 = 87.5%).
    expect(fc2).toMatchObject({ weights: 8, zeros: 7, sparsity: 7 / 8, targetLevel: 0.95, reached: false });
    expect(s.layers.find((l) => l.node === 'conv1')).toMatchObject({ weights: 288, zeros: Math.round(0.95 * 288), reached: true });
    expect(s.skipped).toEqual([{ node: 'fc2', reason: expect.stringMatching(/^cannot reach level 0\.95: 8 weights, at most 7 zeroed \(87\.5%\)/) }]);
    expect(s.total['unreachedLayers']).toBe(1);
    const total = 288 + 64 + 32 + 8;
    const zeros = Math.round(0.95 * 288) + Math.round(0.95 * 64) + Math.round(0.95 * 32) + 7;
    expect(s.total).toMatchObject({ weights: total, zeros, level: 0.95, targetLevel: 0.95 });
    expect(s.total['sparsity']).toBeCloseTo(zeros / total, 12);
    ctrl.dispose();
  });

  it('ignoredScopes leave a layer dense', () => {
    const ctrl = compress(smallGraph(), [magnitudeSparsity({ level: 0.5, schedule: { type: 'constant' }, ignoredScopes: ['conv1'] })]);
    expect(zerosOf(weights(ctrl, 'conv1.weight'))).toEqual([]);
    expect(ctrl.statistics().algorithms[0]!.layers.map((l) => l.node)).toEqual(['conv2', 'fc1', 'fc2']);
    ctrl.dispose();
  });

  it('strip(): zeros in the weights, masks gone, the same outputs as the masked model', () => {
    const before = tf.memory().numTensors;
    const g = smallGraph();
    const ctrl = compress(g, [magnitudeSparsity({ level: 0.75, ranking: 'layer', schedule: { type: 'constant' } })]);
    const x = smallInput();
    const [ym] = ctrl.model.executor.run(x);
    const stripped = ctrl.strip();
    expect(stripped.nodes.map((n) => n.op)).toEqual(g.nodes.map((n) => n.op));
    expect(stripped.params.map((p) => p.name)).toEqual(g.params.map((p) => p.name));
    for (const n of WEIGHTS) {
      const a = paramArray(stripped, n);
      expect(zerosOf(a).length, n).toBe(Math.round(0.75 * a.length));
    }
    const ex = new Executor(stripped);
    const [ys] = ex.run(x);
    expect(maxAbsDiff(ys!, ym!)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, ym!, ys!]);
    ex.dispose();
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('state() / loadState(): a fresh controller resumes with the same masks and schedule position', () => {
    const a = compress(smallGraph(), [magnitudeSparsity({ level: 0.6, ranking: 'layer', schedule: { type: 'multistep', milestones: [1, 2], levels: [0.2, 0.4, 0.6] } })]);
    a.scheduler.step();
    a.scheduler.epochStep();
    const state = a.state();
    const b = compress(smallGraph(), [magnitudeSparsity({ level: 0.6, ranking: 'layer', schedule: { type: 'multistep', milestones: [1, 2], levels: [0.2, 0.4, 0.6] } })]);
    b.loadState(JSON.parse(JSON.stringify(state)));
    for (const n of WEIGHTS) expect(zerosOf(weights(b, n)), n).toEqual(zerosOf(weights(a, n)));
    expect(b.statistics().algorithms[0]!.total['level']).toBeCloseTo(0.4, 12);
    expect(b.state()).toEqual(state);
    a.dispose();
    b.dispose();
  });
});

describe('magnitudeSparsity with an adaptive schedule', () => {
  it('reportAccuracy() drives the level through the controller: up while accuracy holds, held when it drops', () => {
    const ctrl = compress(smallGraph(), [magnitudeSparsity({ level: 0.5, ranking: 'layer', schedule: { type: 'adaptive', initialLevel: 0.2, step: 0.1, maxDrop: 0.01 } })]);
    const level = (): number => Number(ctrl.statistics().algorithms[0]!.total['level']);
    const zeros = (): number => zerosOf(weights(ctrl, 'conv1.weight')).length;
    expect(level()).toBeCloseTo(0.2, 12);
    expect(zeros()).toBe(Math.round(0.2 * 288));
    expect(reportAccuracy(ctrl, 0.9)).toBe(1);
    ctrl.scheduler.epochStep();
    expect(level()).toBeCloseTo(0.3, 12);
    expect(zeros()).toBe(Math.round(0.3 * 288));
    reportAccuracy(ctrl, 0.8);
    ctrl.scheduler.epochStep();
    expect(level()).toBeCloseTo(0.3, 12);
    ctrl.dispose();
  });
});
