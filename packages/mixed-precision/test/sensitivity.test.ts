import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend, type Dataset } from '@tensorpress/core-tensor';
import { errorOf, expectNoLeak, runOutput } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { SENSITIVITY_METHODS, binarizeWeight, estimateFlopsReduction, weightLayers, filterMask, pruningPlan, ratioWithin, sensitivity, sensitivityChart, sparsifyWeight, type SensitivityResult } from '../src/index.js';
import { addCnn, randomData, selfLabelled, smallCnn } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('weight transforms', () => {
  it('sparsify, filter masks and binarize on hand-derived tensors', () => {
    const w = tf.tensor2d([[0.1, -2], [-0.4, 1], [0.3, 0.5]]);
    // |w| ascending: 0.1, 0.3, 0.4 | 0.5, 1, 2: the three smallest go.
    expect(Array.from(sparsifyWeight(w, 0.5).dataSync(), (v) => v + 0)).toEqual([0, -2, 0, 1, 0, 0.5]);
    // L1 per output channel (column): 0.8 and 3.5 -> the first goes.
    expect(Array.from(filterMask(w, 0.5).dataSync())).toEqual([0, 1]);
    const bin = binarizeWeight(w, 'binary').arraySync() as number[][];
    const a0 = 0.8 / 3;
    const a1 = 3.5 / 3;
    [[a0, -a1], [-a0, a1], [a0, a1]].forEach((row, i) => row.forEach((v, j) => expect(bin[i]![j]!).toBeCloseTo(v, 6)));
    // TWN: Δ = 0.7·mean|w| = 0.1867 (col 0), 0.8167 (col 1); α = mean of |w| over |w| > Δ.
    const ter = binarizeWeight(w, 'ternary').arraySync() as number[][];
    [[0, -1.5], [-0.35, 1.5], [0.35, 0]].forEach((row, i) => row.forEach((v, j) => expect(ter[i]![j]!).toBeCloseTo(v, 6)));
    w.dispose();
  });
});

describe('sensitivity', () => {
  const graph = smallCnn();
  let data: Dataset;
  beforeAll(() => {
    data = selfLabelled(graph, randomData(64, [6, 6, 1], 3), runOutput);
  });

  it('measures every (layer, level) against a baseline, leaving the graph untouched and leaking nothing', async () => {
    const before = runOutput(graph, tf.ones([1, 6, 6, 1]));
    const r = await expectNoLeak(() => sensitivity(graph, data, 'quantization', [2, 8]));
    expect(r.baseline).toBe(1);
    expect(r.rows.map((x) => x.node)).toEqual(['conv1', 'conv2', 'fc']);
    for (const row of r.rows) {
      expect(row.levels.map((l) => l.level)).toEqual([2, 8]);
      for (const l of row.levels) expect(l.drop).toBeCloseTo(r.baseline - l.value, 12);
      // 8 bits barely changes anything; 2 bits is never better than 8.
      expect(row.levels[1]!.drop).toBeLessThanOrEqual(row.levels[0]!.drop + 1e-9);
    }
    expect(runOutput(graph, tf.ones([1, 6, 6, 1]))).toEqual(before);
  });

  it('prunes whole filters: ratio 0 changes nothing, removing all but one hurts; the output layer is skipped with its reason', () => {
    const r = sensitivity(graph, data, 'filter_pruning', [0, 0.75], { metric: 'loss' });
    expect(r.rows.map((x) => x.node)).toEqual(['conv1', 'conv2']);
    expect(r.skipped).toEqual([{ node: 'fc', reason: 'its filters are model outputs (removing one changes the output shape)' }]);
    for (const row of r.rows) expect(row.levels[0]!.drop).toBeCloseTo(0, 6);
    expect(r.rows[0]!.levels[1]!.drop).toBeGreaterThan(0);
  });

  it('covers sparsity and binarization, and a custom compressor', () => {
    expect(sensitivity(graph, data, 'sparsity', [0.5]).rows).toHaveLength(3);
    expect(sensitivity(graph, data, 'binarization', [1, 2]).levels).toEqual([1, 2]);
    const zero = { name: 'zero', apply: (_g: unknown, l: { weight: string }, w: tf.Tensor) => new Map([[l.weight, tf.zerosLike(w)]]) };
    const r = sensitivity(graph, data, zero, [1], { layers: ['fc'] });
    expect(r.method).toBe('zero');
    expect(r.rows[0]!.levels[0]!.value).toBeLessThan(1);
  });

  it('rejects bad levels, methods and layers with the JSON path', () => {
    expect(errorOf(() => sensitivity(graph, data, 'quantization', [1])).message).toMatch(/\$\.levels\[0\].*integers from 2 to 8; got 1/);
    expect(errorOf(() => sensitivity(graph, data, 'filter_pruning', [0.5, 1])).message).toMatch(/\$\.levels\[1\]/);
    expect(errorOf(() => sensitivity(graph, data, 'nope' as 'sparsity', [0.5])).message).toMatch(/unknown method "nope"/);
    expect(errorOf(() => sensitivity(graph, data, 'sparsity', [0.5], { layers: ['x'] })).message).toMatch(/\$\.layers\[0\]/);
  });

  it('prunes a group of coupled producers together: the same filters of each, one row per group', () => {
    const g = addCnn();
    const layers = weightLayers(g).filter((l) => l.node !== 'fc');
    const ex = new Executor(g);
    const out = new Map(tf.tidy(() => [...SENSITIVITY_METHODS.filter_pruning.applyGroup!(g, layers, 0.5, (p) => ex.paramValue(p)).entries()]));
    const zeroCols = (name: string): number[] => {
      const w = out.get(name)!;
      const cols = w.shape[w.rank - 1]!;
      const d = w.dataSync();
      return Array.from({ length: cols }, (_, c) => c).filter((c) => Array.from(d).every((v, i) => i % cols !== c || v === 0));
    };
    expect(zeroCols(layers[0]!.weight)).toHaveLength(2);
    expect(zeroCols(layers[1]!.weight)).toEqual(zeroCols(layers[0]!.weight));
    for (const t of out.values()) t.dispose();
    ex.dispose();
    const d = selfLabelled(g, randomData(32, [4, 4, 1], 3), runOutput);
    const r = sensitivity(g, d, 'filter_pruning', [0.5], { groups: [['a', 'b']] });
    expect(r.rows).toHaveLength(1);
    expect(r.rows[0]).toMatchObject({ node: 'a', members: ['a', 'b'] });
    expect(errorOf(() => sensitivity(g, d, 'filter_pruning', [0.5], { groups: [['a', 'zz']] })).message).toMatch(/\$\.groups\[0\]\[1\]/);
  });

  it('draws an SVG heat map', () => {
    const svg = sensitivityChart(sensitivity(graph, data, 'sparsity', [0.5, 0.9]));
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('conv2');
    expect((svg.match(/<rect /g) ?? []).length).toBe(1 + 3 * 2);
  });
});

