import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, compress, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { pact, PactQuantizer, roundHalfEven } from '@tensorpress/quant';
import { expectClose, expectNoLeak, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { disposeKept, keep, f32, run, outputAndGrads } from './quantizer-helpers.js';

beforeAll(async () => {
  await useBackend('cpu');
});
afterEach(disposeKept);

describe('PactQuantizer', () => {
  it('unsigned: y = round(clip(x, 0, α)·n/α)·α/n; dα = Σ dy where x ≥ α; dx = dy for 0 ≤ x < α', () => {
    const q = keep(new PactQuantizer('act:x', 4, { alphaInit: 1.5, decay: 0.01 }));
    q.initActivation({ min: 0, max: 5, meanAbs: 1, featuresPerExample: 4 });
    const alpha = 1.5;
    const n = 15;
    // (x = α exactly is left out of the gradient check: the bound is tested as x/s against n in float32)
    const xs = [-1, -0.01, 0, 0.3, 0.77, 1.2, 1.499, 1.501, 4];
    const dys = [1, 2, 3, 4, 5, 6, 7, 8, 9];
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const y = tf.tidy(() => run(q, x, true));
    const s = f32(alpha / n);
    expectClose(y, xs.map((v) => s * roundHalfEven(f32(Math.min(Math.max(v, 0), alpha) / s))), { label: 'y' });
    const [gx] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(q, a, true), dy)))([x]);
    expect(Array.from(gx!.dataSync())).toEqual(xs.map((v, i) => (v >= 0 && v < alpha ? dys[i]! : 0)));
    const { grads } = outputAndGrads(q, x, dy);
    expectClose(grads[0]!, [dys.reduce((a, d, i) => a + (xs[i]! >= alpha ? d : 0), 0)], { label: 'dα' });
    // grid: step α/n on [0, n]
    const g = q.grid();
    expect(g.range).toEqual([0, 15]);
    expectClose(g.scale, [alpha / n]);
    // its term of the compression loss is λ·α²
    expect(q.l2Decay().variable).toBe(q.variables()[0]);
    expect(q.l2Decay().decay).toBe(0.01);
    tf.dispose([x, dy, y, gx!, ...grads]);
  });

  it('signed: clip to [−α, α] on 2^(k−1)−1 steps a side; dα = Σ dy·sign(x) where |x| ≥ α', () => {
    const q = keep(new PactQuantizer('act:x', 4, { alphaInit: 'range', decay: 0 }));
    q.initActivation({ min: -2, max: 1, meanAbs: 1, featuresPerExample: 4 });
    const alpha = 2; // 'range': max(|min|, max)
    expectClose(q.variables()[0]!, [alpha]);
    const xs = [-3, -2.001, -1.99, -0.5, 0.4, 1.99, 2.001, 2.5];
    const dys = [1, 2, 3, 4, 5, 6, 7, 8];
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const s = f32(alpha / 7);
    const { y, grads } = outputAndGrads(q, x, dy);
    expectClose(y, xs.map((v) => s * roundHalfEven(f32(Math.min(Math.max(v, -alpha), alpha) / s))), { label: 'y' });
    expectClose(grads[0]!, [dys.reduce((a, d, i) => a + (Math.abs(xs[i]!) >= alpha ? Math.sign(xs[i]!) * d : 0), 0)], { label: 'dα' });
    const [gx] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(q, a, true), dy)))([x]);
    expect(Array.from(gx!.dataSync())).toEqual(xs.map((v, i) => (Math.abs(v) < alpha ? dys[i]! : 0)));
    expect(q.grid().range).toEqual([-7, 7]);
    expect(q.grid().signed).toBe(true);
    tf.dispose([x, dy, gx!, ...grads]);
  });

  it("a PACT controller's compression loss is Σ λ·α² over its quantizers, with gradient 2λ·α each", async () => {
    const g = referenceModels.plainCnn({ seed: 3, width: 0.25 });
    const n = 8;
    const data = arrayDataset({ x: seededArray(n * 28 * 28, 5, 0, 1), y: new Int32Array(n), exampleShape: [28, 28, 1], numClasses: 10 });
    const ctrl = compress(g, [pact({ activations: { bits: 4, alphaDecay: 0.01 } })]);
    await ctrl.initialize(data, { samples: n });
    const alphas = ctrl.trainableVariables();
    expect(alphas.length).toBeGreaterThan(2);
    const a = alphas.map((v) => v.dataSync()[0]!);
    const ctx = { inputs: tf.zeros([1, 28, 28, 1]), labels: tf.tensor1d([0], 'int32'), outputs: [], executor: ctrl.model.executor };
    await expectNoLeak(() => {
      const { value, grads } = tf.variableGrads(() => ctrl.loss(ctx), [...alphas]);
      expectClose(value, [a.reduce((t, v) => t + 0.01 * v * v, 0)], { label: 'loss' });
      alphas.forEach((v, i) => expectClose(grads[v.name]!, [2 * 0.01 * a[i]!], { label: v.name }));
      tf.dispose([value, ...Object.values(grads)]);
    });
    tf.dispose([ctx.inputs, ctx.labels]);
    ctrl.dispose();
  });
});
