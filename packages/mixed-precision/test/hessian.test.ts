import * as tf from '@tensorflow/tfjs-core';
import { Executor, GraphBuilder, useBackend, type Graph } from '@tensorpress/core-tensor';
import { expectClose, expectNoLeak, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { hessianVectorProduct } from '../src/hessian.js';

beforeAll(async () => {
  await useBackend('cpu');
  await import('@tensorflow/tfjs-layers');
});

function smallCnn(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input('input', [null, 8, 8, 2]);
  let h = b.conv(x, { filters: 4, kernel: 3, padding: 'same', name: 'conv1' });
  h = b.batchNorm(h, { name: 'bn1' });
  h = b.relu(h, 'relu1');
  h = b.globalAvgPool(h);
  h = b.flatten(h);
  h = b.dense(h, 3, { name: 'fc' });
  b.output(h);
  return b.build();
}

describe('hessianVectorProduct', () => {
  // For logits = x·W and L = ½Σ(logits − t)², ∇_W L = xᵀ(xW − t) and H·V = xᵀ x V exactly.
  function linear(): { g: Graph; x: tf.Tensor2D; t: tf.Tensor2D } {
    const b = new GraphBuilder({ seed: 3 });
    const inp = b.input('input', [null, 5]);
    b.output(b.dense(inp, 3, { bias: false, name: 'fc' }));
    return { g: b.build(), x: seededTensor([6, 5], 11) as tf.Tensor2D, t: seededTensor([6, 3], 12) as tf.Tensor2D };
  }

  for (const method of ['finite-difference', 'exact'] as const) {
    it(`matches the closed form xᵀx·V (${method})`, async () => {
      const { g, x, t } = linear();
      const ex = new Executor(g);
      const v = seededTensor([5, 3], 13);
      const labels = tf.tensor1d([0, 0, 0, 0, 0, 0], 'int32');
      const loss = (outs: readonly tf.Tensor[]): tf.Scalar => tf.mul(tf.sum(tf.square(tf.sub(outs[0]!, t))), 0.5) as tf.Scalar;
      await expectNoLeak(() => {
        const hv = hessianVectorProduct(ex, { x, y: labels }, 'fc.weight', v, { loss, method });
        const expected = tf.tidy(() => tf.matMul(tf.matMul(x, x, true, false), v as tf.Tensor2D));
        expectClose(hv, expected, { atol: 1e-3, rtol: 1e-2 });
        tf.dispose([hv, expected]);
      });
      // The weights are untouched.
      expectClose(ex.variables().get('fc.weight')!, g.param('fc.weight')!.data, { atol: 0, rtol: 0 });
      tf.dispose([x, t, v, labels]);
      ex.dispose();
    });
  }

  it('works through convolutions and ReLU with finite differences (symmetric within 10%: uᵀHv = vᵀHu)', () => {
    const g = smallCnn();
    const ex = new Executor(g);
    const x = seededTensor([4, 8, 8, 2], 21);
    const y = tf.tensor1d([0, 1, 2, 0], 'int32');
    const w = ex.variables().get('conv1.weight')!;
    const u = seededTensor(w.shape, 22);
    const v = seededTensor(w.shape, 23);
    const hu = hessianVectorProduct(ex, { x, y }, "conv1.weight", u);
    const hv = hessianVectorProduct(ex, { x, y }, "conv1.weight", v);
    const a = tf.sum(tf.mul(v, hu)).dataSync()[0]!;
    const b = tf.sum(tf.mul(u, hv)).dataSync()[0]!;
    expect(Math.abs(a - b)).toBeLessThan(0.1 * Math.max(Math.abs(a), Math.abs(b)));
    tf.dispose([x, y, u, v, hu, hv]);
    ex.dispose();
  });
});
