import * as tf from '@tensorflow/tfjs-core';
import { fusedFakeQuantAvailable, fusedFakeQuantize } from './internal/fused-fake-quant.js';
import { scaleFromArg, scaleFromTensor, type ScaleFrom } from './internal/scale-from.js';

/**
 * Gradient of fake-quant with respect to its input:
 * - `ste`: identity everywhere (the plain straight-through estimator);
 * - `clipped`: identity inside the quantization range, zero outside (micronet's saturate STE).
 */
export type SteVariant = 'ste' | 'clipped';

/** Options of {@link fakeQuantize}. */
export interface FakeQuantOptions {
  /** Integer range `[qmin, qmax]`. */
  readonly range: readonly [number, number];
  /** Input gradient variant. Default `clipped`. */
  readonly gradient?: SteVariant;
  /** Factor on the scale and zero-point gradients (LSQ's `1/sqrt(N·Qp)`). Default 1. */
  readonly gradScale?: number;
  /** Whether scale and zero point are trained; false skips their gradients (returned as zeros). Default true. */
  readonly learnable?: boolean;
  /** Whether the zero point is trained (false for symmetric quantizers: its gradient is skipped). Default true. */
  readonly learnZeroPoint?: boolean;
  /** The zero point is known to be 0 (symmetric quantizers): a shorter path with the same results. */
  readonly zeroPointIsZero?: boolean;
  /**
   * `'lsq'` (default): the gradients below. `'pact'` (PACT's α): the scale gradient is 0 inside the
   * range (a straight-through rounding), so only clipped values move the scale.
   */
  readonly scaleGradient?: 'lsq' | 'pact';
  /** Use the fused kernels where the backend has them (default true); false forces tensor ops. */
  readonly fused?: boolean;
  /**
   * `scale` is a learned parameter and this rule makes the scale from it (see ScaleFrom); the
   * gradient returned for `scale` is then the parameter's. Default: `scale` is the scale.
   */
  readonly scaleFrom?: ScaleFrom;
}

