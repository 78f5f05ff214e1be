import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { binarizeWeight, binarySte, signPlus, ternarySte, weightParts, type SteVariant, type WeightMethod } from '@tensorpress/binary';
import { expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

// A Gemm weight [in = 3, out = 2]: filter 0 = [1, −3, 2], filter 1 = [−2, 4, 0].
const W = [
  [1, -2],
  [-3, 4],
  [2, 0],
];

function parts(method: WeightMethod, options: Parameters<typeof weightParts>[2] = {}): { codes: number[][]; scale: number[] } {
  return tf.tidy(() => {
    const p = weightParts(tf.tensor2d(W), method, { center: false, ...options });
    return { codes: p.codes.arraySync() as number[][], scale: Array.from(p.scale.dataSync()) };
  });
}

describe('signPlus', () => {
  it('maps x >= 0 (zero and negative zero included) to +1 and x < 0 to −1', () => {
    const y = tf.tidy(() => Array.from(signPlus(tf.tensor1d([-2, -1e-30, -0, 0, 1e-30, 3])).dataSync()));
    expect(y).toEqual([-1, -1, 1, 1, 1, 1]);
  });
});

describe('binarySte', () => {
  const x = [-2, -1, -0.5, 0, 0.5, 1, 1.5];
  const dy = [1, 2, 3, 4, 5, 6, 7];
  // Closed forms: ste: dy; saturate_ste: dy·[|x| <= 1]; soft_ste: dy·max(0, 1 − |x|);
  // approx_sign: dy·(2 − 2|x|) on |x| < 1, else 0 (Bi-Real's d/dx of 2x + x|x|).
  const expected: Record<SteVariant, number[]> = {
    ste: dy,
    saturate_ste: [0, 2, 3, 4, 5, 6, 0],
    soft_ste: [0, 0, 1.5, 4, 2.5, 0, 0],
    approx_sign: [0, 0, 3, 8, 5, 0, 0],
  };
  for (const variant of ['ste', 'saturate_ste', 'soft_ste', 'approx_sign'] as const) {
    it(`${variant}: forward sign(x) with sign(0) = +1, gradient equal to the closed form`, async () => {
      await expectNoLeak(() => {
        const { value, grad } = tf.tidy(() => {
          const xt = tf.tensor1d(x);
          const f = (t: tf.Tensor): tf.Tensor => tf.sum(tf.mul(binarySte(t, variant), tf.tensor1d(dy)));
          return { value: Array.from(binarySte(xt, variant).dataSync()), grad: Array.from(tf.grad(f)(xt).dataSync()) };
        });
        expect(value).toEqual([-1, -1, -1, 1, 1, 1, 1]);
        expect(grad).toEqual(expected[variant]);
      });
    });
  }

  it('ternarySte: codes against Δ (strict), gradient dy·g(x) for x and none for Δ', () => {
    const { value, gx, gd } = tf.tidy(() => {
      const xt = tf.tensor1d([-2, -1, -0.5, 0, 0.5, 1, 1.5]);
      const d = tf.scalar(1);
      const [gxT, gdT] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(ternarySte(a, b, 'saturate_ste'), tf.tensor1d([1, 2, 3, 4, 5, 6, 7]))))([xt, d]);
      return { value: Array.from(ternarySte(xt, d).dataSync()), gx: Array.from(gxT!.dataSync()), gd: Array.from(gdT!.dataSync()) };
    });
    expect(value).toEqual([-1, 0, 0, 0, 0, 0, 1]);
    expect(gx).toEqual([0, 2, 3, 4, 5, 6, 0]);
    expect(gd).toEqual([0]);
  });
});

