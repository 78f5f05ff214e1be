import * as tf from '@tensorflow/tfjs-core';
import { Executor, compress, fit, useBackend } from '@tensorpress/core-tensor';
import { evalGate, l0Sparsity, nonZeroProbability, rbSparsity, sampleGate } from '@tensorpress/sparsity';
import { expectClose, maxAbsDiff } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { smallData, smallGraph, smallInput } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const B = 2 / 3;
const G = -0.1;
const Z = 1.1;
const sig = (x: number): number => 1 / (1 + Math.exp(-x));
const clamp01 = (x: number): number => Math.min(1, Math.max(0, x));
const LOG_ALPHAS = [-4, -2.4, -1, -0.3, 0, 0.2, 1, 2.5, 6];

describe('hard-concrete gates', () => {
  it('sampleGate: z = clamp(σ((log u − log(1 − u) + log α)/β)(ζ − γ) + γ, 0, 1)', () => {
    const us = [0.001, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999, 0.42, 0.05];
    const la = tf.tensor1d(LOG_ALPHAS);
    const u = tf.tensor1d(us);
    const want = LOG_ALPHAS.map((a, i) => clamp01(sig((Math.log(us[i]!) - Math.log(1 - us[i]!) + a) / B) * (Z - G) + G));
    const z = sampleGate(la, u);
    expectClose(z, want);
    tf.dispose([la, u, z]);
  });

  it('evalGate: z = clamp(σ(log α)(ζ − γ) + γ, 0, 1), exactly 0 and 1 at the ends', () => {
    const la = tf.tensor1d(LOG_ALPHAS);
    const z = evalGate(la);
    const want = LOG_ALPHAS.map((a) => clamp01(sig(a) * (Z - G) + G));
    expectClose(z, want);
    const got = z.dataSync();
    expect(got[0]).toBe(0); // σ(−4)·1.2 − 0.1 < 0
    expect(got[8]).toBe(1);
    tf.dispose([la, z]);
  });

  it('the expected-L0 term P(z ≠ 0) = σ(log α − β log(−γ/ζ)) and its gradient', () => {
    const la = tf.tensor1d(LOG_ALPHAS);
    const p = nonZeroProbability(la);
    const shift = B * Math.log(-G / Z);
    expectClose(p, LOG_ALPHAS.map((a) => sig(a - shift)));
    const g = tf.grad((x: tf.Tensor) => tf.sum(nonZeroProbability(x)))(la);
    expectClose(g, LOG_ALPHAS.map((a) => sig(a - shift) * (1 - sig(a - shift))));
    tf.dispose([la, p, g]);
  });

  it('seeded samples follow the distribution: P(z = 0) and P(z = 1) against closed forms', () => {
    const n = 40000;
    for (const a of [-1, 0.5, 2]) {
      const la = tf.fill([n], a);
      const u = tf.randomUniform([n], 1e-6, 1 - 1e-6, 'float32', 123);
      const z = sampleGate(la, u).dataSync();
      const p0 = z.filter((v) => v === 0).length / n;
      const p1 = z.filter((v) => v === 1).length / n;
      expect(Math.abs(p0 - (1 - sig(a - B * Math.log(-G / Z))))).toBeLessThan(0.01);
      expect(Math.abs(p1 - sig(a - B * Math.log((1 - G) / (Z - 1))))).toBeLessThan(0.01);
      tf.dispose([la, u]);
    }
  });
});

