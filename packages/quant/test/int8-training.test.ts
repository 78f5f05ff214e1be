import * as tf from '@tensorflow/tfjs-core';
import { Executor, GraphBuilder, arrayDataset, compress, createRng, fit, softmaxCrossEntropy, useBackend, type Graph } from '@tensorpress/core-tensor';
import { gradientClipping, gradientQuantizer, int8Training, magnitudeAwareError, optimalClip, quantization, quantizeGradient } from '@tensorpress/quant';
import { maxAbsDiff, seededArray, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const IN = [6, 6, 2];

/** input → c1 (3×3, 6) → relu → c2 (3×3, 5) → relu → flatten → fc → 3 logits. */
function tinyCnn(seed = 3): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...IN]);
  h = b.conv(h, { filters: 6, kernel: 3, padding: 'same', name: 'c1' });
  h = b.relu(h, 'r1');
  h = b.conv(h, { filters: 5, kernel: 3, padding: 'same', name: 'c2' });
  h = b.relu(h, 'r2');
  h = b.flatten(h, 'flat');
  h = b.dense(h, 3, { name: 'fc' });
  b.output(h);
  return b.build();
}

const data = (n = 12) => arrayDataset({ x: seededArray(n * 72, 1, -1, 1), y: Int32Array.from({ length: n }, (_, i) => i % 3), exampleShape: IN, numClasses: 3 });

/** Σ |g|·(g − Q_c(g))² on a symmetric 8-bit grid clipped at c (float64). */
function weightedError(g: Float64Array, c: number, bits = 8): number {
  const qmax = 2 ** (bits - 1) - 1;
  const d = c / qmax;
  let e = 0;
  for (const v of g) {
    const q = Math.max(-qmax, Math.min(qmax, Math.round(v / d))) * d;
    e += Math.abs(v) * (v - q) ** 2;
  }
  return e;
}

function sample(kind: 'gaussian' | 'laplace' | 'mixture', n: number, scale: number, seed: number): Float64Array {
  const rng = createRng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (kind === 'gaussian') out[i] = scale * rng.normal();
    else if (kind === 'laplace') {
      const u = rng.next() - 0.5;
      out[i] = -scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
    } else {
      // half Gaussian, half Laplacian of the same scale: a channel neither family describes exactly
      const u = rng.next() - 0.5;
      out[i] = rng.next() < 0.5 ? scale * rng.normal() : -scale * Math.sign(u) * Math.log(1 - 2 * Math.abs(u));
    }
  }
  return out;
}

