import { createRng } from '@tensorpress/core-tensor';
import { errorOf } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';
import { paretoFrontier, pickWithin, type Choice } from '../src/index.js';

/** Least total sensitivity within `budget` over every assignment, by enumeration. */
function bruteForce(layers: Choice[][], budget: number): { cost: number; sensitivity: number } | undefined {
  let best: { cost: number; sensitivity: number } | undefined;
  const rec = (i: number, cost: number, sens: number): void => {
    if (i === layers.length) {
      if (cost <= budget && (!best || sens < best.sensitivity || (sens === best.sensitivity && cost < best.cost))) best = { cost, sensitivity: sens };
      return;
    }
    for (const c of layers[i]!) rec(i + 1, cost + c.cost, sens + c.sensitivity);
  };
  rec(0, 0, 0);
  return best;
}

function randomInstance(seed: number): Choice[][] {
  const rng = createRng(seed);
  const n = 2 + rng.int(5);
  return Array.from({ length: n }, () => {
    const size = 1 + rng.int(3);
    const macs = 1 + rng.int(50);
    const base = rng.next() * 10;
    return [2, 4, 8].slice(0, size).map((b) => ({ value: b, cost: macs * b, sensitivity: base * 2 ** -b * (0.5 + rng.next()) }));
  });
}

describe('paretoFrontier / pickWithin', () => {
  it('equals brute force on 200 random small instances at many budgets', () => {
    for (let seed = 0; seed < 200; seed++) {
      const layers = randomInstance(seed);
      const front = paretoFrontier(layers);
      for (let i = 1; i < front.length; i++) {
        expect(front[i]!.cost).toBeGreaterThan(front[i - 1]!.cost);
        expect(front[i]!.sensitivity).toBeLessThan(front[i - 1]!.sensitivity);
      }
      const maxCost = layers.reduce((a, l) => a + Math.max(...l.map((c) => c.cost)), 0);
      for (const f of [0.1, 0.3, 0.5, 0.7, 0.9, 1]) {
        const budget = Math.round(maxCost * f);
        const want = bruteForce(layers, budget);
        if (!want) {
          expect(errorOf(() => pickWithin(front, budget)).code).toBe('TARGET_UNREACHABLE');
          continue;
        }
        const got = pickWithin(front, budget);
        expect(got.sensitivity).toBeCloseTo(want.sensitivity, 10);
        expect(got.cost).toBeLessThanOrEqual(budget);
        const recomputed = got.picks.reduce((a, p, i) => a + layers[i]![p]!.sensitivity, 0);
        expect(recomputed).toBeCloseTo(got.sensitivity, 10);
      }
    }
  });

  it('names the reachable range when no plan fits', () => {
    const front = paretoFrontier([[{ value: 2, cost: 10, sensitivity: 1 }, { value: 8, cost: 40, sensitivity: 0 }]]);
    const e = errorOf(() => pickWithin(front, 5, '$.budget.value', ' BOPs'));
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.message).toBe('$.budget.value: no plan meets the budget 5 BOPs: the cheapest plan costs 10 BOPs (the most precise 40 BOPs); raise the budget or allow lower bit widths');
  });
});
