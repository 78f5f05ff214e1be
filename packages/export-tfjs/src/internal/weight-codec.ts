/**
 * The bytes of tfjs weight manifests, both ways: float32 as is, float16, and the affine uint8/uint16
 * quantization tfjs-converter writes with `--quantize_uint8/--quantize_uint16` (`value = q · scale +
 * min`, decoded by tfjs-core's `io.decodeWeights`). Plain typed-array arithmetic, no tfjs, so it runs
 * in a browser and gives the same float32 values tfjs does.
 */
import { TensorpressError } from '@tensorpress/core-tensor';
import { invalid, isObj, show, type PathPart } from './json.js';

/** How weights are stored in the shards. */
export type WeightFormat = 'float32' | 'float16' | 'uint8' | 'uint16';

/** Every {@link WeightFormat}, in order of size. */
export const WEIGHT_FORMATS: readonly WeightFormat[] = Object.freeze(['float32', 'float16', 'uint16', 'uint8']);

/** The `quantization` entry of a weight spec, as tfjs-converter writes it. */
export type WeightQuantization = { readonly dtype: 'uint8' | 'uint16'; readonly scale: number; readonly min: number } | { readonly dtype: 'float16' };

/** The decoded values of one weight. */
export type DecodedValues = Float32Array | Int32Array | Uint8Array;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half-precision bits of a float32, rounded to nearest, ties to even (what numpy's astype does). */
export function toFloat16Bits(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A half subnormal: m · 2^-24 with m = (1.mant · 2^(exp-127)) · 2^24, rounded.
    const shift = 14 - e;
    if (shift > 24) return sign;
    const full = mant | 0x800000;
    const m = full >>> shift;
    const rem = full & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    return sign | (m + (rem > half || (rem === half && (m & 1) === 1) ? 1 : 0));
  }
  const m = mant >>> 13;
  const rem = mant & 0x1fff;
  // A carry out of the mantissa steps the exponent, up to infinity: exactly IEEE's behaviour.
  return sign | ((e << 10) + m + (rem > 0x1000 || (rem === 0x1000 && (m & 1) === 1) ? 1 : 0));
}

/** The float32 value of IEEE half-precision bits (exact: every half is a float32). */
export function fromFloat16Bits(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant !== 0 ? NaN : sign * Infinity;
  return sign * (1024 + mant) * 2 ** (exp - 25);
}

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * tfjs-converter's affine range (quantization.py): `scale = (max − min) / qmax`, and where the
 * range holds 0 the minimum is nudged so that 0 is a code exactly (zero padding and pruned zeros
 * stay zero). A constant tensor gets scale 1 and min = its value.
 */
function affineRange(lo: number, hi: number, qmax: number): { scale: number; min: number; max: number } {
  if (lo === hi) return { scale: 1, min: lo, max: hi };
  const scale = (hi - lo) / qmax;
  const min = lo <= 0 && 0 <= hi ? -roundHalfEven(-lo / scale) * scale : lo;
  return { scale, min, max: qmax * scale + min };
}

/** Encodes float32 values in a format; `quantization` is what the weight spec carries (none for float32). */
export function encodeWeight(values: Float32Array, format: WeightFormat): { bytes: Uint8Array; quantization?: WeightQuantization } {
  switch (format) {
    case 'float32':
      return { bytes: new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength)) };
    case 'float16': {
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = toFloat16Bits(values[i]!);
      return { bytes: new Uint8Array(out.buffer), quantization: { dtype: 'float16' } };
    }
    case 'uint8':
    case 'uint16': {
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of values) {
        if (!Number.isFinite(v)) {
          throw new TensorpressError('NUMERIC_INVALID', `a weight holds ${v}: ${format} quantization needs finite weights (store it as float32 or float16)`);
        }
        if (v < lo) lo = v;
        if (v > hi) hi = v;
      }
      if (values.length === 0) lo = hi = 0;
      const qmax = format === 'uint8' ? 255 : 65535;
      const { scale, min, max } = affineRange(lo, hi, qmax);
      const out = format === 'uint8' ? new Uint8Array(values.length) : new Uint16Array(values.length);
      if (lo !== hi) {
        for (let i = 0; i < values.length; i++) out[i] = roundHalfEven((Math.min(Math.max(values[i]!, min), max) - min) / scale);
      }
      return { bytes: new Uint8Array(out.buffer), quantization: { dtype: format, scale, min } };
    }
    default:
      throw new TensorpressError('CONFIG_INVALID', `unknown weight format ${JSON.stringify(format)}; expected one of ${WEIGHT_FORMATS.join(', ')}`);
  }
}

/** Encodes every weight in a format and concatenates the bytes (the weight data of a manifest group). */
export function packWeights(values: readonly Float32Array[], format: WeightFormat): { quantizations: (WeightQuantization | undefined)[]; weightData: ArrayBuffer } {
  const encoded = values.map((v) => encodeWeight(v, format));
  const weightData = new ArrayBuffer(encoded.reduce((n, e) => n + e.bytes.byteLength, 0));
  const bytes = new Uint8Array(weightData);
  let off = 0;
  for (const e of encoded) {
    bytes.set(e.bytes, off);
    off += e.bytes.byteLength;
  }
  return { quantizations: encoded.map((e) => e.quantization), weightData };
}

