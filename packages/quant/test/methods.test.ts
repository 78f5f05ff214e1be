import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, compress, referenceModels, useBackend } from '@tensorpress/core-tensor';
import {
  AsymmetricQuantizer,
  DorefaActivationQuantizer,
  DorefaWeightQuantizer,
  LsqQuantizer,
  MIN_SCALE,
  PactQuantizer,
  SymmetricQuantizer,
  pact,
  TqtQuantizer,
  quantParams,
  quantizeK,
  roundHalfEven,
  type Quantizer,
} from '@tensorpress/quant';
import { errorOf, expectClose, expectNoLeak, seededArray } from '@tensorpress/test-utils';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const made: Quantizer[] = [];
afterEach(() => {
  for (const q of made.splice(0)) q.dispose();
});
function keep<Q extends Quantizer>(q: Q): Q {
  made.push(q);
  return q;
}

const f32 = Math.fround;

/** Applies a quantizer through the interface (the classes declare apply(x) only). */
const run = (q: Quantizer, x: tf.Tensor, training: boolean): tf.Tensor => q.apply(x, training);

/** LSQ's local scale gradient of one value (v = x / s unrounded, zero point 0). */
function localScaleGrad(x: number, s: number, qmin: number, qmax: number): number {
  const v = f32(f32(x) / f32(s));
  if (v < qmin) return qmin;
  if (v > qmax) return qmax;
  return roundHalfEven(v) - v;
}

/** Output of a quantizer and d(sum(y·dy))/d(its variables), in the order of variables(). */
function outputAndGrads(q: Quantizer, x: tf.Tensor, dy: tf.Tensor): { y: Float32Array; grads: tf.Tensor[] } {
  const y = tf.tidy(() => run(q, x, true));
  const out = Float32Array.from(y.dataSync());
  y.dispose();
  const vars = q.variables();
  const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.sum(tf.mul(run(q, x, true), dy))) as tf.Scalar, vars);
  value.dispose();
  return { y: out, grads: vars.map((v) => grads[v.name]!) };
}

const W_SHAPE = [3, 3, 2, 4];
const W_N = 72;
const wValues = seededArray(W_N, 5, -0.6, 0.6);
const dyValues = seededArray(W_N, 6, -1, 1);

describe('SymmetricQuantizer', () => {
  it('weights: scale = max|w| / qmax per channel; forward = fake-quant on that grid; threshold gradient = Σ dy·local / qmax', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const absMax = [0, 1, 2, 3].map((c) => Math.max(...Array.from(wValues).filter((_, i) => i % 4 === c).map(Math.abs)));
    const q = keep(
      new SymmetricQuantizer('conv.w', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, 'clipped', {
        threshold: absMax,
        rank: 4,
        axis: 3,
      }),
    );
    expect(q.initialized).toBe(true);
    const g = q.grid();
    expect(g.range).toEqual([-7, 7]);
    expect(g.axis).toBe(3);
    expect(Array.from(g.zeroPoint)).toEqual([0, 0, 0, 0]);
    expectClose(g.scale, absMax.map((t) => t / 7 + MIN_SCALE), { label: 'scale' });
    const { y, grads } = outputAndGrads(q, w, dy);
    const s = Array.from(g.scale);
    expectClose(
      y,
      Array.from(wValues, (v, i) => s[i % 4]! * Math.min(7, Math.max(-7, roundHalfEven(f32(v / s[i % 4]!))))),
      { label: 'y' },
    );
    const dt = [0, 0, 0, 0];
    wValues.forEach((v, i) => (dt[i % 4]! += (dyValues[i]! * localScaleGrad(v, s[i % 4]!, -7, 7)) / 7));
    expect(grads[0]!.shape).toEqual([1, 1, 1, 4]);
    expectClose(grads[0]!, dt, { label: 'dt' });
    // the per-channel maximum sits exactly on code ±7
    const codes = Array.from(y, (v, i) => Math.round(v / s[i % 4]!));
    for (let c = 0; c < 4; c++) expect(Math.max(...codes.filter((_, i) => i % 4 === c).map(Math.abs))).toBe(7);
    tf.dispose([w, dy, ...grads]);
  });

  it('activations: initialised from statistics, signed when the minimum is negative', () => {
    const q = keep(new SymmetricQuantizer('act:x', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'clipped', undefined));
    expect(q.initialized).toBe(false);
    q.initActivation({ min: 0, max: 2.55, meanAbs: 1, featuresPerExample: 10 });
    expect(q.initialized).toBe(true);
    let g = q.grid();
    expect(g.signed).toBe(false);
    expect(g.range).toEqual([0, 255]);
    expectClose(g.scale, [quantParams(0, 2.55, { bits: 8, mode: 'symmetric', signed: false, narrowRange: false }).scale]);
    q.initActivation({ min: -1.27, max: 0.5, meanAbs: 1, featuresPerExample: 10 });
    g = q.grid();
    expect(g.signed).toBe(true);
    expect(g.range).toEqual([-128, 127]);
    expectClose(g.scale, [1.27 / 127]);
  });
});

