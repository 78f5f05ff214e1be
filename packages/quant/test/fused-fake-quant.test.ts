import * as tf from '@tensorflow/tfjs-core';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { useBackend } from '@tensorpress/core-tensor';
import { heapModule } from '@tensorpress/kernels';
import { fakeQuantize, type FakeQuantOptions } from '@tensorpress/quant';
import { expectClose, expectNoLeak, seededArray } from '@tensorpress/test-utils';
import { afterAll, describe, expect, it } from 'vitest';
import { FAKE_QUANT_SIMD_WASM } from '../src/internal/fake-quant-simd.js';
import { fusedFakeQuantAvailable } from '../src/internal/fused-fake-quant.js';

// fake-quantize.test.ts checks the default path (the fused kernels on cpu) against closed forms;
// here the fused kernels and the tensor-op path must agree: forward bit for bit, gradients closely,
// on both backends that have the kernels, for every option that changes the arithmetic.

interface Case {
  name: string;
  shape: number[];
  scale: { values: number[]; shape: number[] };
  zeroPoint: { values: number[]; shape: number[] };
  options: FakeQuantOptions;
}

const perTensor = { values: [0.07], shape: [] };
const cases: Case[] = [
  { name: 'symmetric per tensor, clipped', shape: [4, 5, 5, 3], scale: perTensor, zeroPoint: { values: [0], shape: [] }, options: { range: [-8, 7], zeroPointIsZero: true } },
  { name: 'symmetric per tensor, ste, gradScale', shape: [4, 5, 5, 3], scale: perTensor, zeroPoint: { values: [0], shape: [] }, options: { range: [-127, 127], gradient: 'ste', gradScale: 0.03, zeroPointIsZero: true } },
  { name: 'asymmetric per tensor, learned zero point', shape: [6, 7, 2], scale: perTensor, zeroPoint: { values: [3.4], shape: [] }, options: { range: [0, 15] } },
  { name: 'asymmetric, zero point frozen', shape: [6, 7, 2], scale: perTensor, zeroPoint: { values: [-2], shape: [] }, options: { range: [-8, 7], learnZeroPoint: false } },
  { name: 'PACT: no scale gradient inside', shape: [3, 4, 4, 2], scale: perTensor, zeroPoint: { values: [0], shape: [] }, options: { range: [0, 15], scaleGradient: 'pact', zeroPointIsZero: true } },
  { name: 'not learnable', shape: [3, 4, 4, 2], scale: perTensor, zeroPoint: { values: [1], shape: [] }, options: { range: [0, 3], learnable: false } },
  // On wasm, per-tensor calls run the SIMD loops (fake-quant-simd.wat) on all but the last n mod 4
  // values: sizes that leave a tail, and ones past the size where wasm used tensor ops before.
  { name: 'per tensor, odd size (SIMD body and scalar tail)', shape: [3, 5, 7], scale: perTensor, zeroPoint: { values: [2.6], shape: [] }, options: { range: [-8, 7] } },
  { name: 'large, symmetric, clipped', shape: [2, 129, 257], scale: perTensor, zeroPoint: { values: [0], shape: [] }, options: { range: [-8, 7], zeroPointIsZero: true } },
  { name: 'large, asymmetric, learned zero point', shape: [3, 97, 229], scale: perTensor, zeroPoint: { values: [-3.2], shape: [] }, options: { range: [-128, 127] } },
  { name: 'large, PACT, ste', shape: [2, 129, 257], scale: perTensor, zeroPoint: { values: [0], shape: [] }, options: { range: [0, 15], scaleGradient: 'pact', gradient: 'ste', zeroPointIsZero: true } },
  { name: 'large, not learnable', shape: [2, 129, 257], scale: perTensor, zeroPoint: { values: [1], shape: [] }, options: { range: [0, 3], learnable: false } },
  {
    name: 'per channel [1,1,1,C], asymmetric',
    shape: [3, 3, 2, 4],
    scale: { values: [0.05, 0.1, 0.2, 0.4], shape: [1, 1, 1, 4] },
    zeroPoint: { values: [0, 3, -2, 1], shape: [1, 1, 1, 4] },
    options: { range: [-8, 7] },
  },
  {
    name: 'per channel [C], symmetric, scalar zero point',
    shape: [9, 5],
    scale: { values: [0.02, 0.07, 0.3, 0.11, 0.05], shape: [5] },
    zeroPoint: { values: [0], shape: [] },
    options: { range: [-7, 7], zeroPointIsZero: true, gradient: 'ste' },
  },
  // A learned parameter and its rule (ScaleFrom): the kernels derive the scale and return the parameter's gradient.
  { name: 'threshold |t| / 127, negative t', shape: [4, 5, 5, 3], scale: { values: [-8.89], shape: [] }, zeroPoint: { values: [0], shape: [] }, options: { range: [-127, 127], zeroPointIsZero: true, scaleFrom: { kind: 'abs', divisor: 127 } } },
  { name: 'threshold at the MIN_SCALE floor', shape: [3, 4, 4, 2], scale: { values: [1e-9], shape: [] }, zeroPoint: { values: [0], shape: [] }, options: { range: [-8, 7], zeroPointIsZero: true, scaleFrom: { kind: 'abs', divisor: 7 } } },
  { name: 'TQT: 2^(ceil(log2 t) − 3)', shape: [4, 5, 5, 3], scale: { values: [-0.3], shape: [] }, zeroPoint: { values: [0], shape: [] }, options: { range: [-8, 7], zeroPointIsZero: true, scaleFrom: { kind: 'pow2', shift: 3 } } },
  { name: 'PACT: α / 15', shape: [2, 129, 257], scale: { values: [1.05], shape: [] }, zeroPoint: { values: [0], shape: [] }, options: { range: [0, 15], scaleGradient: 'pact', zeroPointIsZero: true, scaleFrom: { kind: 'div', divisor: 15 } } },
  { name: 'large, LSQ step |s| with gradScale', shape: [2, 129, 257], scale: { values: [0.11], shape: [] }, zeroPoint: { values: [0], shape: [] }, options: { range: [-8, 7], zeroPointIsZero: true, gradScale: 0.01, scaleFrom: { kind: 'abs', divisor: 1 } } },
  {
    name: 'per channel thresholds |t| / 7',
    shape: [3, 3, 2, 4],
    scale: { values: [0.5, -1, 2, 4], shape: [1, 1, 1, 4] },
    zeroPoint: { values: [0], shape: [] },
    options: { range: [-7, 7], zeroPointIsZero: true, scaleFrom: { kind: 'abs', divisor: 7 } },
  },
  // Per channel with channels a multiple of 4 and zero points 0: the per-channel SIMD loops on wasm.
  {
    name: 'per channel ×8, thresholds |t| / 127',
    shape: [3, 3, 5, 8],
    scale: { values: [1.5, -2, 0.3, 4, 0.9, 1.1, 2.5, 0.05], shape: [1, 1, 1, 8] },
    zeroPoint: { values: [0], shape: [] },
    options: { range: [-127, 127], zeroPointIsZero: true, scaleFrom: { kind: 'abs', divisor: 127 } },
  },
  {
    name: 'per channel ×8, learned zero points at 0, ste',
    shape: [7, 16],
    scale: { values: [0.05, 0.1, 0.2, 0.4, 0.03, 0.07, 0.11, 0.5, 0.05, 0.1, 0.2, 0.4, 0.03, 0.07, 0.11, 0.5], shape: [16] },
    zeroPoint: { values: Array.from({ length: 16 }, () => 0), shape: [16] },
    options: { range: [-8, 7], gradient: 'ste' },
  },
  {
    name: 'per channel ×8, one learned zero point for all',
    shape: [5, 8],
    scale: { values: [0.05, 0.1, 0.2, 0.4, 0.03, 0.07, 0.11, 0.5], shape: [8] },
    zeroPoint: { values: [3], shape: [] },
    options: { range: [-8, 7] },
  },
  {
    name: 'large per channel weight (3×3×64×128)',
    shape: [3, 3, 64, 128],
    scale: { values: Array.from({ length: 128 }, (_, i) => 0.01 + 0.002 * i), shape: [1, 1, 1, 128] },
    zeroPoint: { values: [0], shape: [] },
    options: { range: [-63, 63], zeroPointIsZero: true },
  },
  {
    name: 'per channel on another axis (tensor ops either way)',
    shape: [3, 3, 4, 1],
    scale: { values: [0.05, 0.1, 0.2, 0.4], shape: [1, 1, 4, 1] },
    zeroPoint: { values: [0, 0, 0, 0], shape: [1, 1, 4, 1] },
    options: { range: [-8, 7], zeroPointIsZero: true },
  },
];