/** Bytes per stored value of a manifest dtype (quantized: of the quantized dtype). */
const STORED_BYTES: Readonly<Record<string, number>> = { float32: 4, int32: 4, bool: 1, complex64: 8, uint8: 1, uint16: 2, float16: 2 };

/** A weight spec checked for what decoding needs. */
export interface CheckedSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly quantization?: WeightQuantization;
  /** Bytes the weight takes in the weight data. */
  readonly byteLength: number;
}

/**
 * Checks one weight spec (`weightSpecs[i]` or a manifest's `weights[i]`) before any allocation: a
 * name, non-negative integer dimensions, a dtype tfjs stores in layers models, and a quantization
 * entry that tfjs-core can decode (uint8/uint16 with finite scale and min, or float16 of float32).
 */
export function checkSpec(s: unknown, path: readonly PathPart[]): CheckedSpec {
  if (!isObj(s) || typeof s['name'] !== 'string') invalid(path, `expected { name, shape, dtype }, got ${show(s)}`);
  const name = s['name'];
  const shape = s['shape'];
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) {
    invalid([...path, 'shape'], `expected non-negative integer dimensions, got ${show(shape)}`);
  }
  const dtype = s['dtype'];
  if (typeof dtype !== 'string' || !['float32', 'int32', 'bool', 'complex64'].includes(dtype)) {
    invalid([...path, 'dtype'], `weight "${name}" has dtype ${show(dtype)}; expected float32, int32, bool or complex64`);
  }
  const q = s['quantization'];
  let quantization: WeightQuantization | undefined;
  if (q !== undefined && q !== null) {
    const qp = [...path, 'quantization'];
    if (!isObj(q)) invalid(qp, `weight "${name}": expected { dtype, scale, min }, got ${show(q)}`);
    const qd = q['dtype'];
    if (qd === 'float16') {
      if (dtype !== 'float32') invalid(qp, `weight "${name}" is ${dtype}; float16 storage holds float32 weights only`);
      quantization = { dtype: 'float16' };
    } else if (qd === 'uint8' || qd === 'uint16') {
      const { scale, min } = q;
      if (typeof scale !== 'number' || !Number.isFinite(scale) || typeof min !== 'number' || !Number.isFinite(min)) {
        invalid(qp, `weight "${name}": ${qd} quantization needs finite numbers "scale" and "min", got scale ${show(scale)}, min ${show(min)}`);
      }
      if (dtype !== 'float32' && dtype !== 'int32') invalid(qp, `weight "${name}" is ${dtype}; ${qd} quantization holds float32 or int32 weights only`);
      quantization = { dtype: qd, scale, min };
    } else {
      invalid([...qp, 'dtype'], `weight "${name}" has quantization dtype ${show(qd)}; expected uint8, uint16 or float16 (what tfjs-converter writes)`);
    }
  }
  let n = 1;
  for (const d of shape as number[]) n *= d;
  const byteLength = n * STORED_BYTES[quantization?.dtype ?? dtype]!;
  if (!Number.isSafeInteger(byteLength)) invalid([...path, 'shape'], `weight "${name}" of shape ${show(shape)} is too large`);
  return { name, shape: shape as number[], dtype, ...(quantization ? { quantization } : {}), byteLength };
}

/**
 * Decodes one weight's bytes (exactly `spec.byteLength` of them) as tfjs-core's `decodeWeights`
 * does: uint8/uint16 codes to `q · scale + min` (rounded for int32 weights), float16 to float32,
 * bool to 0/1 bytes. complex64 values are not decoded (no layer weight is complex): undefined.
 */
export function decodeWeight(spec: CheckedSpec, bytes: Uint8Array): DecodedValues | undefined {
  // A private, aligned copy: the caller's buffer may be shared or unaligned.
  const own = bytes.slice().buffer;
  const q = spec.quantization;
  if (q === undefined) {
    if (spec.dtype === 'float32') return new Float32Array(own);
    if (spec.dtype === 'int32') return new Int32Array(own);
    if (spec.dtype === 'bool') return new Uint8Array(own);
    return undefined;
  }
  if (q.dtype === 'float16') {
    const h = new Uint16Array(own);
    const out = new Float32Array(h.length);
    for (let i = 0; i < h.length; i++) out[i] = fromFloat16Bits(h[i]!);
    return out;
  }
  const codes = q.dtype === 'uint8' ? new Uint8Array(own) : new Uint16Array(own);
  if (spec.dtype === 'int32') {
    const out = new Int32Array(codes.length);
    for (let i = 0; i < codes.length; i++) out[i] = Math.round(codes[i]! * q.scale + q.min);
    return out;
  }
  const out = new Float32Array(codes.length);
  for (let i = 0; i < codes.length; i++) out[i] = codes[i]! * q.scale + q.min;
  return out;
}