describe('AsymmetricQuantizer', () => {
  it('grid matches quantParams (scale, clamped rounded zero point) and the low gradient flows through the zero point', () => {
    const spec = { bits: 8, mode: 'asymmetric', signed: false, narrowRange: false } as const;
    const q = keep(new AsymmetricQuantizer('act:x', 'activation', spec, 'clipped', undefined));
    q.initActivation({ min: -1, max: 2, meanAbs: 0.5, featuresPerExample: 4 });
    const g = q.grid();
    const want = quantParams(-1, 2, spec);
    expectClose(g.scale, [want.scale]);
    expect(Array.from(g.zeroPoint)).toEqual([want.zeroPoint]);
    expect(want.zeroPoint).toBe(85); // 0 + 1 / (3/255) = 85
    // gradients: scale = |range| / 255 + eps, zp = clip(roundSte(0 − low / scale)), d zp / d low = −1 / scale
    const xs = seededArray(40, 9, -1.5, 2.5);
    const dys = seededArray(40, 10, -1, 1);
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const { y, grads } = outputAndGrads(q, x, dy);
    const s = g.scale[0]!;
    const z = g.zeroPoint[0]!;
    let dz = 0;
    let ds = 0;
    xs.forEach((v, i) => {
      const u = f32(f32(v / s) + z);
      const out = u < 0 || u > 255;
      dz += dys[i]! * (out ? -s : 0);
      ds += dys[i]! * (u < 0 ? 0 - z : u > 255 ? 255 - z : roundHalfEven(u) - u);
    });
    expectClose(
      y,
      xs.map((v) => s * (Math.min(255, Math.max(0, roundHalfEven(f32(v / s)) + z)) - z)),
      { label: 'y', atol: 1e-6 },
    );
    // variables(): [low, range]
    expectClose(grads[0]!, [dz * (-1 / s)], { label: 'd low' });
    // d/d range: through scale (1/255) and through zp (d zp/d s = low / s²)
    expectClose(grads[1]!, [(ds + dz * (-1 / (s * s))) / 255], { label: 'd range', rtol: 2e-3 });
    tf.dispose([x, dy, ...grads]);
  });

  it('per-channel weight grid: one zero point per channel, range widened to contain 0', () => {
    const spec = { bits: 4, mode: 'asymmetric', signed: true, narrowRange: true } as const;
    const q = keep(new AsymmetricQuantizer('w', 'weight', spec, 'clipped', { min: [-1, 0.5, -3], max: [2, 1.4, -1], rank: 2, axis: 1 }));
    const g = q.grid();
    expect(g.axis).toBe(1);
    const want = [
      [-1, 2],
      [0.5, 1.4],
      [-3, -1],
    ].map(([a, b]) => quantParams(a!, b!, spec));
    expectClose(g.scale, want.map((p) => p.scale));
    expect(Array.from(g.zeroPoint)).toEqual(want.map((p) => p.zeroPoint));
    expect(Array.from(g.zeroPoint)).toEqual([-2, -7, 7]);
  });
});