describe('l0Sparsity', () => {
  it('loss() is λ·mean P(z ≠ 0) and its gradient reaches log α through gateScale', () => {
    const ctrl = compress(smallGraph(), [l0Sparsity({ lambda: 0.3, initLogAlpha: 1.5, gateScale: 4 })]);
    const shift = B * Math.log(-G / Z);
    const loss = ctrl.loss({} as never);
    expect(loss.dataSync()[0]).toBeCloseTo(0.3 * sig(1.5 - shift), 6);
    const vars = ctrl.trainableVariables();
    const total = vars.reduce((a, v) => a + v.size, 0);
    expect(total).toBe(288 + 64 + 32 + 8);
    const { grads } = tf.variableGrads(() => ctrl.loss({} as never), vars as tf.Variable[]);
    const s = sig(1.5 - shift);
    for (const v of vars) expectClose(grads[v.name]!, new Array(v.size).fill((0.3 * 4 * s * (1 - s)) / total), { atol: 1e-9 });
    tf.dispose([loss, ...Object.values(grads)]);
    ctrl.dispose();
  });

  it('seeded: the same seed gives the same training-mode outputs, another seed others; eval is deterministic', () => {
    const x = smallInput();
    const run = (seed: number, training: boolean): Float32Array => {
      const c = compress(smallGraph(), [l0Sparsity({ seed, initLogAlpha: 0 })]);
      const [y] = c.model.executor.run(x, { training, updateStats: false });
      const out = y!.dataSync() as Float32Array;
      y!.dispose();
      c.dispose();
      return out;
    };
    expect(run(7, true)).toEqual(run(7, true));
    expect(maxAbsDiff(run(7, true), run(8, true))).toBeGreaterThan(1e-4);
    expect(run(7, false)).toEqual(run(8, false));
    x.dispose();
  });

  it('training closes gates; strip() zeroes them, drops the gates and matches the eval model', async () => {
    const before = tf.memory().numTensors;
    const ctrl = compress(smallGraph(), [l0Sparsity({ lambda: 5, gateScale: 20, initLogAlpha: 1 })]);
    await fit(ctrl.model.executor, smallData(), { epochs: 4, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.02 }, controller: ctrl, progress: false });
    const s = ctrl.statistics().algorithms[0]!;
    expect(s.total['sparsity']).toBeGreaterThan(0.3);
    const x = smallInput();
    const [ye] = ctrl.model.executor.run(x);
    const stripped = ctrl.strip();
    let zeros = 0;
    for (const l of s.layers) zeros += Array.from(stripped.param(String(l['weight']))!.data as Float32Array).filter((v) => v === 0).length;
    expect(zeros).toBe(s.total['zeros']);
    expect(stripped.params.length).toBe(smallGraph().params.length);
    const ex = new Executor(stripped);
    const [ys] = ex.run(x);
    expect(maxAbsDiff(ys!, ye!)).toBeLessThanOrEqual(1e-6);
    tf.dispose([x, ye!, ys!]);
    ex.dispose();
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('state(): the noise stream resumes', () => {
    const x = smallInput();
    const a = compress(smallGraph(), [l0Sparsity({ seed: 3, initLogAlpha: 0 })]);
    tf.dispose(a.model.executor.run(x, { training: true, updateStats: false }));
    const state = JSON.parse(JSON.stringify(a.state()));
    const [ya] = a.model.executor.run(x, { training: true, updateStats: false });
    const b = compress(smallGraph(), [l0Sparsity({ seed: 3, initLogAlpha: 0 })]);
    b.loadState(state);
    const [yb] = b.model.executor.run(x, { training: true, updateStats: false });
    expect(yb!.dataSync()).toEqual(ya!.dataSync());
    tf.dispose([x, ya!, yb!]);
    a.dispose();
    b.dispose();
  });
});

describe('freezeStep', () => {
  it('after freezeStep steps the gates are deterministic, log α stops, the penalty is 0, the weights train on', async () => {
    const before = tf.memory().numTensors;
    const ctrl = compress(smallGraph(), [l0Sparsity({ lambda: 5, gateScale: 20, initLogAlpha: 1, freezeStep: 4 })]);
    const theta = (): number[] => ctrl.trainableVariables().flatMap((v) => Array.from(v.dataSync()));
    const x = smallInput();
    // 4 steps (batch 8 of 32): the gates train, then freeze at the epoch's end.
    await fit(ctrl.model.executor, smallData(), { epochs: 1, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.02 }, controller: ctrl, progress: false });
    const t4 = theta();
    expect(t4.some((v) => Math.abs(v - 1 / 20) > 1e-4)).toBe(true);
    expect(ctrl.statistics().algorithms[0]!.total['frozen']).toBe(true);
    const loss = ctrl.loss({} as never);
    expect(loss.dataSync()[0]).toBe(0);
    // Training mode now multiplies by the deterministic gate: no noise, the same as eval.
    const [yt] = ctrl.model.executor.run(x, { training: true, updateStats: false });
    const [ye] = ctrl.model.executor.run(x);
    expect(maxAbsDiff(yt!, ye!)).toBeLessThanOrEqual(1e-6);
    const param = String(ctrl.statistics().algorithms[0]!.layers[0]!['weight']);
    const w = (): number[] => Array.from(ctrl.model.executor.variables().get(param)!.dataSync());
    const w4 = w();
    await fit(ctrl.model.executor, smallData(), { epochs: 1, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.02 }, controller: ctrl, progress: false });
    expect(theta()).toEqual(t4);
    expect(maxAbsDiff(w(), w4)).toBeGreaterThan(1e-4);
    // A fresh controller resumed from the state freezes at the same point.
    const state = JSON.parse(JSON.stringify(ctrl.state()));
    const b = compress(smallGraph(), [l0Sparsity({ lambda: 5, gateScale: 20, initLogAlpha: 1, freezeStep: 4 })]);
    expect(b.statistics().algorithms[0]!.total['frozen']).toBe(false);
    b.loadState(state);
    expect(b.statistics().algorithms[0]!.total['frozen']).toBe(true);
    tf.dispose([loss, x, yt!, ye!]);
    b.dispose();
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rbSparsity freezes too; without freezeStep the gates keep training', async () => {
    const rb = compress(smallGraph(), [rbSparsity({ level: 0.5, gateScale: 10, freezeStep: 2 })]);
    await fit(rb.model.executor, smallData(16), { epochs: 1, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.03 }, controller: rb, progress: false });
    expect(rb.statistics().algorithms[0]!.total['frozen']).toBe(true);
    const l = rb.loss({} as never);
    expect(l.dataSync()[0]).toBe(0);
    l.dispose();
    rb.dispose();
    const free = compress(smallGraph(), [l0Sparsity({ lambda: 5, gateScale: 20 })]);
    await fit(free.model.executor, smallData(16), { epochs: 1, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.02 }, controller: free, progress: false });
    expect(free.statistics().algorithms[0]!.total['frozen']).toBe(false);
    free.dispose();
  });
});