describe('magnitude-aware clipping (Zhao et al. 2021)', () => {
  it('the closed-form optimum minimises the closed-form error (grid check)', () => {
    for (const family of ['gaussian', 'laplace'] as const) {
      const c = optimalClip(family, 8);
      const e = magnitudeAwareError(family, c, 8);
      for (let x = 0.5; x < 30; x += 0.01) expect(magnitudeAwareError(family, x, 8)).toBeGreaterThanOrEqual(e - 1e-12);
    }
    // heavier tails clip later; fewer bits clip earlier
    expect(optimalClip('laplace', 8)).toBeGreaterThan(optimalClip('gaussian', 8));
    expect(optimalClip('gaussian', 4)).toBeLessThan(optimalClip('gaussian', 8));
  });

  it('matches a brute-force search of the empirical error on Gaussian, Laplacian and mixture channels', () => {
    const n = 4000;
    const kinds = ['gaussian', 'laplace', 'mixture', 'gaussian', 'laplace', 'mixture'] as const;
    const scales = [1e-3, 3e-4, 2e-3, 5e-2, 1e-2, 1e-4];
    const chans = kinds.map((k, i) => sample(k, n, scales[i]!, 100 + i));
    // [n, C]: one channel per column
    const flat = new Float32Array(n * kinds.length);
    chans.forEach((ch, c) => ch.forEach((v, i) => (flat[i * kinds.length + c] = v)));
    const g = tf.tensor2d(flat, [n, kinds.length]);
    const clip = gradientClipping(g, { bits: 8, granularity: 'channel', clipping: 'magnitude_aware' });
    const cs = Array.from(clip.dataSync());
    tf.dispose([g, clip]);
    chans.forEach((ch0, c) => {
      const ch = Float64Array.from(ch0, (v) => Math.fround(v));
      const max = Math.max(...Array.from(ch, Math.abs));
      let best = Infinity;
      let bestC = 0;
      for (let i = 1; i <= 1000; i++) {
        const x = (max * i) / 1000;
        const e = weightedError(ch, x);
        if (e < best) [best, bestC] = [e, x];
      }
      const ours = weightedError(ch, cs[c]!);
      // the analytic clipping is within 3% of the brute-force optimum's error (mixtures: 10%)
      expect(ours / best, `${kinds[c]} channel ${c}: c = ${cs[c]} vs brute force ${bestC}`).toBeLessThanOrEqual(kinds[c] === 'mixture' ? 1.1 : 1.03);
      expect(Math.abs(cs[c]! / bestC - 1), `${kinds[c]} channel ${c}: c = ${cs[c]} vs brute force ${bestC}`).toBeLessThan(0.35);
      // never worse than no clipping (max |g|)
      expect(ours).toBeLessThanOrEqual(weightedError(ch, max) * 1.0001);
    });
  });
});

