import * as tf from '@tensorflow/tfjs-core';
import { Executor, crossEntropyLoss, useBackend } from '@tensorpress/core-tensor';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { hessianTraces } from '../src/index.js';
import { randomData, tinyLinear } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** The exact mean diagonal of each layer's Hessian block: eᵢᵀHeᵢ by central differences of gradients. */
function exactTraces(): Map<string, number> {
  const graph = tinyLinear();
  const data = randomData(32, [6], 3);
  const [batch] = [...data.batches(32)];
  const ex = new Executor(graph);
  const out = new Map<string, number>();
  for (const layer of ['fc1', 'fc2']) {
    const wName = graph.node(layer)!.inputs[1]!;
    const w = ex.variables().get(wName)!;
    const base = w.dataSync() as Float32Array;
    const grad = tf.grad((u: tf.Tensor) => crossEntropyLoss(ex.run(batch!.x, { paramOverrides: new Map([[wName, u]]) }), batch!.y));
    const eps = 1e-2;
    let sum = 0;
    for (let j = 0; j < base.length; j++) {
      const at = (d: number): number =>
        tf.tidy(() => {
          const v = new Float32Array(base);
          v[j]! += d;
          return grad(tf.tensor(v, w.shape)).dataSync()[j]!;
        });
      sum += (at(eps) - at(-eps)) / (2 * eps);
    }
    out.set(layer, sum / base.length);
  }
  ex.dispose();
  batch!.x.dispose();
  batch!.y.dispose();
  return out;
}

describe('hessianTraces (Hutchinson)', () => {
  it('is within 5% of the exact trace of every layer of a tiny model', () => {
    const exact = exactTraces();
    const r = hessianTraces(tinyLinear(), randomData(32, [6], 3), { samples: 32, batchSize: 32, minIterations: 1500, maxIterations: 1500, seed: 3 });
    expect(r.iterations).toBe(1500);
    for (const l of r.layers) {
      const want = exact.get(l.node)!;
      expect(want).toBeGreaterThan(0);
      expect(Math.abs(l.trace - want) / want).toBeLessThan(0.05);
      // The reported standard error covers the actual error with room (a 4-sigma band).
      expect(Math.abs(l.trace - want)).toBeLessThan(4 * l.stdError + 1e-6);
    }
  });

  it('stops on the tolerance and leaks no tensor', async () => {
    const r = await expectNoLeak(() => hessianTraces(tinyLinear(), randomData(32, [6], 3), { samples: 32, tolerance: 0.05, minIterations: 5, maxIterations: 400 }));
    expect(r.converged).toBe(true);
    expect(r.iterations).toBeGreaterThanOrEqual(5);
    expect(r.iterations).toBeLessThan(400);
    expect(r.relativeChange).toBeLessThan(0.05);
    expect(r.warnings).toEqual([]);
  });

  it('warns with the numbers when the tolerance is not met', () => {
    const r = hessianTraces(tinyLinear(), randomData(8, [6], 3), { tolerance: 1e-9, minIterations: 3, maxIterations: 3 });
    expect(r.converged).toBe(false);
    expect(r.warnings[0]).toMatch(/did not settle to tolerance 1e-9 in 3 iterations on 8 examples/);
  });

  it('rejects unknown layers and bad options with typed errors', () => {
    const e = errorOf(() => hessianTraces(tinyLinear(), randomData(8, [6], 3), { layers: ['nope'] }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/\$\.layers\[0\].*"nope".*fc1, fc2/);
    expect(errorOf(() => hessianTraces(tinyLinear(), randomData(8, [6], 3), { tolerance: 0 })).message).toMatch(/tolerance/);
  });
});
