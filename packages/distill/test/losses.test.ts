import * as tf from '@tensorflow/tfjs-core';
import { ensureGradients, useBackend } from '@tensorpress/core-tensor';
import { distillationLoss, hintLoss, logitMse, softTargetKl } from '@tensorpress/distill';
import { errorOf, expectClose, expectNoLeak, seededArray } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
  await ensureGradients();
});

// Closed forms in float64, row by row, independent of tfjs.
const N = 3;
const C = 4;
const S = Array.from(seededArray(N * C, 1, -3, 3));
const T = Array.from(seededArray(N * C, 2, -3, 3));
const LABELS = [2, 0, 3];

function softmaxRows(z: number[], temp: number): number[] {
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    const row = z.slice(n * C, (n + 1) * C).map((v) => v / temp);
    const m = Math.max(...row);
    const e = row.map((v) => Math.exp(v - m));
    const sum = e.reduce((a, b) => a + b, 0);
    out.push(...e.map((v) => v / sum));
  }
  return out;
}

function klRef(temp: number): number {
  const ps = softmaxRows(S, temp);
  const pt = softmaxRows(T, temp);
  let kl = 0;
  for (let i = 0; i < N * C; i++) kl += pt[i]! * Math.log(pt[i]! / ps[i]!);
  return kl / N;
}

function ceRef(): number {
  const p = softmaxRows(S, 1);
  return -LABELS.reduce((a, y, n) => a + Math.log(p[n * C + y]!), 0) / N;
}

const s = (): tf.Tensor2D => tf.tensor2d(S, [N, C]);
const t = (): tf.Tensor2D => tf.tensor2d(T, [N, C]);

describe('softTargetKl', () => {
  it('equals T² times the mean KL(p_t ‖ p_s) of the softened distributions', () => {
    for (const temp of [1, 2, 4, 0.5]) {
      const v = softTargetKl(s(), t(), temp);
      expectClose([v.dataSync()[0]!], [temp * temp * klRef(temp)], { label: `T=${temp}` });
    }
  });

  it('is zero when the student equals the teacher', () => {
    expectClose([softTargetKl(t(), t(), 3).dataSync()[0]!], [0], { atol: 1e-6 });
  });

  it("has gradient (T/N)·(softmax(s/T) − softmax(t/T)) in the student's logits and none in the teacher's", async () => {
    const temp = 3;
    const ps = softmaxRows(S, temp);
    const pt = softmaxRows(T, temp);
    const want = ps.map((p, i) => (temp / N) * (p - pt[i]!));
    const [gs, gt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => softTargetKl(a, b, temp))([s(), t()]);
    expectClose(gs!, want, { label: 'student' });
    expect(Array.from(gt!.dataSync())).toEqual(new Array(N * C).fill(0));
    await expectNoLeak(() => tf.tidy(() => softTargetKl(s(), t(), temp)).dispose());
  });

  it('refuses a temperature <= 0 and logits of different shapes', () => {
    expect(errorOf(() => softTargetKl(s(), t(), 0)).code).toBe('INPUT_INVALID');
    expect(errorOf(() => softTargetKl(s(), t(), -1)).message).toMatch(/temperature must be .* > 0, got -1/);
    const e = errorOf(() => softTargetKl(s(), tf.zeros([N, C + 1]), 2));
    expect(e.code).toBe('SHAPE_MISMATCH');
    expect(e.message).toContain('[3, 5]');
  });
});

describe('logitMse', () => {
  it('is the mean squared logit difference, with gradient 2(s − t)/size', () => {
    const want = S.reduce((a, v, i) => a + (v - T[i]!) ** 2, 0) / (N * C);
    expectClose([logitMse(s(), t()).dataSync()[0]!], [want]);
    const g = tf.grad((a: tf.Tensor) => logitMse(a, t()))(s());
    expectClose(g, S.map((v, i) => (2 * (v - T[i]!)) / (N * C)));
  });
});