function run(c: Case, fused: boolean): { y: Float32Array; grads: Float32Array[] } {
  const size = c.shape.reduce((a, b) => a * b, 1);
  return tf.tidy(() => {
    // x spans the range and beyond on both sides, and includes exact ties (multiples of s/2)
    const xs = seededArray(size, 5, -1.6, 1.6);
    for (let i = 0; i < size; i += 7) xs[i] = Math.fround(0.07 * (Math.round(i / 7) - 10) * 0.5);
    const x = tf.tensor(xs, c.shape);
    const s = tf.tensor(c.scale.values, c.scale.shape);
    const z = tf.tensor(c.zeroPoint.values, c.zeroPoint.shape);
    const dy = tf.tensor(seededArray(size, 6, -1, 1), c.shape);
    const options = { ...c.options, fused };
    const y = fakeQuantize(x, s, z, options);
    const g = tf.grads((a: tf.Tensor, b: tf.Tensor, d: tf.Tensor) => tf.sum(tf.mul(fakeQuantize(a, b, d, options), dy)))([x, s, z]);
    expect(g.map((t) => t.shape)).toEqual([c.shape, c.scale.shape, c.zeroPoint.shape]);
    return { y: y.dataSync() as Float32Array, grads: g.map((t) => t.dataSync() as Float32Array) };
  });
}

