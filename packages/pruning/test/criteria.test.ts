import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import {
  fpgmImportance,
  keepHighest,
  l1Importance,
  l2Importance,
  normalizeScores,
  optSlimPrunedCount,
  roundedKeep,
  selectFilters,
  slimImportance,
} from '@tensorpress/pruning';
import { expectClose, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

// Gemm weight [in, out]: filters are columns f0 = (1, 3), f1 = (-2, 1), f2 = (0, 1).
const W = [
  [1, -2, 0],
  [3, 1, 1],
];

function values(fn: (w: tf.Tensor) => tf.Tensor, w: tf.Tensor): number[] {
  const t = fn(w);
  const out = Array.from(t.dataSync());
  t.dispose();
  return out;
}

describe('l1Importance', () => {
  it('sums |w| per output channel (last axis) of Gemm and Conv weights', async () => {
    await expectNoLeak(() => {
      const gemm = tf.tensor2d(W);
      expect(values(l1Importance, gemm)).toEqual([4, 3, 1]);
      const conv = tf.reshape(gemm, [1, 1, 2, 3]);
      expect(values(l1Importance, conv)).toEqual([4, 3, 1]);
      // [kh=2, kw=1, cin=1, cout=2]: filter 0 is (W[0,0,0,0], W[1,0,0,0]) = (1, -5).
      const tall = tf.tensor4d([1, 2, -5, 7], [2, 1, 1, 2]);
      expect(values(l1Importance, tall)).toEqual([6, 9]);
      tf.dispose([gemm, conv, tall]);
    });
  });
});

describe('l2Importance', () => {
  it('is the Euclidean norm of each filter', async () => {
    await expectNoLeak(() => {
      const gemm = tf.tensor2d(W);
      expectClose(values(l2Importance, gemm), [Math.sqrt(10), Math.sqrt(5), 1]);
      gemm.dispose();
    });
  });
});

describe('fpgmImportance', () => {
  it('is each filter’s summed distance to the other filters of its layer', async () => {
    // d01 = |(3, 2)| = √13, d02 = |(1, 2)| = √5, d12 = |(−2, 0)| = 2.
    await expectNoLeak(() => {
      const conv = tf.tidy(() => tf.reshape(tf.tensor2d(W), [1, 1, 2, 3]));
      const s = values(fpgmImportance, conv);
      expectClose(s, [Math.sqrt(13) + Math.sqrt(5), Math.sqrt(13) + 2, Math.sqrt(5) + 2]);
      // f2 is nearest the geometric median: it ranks lowest, so it is pruned first.
      expect(s.indexOf(Math.min(...s))).toBe(2);
      conv.dispose();
    });
  });
});

describe('slimImportance', () => {
  it('is |γ|', async () => {
    await expectNoLeak(() => {
      const g = tf.tensor1d([0.5, -2, 0]);
      expect(values(slimImportance, g)).toEqual([0.5, 2, 0]);
      g.dispose();
    });
  });
});

describe('optSlimPrunedCount', () => {
  // |γ| sorted: 0.05 0.1 0.2 0.5 1.0; squares .0025 .01 .04 .25 1, Σ 1.3025;
  // cumulative shares .00192 .00960 .04031 .23225 1.
  const gamma = [0.1, -0.5, 0.2, 1.0, 0.05];
  it('cuts where the cumulative share of Σγ² first passes the ratio', () => {
    expect(optSlimPrunedCount(gamma, 0)).toBe(0);
    expect(optSlimPrunedCount(gamma, 0.005)).toBe(1);
    expect(optSlimPrunedCount(gamma, 0.01)).toBe(2);
    expect(optSlimPrunedCount(gamma, 0.05)).toBe(3);
    expect(optSlimPrunedCount(gamma, 0.3)).toBe(4);
  });
  it('prunes nothing when every γ is zero', () => {
    expect(optSlimPrunedCount([0, 0, 0], 0.5)).toBe(0);
  });
  it('selects by the energy rule through selectFilters', () => {
    const keep = selectFilters([{ id: 'bn', blocks: 1, scores: gamma.map(Math.abs) }], 0.05, { rule: 'energy' });
    // The three smallest (0.05 at 4, 0.1 at 0, 0.2 at 2) go.
    expect(keep.get('bn')).toEqual([1, 3]);
  });
});

describe('selectFilters', () => {
  it('per layer: prunes floor(ratio·C) lowest scores of each group', () => {
    const keep = selectFilters(
      [
        { id: 'a', blocks: 1, scores: [4, 3, 1] },
        { id: 'b', blocks: 1, scores: [1, 5, 2, 8] },
      ],
      0.5,
    );
    expect(keep.get('a')).toEqual([0, 1]);
    expect(keep.get('b')).toEqual([1, 3]);
  });

  it('global: ranks scores divided by each group’s RMS together', () => {
    // a / rms(a) = .365 .730 1.095 1.461; b / rms(b) = .343 1.372; three lowest: b0, a0, a1.
    expect(normalizeScores([10, 40]).map((v) => Math.round(v * 1000))).toEqual([343, 1372]);
    const keep = selectFilters(
      [
        { id: 'a', blocks: 1, scores: [1, 2, 3, 4] },
        { id: 'b', blocks: 1, scores: [10, 40] },
      ],
      0.5,
      { ranking: 'global' },
    );
    expect(keep.get('a')).toEqual([2, 3]);
    expect(keep.get('b')).toEqual([1]);
  });

  it('never removes a whole group', () => {
    expect(selectFilters([{ id: 'a', blocks: 1, scores: [1, 2] }], 0.99).get('a')).toEqual([1]);
  });

  it('regular mode keeps a multiple of N, or everything', () => {
    expect(roundedKeep(32, 10, 1, 'regular', 8)).toBe(24);
    expect(roundedKeep(16, 1, 1, 'regular', 8)).toBe(16);
    expect(roundedKeep(16, 15, 1, 'regular', 8)).toBe(8);
    const keep = selectFilters([{ id: 'a', blocks: 1, scores: Array.from({ length: 32 }, (_, i) => i) }], 0.3, { mode: 'regular', multipleOf: 8 });
    expect(keep.get('a')).toEqual(Array.from({ length: 24 }, (_, i) => i + 8));
  });

  it('group mode keeps the same number in every block, the highest of each', () => {
    expect(roundedKeep(8, 5, 2, 'group', 8)).toBe(4);
    expect(keepHighest([5, 1, 2, 8, 3, 9, 4, 0], 4, 2)).toEqual([0, 3, 5, 6]);
    const keep = selectFilters([{ id: 'g', blocks: 2, scores: [5, 1, 2, 8, 3, 9, 4, 0] }], 0.5, { mode: 'group' });
    expect(keep.get('g')).toEqual([0, 3, 5, 6]);
  });

  it('ties keep the lower index', () => {
    expect(keepHighest([1, 1, 1], 2)).toEqual([0, 1]);
  });
});
