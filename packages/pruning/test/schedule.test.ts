import { PruningScheduler, freezeEpoch, pruningLevel } from '@tensorpress/pruning';
import { describe, expect, it } from 'vitest';

describe('pruningLevel', () => {
  it('one-shot: the target from the start', () => {
    expect(pruningLevel({ type: 'one_shot' }, 0.5, 0)).toBe(0.5);
    expect(freezeEpoch({ type: 'one_shot' })).toBe(0);
  });

  it('baseline: the initial level for initSteps epochs, then the target', () => {
    const s = { type: 'baseline' as const, initialLevel: 0.1, initSteps: 2 };
    expect([0, 1, 2, 3].map((e) => pruningLevel(s, 0.5, e))).toEqual([0.1, 0.1, 0.5, 0.5]);
    expect(freezeEpoch(s)).toBe(2);
  });

  it('exponential: 1 − (1 − init)·e^(−k·t) from init to the target over `steps` epochs', () => {
    const s = { type: 'exponential' as const, initialLevel: 0, steps: 2 };
    // k = ln(1 / 0.5) / 2: level(1) = 1 − √0.5.
    expect(pruningLevel(s, 0.5, 0)).toBeCloseTo(0, 12);
    expect(pruningLevel(s, 0.5, 1)).toBeCloseTo(1 - Math.SQRT1_2, 12);
    expect(pruningLevel(s, 0.5, 2)).toBe(0.5);
    expect(pruningLevel(s, 0.5, 9)).toBe(0.5);
    expect(freezeEpoch(s)).toBe(2);
    expect(freezeEpoch({ ...s, freezeEpoch: 1 })).toBe(1);
  });
});

describe('PruningScheduler', () => {
  it('asks for new masks at each epoch end until the freeze epoch, then never again', () => {
    const calls: [number, number][] = [];
    const s = new PruningScheduler({ type: 'exponential', steps: 2 }, 0.5, (level, epoch) => calls.push([epoch, level]));
    expect(s.frozen).toBe(false);
    s.step();
    expect(s.stepInEpoch).toBe(1);
    for (let e = 0; e < 4; e++) s.epochStep();
    expect(calls.map((c) => c[0])).toEqual([1, 2]);
    expect(calls[1]![1]).toBe(0.5);
    expect(s.frozen).toBe(true);
    expect(s.stepInEpoch).toBe(0);
  });
});
