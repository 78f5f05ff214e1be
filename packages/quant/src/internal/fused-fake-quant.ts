/**
 * Fake quantization and its gradient as two fused kernels (core's typed-array kernels, wasm and
 * cpu backends). As tensor ops, forward and backward are about a dozen full-size passes over the
 * activation, each allocating a tensor, plus intermediates kept alive for the backward pass; fused,
 * they are one pass each and only the input is kept. Same arithmetic as the tensor-op path:
 * float32 `r = x / s`, rounding half to even, `q = clamp(round(r) + zp)`, `y = (q − zp) · s`.
 *
 * Scales and zero points are one value or one per channel of the LAST axis (activations per
 * tensor; HWIO conv and [in, out] dense weights per output channel); other layouts use tensor ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasArrayKernel, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/core-tensor';

const FORWARD = 'TensorpressFakeQuantize';
const BACKWARD = 'TensorpressFakeQuantizeGrad';

/**
 * Rounding half to even, as `tf.round`: half up by `floor(v + 0.5)` (exact for float32 values;
 * V8's Math.round is several times slower here), then ties that landed on odd go back one. Ties
 * exist only below 2^23, where `r & 1` is exact.
 */
function roundEven(v: number): number {
  const r = Math.floor(v + 0.5);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

const forward: ArrayKernelSpec = {
  kernelName: FORWARD,
  inputs: ['x', 'scale', 'zeroPoint'],
  outputs: (shapes) => [{ shape: [...shapes[0]!], dtype: 'float32' }],
  compute([x, s, z], [y], _shapes, attrs) {
    const qmin = attrs['qmin'] as number;
    const qmax = attrs['qmax'] as number;
    const c = s!.length;
    const n = x!.length;
    for (let k = 0; k < c; k++) {
      const sv = s![k]!;
      const zv = roundEven(z![z!.length === 1 ? 0 : k]!);
      for (let i = k; i < n; i += c) {
        let q = roundEven(Math.fround(x![i]! / sv)) + zv;
        q = q > qmax ? qmax : q < qmin ? qmin : q;
        y![i] = (q - zv) * sv;
      }
    }
  },
};

const backward: ArrayKernelSpec = {
  kernelName: BACKWARD,
  inputs: ['x', 'scale', 'zeroPoint', 'dy'],
  outputs: (shapes) => [
    { shape: [...shapes[0]!], dtype: 'float32' },
    { shape: [...shapes[1]!], dtype: 'float32' },
    { shape: [...shapes[2]!], dtype: 'float32' },
  ],
  compute([x, s, z, dy], [dx, ds, dz], _shapes, attrs) {
    const qmin = attrs['qmin'] as number;
    const qmax = attrs['qmax'] as number;
    const ste = attrs['ste'] === true;
    const learnable = attrs['learnable'] === true;
    const pact = attrs['scaleGradient'] === 'pact';
    const gs = attrs['gradScale'] as number;
    const c = s!.length;
    const n = x!.length;
    const zc = z!.length;
    const dsAcc = new Float64Array(c);
    const dzAcc = new Float64Array(zc);
    for (let k = 0; k < c; k++) {
      const sv = s![k]!;
      const zk = zc === 1 ? 0 : k;
      const zv = roundEven(z![zk]!);
      let dsk = 0;
      let dzk = 0;
      for (let i = k; i < n; i += c) {
        const g = dy![i]!;
        const r = Math.fround(x![i]! / sv);
        const v = Math.fround(r + zv);
        const inside = v >= qmin && v <= qmax;
        dx![i] = inside || ste ? g : 0;
        if (!learnable) continue;
        if (inside) {
          // round(v) − v (LSQ); PACT's straight-through scale gradient is 0 inside.
          if (!pact) dsk += g * (roundEven(r) + zv - v);
        } else {
          let q = roundEven(r) + zv;
          q = q > qmax ? qmax : q < qmin ? qmin : q;
          dsk += g * (q - zv);
          dzk -= g * sv;
        }
      }
      dsAcc[k] = dsk;
      dzAcc[zk] = dzAcc[zk]! + dzk;
    }
    for (let k = 0; k < c; k++) ds![k] = dsAcc[k]! * gs;
    const learnZero = learnable && attrs['learnZeroPoint'] === true;
    for (let k = 0; k < zc; k++) dz![k] = learnZero ? dzAcc[k]! * gs : 0;
  },
};

let registered = false;

/**
 * Whether the fused kernels serve this call: float32 input on a backend that has them, and one
 * scale (and zero point) or one per channel of x's last axis.
 */
export function fusedFakeQuantAvailable(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor): boolean {
  if (!registered) {
    registerArrayKernel(forward);
    registerArrayKernel(backward);
    registered = true;
  }
  if (x.dtype !== 'float32' || scale.dtype !== 'float32' || !hasArrayKernel(FORWARD)) return false;
  const c = scale.size;
  const lastOf = (t: tf.Tensor): number => t.shape[t.rank - 1] ?? 1;
  if (zeroPoint.size !== 1 && (zeroPoint.size !== c || lastOf(zeroPoint) !== c)) return false;
  if (c === 1) return true;
  return scale.rank <= x.rank && lastOf(scale) === c && lastOf(x) === c;
}

/** Attributes of the fused gradient. */
export interface FusedGradAttrs {
  readonly qmin: number;
  readonly qmax: number;
  readonly ste: boolean;
  readonly learnable: boolean;
  readonly learnZeroPoint: boolean;
  readonly scaleGradient: 'lsq' | 'pact';
  readonly gradScale: number;
}

/** The fused fake quantization (see fakeQuantize); call only where {@link fusedFakeQuantAvailable}. */
export function fusedFakeQuantize(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor, attrs: FusedGradAttrs): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, si, zi, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xi, si, zi]);
    return {
      value: tf.engine().runKernel(FORWARD, { x: xi, scale: si, zeroPoint: zi }, { qmin: attrs.qmin, qmax: attrs.qmax }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ss, zs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(BACKWARD, { x: xs, scale: ss, zeroPoint: zs, dy }, { ...attrs }) as tf.Tensor[];
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, scale, zeroPoint);
}
