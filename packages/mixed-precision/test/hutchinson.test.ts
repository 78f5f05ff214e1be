import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend } from '@tensorpress/core-tensor';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { crossEntropyLoss, hessianTraces } from '../src/index.js';
import { randomData, reluMlp, tinyLinear } from './fixtures.js';

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

/**
 * The exact mean diagonal of each layer's Hessian block of input → fc1 → Relu → fc2, in closed form
 * (float64): the network is linear in each layer's weights given the ReLU pattern, so autograd's
 * Hessian block is JᵀH_ℓJ with H_ℓ = diag(p) − ppᵀ; for W1[k][j] that is
 * mean_n (m_j·x_k)² · W2[j]ᵀH_ℓW2[j], for W2[j][c] it is mean_n h_j² · H_ℓ[c][c].
 */
function exactReluTraces(): Map<string, number> {
  const graph = reluMlp();
  const [b] = [...randomData(32, [6], 3).batches(32)];
  const xs = b!.x.arraySync() as number[][];
  b!.x.dispose();
  b!.y.dispose();
  const get = (node: string, i: number): Float32Array => graph.param(graph.node(node)!.inputs[i]!)!.data as Float32Array;
  const [w1, b1, w2, b2] = [get('fc1', 1), get('fc1', 2), get('fc2', 1), get('fc2', 2)];
  const H = 5;
  const C = 3;
  let t1 = 0;
  let t2 = 0;
  for (const x of xs) {
    const z = Array.from({ length: H }, (_, j) => b1[j]! + x.reduce((a, xk, k) => a + xk * w1[k * H + j]!, 0));
    const h = z.map((v) => Math.max(0, v));
    const f = Array.from({ length: C }, (_, c) => b2[c]! + h.reduce((a, hj, j) => a + hj * w2[j * C + c]!, 0));
    const mx = Math.max(...f);
    const e = f.map((v) => Math.exp(v - mx));
    const p = e.map((v) => v / e.reduce((a, u) => a + u, 0));
    const quad = (u: number[]): number => u.reduce((a, ui, c) => a + p[c]! * ui * ui, 0) - u.reduce((a, ui, c) => a + p[c]! * ui, 0) ** 2;
    for (let j = 0; j < H; j++) {
      const row = Array.from({ length: C }, (_, c) => w2[j * C + c]!);
      const g = z[j]! > 0 ? quad(row) : 0;
      for (const xk of x) t1 += xk * xk * g;
      for (let c = 0; c < C; c++) t2 += h[j]! * h[j]! * (p[c]! - p[c]! * p[c]!);
    }
  }
  return new Map([
    ['fc1', t1 / xs.length / (6 * H)],
    ['fc2', t2 / xs.length / (H * C)],
  ]);
}

function expectWithin5(r: { layers: readonly { node: string; trace: number; stdError: number }[] }, exact: Map<string, number>): void {
  for (const l of r.layers) {
    const want = exact.get(l.node)!;
    expect(want).toBeGreaterThan(0);
    expect(Math.abs(l.trace - want) / want).toBeLessThan(0.05);
    // The reported standard error covers the actual error with room (a 4-sigma band).
    expect(Math.abs(l.trace - want)).toBeLessThan(4 * l.stdError + 1e-6);
  }
}

describe('hessianTraces (Hutchinson)', () => {
  it('is within 5% of the exact trace of every layer of a tiny model, with both estimators', () => {
    const exact = exactTraces();
    for (const method of ['gauss-newton', 'finite-difference'] as const) {
      const r = hessianTraces(tinyLinear(), randomData(32, [6], 3), { samples: 32, batchSize: 32, minIterations: 1500, maxIterations: 1500, seed: 3, method });
      expect(r.iterations).toBe(1500);
      expect(r.method).toBe(method);
      expectWithin5(r, exact);
    }
  });

  it('gauss-newton is within 5% of the exact (autograd) trace of a ReLU network', () => {
    const r = hessianTraces(reluMlp(), randomData(32, [6], 3), { samples: 32, batchSize: 32, minIterations: 1500, maxIterations: 1500, seed: 5 });
    expectWithin5(r, exactReluTraces());
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
    expect(errorOf(() => hessianTraces(tinyLinear(), randomData(8, [6], 3), { loss: crossEntropyLoss })).message).toMatch(/\$\.loss: a custom loss needs method "finite-difference"/);
  });
});