afterAll(async () => {
  await useBackend('cpu');
});

describe('fake-quant-simd.wasm', () => {
  it('is what fake-quant-simd.wat assembles to', () => {
    const script = fileURLToPath(new URL('../scripts/build-wasm.mjs', import.meta.url));
    expect(() => execFileSync(process.execPath, [script, '--check'], { stdio: 'pipe' })).not.toThrow();
  });

  it('instantiates on the wasm heap, and the fused kernels then serve large per-tensor calls there', async () => {
    await useBackend('wasm');
    const m = heapModule(FAKE_QUANT_SIMD_WASM);
    expect(typeof m?.exports['forward']).toBe('function');
    expect(typeof m?.exports['backward']).toBe('function');
    const x = tf.zeros([2, 129, 257]);
    const perChannel = tf.ones([257]);
    const s = tf.scalar(0.1);
    expect(fusedFakeQuantAvailable(x, s, s)).toBe(true);
    expect(fusedFakeQuantAvailable(x, perChannel, s)).toBe(false); // 257 channels: not a multiple of 4
    const w = tf.zeros([3, 3, 64, 128]);
    const wScale = tf.ones([128]);
    expect(fusedFakeQuantAvailable(w, wScale, s)).toBe(true); // 128 channels: the per-channel SIMD loops
    tf.dispose([x, s, perChannel, w, wScale]);
  });

  it('is not there on cpu', async () => {
    await useBackend('cpu');
    // heapModule addresses the wasm backend's memory; cpu arrays are not in it, so the kernels loop in JavaScript.
    const m = heapModule(FAKE_QUANT_SIMD_WASM);
    const x = tf.zeros([4]);
    const values = tf.engine().backend.readSync(x.dataId) as Float32Array;
    expect(m == null || values.buffer !== m.memory.buffer).toBe(true);
    x.dispose();
  });
});

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`fused fake-quant kernels on ${backend}`, () => {
    for (const c of cases) {
      it(`${c.name}: fused equals tensor ops`, async () => {
        await useBackend(backend);
        const fused = run(c, true);
        const ops = run(c, false);
        // (+0 and −0 are the same value here: tensor ops give −0 for round(−0.3) · s and for dy · 0)
        expect(Array.from(fused.y, (v) => v + 0)).toEqual(Array.from(ops.y, (v) => v + 0));
        expect(Array.from(fused.grads[0]!, (v) => v + 0)).toEqual(Array.from(ops.grads[0]!, (v) => v + 0));
        // Sums over up to 66,000 values: the kernels accumulate in float64, the tensor ops in float32
        // (wasm's Sum is 1.2e-4 off on the large asymmetric case, where the kernels agree with cpu to 1e-6).
        expectClose(fused.grads[1]!, ops.grads[1]!, { atol: 1e-3, rtol: 3e-4, label: 'd scale' });
        expectClose(fused.grads[2]!, ops.grads[2]!, { atol: 1e-3, rtol: 3e-4, label: 'd zero point' });
        if (c.options.learnable === false || c.name.includes('floor')) expect(Array.from(fused.grads[1]!).every((v) => v === 0)).toBe(true);
        else expect(Array.from(fused.grads[1]!).some((v) => v !== 0)).toBe(true);
        if (c.options.learnZeroPoint === false || c.options.zeroPointIsZero) expect(Array.from(fused.grads[2]!).every((v) => v === 0)).toBe(true);
      });
    }

    it('the scale gradient is not trivially zero, and PACT-style differs from LSQ only inside', async () => {
      await useBackend(backend);
      const base = cases[0]!;
      const lsq = run(base, true).grads[1]![0]!;
      const pact = run({ ...base, options: { ...base.options, scaleGradient: 'pact' } }, true).grads[1]![0]!;
      expect(lsq).not.toBe(0);
      expect(pact).not.toBe(0);
      expect(pact).not.toBe(lsq);
    });

    it('forward and backward leak no tensors', async () => {
      await useBackend(backend);
      const x = tf.tensor(seededArray(96, 8), [2, 4, 4, 3]);
      const s = tf.scalar(0.05);
      const z = tf.scalar(0);
      const dataIds = tf.engine().backend.numDataIds();
      await expectNoLeak(() => {
        const g = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(fakeQuantize(a, b, z, { range: [-127, 127], zeroPointIsZero: true })))([x, s]);
        tf.dispose(g);
      });
      expect(tf.engine().backend.numDataIds()).toBe(dataIds);
      tf.dispose([x, s, z]);
    });
  });
}

