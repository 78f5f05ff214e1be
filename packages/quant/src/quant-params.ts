import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from '@tensorpress/core-tensor';

/** Smallest scale ever produced (PyTorch's observers use float32 eps too): an all-zero range still maps to a valid grid. */
export const MIN_SCALE = 1.1920928955078125e-7;

/** How a tensor is mapped onto integers. */
export interface QuantSpec {
  /** Bit width, 2..8. */
  readonly bits: number;
  /** `symmetric`: zero point 0; `asymmetric`: the range [min, max] maps onto the whole integer range. */
  readonly mode: 'symmetric' | 'asymmetric';
  /** Signed integers (int8 storage) or unsigned (uint8). */
  readonly signed: boolean;
  /**
   * Signed narrow range `[-2^(b-1)+1, 2^(b-1)-1]` (weights: symmetric around 0, so the negated code
   * is always representable). Ignored for unsigned ranges.
   */
  readonly narrowRange: boolean;
}

/** Scale and zero point of one tensor or one channel. */
export interface QuantParams {
  readonly scale: number;
  /** An integer in the spec's range. */
  readonly zeroPoint: number;
}

/** Throws unless `bits` is an integer in [2, 8]; `where` names the node and setting. */
export function checkBits(bits: number, where: string): void {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new TensorpressError('CONFIG_INVALID', `${where}: bits must be an integer from 2 to 8, got ${bits}`, { bits });
  }
}

/** The integer range of a spec (DESIGN §5): signed narrow, signed full, or unsigned. */
export function integerRange(spec: Pick<QuantSpec, 'bits' | 'signed' | 'narrowRange'>): [number, number] {
  const b = spec.bits;
  if (!spec.signed) return [0, 2 ** b - 1];
  const hi = 2 ** (b - 1) - 1;
  return [spec.narrowRange ? -hi : -hi - 1, hi];
}

/**
 * Round half to even (ONNX QuantizeLinear and `tf.round`), for scalars; also the fused kernels' per
 * element rounding, so it avoids Math.round (several times slower in V8 here). `floor(x + 0.5)` is
 * one too high when the addition rounded up (d > 0.5) or on a tie that landed on odd. `+ 0` turns
 * -0 into 0 (a zero point of -0 prints and compares oddly).
 */
export function roundHalfEven(x: number): number {
  const r = Math.floor(x + 0.5);
  const d = r - x;
  return (d > 0.5 || (d === 0.5 && r % 2 !== 0) ? r - 1 : r) + 0;
}

/**
 * Scale and zero point for a float range (DESIGN §5). The range is first widened to contain 0.
 * Symmetric: `scale = max(|min|, |max|) / qmax`, zero point 0 (signed) or 0 at the bottom of an
 * unsigned range (which then needs `min >= 0`). Asymmetric: `scale = (max - min) / (qmax - qmin)`,
 * zero point `round(qmin - min / scale)` clamped to the range (so real 0 is exactly representable).
 */
export function quantParams(min: number, max: number, spec: QuantSpec): QuantParams {
  if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
    throw new TensorpressError('NUMERIC_INVALID', `cannot quantize the range [${min}, ${max}]: it must be finite with min <= max`);
  }
  const lo = Math.min(min, 0);
  const hi = Math.max(max, 0);
  const [qmin, qmax] = integerRange(spec);
  if (spec.mode === 'symmetric') {
    if (!spec.signed && lo < 0) {
      throw new TensorpressError('NUMERIC_INVALID', `an unsigned symmetric range cannot hold negative values (min ${min})`);
    }
    const t = Math.max(-lo, hi);
    return { scale: Math.max(t / qmax, MIN_SCALE), zeroPoint: 0 };
  }
  const scale = Math.max((hi - lo) / (qmax - qmin), MIN_SCALE);
  const zp = Math.min(qmax, Math.max(qmin, roundHalfEven(qmin - lo / scale)));
  return { scale, zeroPoint: zp };
}

/** {@link quantParams} per channel. */
export function quantParamsPerChannel(mins: ArrayLike<number>, maxs: ArrayLike<number>, spec: QuantSpec): QuantParams[] {
  return Array.from({ length: mins.length }, (_, i) => quantParams(mins[i]!, maxs[i]!, spec));
}

/** Shape that broadcasts a per-channel vector of `channels` values along `axis` of a rank-`rank` tensor. */
export function channelShape(rank: number, axis: number, channels: number): number[] {
  const shape = Array<number>(rank).fill(1);
  shape[axis] = channels;
  return shape;
}

/**
 * Integer codes of `x` (ONNX QuantizeLinear: `clamp(round(x / scale) + zeroPoint)`, half to even).
 * `scale`/`zeroPoint` are scalars, or vectors along `axis`. Returned as int32 values.
 */
export function quantizeToCodes(
  x: tf.Tensor,
  scale: number | ArrayLike<number>,
  zeroPoint: number | ArrayLike<number>,
  range: readonly [number, number],
  axis = -1,
): tf.Tensor {
  return tf.tidy(() => {
    const perChannel = typeof scale !== 'number';
    const ax = axis < 0 ? x.rank + axis : axis;
    const shape = perChannel ? channelShape(x.rank, ax, scale.length) : [];
    const s = tf.tensor(perChannel ? Float32Array.from(scale) : [scale], perChannel ? shape : []);
    const z = tf.tensor(typeof zeroPoint === 'number' ? [zeroPoint] : Float32Array.from(zeroPoint), typeof zeroPoint === 'number' ? [] : shape);
    return tf.cast(tf.clipByValue(tf.add(tf.round(tf.div(x, s)), z), range[0], range[1]), 'int32');
  });
}

/** Min and max of `x` over every axis but `axis` (per channel), or over all values when `axis` is undefined. */
export function tensorRange(x: tf.Tensor, axis?: number): { min: Float32Array; max: Float32Array } {
  const [mn, mx] = tf.tidy(() => {
    if (axis === undefined) return [tf.min(x), tf.max(x)];
    const ax = axis < 0 ? x.rank + axis : axis;
    const perm = [ax, ...Array.from({ length: x.rank }, (_, i) => i).filter((i) => i !== ax)];
    const rows = tf.reshape(tf.transpose(x, perm), [x.shape[ax]!, -1]);
    return [tf.min(rows, 1), tf.max(rows, 1)];
  });
  const out = { min: Float32Array.from(mn.dataSync()), max: Float32Array.from(mx.dataSync()) };
  mn.dispose();
  mx.dispose();
  return out;
}
