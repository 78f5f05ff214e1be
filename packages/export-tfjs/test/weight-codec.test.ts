import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { TensorpressError } from '@tensorpress/core-tensor';
import { createRng } from '@tensorpress/core-tensor';
import { beforeAll, describe, expect, test } from 'vitest';
import { checkSpec, decodeWeight, encodeWeight, fromFloat16Bits, toFloat16Bits } from '../src/internal/weight-codec.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** What tfjs-core's own decoder makes of the bytes (the reference every decode is held to). */
function tfjsDecode(bytes: Uint8Array, spec: tf.io.WeightsManifestEntry): Float32Array | Int32Array {
  const out = tf.io.decodeWeights(bytes.slice().buffer, [spec]);
  const t = out[spec.name]!;
  const v = t.dataSync() as Float32Array | Int32Array;
  t.dispose();
  return v;
}

function randomWeights(n: number, seed: number, lo: number, hi: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.next());
}

describe('toFloat16Bits', () => {
  test('known answers: rounding to nearest even, overflow, subnormals, signed zero, NaN', () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      // Halfway between 65504 and 65536 rounds to even: 65536 overflows to infinity.
      [65520, 0x7c00],
      [65519, 0x7bff],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [2 ** -24, 0x0001],
      // Half of the smallest subnormal is a tie: to even, zero.
      [2 ** -25, 0x0000],
      // Three quarters of the smallest subnormal rounds up to it.
      [3 * 2 ** -26, 0x0001],
      [2 ** -14, 0x0400],
      // 1 + 2^-11 lies halfway between 1 and 1 + 2^-10: even mantissa (1).
      [1 + 2 ** -11, 0x3c00],
      [1 + 3 * 2 ** -11, 0x3c02],
      [-0, 0x8000],
      [0, 0],
    ];
    for (const [v, h] of cases) expect(toFloat16Bits(v), String(v)).toBe(h);
    expect(toFloat16Bits(NaN) & 0x7c00).toBe(0x7c00);
    expect(toFloat16Bits(NaN) & 0x3ff).not.toBe(0);
  });

  test('every half value decodes as tfjs decodes it and encodes back to itself', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const want = tfjsDecode(new Uint8Array(all.buffer), { name: 'h', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } });
    const spec = checkSpec({ name: 'h', shape: [65536], dtype: 'float32', quantization: { dtype: 'float16' } }, []);
    const got = decodeWeight(spec, new Uint8Array(all.buffer)) as Float32Array;
    expect(got).toEqual(want);
    for (let h = 0; h < 65536; h++) {
      const v = fromFloat16Bits(h);
      if (!Number.isNaN(v)) expect(toFloat16Bits(v)).toBe(h);
    }
  });
});

describe('encodeWeight', () => {
  test('uint8: tfjs-converter\'s nudged affine range on hand-derived values, zero exact', () => {
    // Range [-0.25, 63.5] is 255 steps of 0.25; zero is code 1.
    const w = Float32Array.from([-0.25, 0, 1.1, 63.5, 0.125, 0.375]);
    const { bytes, quantization } = encodeWeight(w, 'uint8');
    expect(quantization).toEqual({ dtype: 'uint8', scale: 0.25, min: -0.25 });
    // 1.1 → 5.4 → 5; 0.125 → 1.5 → 2 and 0.375 → 2.5 → 2 (ties to even).
    expect([...bytes]).toEqual([0, 1, 5, 255, 2, 2]);
  });

  test('a constant tensor: scale 1, min the value, all codes 0 (as tfjs-converter)', () => {
    const { bytes, quantization } = encodeWeight(new Float32Array([0.7, 0.7]), 'uint16');
    expect(quantization).toEqual({ dtype: 'uint16', scale: 1, min: Math.fround(0.7) });
    expect([...new Uint16Array(bytes.buffer)]).toEqual([0, 0]);
  });

  test.each(['uint8', 'uint16', 'float16'] as const)('%s: decodes exactly as tf.io.decodeWeights, within half a step of the weights', (format) => {
    const w = randomWeights(5000, 7, -0.8, 1.3);
    w[0] = 0;
    const { bytes, quantization } = encodeWeight(w, format);
    const spec = { name: 'w', shape: [5000], dtype: 'float32' as const, quantization: quantization! };
    const got = decodeWeight(checkSpec(spec, []), bytes) as Float32Array;
    expect(got).toEqual(tfjsDecode(bytes, spec));
    expect(got[0]).toBe(0);
    let worst = 0;
    for (let i = 0; i < w.length; i++) {
      // The format's step at this weight: the affine scale, or float16's spacing (2^-10 relative).
      const step = quantization!.dtype === 'float16' ? 2 ** (Math.floor(Math.log2(Math.abs(w[i]!) || 2 ** -14)) - 10) : quantization!.scale;
      worst = Math.max(worst, Math.abs(got[i]! - w[i]!) / step);
    }
    // Half a step, plus float32 rounding of q·scale + min.
    expect(worst).toBeLessThanOrEqual(0.5 + 1e-4 * (format === 'uint16' ? 256 : 1));
  });

  test('affine formats refuse non-finite weights', () => {
    expect(() => encodeWeight(Float32Array.of(1, NaN), 'uint8')).toThrow(expect.objectContaining({ code: 'NUMERIC_INVALID' }));
  });
});

describe('checkSpec / decodeWeight', () => {
  test('int32 weights under uint8 storage round as tfjs does; bool bytes pass through', () => {
    const spec = { name: 'i', shape: [3], dtype: 'int32' as const, quantization: { dtype: 'uint8' as const, scale: 0.5, min: -1.2 } };
    const bytes = Uint8Array.of(0, 3, 200);
    expect(decodeWeight(checkSpec(spec, []), bytes)).toEqual(tfjsDecode(bytes, spec));
    expect(decodeWeight(checkSpec({ name: 'b', shape: [2], dtype: 'bool' }, []), Uint8Array.of(1, 0))).toEqual(Uint8Array.of(1, 0));
  });

  test.each([
    [{ name: 'w', shape: [2], dtype: 'float32', quantization: { dtype: 'int4' } }, /\$\.weightsManifest\[0\]\.quantization\.dtype: weight "w" has quantization dtype "int4"; expected uint8, uint16 or float16/],
    [{ name: 'w', shape: [2], dtype: 'float32', quantization: { dtype: 'uint8', scale: 1 } }, /weight "w": uint8 quantization needs finite numbers "scale" and "min", got scale 1, min undefined/],
    [{ name: 'w', shape: [2], dtype: 'int32', quantization: { dtype: 'float16' } }, /weight "w" is int32; float16 storage holds float32 weights only/],
    [{ name: 'w', shape: [2.5], dtype: 'float32' }, /\$\.weightsManifest\[0\]\.shape: expected non-negative integer dimensions/],
    [{ name: 'w', shape: [2], dtype: 'string' }, /weight "w" has dtype "string"; expected float32, int32, bool or complex64/],
  ])('%j is refused, naming the field', (spec, message) => {
    let err: unknown;
    try {
      checkSpec(spec, ['weightsManifest', 0]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    expect((err as TensorpressError).code).toBe('INPUT_INVALID');
    expect((err as TensorpressError).message).toMatch(message);
  });
});