describe('fused fake quantization in the gradient tape', () => {
  for (const backend of ['cpu', 'wasm'] as const) {
    it(`on ${backend}: reads variables and kept inputs in the backward directly, tape copies of the rest; same gradients as tensor ops`, async () => {
      await useBackend(backend);
      const shape = [2, 33, 9, 4];
      const size = shape.reduce((a, b) => a * b, 1);
      const s = tf.variable(tf.scalar(0.05), true, `fq-tape-test/${backend}/s`);
      const z = tf.keep(tf.scalar(0));
      const x = tf.tensor(seededArray(size, 31, -1, 1), shape);
      const dy = tf.tensor(seededArray(size, 32, -1, 1), shape);
      const grads = (fused: boolean): tf.Tensor[] => {
        const options: FakeQuantOptions = { range: [-8, 7], zeroPointIsZero: true, scaleFrom: { kind: 'abs', divisor: 1 }, fused };
        // The input is an intermediate that an inner tidy disposes before the backward runs.
        const { value, grads: g } = tf.variableGrads(() => tf.sum(tf.mul(tf.tidy(() => fakeQuantize(tf.mul(x, 1.5), s, z, options)), dy)) as tf.Scalar, [s]);
        value.dispose();
        return [g[s.name]!];
      };
      await expectNoLeak(() => {
        const [a] = grads(true);
        const [b] = grads(false);
        expectClose(a!, b!, { atol: 1e-5, rtol: 1e-5 });
        expect(Math.abs(a!.dataSync()[0]!)).toBeGreaterThan(0);
        tf.dispose([a!, b!]);
      });
      tf.dispose([s, z, x, dy]);
    });
  }
});