describe('LsqQuantizer', () => {
  it('weights per tensor: s0 = 2·mean|w|/sqrt(Qp); d loss/d s = Σ dy·local / sqrt(N·Qp)', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const q = keep(new LsqQuantizer('w', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: undefined }));
    const meanAbs = Array.from(wValues).reduce((a, v) => a + Math.abs(v), 0) / W_N;
    const s0 = (2 * meanAbs) / Math.sqrt(7);
    expectClose(q.variables()[0]!, [s0], { label: 's0' });
    const s = q.grid().scale[0]!;
    expectClose([s], [s0 + MIN_SCALE]);
    const { y, grads } = outputAndGrads(q, w, dy);
    expectClose(y, Array.from(wValues, (v) => s * Math.min(7, Math.max(-7, roundHalfEven(f32(v / s))))), { label: 'y' });
    let sum = 0;
    wValues.forEach((v, i) => (sum += dyValues[i]! * localScaleGrad(v, s, -7, 7)));
    const g = 1 / Math.sqrt(W_N * 7);
    expectClose(grads[0]!, [sum * g], { label: 'ds' });
    // without the 1/sqrt(N·Qp) factor the gradient would be ~23x larger: make sure the test can tell
    expect(Math.abs(sum * g - sum)).toBeGreaterThan(1e-3);
    tf.dispose([w, dy, ...grads]);
  });

  it('weights per channel: N is the number of values per step', () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const dy = tf.tensor(dyValues, W_SHAPE);
    const q = keep(new LsqQuantizer('w', 'weight', { bits: 3, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: 3 }));
    const grid = q.grid();
    expect(grid.axis).toBe(3);
    const s = Array.from(grid.scale);
    const meanAbs = [0, 1, 2, 3].map((c) => Array.from(wValues).filter((_, i) => i % 4 === c).reduce((a, v) => a + Math.abs(v), 0) / 18);
    expectClose(s, meanAbs.map((m) => (2 * m) / Math.sqrt(3) + MIN_SCALE), { label: 's0' });
    const { grads } = outputAndGrads(q, w, dy);
    const ds = [0, 0, 0, 0];
    wValues.forEach((v, i) => (ds[i % 4]! += dyValues[i]! * localScaleGrad(v, s[i % 4]!, -3, 3)));
    expect(grads[0]!.shape).toEqual([1, 1, 1, 4]);
    expectClose(grads[0]!, ds.map((d) => d / Math.sqrt(18 * 3)), { label: 'ds' });
    tf.dispose([w, dy, ...grads]);
  });

  it('activations: s0 from mean|x|, Qp from the signedness, N = features per example', () => {
    const q = keep(new LsqQuantizer('act:x', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: 0, max: 3, meanAbs: 0.6, featuresPerExample: 16 });
    expectClose(q.grid().scale, [(2 * 0.6) / Math.sqrt(15) + MIN_SCALE]);
    expect(q.grid().range).toEqual([0, 15]);
    const xs = seededArray(32, 3, -0.5, 3);
    const dys = seededArray(32, 4, -1, 1);
    const x = tf.tensor(xs, [2, 16]);
    const dy = tf.tensor(dys, [2, 16]);
    const s = q.grid().scale[0]!;
    const { grads } = outputAndGrads(q, x, dy);
    let sum = 0;
    xs.forEach((v, i) => (sum += dys[i]! * localScaleGrad(v, s, 0, 15)));
    expectClose(grads[0]!, [sum / Math.sqrt(16 * 15)], { label: 'ds' });
    tf.dispose([x, dy, ...grads]);
    // a negative minimum makes it signed: Qp = 7
    q.initActivation({ min: -1, max: 3, meanAbs: 0.6, featuresPerExample: 16 });
    expect(q.grid().range).toEqual([-8, 7]);
    expectClose(q.grid().scale, [(2 * 0.6) / Math.sqrt(7) + MIN_SCALE]);
  });
});