describe('INT8 gradients on a real layer', () => {
  /** The gradient of the loss with respect to c1's output (before relu), captured by a post hook. */
  function realGradient(): tf.Tensor {
    const g = tinyCnn(7);
    let captured: tf.Tensor | undefined;
    const capture = tf.customGrad((x, save) => {
      void save;
      return {
        value: tf.clone(x as tf.Tensor),
        gradFunc: (dy: tf.Tensor) => {
          captured = tf.keep(tf.clone(dy));
          return dy;
        },
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    const ex = new Executor(g, { hooks: [{ point: { type: 'post', node: 'c1', output: 0 }, fn: (x) => capture(x), priority: 0, algorithm: 'test', id: 'cap' }] });
    const x = seededTensor([8, ...IN], 4);
    const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32');
    const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(ex.run(x, { training: true })[0]!, y) as tf.Scalar, ex.trainableVariables());
    tf.dispose([value, ...Object.values(grads), x, y]);
    ex.dispose();
    return captured!;
  }

  it('vectorized + magnitude-aware quantization errs less than per-tensor (relative to FP32)', () => {
    const dy = realGradient();
    expect(dy.shape).toEqual([8, 6, 6, 6]);
    const rel = (q: tf.Tensor) => tf.tidy(() => tf.div(tf.norm(tf.sub(q, dy)), tf.norm(dy)).dataSync()[0]!);
    const weighted = (q: tf.Tensor) => tf.tidy(() => tf.sum(tf.mul(tf.abs(dy), tf.square(tf.sub(q, dy)))).dataSync()[0]!);
    const ours = quantizeGradient(dy, { bits: 8, granularity: 'channel', clipping: 'magnitude_aware' });
    const perTensor = quantizeGradient(dy, { bits: 8, granularity: 'tensor', clipping: 'max' });
    const e = { ours: rel(ours), perTensor: rel(perTensor), oursW: weighted(ours), perTensorW: weighted(perTensor) };
    expect(e.perTensor).toBeGreaterThan(0);
    expect(e.ours, JSON.stringify(e)).toBeLessThan(e.perTensor);
    expect(e.oursW).toBeLessThan(e.perTensorW);
    // per channel: every channel's codes are integers in [−127, 127] at its own step
    const c = gradientClipping(dy, { bits: 8, granularity: 'channel', clipping: 'magnitude_aware' });
    expect(c.shape).toEqual([1, 1, 1, 6]);
    const codes = tf.tidy(() => tf.div(ours, tf.div(c, 127)));
    for (const v of codes.dataSync()) {
      expect(Math.abs(v - Math.round(v))).toBeLessThan(1e-3);
      expect(Math.abs(v)).toBeLessThanOrEqual(127 + 1e-3);
    }
    tf.dispose([dy, ours, perTensor, c, codes]);
  });

  it('the custom gradient is identity forward and quantizes the gradient backward', () => {
    const opts = { bits: 8, granularity: 'channel', clipping: 'magnitude_aware' } as const;
    const q = gradientQuantizer(opts);
    const x = seededTensor([4, 3], 1);
    const dy = tf.tensor2d(Float32Array.from(seededArray(12, 2, -1, 1), (v, i) => v * 10 ** -(i % 3)), [4, 3]);
    const y = q(x);
    expect(maxAbsDiff(y, x)).toBe(0);
    const gx = tf.grad((t: tf.Tensor) => q(t))(x, dy);
    const want = quantizeGradient(dy, opts);
    expect(maxAbsDiff(gx, want)).toBe(0);
    expect(maxAbsDiff(gx, dy)).toBeGreaterThan(0);
    tf.dispose([x, dy, y, gx, want]);
  });
});

describe('int8_training', () => {
  it('forward numerics are those of QAT INT8 (`quantization`), gradients differ only by their quantization', async () => {
    const g = tinyCnn();
    const a = compress(g, [int8Training()]);
    const b = compress(g, [quantization()]);
    await a.initialize(data(), { samples: 12 });
    await b.initialize(data(), { samples: 12 });
    const x = seededTensor([3, ...IN], 9);
    const [ya] = a.model.executor.run(x);
    const [yb] = b.model.executor.run(x);
    expect(maxAbsDiff(ya!, yb!)).toBe(0);
    const [ta] = a.model.executor.run(x, { training: true });
    const [tb] = b.model.executor.run(x, { training: true });
    expect(maxAbsDiff(ta!, tb!)).toBe(0);
    const grad = (c: typeof a) => {
      const y = tf.tensor1d([0, 1, 2], 'int32');
      const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(c.model.executor.run(x, { training: true })[0]!, y) as tf.Scalar, c.model.executor.trainableVariables());
      const w = tf.keep(grads[c.model.executor.variables().get('c1.weight')!.name]!.clone());
      tf.dispose([value, y, ...Object.values(grads)]);
      return w;
    };
    const ga = grad(a);
    const gb = grad(b);
    const rel = tf.tidy(() => tf.div(tf.norm(tf.sub(ga, gb)), tf.norm(gb)).dataSync()[0]!);
    expect(rel).toBeGreaterThan(0); // the activation gradients were quantized
    expect(rel).toBeLessThan(0.05); // ... to 8 bits, not destroyed
    tf.dispose([x, ya!, yb!, ta!, tb!, ga, gb]);
    for (const c of [a, b]) {
      c.dispose();
      c.model.executor.dispose();
    }
  });

  it('trains from scratch with fit (per-channel and the per-tensor baseline) and strips to int8', async () => {
    for (const gradients of [{}, { granularity: 'tensor', clipping: 'max' }] as const) {
      const ctrl = compress(tinyCnn(), [int8Training({ gradients })]);
      await ctrl.initialize(data(), { samples: 12 });
      const h = await fit(ctrl.model.executor, data(), { epochs: 2, batchSize: 4, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 1e-2 } });
      expect(h.history.every((e) => Number.isFinite(e.loss))).toBe(true);
      const stats = ctrl.statistics().algorithms[0]!;
      const act = stats.layers.find((l) => l['kind'] === 'activation')!;
      expect(act['gradientGranularity']).toBe(gradients.granularity ?? 'channel');
      const s = ctrl.strip();
      expect(s.param('c1.w_q')!.dtype).toBe('int8');
      ctrl.dispose();
      ctrl.model.executor.dispose();
    }
  });
});