describe('distillationLoss', () => {
  it('blends (1 − α)·CE + α·T²·KL, in value and gradient', () => {
    const temp = 2;
    const labels = tf.tensor1d(LABELS, 'int32');
    const p1 = softmaxRows(S, 1);
    const ps = softmaxRows(S, temp);
    const pt = softmaxRows(T, temp);
    for (const alpha of [0, 0.3, 1]) {
      const v = distillationLoss(s(), t(), labels, { alpha, temperature: temp });
      expectClose([v.dataSync()[0]!], [(1 - alpha) * ceRef() + alpha * temp * temp * klRef(temp)], { label: `alpha=${alpha}` });
      const g = tf.grad((a: tf.Tensor) => distillationLoss(a, t(), labels, { alpha, temperature: temp }))(s());
      const want = p1.map((p, i) => {
        const onehot = LABELS[Math.floor(i / C)] === i % C ? 1 : 0;
        return ((1 - alpha) * (p - onehot)) / N + alpha * (temp / N) * (ps[i]! - pt[i]!);
      });
      expectClose(g, want, { label: `grad alpha=${alpha}` });
    }
  });

  it('uses the logit MSE with loss "mse"', () => {
    const labels = tf.tensor1d(LABELS, 'int32');
    const mse = S.reduce((a, v, i) => a + (v - T[i]!) ** 2, 0) / (N * C);
    const v = distillationLoss(s(), t(), labels, { alpha: 0.5, temperature: 7, loss: 'mse' });
    expectClose([v.dataSync()[0]!], [0.5 * ceRef() + 0.5 * mse]);
  });

  it('refuses α outside [0, 1]', () => {
    const labels = tf.tensor1d(LABELS, 'int32');
    for (const alpha of [-0.1, 1.5, Number.NaN]) {
      expect(errorOf(() => distillationLoss(s(), t(), labels, { alpha, temperature: 1 })).message).toMatch(/alpha must be in \[0, 1\]/);
    }
  });
});

describe('hintLoss', () => {
  // Feature maps [2, 2, 2, Cs=3] and [2, 2, 2, Ct=2]: M = 8 positions.
  const M = 8;
  const CS = 3;
  const CT = 2;
  const SF = Array.from(seededArray(M * CS, 5));
  const TF = Array.from(seededArray(M * CT, 6));
  const W = Array.from(seededArray(CS * CT, 7));
  const residual = (): number[] => {
    const r: number[] = [];
    for (let m = 0; m < M; m++) {
      for (let j = 0; j < CT; j++) {
        let y = 0;
        for (let k = 0; k < CS; k++) y += SF[m * CS + k]! * W[k * CT + j]!;
        r.push(y - TF[m * CT + j]!);
      }
    }
    return r;
  };

  it('is mean((S·W − T)²) with the 1×1 adapter, with closed-form gradients in S and W', () => {
    const sf = tf.tensor4d(SF, [2, 2, 2, CS]);
    const tfm = tf.tensor4d(TF, [2, 2, 2, CT]);
    const w = tf.tensor2d(W, [CS, CT]);
    const r = residual();
    const size = M * CT;
    expectClose([hintLoss(sf, tfm, w).dataSync()[0]!], [r.reduce((a, v) => a + v * v, 0) / size]);
    const [gS, gW] = tf.grads((a: tf.Tensor, b: tf.Tensor) => hintLoss(a, tfm, b as tf.Tensor2D))([sf, w]);
    // dL/dS = 2/size · R·Wᵀ ; dL/dW = 2/size · Sᵀ·R
    const wantS: number[] = [];
    for (let m = 0; m < M; m++) for (let k = 0; k < CS; k++) wantS.push((2 / size) * [0, 1].reduce((a, j) => a + r[m * CT + j]! * W[k * CT + j]!, 0));
    const wantW: number[] = [];
    for (let k = 0; k < CS; k++) for (let j = 0; j < CT; j++) wantW.push((2 / size) * Array.from({ length: M }, (_, m) => SF[m * CS + k]! * r[m * CT + j]!).reduce((a, b) => a + b, 0));
    expectClose(gS!, wantS, { label: 'dS' });
    expectClose(gW!, wantW, { label: 'dW' });
  });

  it('compares the maps directly without an adapter, and refuses maps that differ', () => {
    const a = tf.tensor2d([1, 2, 3, 4], [2, 2]);
    const b = tf.tensor2d([0, 2, 5, 4], [2, 2]);
    expectClose([hintLoss(a, b).dataSync()[0]!], [(1 + 4) / 4]);
    expect(errorOf(() => hintLoss(a, tf.zeros([2, 3]))).code).toBe('SHAPE_MISMATCH');
    expect(errorOf(() => hintLoss(a, b, tf.zeros([3, 2]) as tf.Tensor2D)).message).toMatch(/adapter maps 3 channels/);
  });
});
