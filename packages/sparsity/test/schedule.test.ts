import { scheduleFreezeEpoch, scheduleLevel, scheduleSchema, SparsityScheduler } from '@tensorpress/sparsity';
import { describe, expect, it } from 'vitest';

const parse = (s: unknown) => scheduleSchema.parse(s);

describe('scheduleLevel', () => {
  it('polynomial per epoch: s_f + (s_i − s_f)(1 − (e − b)/(T − b))^p, clipped', () => {
    const s = parse({ type: 'polynomial', initialLevel: 0.1, beginEpoch: 1, targetEpoch: 5, power: 3 });
    for (let e = 0; e <= 7; e++) {
      const p = Math.min(1, Math.max(0, (e - 1) / 4));
      expect(scheduleLevel(s, 0.8, { epoch: e, step: 0 })).toBeCloseTo(0.8 + (0.1 - 0.8) * (1 - p) ** 3, 12);
      // Per epoch: steps inside an epoch do not move it.
      expect(scheduleLevel(s, 0.8, { epoch: e, step: 7 })).toBe(scheduleLevel(s, 0.8, { epoch: e, step: 0 }));
    }
    expect(scheduleLevel(s, 0.8, { epoch: 5, step: 0 })).toBe(0.8);
    expect(scheduleFreezeEpoch(s)).toBe(5);
  });

  it('polynomial per step: fractional epochs, any power', () => {
    const s = parse({ type: 'polynomial', targetEpoch: 2, power: 2, perStep: true, stepsPerEpoch: 10 });
    for (const [epoch, step] of [[0, 0], [0, 5], [1, 3], [1, 9], [2, 0]] as const) {
      const p = Math.min(1, (epoch + step / 10) / 2);
      expect(scheduleLevel(s, 0.9, { epoch, step })).toBeCloseTo(0.9 * (1 - (1 - p) ** 2), 12);
    }
  });

  it('exponential: 1 − (1 − s_i)e^(−kt) with k = ln((1 − s_i)/(1 − s_f))/T', () => {
    const s = parse({ type: 'exponential', initialLevel: 0.2, targetEpoch: 4 });
    const k = Math.log(0.8 / 0.05) / 4;
    for (let e = 0; e < 4; e++) expect(scheduleLevel(s, 0.95, { epoch: e, step: 0 })).toBeCloseTo(1 - 0.8 * Math.exp(-k * e), 12);
    expect(scheduleLevel(s, 0.95, { epoch: 4, step: 0 })).toBe(0.95);
    expect(scheduleLevel(s, 0.95, { epoch: 9, step: 0 })).toBe(0.95);
    expect(scheduleLevel(s, 0.95, { epoch: 0, step: 0 })).toBeCloseTo(0.2, 12);
  });

  it('multistep: the level of the last milestone passed', () => {
    const s = parse({ type: 'multistep', milestones: [2, 4], levels: [0.1, 0.5, 0.7] });
    expect([0, 1, 2, 3, 4, 5].map((e) => scheduleLevel(s, 0.7, { epoch: e, step: 0 }))).toEqual([0.1, 0.1, 0.5, 0.5, 0.7, 0.7]);
    const short = parse({ type: 'multistep', milestones: [1, 3], levels: [0.3, 0.6] });
    expect([0, 1, 2, 3].map((e) => scheduleLevel(short, 0.6, { epoch: e, step: 0 }))).toEqual([0, 0.3, 0.3, 0.6]);
    expect(scheduleFreezeEpoch(s)).toBe(4);
  });

  it('constant: the target from the start, masks final at once', () => {
    const s = parse({ type: 'constant' });
    expect(scheduleLevel(s, 0.75, { epoch: 0, step: 0 })).toBe(0.75);
    expect(scheduleFreezeEpoch(s)).toBe(0);
  });
});

describe('SparsityScheduler', () => {
  it('asks for masks at the start and at every epoch end up to the freeze epoch, then never', () => {
    const seen: number[] = [];
    const s = new SparsityScheduler(parse({ type: 'polynomial', targetEpoch: 3, power: 1 }), 0.6, (l) => seen.push(l));
    s.start();
    for (let e = 0; e < 5; e++) {
      for (let i = 0; i < 4; i++) s.step();
      s.epochStep();
    }
    expect(seen.map((v) => +v.toFixed(10))).toEqual([0, 0.2, 0.4, 0.6]);
    expect(s.frozen).toBe(true);
  });

  it('per step: every updateEvery steps, the final level once at the fractional freeze epoch', () => {
    const seen: number[] = [];
    const s = new SparsityScheduler(
      parse({ type: 'polynomial', targetEpoch: 0.5, power: 1, perStep: true, stepsPerEpoch: 8, updateEvery: 2 }),
      0.8,
      (l) => seen.push(l),
    );
    s.start();
    for (let i = 0; i < 8; i++) s.step();
    // Progress p = steps/4: updates at steps 2 and 4 (the final one), none after.
    expect(seen.map((v) => +v.toFixed(10))).toEqual([0, 0.4, 0.8]);
    s.epochStep();
    expect(seen).toHaveLength(3);
  });

  it('adaptive: raises the level while accuracy stays within maxDrop of the reference, holds it otherwise', () => {
    const s = new SparsityScheduler(parse({ type: 'adaptive', initialLevel: 0.3, step: 0.1, maxDrop: 0.01 }), 0.55, () => undefined);
    expect(s.level).toBe(0.3);
    s.reportAccuracy(0.9);
    s.epochStep();
    expect(s.level).toBeCloseTo(0.4, 12);
    s.reportAccuracy(0.895);
    s.epochStep();
    expect(s.level).toBeCloseTo(0.5, 12);
    s.reportAccuracy(0.85);
    s.epochStep();
    expect(s.level).toBeCloseTo(0.5, 12);
    s.reportAccuracy(0.9);
    s.epochStep();
    expect(s.level).toBe(0.55);
  });

  it('state() and loadState() resume the counters and the adaptive level', () => {
    const a = new SparsityScheduler(parse({ type: 'adaptive', step: 0.2 }), 0.9, () => undefined);
    a.reportAccuracy(0.8);
    a.epochStep();
    a.step();
    const b = new SparsityScheduler(parse({ type: 'adaptive', step: 0.2 }), 0.9, () => undefined);
    b.loadState(a.state());
    expect(b.state()).toEqual(a.state());
    expect(b.level).toBeCloseTo(0.2, 12);
  });
});