/** Sums `g` over the axes along which a tensor of `shape` was broadcast, giving `shape` back. */
export function reduceToShape(g: tf.Tensor, shape: readonly number[]): tf.Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    const d = i < lead ? 1 : shape[i - lead]!;
    if (i < lead || (d === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  return tf.reshape(axes.length ? tf.sum(g, axes) : g, [...shape]);
}

/** 1 where `qmin ≤ v ≤ qmax`, else 0 (NaN: 0). */
function insideMask(v: tf.Tensor, qmin: number, qmax: number): tf.Tensor {
  return tf.cast(tf.equal(tf.clipByValue(v, qmin, qmax), v), 'float32');
}

/**
 * Affine fake quantization `y = scale · (clamp(round(x / scale) + zp, qmin, qmax) − zp)`, with
 * rounding half to even. `scale` and `zeroPoint` broadcast against `x` (per tensor: shape [], per
 * channel: 1s except the channel axis). `zeroPoint` should hold integers; a learned one is rounded
 * in the forward pass with a straight-through gradient.
 *
 * Gradients (LSQ, Esser et al. 2020, with `v = x / scale + zp` unrounded):
 * - x: 1 inside `[qmin, qmax]`; outside 0 (`clipped`) or 1 (`ste`);
 * - scale: `round(v) − v` inside (0 with `scaleGradient: 'pact'`), `qmin − zp` below,
 *   `qmax − zp` above, times `gradScale`;
 * - zero point: 0 inside, `−scale` outside, times `gradScale`.
 *
 * On the wasm and cpu backends, with one scale or one per channel of the last axis, forward and
 * backward run as two fused kernels (internal/fused-fake-quant.ts); elsewhere as tensor ops.
 */
export function fakeQuantize(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor, options: FakeQuantOptions): tf.Tensor {
  const [qmin, qmax] = options.range;
  const steAll = options.gradient === 'ste';
  const gs = options.gradScale ?? 1;
  const learnable = options.learnable ?? true;
  const learnZero = options.learnZeroPoint ?? true;
  const pact = options.scaleGradient === 'pact';
  if ((options.fused ?? true) && fusedFakeQuantAvailable(x, scale, zeroPoint)) {
    return fusedFakeQuantize(x, scale, zeroPoint, {
      qmin,
      qmax,
      ste: steAll,
      learnable,
      learnZeroPoint: learnZero && options.zeroPointIsZero !== true,
      scaleGradient: pact ? 'pact' : 'lsq',
      gradScale: gs,
      scaleFrom: options.scaleFrom?.kind ?? 'scale',
      scaleArg: options.scaleFrom ? scaleFromArg(options.scaleFrom) : 0,
    });
  }
  if (options.scaleFrom) scale = scaleFromTensor(scale, options.scaleFrom);
  if (options.zeroPointIsZero) return fakeQuantizeSymmetric(x, scale, zeroPoint, qmin, qmax, steAll, gs, learnable, pact);
  // Few full-size ops on purpose: activations are large and every elementwise op is a pass over them.
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, si, zi, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const z = tf.round(zi);
    // ONNX QuantizeLinear: round(x / s) + zp (not round(x / s + zp): they differ on ties for odd zp).
    const r = tf.div(xi, si);
    const v = tf.add(r, z);
    const q = tf.clipByValue(tf.add(tf.round(r), z), qmin, qmax);
    const value = tf.mul(tf.sub(q, z), si);
    save([v, q, si, z]);
    return {
      value,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [vs, qs, ss, zs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor];
        const inside = insideMask(vs, qmin, qmax);
        const dx = steAll ? dy : tf.mul(dy, inside);
        if (!learnable) return [dx, tf.zerosLike(ss), tf.zerosLike(zs)];
        // Inside: q − v = round(v) − v (or 0); outside q is qmin or qmax, and the gradient is q − zp.
        const dsLocal = tf.sub(tf.sub(qs, zs), tf.mul(inside, pact ? tf.sub(qs, zs) : tf.sub(vs, zs)));
        let ds = reduceToShape(tf.mul(dy, dsLocal), ss.shape);
        // Zero point: 0 inside, −scale outside (skipped when the zero point is fixed, e.g. symmetric).
        let dz = learnZero ? reduceToShape(tf.mul(dy, tf.mul(tf.sub(inside, 1), ss)), zs.shape) : tf.zerosLike(zs);
        if (gs !== 1) {
          ds = tf.mul(ds, gs);
          dz = tf.mul(dz, gs);
        }
        return [dx, ds, dz];
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, scale, zeroPoint);
}

/** {@link fakeQuantize} with zero point 0: four passes forward instead of seven, fewer backward. */
function fakeQuantizeSymmetric(
  x: tf.Tensor,
  scale: tf.Tensor,
  zeroPoint: tf.Tensor,
  qmin: number,
  qmax: number,
  steAll: boolean,
  gs: number,
  learnable: boolean,
  pact: boolean,
): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, si, , save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const r = tf.div(xi, si);
    const q = tf.clipByValue(tf.round(r), qmin, qmax);
    save([r, q, si]);
    return {
      value: tf.mul(q, si),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [rs, qs, ss] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        const inside = insideMask(rs, qmin, qmax);
        const dx = steAll ? dy : tf.mul(dy, inside);
        if (!learnable) return [dx, tf.zerosLike(ss), tf.zerosLike(zeroPoint)];
        // Inside: round(r) − r (or 0); outside: qmin or qmax (the zero point is 0).
        let ds = reduceToShape(tf.mul(dy, tf.sub(qs, tf.mul(inside, pact ? qs : rs))), ss.shape);
        if (gs !== 1) ds = tf.mul(ds, gs);
        return [dx, ds, tf.zerosLike(zeroPoint)];
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, scale, zeroPoint);
}

/** `round(x)` (half to even) forward, identity backward. */
export const roundSte: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.round(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (x: tf.Tensor) => tf.Tensor;

/** `ceil(x)` forward, identity backward (TQT's power-of-two threshold). */
export const ceilSte: (x: tf.Tensor) => tf.Tensor = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => ({
  value: tf.ceil(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (x: tf.Tensor) => tf.Tensor;