describe('rbSparsity', () => {
  it('loss() is weight·((density − (1 − level))/tolerance)² with the scheduled level', () => {
    const ctrl = compress(smallGraph(), [
      rbSparsity({ level: 0.6, initLogAlpha: 0.5, tolerance: 0.05, weight: 2, schedule: { type: 'multistep', milestones: [1], levels: [0.2, 0.6] } }),
    ]);
    const d = sig(0.5 - B * Math.log(-G / Z));
    const at = (level: number): number => 2 * ((d - (1 - level)) / 0.05) ** 2;
    const l0 = ctrl.loss({} as never);
    expect(l0.dataSync()[0]! / at(0.2)).toBeCloseTo(1, 5);
    ctrl.scheduler.epochStep();
    const l1 = ctrl.loss({} as never);
    expect(l1.dataSync()[0]! / at(0.6)).toBeCloseTo(1, 5);
    expect(ctrl.statistics().algorithms[0]!.total['expectedDensity']).toBeCloseTo(d, 5);
    tf.dispose([l0, l1]);
    ctrl.dispose();
  });

  it('training pulls the expected density towards the target', async () => {
    const ctrl = compress(smallGraph(), [rbSparsity({ level: 0.5, gateScale: 10, seed: 1 })]);
    const d0 = Number(ctrl.statistics().algorithms[0]!.total['expectedDensity']);
    await fit(ctrl.model.executor, smallData(64), { epochs: 3, batchSize: 8, optimizer: { type: 'adam', learningRate: 0.03 }, controller: ctrl, progress: false });
    const d1 = Number(ctrl.statistics().algorithms[0]!.total['expectedDensity']);
    expect(d0).toBeGreaterThan(0.9);
    expect(Math.abs(d1 - 0.5)).toBeLessThan(Math.abs(d0 - 0.5) / 2);
    ctrl.dispose();
  });
});