describe('TqtQuantizer', () => {
  it('weights: scale = 2^ceil(log2 max|w|) / 2^(b−1), a power of two', () => {
    // max |w| = 0.3: log2 = −1.74 → ceil −1 → 2^-1 / 2^7 = 2^-8
    const w = tf.tensor2d([0.3, -0.1, 0.05, -0.2], [2, 2]);
    const q = keep(new TqtQuantizer('w', 'weight', { bits: 8, mode: 'symmetric', signed: true, narrowRange: true }, { w, axis: undefined }));
    expectClose(q.variables()[0]!, [Math.log2(0.3)]);
    expect(q.grid().scale[0]).toBe(2 ** -8);
    expect(q.grid().range).toEqual([-127, 127]);
    const y = tf.tidy(() => run(q, w, false));
    expect(Array.from(y.dataSync())).toEqual([0.3, -0.1, 0.05, -0.2].map((v) => 2 ** -8 * roundHalfEven(f32(v) * 256)));
    tf.dispose([w, y]);
    // 4 bit, max 1.0 exactly: log2 = 0 → scale 1/8
    const w4 = tf.tensor1d([1, -0.5]);
    const q4 = keep(new TqtQuantizer('w4', 'weight', { bits: 4, mode: 'symmetric', signed: true, narrowRange: true }, { w: w4, axis: undefined }));
    expect(q4.grid().scale[0]).toBe(1 / 8);
    w4.dispose();
  });

  it('d loss / d log2 t = scale·ln2·Σ dy·(LSQ local gradient)', () => {
    const q = keep(new TqtQuantizer('act:x', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: 0, max: 1.7, meanAbs: 0.5, featuresPerExample: 8 });
    // unsigned: 2^ceil(log2 1.7) / 2^4 = 2 / 16
    const s = q.grid().scale[0]!;
    expect(s).toBe(0.125);
    expect(q.grid().range).toEqual([0, 15]);
    const xs = seededArray(48, 13, -0.4, 2.4);
    const dys = seededArray(48, 14, -1, 1);
    const x = tf.tensor1d(xs);
    const dy = tf.tensor1d(dys);
    const { y, grads } = outputAndGrads(q, x, dy);
    expect(Array.from(y, (v) => v + 0)).toEqual(Array.from(xs, (v) => s * Math.min(15, Math.max(0, roundHalfEven(f32(v) / s)))));
    let sum = 0;
    xs.forEach((v, i) => (sum += dys[i]! * localScaleGrad(v, s, 0, 15)));
    expectClose(grads[0]!, [s * Math.LN2 * sum], { label: 'd log2 t' });
    tf.dispose([x, dy, ...grads]);
  });

  it('signed activations divide by 2^(b−1)', () => {
    const q = keep(new TqtQuantizer('act:y', 'activation', { bits: 8, mode: 'symmetric', signed: false, narrowRange: false }));
    q.initActivation({ min: -3, max: 1, meanAbs: 0.5, featuresPerExample: 8 });
    expect(q.grid().signed).toBe(true);
    expect(q.grid().scale[0]).toBe(4 / 128);
    expect(q.grid().range).toEqual([-128, 127]);
  });
});

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

describe('DorefaWeightQuantizer', () => {
  const tanhNorm = (ws: ArrayLike<number>, k: number, c: number): number[] => {
    const n = 2 ** k - 1;
    const t = Array.from(ws, Math.tanh);
    const m = Math.max(...t.map(Math.abs));
    return t.map((v) => c * (2 * (roundHalfEven((v / (2 * m) + 0.5) * n) / n) - 1));
  };

  for (const k of [2, 4]) {
    it(`${k} bit: tanh-normalise → quantize_k → 2q − 1, times c = max|W|`, () => {
      const w = tf.tensor(wValues, W_SHAPE);
      const q = keep(new DorefaWeightQuantizer('w', k, w, 'max'));
      const c = Math.max(...Array.from(wValues, Math.abs));
      const y = tf.tidy(() => run(q, w, false));
      expectClose(y, tanhNorm(wValues, k, c), { label: 'y' });
      const n = 2 ** k - 1;
      const g = q.grid();
      expectClose(g.scale, [c / n]);
      expect(g.range).toEqual([-n, n]);
      // codes are odd integers in [−n, n]; the extremes are reached
      const codes = Array.from(y.dataSync(), (v) => v / (c / n));
      for (const code of codes) {
        expect(Math.abs(code - Math.round(code))).toBeLessThan(1e-3);
        expect(Math.abs(Math.round(code)) % 2).toBe(1);
        expect(Math.abs(code)).toBeLessThanOrEqual(n + 1e-3);
      }
      expect(Math.max(...codes.map((v) => Math.round(v)))).toBe(n);
      tf.dispose([w, y]);
    });
  }

  it("scale 'none' keeps w_q in [−1, 1]; more than 7 bits is refused", () => {
    const w = tf.tensor1d([0.5, -0.25, 0.1]);
    const q = keep(new DorefaWeightQuantizer('w', 3, w, 'none'));
    const y = tf.tidy(() => run(q, w, false));
    expectClose(y, tanhNorm([0.5, -0.25, 0.1], 3, 1));
    const e = errorOf(() => new DorefaWeightQuantizer('conv9', 8, w, 'max'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('conv9');
    tf.dispose([w, y]);
  });

  it('straight-through gradient of the tanh normalisation, through the max too (ties included)', () => {
    // the closed-form custom gradient against tfjs differentiating the same expression without the round
    for (const [xs, scale] of [
      [[0.4, -0.2, 0.1], 'none'],
      [[0.4, -0.7, 0.1, 0.7, -0.05, 0.3], 'max'], // |w| = 0.7 twice: both get the max's gradient
    ] as [number[], 'none' | 'max'][]) {
      const w = tf.tensor1d(xs);
      const dy = tf.tensor1d(seededArray(xs.length, 41, -1, 1));
      const q = keep(new DorefaWeightQuantizer('w', 2, w, scale));
      const c = scale === 'max' ? Math.max(...xs.map(Math.abs)) : 1;
      const [g] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(q, a, true), dy)))([w]);
      const [gr] = tf.grads((a: tf.Tensor) => {
        const t = tf.tanh(a);
        return tf.sum(tf.mul(tf.mul(tf.sub(tf.mul(2, tf.add(tf.div(t, tf.mul(2, tf.max(tf.abs(t)))), 0.5)), 1), c), dy));
      })([w]);
      expectClose(g!, gr!, { atol: 1e-6, rtol: 1e-5 });
      tf.dispose([w, dy, g!, gr!]);
    }
  });
});