describe('pruning plans', () => {
  const graph = smallCnn();

  it('interpolates the largest ratio within a threshold', () => {
    const levels = [{ level: 0.25, drop: 0.01 }, { level: 0.5, drop: 0.03 }, { level: 0.75, drop: 0.2 }];
    expect(ratioWithin(levels, 0.01)).toBeCloseTo(0.25, 12);
    expect(ratioWithin(levels, 0.02)).toBeCloseTo(0.375, 12);
    expect(ratioWithin(levels, 0.005)).toBeCloseTo(0.125, 12);
    expect(ratioWithin(levels, 1)).toBe(0.75);
  });

  it('estimates FLOPs through BN, activations and Flatten', () => {
    // MACs: conv1 1296, conv2 7776, fc 648. conv1 at 0.5: conv1 and conv2 halve.
    expect(estimateFlopsReduction(graph, new Map([['conv1', 0.5]]))).toBeCloseTo((648 + 3888) / 9720, 12);
    expect(estimateFlopsReduction(graph, new Map([['conv2', 0.5]]))).toBeCloseTo((3888 + 324) / 9720, 12);
  });

  it('spends the FLOPs target on the least sensitive layers', () => {
    const analysis: SensitivityResult = {
      method: 'filter_pruning',
      metric: 'accuracy',
      baseline: 1,
      samples: 1,
      levels: [0.25, 0.5, 0.75],
      skipped: [],
      rows: [
        { node: 'conv1', op: 'Conv', params: 36, macs: 1296, levels: [{ level: 0.25, value: 0, drop: 0.1 }, { level: 0.5, value: 0, drop: 0.3 }, { level: 0.75, value: 0, drop: 0.6 }] },
        { node: 'conv2', op: 'Conv', params: 216, macs: 7776, levels: [{ level: 0.25, value: 0, drop: 0.001 }, { level: 0.5, value: 0, drop: 0.002 }, { level: 0.75, value: 0, drop: 0.01 }] },
      ],
    };
    const p = pruningPlan(graph, analysis, { flopsReduction: 0.4 });
    expect(p.estimatedFlopsReduction).toBeGreaterThanOrEqual(0.4 - 1e-9);
    const ratio = Object.fromEntries(p.plan.map((e) => [e.node, e.ratio]));
    // conv2 alone at r removes (7776 + 648)·r of 9720 MACs (its own and the fc's inputs): r = 0.4615;
    // conv1 takes the sliver its linear drop curve allows at the same threshold.
    expect(ratio['conv2']).toBeGreaterThan(0.45);
    expect(ratio['conv2']).toBeLessThanOrEqual(0.4616);
    expect(ratio['conv1']).toBeLessThan(0.01);
    const e = errorOf(() => pruningPlan(graph, analysis, { flopsReduction: 0.95 }));
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.message).toMatch(/removes about \d+\.\d% of the FLOPs/);
  });
});
