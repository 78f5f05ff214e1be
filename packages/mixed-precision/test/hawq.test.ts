import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { hawqV2, planCost, quantizationError, quantizeWeight, weightLayers, type HutchinsonResult } from '../src/index.js';
import { randomData, smallCnn } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Hand-set traces so that the allocation can be checked without sampling. */
function traces(values: Record<string, number>): HutchinsonResult {
  return {
    layers: Object.entries(values).map(([node, trace]) => ({ node, weight: `${node}_w`, params: 1, trace, stdError: 0 })),
    iterations: 1,
    converged: true,
    relativeChange: 0,
    samples: 1,
    method: 'gauss-newton',
    warnings: [],
  };
}

describe('quantizeWeight', () => {
  it('quantizes each output channel symmetrically on hand-derived values', () => {
    // Two output channels (last axis): channel 0 max|w| = 1 -> scale 1/7 at 4 bits; channel 1 max 0.7 -> 0.1.
    const w = tf.tensor2d([[1, 0.7], [0.3, -0.36], [-0.45, 0.04]]);
    const q = quantizeWeight(w, 4).arraySync() as number[][];
    const want = [[1, 0.7], [2 / 7, -0.4], [-3 / 7, 0]];
    q.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, 6)));
    expect(quantizationError(w, 4)).toBeCloseTo((0.3 - 2 / 7) ** 2 + (0.45 - 3 / 7) ** 2 + 0.04 ** 2 + 0.04 ** 2, 6);
    w.dispose();
  });
});

describe('hawqV2', () => {
  const graph = smallCnn();
  const layers = weightLayers(graph);

  it('lists the weight layers with their MACs', () => {
    expect(layers.map((l) => [l.node, l.params, l.macs])).toEqual([
      ['conv1', 36, 36 * 36],
      ['conv2', 216, 216 * 36],
      ['fc', 216 * 3, 216 * 3],
    ]);
  });

  it('gives the most bits to the most sensitive layers within the BOPs budget', () => {
    const data = randomData(4, [6, 6, 1], 3);
    const t = traces({ conv1: 1, conv2: 1e-6, fc: 1 });
    const uniform4 = layers.reduce((a, l) => a + l.macs * 4 * 8, 0);
    const r = hawqV2(graph, data, { budget: { type: 'bops', value: uniform4 }, traces: t });
    const bits = Object.fromEntries(r.plan.map((e) => [e.node, e.weightBits]));
    // conv2 is nearly flat: it goes to 2 bits and pays for 8 bits elsewhere.
    expect(bits['conv2']).toBe(2);
    expect(bits['fc']).toBe(8);
    expect(r.chosen.cost).toBeLessThanOrEqual(uniform4);
    expect(planCost(graph, r.plan, { type: 'bops', value: uniform4 }).cost).toBe(r.chosen.cost);
    // Ω is trace × squared quantization error.
    const w = graph.param(layers[0]!.weight)!;
    const wt = tf.tensor(w.data as Float32Array, [...w.shape]);
    expect(r.layers[0]!.omega[4]).toBeCloseTo(quantizationError(wt, 4), 6);
    wt.dispose();
    // The frontier's least-Ω point within budget is the chosen one.
    const within = r.frontier.filter((p) => p.cost <= uniform4);
    expect(within[within.length - 1]!.sensitivity).toBe(r.chosen.sensitivity);
  });

  it('picks the least total Ω within the budget that enumeration over every plan finds', () => {
    const data = randomData(4, [6, 6, 1], 3);
    const budgetOf = (bits: number): number => layers.reduce((a, l) => a + l.macs * bits * 8, 0);
    const cands = [2, 4, 8];
    for (const [i, t] of [traces({ conv1: 1, conv2: 1e-3, fc: 0.5 }), traces({ conv1: 2e-4, conv2: 3, fc: 1e-2 }), traces({ conv1: 5, conv2: 5, fc: 1e-5 })].entries()) {
      for (const value of [budgetOf(2.5), budgetOf(3), budgetOf(4), budgetOf(6)]) {
        const budget = { type: 'bops' as const, value };
        const r = hawqV2(graph, data, { budget, traces: t });
        let best = Number.POSITIVE_INFINITY;
        for (let k = 0; k < cands.length ** layers.length; k++) {
          const bits = layers.map((_, li) => cands[Math.floor(k / cands.length ** li) % cands.length]!);
          const plan = layers.map((l, li) => ({ node: l.node, weightBits: bits[li]! }));
          if (planCost(graph, plan, budget).cost > value) continue;
          best = Math.min(best, bits.reduce((a, b, li) => a + r.layers[li]!.omega[b]!, 0));
        }
        expect(r.chosen.sensitivity, `traces ${i}, budget ${value}`).toBeCloseTo(best, 12);
        expect(planCost(graph, r.plan, budget).cost).toBeLessThanOrEqual(value);
      }
    }
  });

  it('supports bytes, averageBits and compressionRatio budgets, and liberal activations', () => {
    const data = randomData(4, [6, 6, 1], 3);
    const t = traces({ conv1: 1, conv2: 1, fc: 1 });
    const avg8 = hawqV2(graph, data, { budget: { type: 'averageBits', value: 8 }, traces: t });
    expect(avg8.plan.every((e) => e.weightBits === 8)).toBe(true);
    const ratio4 = hawqV2(graph, data, { budget: { type: 'compressionRatio', value: 4 }, traces: t });
    expect(ratio4.plan.every((e) => e.weightBits === 2)).toBe(true);
    const bytes = hawqV2(graph, data, { budget: { type: 'bytes', value: 10_000 }, traces: t, activationMode: 'liberal' });
    expect(bytes.plan.every((e) => e.activationBits === e.weightBits)).toBe(true);
  });

  it('estimates traces itself when none are given', () => {
    const r = hawqV2(graph, randomData(16, [6, 6, 1], 3), { budget: { type: 'averageBits', value: 4 }, hutchinson: { samples: 16, minIterations: 3, maxIterations: 3 } });
    expect(r.traces.iterations).toBe(3);
    expect(r.plan).toHaveLength(3);
  });

  it('rejects a budget no plan meets, bits outside 2-8 and unknown fixed layers', () => {
    const data = randomData(4, [6, 6, 1], 3);
    const t = traces({ conv1: 1, conv2: 1, fc: 1 });
    const all2 = layers.reduce((a, l) => a + l.macs * 2 * 8, 0);
    const e = errorOf(() => hawqV2(graph, data, { budget: { type: 'bops', value: all2 - 1 }, traces: t }));
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.message).toMatch(/cheapest plan costs/);
    expect(errorOf(() => hawqV2(graph, data, { budget: { type: 'bops', value: 1e9 }, bits: [1, 4], traces: t })).message).toMatch(/\$\.bits\[0\].*integers from 2 to 8, got 1/);
    expect(errorOf(() => hawqV2(graph, data, { budget: { type: 'bops', value: 1e9 }, bits: [4, 16], traces: t })).message).toMatch(/got 16/);
    expect(errorOf(() => hawqV2(graph, data, { budget: { type: 'bops', value: 1e9 }, fixed8: ['nope'], traces: t })).message).toMatch(/\$\.fixed8\[0\]/);
  });
});