describe('DorefaWeightQuantizer fused kernels', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`on ${backend}: equal the taped ops, forward exactly and gradient closely, leaking nothing`, async () => {
      await useBackend(backend);
      const xs = seededArray(3 * 3 * 8 * 16, 77, -0.5, 0.5);
      xs[5] = 0.9;
      xs[700] = -0.9; // two elements at max |tanh w|: both take the max's gradient
      const w = tf.tensor(xs, [3, 3, 8, 16]);
      const dy = tf.tensor(seededArray(xs.length, 78, -1, 1), [3, 3, 8, 16]);
      const fused = keep(new DorefaWeightQuantizer('w', 4, w, 'max'));
      const taped = keep(new DorefaWeightQuantizer('w', 4, w, 'max', false));
      const before = tf.memory().numTensors;
      const [ya, yb] = tf.tidy(() => [run(fused, w, true), run(taped, w, true)]);
      const [ga] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(fused, a, true), dy)))([w]);
      const [gb] = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(run(taped, a, true), dy)))([w]);
      expect(Array.from(ya!.dataSync())).toEqual(Array.from(yb!.dataSync()));
      expectClose(ga!, gb!, { atol: 1e-6, rtol: 1e-5 });
      expect(Math.abs(ga!.dataSync()[5]!)).toBeGreaterThan(0);
      tf.dispose([ya!, yb!, ga!, gb!]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([w, dy]);
      await useBackend('cpu');
    });
  }
});

describe('DorefaActivationQuantizer', () => {
  it('unsigned: quantize_k(clip(x, 0, 1)); gradient 1 inside [0, 1], 0 outside', () => {
    const q = keep(new DorefaActivationQuantizer('act:x', 2));
    q.initActivation({ min: 0, max: 3, meanAbs: 1, featuresPerExample: 1 });
    const xs = [-0.5, 0, 0.1, 1 / 6, 0.5, 0.7, 1, 2];
    const x = tf.tensor1d(xs);
    const y = tf.tidy(() => run(q, x, true));
    expectClose(y, xs.map((v) => roundHalfEven(f32(Math.min(Math.max(v, 0), 1) * 3)) / 3));
    const g = q.grid();
    expect(g.range).toEqual([0, 3]);
    expectClose(g.scale, [1 / 3]);
    const [gx] = tf.grads((a: tf.Tensor) => tf.sum(run(q, a, true)))([x]);
    expect(Array.from(gx!.dataSync())).toEqual([0, 1, 1, 1, 1, 1, 1, 0]);
    tf.dispose([x, y, gx!]);
  });

  it('signed (from statistics): quantize on [−1, 1] with 2^(k−1)−1 steps a side', () => {
    const q = keep(new DorefaActivationQuantizer('act:x', 4));
    q.initActivation({ min: -0.5, max: 3, meanAbs: 1, featuresPerExample: 1 });
    const xs = [-2, -0.5, 0.3, 0.9, 1.5];
    const x = tf.tensor1d(xs);
    const y = tf.tidy(() => run(q, x, true));
    // Computed as the exported graph does, round(x / s) with s = f32(1/7): −0.5 → −3.4999999 → −3
    // (the paper's round(x·7) would meet a tie at −3.5 and go to −4; the deployed model cannot).
    const s7 = f32(1 / 7);
    expectClose(y, xs.map((v) => f32(roundHalfEven(f32(Math.min(Math.max(v, -1), 1) / s7)) * s7)));
    expect(Array.from(y.dataSync())[1]).toBeCloseTo(-3 / 7, 6);
    expect(q.grid().range).toEqual([-7, 7]);
    expect(q.grid().signed).toBe(true);
    tf.dispose([x, y]);
  });
});