describe('weightParts', () => {
  it('bnn: sign(W) per element, sign(0) = +1, scale 1', () => {
    expect(parts('bnn')).toEqual({ codes: [[1, -1], [-1, 1], [1, 1]], scale: [1] });
  });

  it('xnor: α = mean|W| per output filter', () => {
    expect(parts('xnor')).toEqual({ codes: [[1, -1], [-1, 1], [1, 1]], scale: [2, 2] });
  });

  it('xnor with centring: the filter mean is removed first', () => {
    // Filter 1 − 2/3 = [−8/3, 10/3, −2/3]: α = 20/9, codes [−1, 1, −1]; filter 0 has mean 0.
    const p = parts('xnor', { center: true });
    expect(p.codes).toEqual([[1, -1], [-1, 1], [1, -1]]);
    expect(p.scale[0]).toBe(2);
    expect(p.scale[1]).toBeCloseTo(20 / 9, 6);
  });

  it('dorefa: one α = mean|W| for the whole tensor', () => {
    expect(parts('dorefa')).toEqual({ codes: [[1, -1], [-1, 1], [1, 1]], scale: [2] });
  });

  it('twn: Δ = 0.7·mean|W| per filter, α = mean |W| over |W| > Δ', () => {
    // Filter 0: Δ = 1.4, codes [0, −1, 1], α = (3 + 2)/2; filter 1: Δ = 1.4, codes [−1, 1, 0], α = (2 + 4)/2.
    expect(parts('twn')).toEqual({ codes: [[0, -1], [-1, 1], [1, 0]], scale: [2.5, 3] });
  });

  it('twn: an element exactly at Δ is 0 (the comparison is strict)', () => {
    // θ = 0.5: filter 0 Δ = 1 = |W[0]|; filter 1 Δ = 1.
    expect(parts('twn', { ternaryThreshold: 0.5 })).toEqual({ codes: [[0, -1], [-1, 1], [1, 0]], scale: [2.5, 3] });
  });

  it('ternary: the TWN codes with no scale', () => {
    expect(parts('ternary')).toEqual({ codes: [[0, -1], [-1, 1], [1, 0]], scale: [1] });
  });

  it('ternary gap: weights within gap·Δ of Δ keep their previous code', () => {
    // Δ = 1.4 for both filters, gap 0.5: band ||W| − 1.4| < 0.7 holds 1 and 2 (filter 0) and 2 (filter 1).
    const previous = tf.tensor2d([
      [-1, 0],
      [0, 0],
      [0, 1],
    ]);
    const p = parts('ternary', { ternaryGap: 0.5, previous });
    previous.dispose();
    expect(p.codes).toEqual([[-1, 0], [-1, 1], [0, 0]]);
  });
});

describe('binarizeWeight gradients', () => {
  const dy = [
    [1, -2],
    [0.5, 3],
    [-1, 1],
  ];

  function grad(method: WeightMethod, ste: SteVariant): number[][] {
    return tf.tidy(() => tf.grad((w: tf.Tensor) => tf.sum(tf.mul(binarizeWeight(w, method, { center: false, ste }), tf.tensor2d(dy))))(tf.tensor2d(W)).arraySync() as number[][]);
  }

  it('xnor: dL/dW = dy·α·g(W) + ∂|W|/∂W/n · Σ_filter dy·sign(W) (XNOR-Net)', () => {
    // α = [2, 2], sign = [[1, −1], [−1, 1], [1, 1]], n = 3; ∂|W|/∂W is −1 at W = 0 (tfjs's abs gradient is step(x) with −1 at and below 0).
    // Σ dy·sign: filter 0: 1 − 0.5 − 1 = −0.5; filter 1: 2 + 3 + 1 = 6.
    const ref = (g: number[][]): number[][] =>
      W.map((row, i) => row.map((w, j) => dy[i]![j]! * 2 * g[i]![j]! + ((w > 0 ? 1 : -1) / 3) * [-0.5, 6][j]!));
    const ones = W.map((r) => r.map(() => 1));
    const sat = W.map((r) => r.map((w) => (Math.abs(w) <= 1 ? 1 : 0)));
    const soft = W.map((r) => r.map((w) => Math.max(0, 1 - Math.abs(w))));
    const approx = soft.map((r) => r.map((v) => 2 * v));
    for (const [ste, g] of [['ste', ones], ['saturate_ste', sat], ['soft_ste', soft], ['approx_sign', approx]] as const) {
      const got = grad('xnor', ste).flat();
      ref(g).flat().forEach((v, k) => expect(got[k], `${ste} [${k}]`).toBeCloseTo(v, 5));
    }
  });

  it('twn: dL/dW = dy·α + sign(W)·[|W| > Δ]/count · Σ_filter dy·t(W)', () => {
    // codes [[0, −1], [−1, 1], [1, 0]], α = [2.5, 3], counts [2, 2].
    // Σ dy·t: filter 0: −0.5 − 1 = −1.5; filter 1: 2 + 3 = 5.
    const codes = [
      [0, -1],
      [-1, 1],
      [1, 0],
    ];
    const alpha = [2.5, 3];
    const sums = [-1.5, 5];
    const ref = W.map((row, i) => row.map((w, j) => dy[i]![j]! * alpha[j]! + (Math.sign(w) * Math.abs(codes[i]![j]!) * sums[j]!) / 2));
    const got = grad('twn', 'ste').flat();
    ref.flat().forEach((v, k) => expect(got[k], `[${k}]`).toBeCloseTo(v, 5));
  });

  it('bnn: dL/dW = dy·g(W) (no scale)', () => {
    expect(grad('bnn', 'ste')).toEqual(dy);
  });
});