describe('quantizeK', () => {
  it('round(r·n)/n with ties to even and an identity gradient', () => {
    const r = tf.tensor1d([0, 1 / 6, 0.5, 5 / 6, 1]);
    const y = quantizeK(r, 3);
    // r·3: 0, 0.5, 1.5, 2.5, 3 → 0, 0, 2, 2, 3
    expectClose(y, [0, 0, 2 / 3, 2 / 3, 1]);
    const [g] = tf.grads((a: tf.Tensor) => tf.sum(quantizeK(a, 3)))([r]);
    expectClose(g!, [1, 1, 1, 1, 1]);
    tf.dispose([r, y, g!]);
  });
});

describe('Quantizer state', () => {
  it('state()/loadState() round-trips every quantizer kind; apply leaks nothing inside a tidy', async () => {
    const w = tf.tensor(wValues, W_SHAPE);
    const x = tf.tensor1d([0.1, 0.7, -0.3]);
    const stats = { min: -0.3, max: 0.9, meanAbs: 0.3, featuresPerExample: 3 };
    const makers: (() => Quantizer)[] = [
      () => new SymmetricQuantizer('a', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'ste', undefined),
      () => new AsymmetricQuantizer('a', 'activation', { bits: 8, mode: 'asymmetric', signed: false, narrowRange: false }, 'ste', undefined),
      () => new LsqQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
      () => new TqtQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
      () => new PactQuantizer('a', 4, { alphaInit: 'range', decay: 0 }),
      () => new DorefaActivationQuantizer('a', 4),
    ];
    for (const make of makers) {
      const a = keep(make());
      a.initActivation(stats);
      const b = keep(make());
      b.loadState(JSON.parse(JSON.stringify(a.state())));
      expect(b.initialized).toBe(true);
      const ya = tf.tidy(() => run(a, x, false));
      const yb = tf.tidy(() => run(b, x, false));
      expect(Array.from(yb.dataSync())).toEqual(Array.from(ya.dataSync()));
      expect(b.grid()).toEqual(a.grid());
      tf.dispose([ya, yb]);
      await expectNoLeak(() => tf.tidy(() => void run(a, x, true)));
    }
    const dw = keep(new DorefaWeightQuantizer('w', 4, w, 'max'));
    const dw2 = keep(new DorefaWeightQuantizer('w', 4, tf.tidy(() => tf.mul(w, 3)), 'max'));
    dw2.loadState(dw.state());
    expect(dw2.grid()).toEqual(dw.grid());
    expect(errorOf(() => keep(new SymmetricQuantizer('q', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'ste', undefined)).loadState({ vars: [[1, 2]] })).code).toBe('STATE_INVALID');
    tf.dispose([w, x]);
  });
});

describe('Quantizer leaks', () => {
  it('initActivation and loadState allocate no lasting tensors', async () => {
    const stats = { min: -1, max: 2, meanAbs: 0.5, featuresPerExample: 3 };
    const makers: (() => Quantizer)[] = [
      () => new SymmetricQuantizer('a', 'activation', { bits: 8, mode: 'symmetric', signed: true, narrowRange: false }, 'ste', undefined),
      () => new AsymmetricQuantizer('a', 'activation', { bits: 8, mode: 'asymmetric', signed: false, narrowRange: false }, 'ste', undefined),
      () => new LsqQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
      () => new TqtQuantizer('a', 'activation', { bits: 4, mode: 'symmetric', signed: false, narrowRange: false }),
      () => new PactQuantizer('a', 4, { alphaInit: 'range', decay: 0 }),
    ];
    for (const make of makers) {
      const q = keep(make());
      await expectNoLeak(() => q.initActivation(stats));
      const st = q.state();
      await expectNoLeak(() => q.loadState(st));
    }
  });
});
