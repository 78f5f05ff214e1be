/**
 * Fake quantization and its gradient as fused kernels (core's typed-array kernels). As tensor ops,
 * forward and backward are about a dozen full-size passes over the activation, each allocating a
 * tensor, plus intermediates kept alive for the backward pass; fused, each is one pass and only the
 * input is kept. On cpu the passes are JavaScript loops (6–9× the tensor ops). On wasm a JavaScript
 * loop over the heap is slower than tfjs' SIMD elementwise ops, so per-tensor calls run the SIMD
 * loops of fake-quant-simd.wat on the heap (core's heapModule; the scalar loop does the last
 * n mod 4 values), and per-channel calls take the JavaScript loop up to {@link WASM_FUSED_MAX}
 * values (weights), tensor ops beyond. Same arithmetic as the tensor-op path:
 * float32 `r = x / s`, rounding half to even, `q = clamp(round(r) + zp)`, `y = (q − zp) · s`.
 * A learned scale may come in as its parameter and rule (ScaleFrom): the kernels then compute the
 * scale and return the parameter's gradient.
 *
 * Scales and zero points are one value or one per channel of the LAST axis (activations per
 * tensor; HWIO conv and [in, out] dense weights per output channel); other layouts use tensor ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasArrayKernel, heapModule, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/core-tensor';
import type { TypedArray } from '@tensorflow/tfjs-core';
import { roundHalfEven } from '../quant-params.js';
import { FAKE_QUANT_SIMD_WASM } from './fake-quant-simd.js';
import { scaleFromGradient, scaleFromValue, type ScaleFrom } from './scale-from.js';

/** The scale from the `scale` input: the input itself, or a rule applied to a learned parameter. */
type ScaleInput = ScaleFrom['kind'] | 'scale';

function scaleAt(v: number, attrs: Record<string, unknown>): number {
  const kind = attrs['scaleFrom'] as ScaleInput;
  return kind === 'scale' ? v : scaleFromValue(v, kind, attrs['scaleArg'] as number);
}

/** The SIMD loops of fake-quant-simd.wat (n a multiple of 4; pointers are heap byte offsets). */
interface SimdLoops {
  forward(x: number, y: number, n: number, s: number, lo: number, hi: number): void;
  backward(x: number, dy: number, dx: number, n: number, s: number, zp: number, qmin: number, qmax: number, ste: number, mode: number): [number, number];
  forwardChannels(x: number, y: number, rows: number, stride: number, s0: number, s1: number, s2: number, s3: number, lo: number, hi: number): void;
  backwardChannels(x: number, dy: number, dx: number, rows: number, stride: number, s0: number, s1: number, s2: number, s3: number, qmin: number, qmax: number, ste: number, mode: number): number[];
}

/** The SIMD loops for a per-channel call: channels a multiple of 4 and every zero point 0. */
function channelLoops(c: number, z: TypedArray, ...arrays: TypedArray[]): SimdLoops | undefined {
  return c > 1 && c % 4 === 0 && z.every((v) => roundHalfEven(v) === 0) ? simdLoops(...arrays) : undefined;
}

/** The SIMD loops when every array lives in the wasm heap they address, else undefined. */
function simdLoops(...arrays: TypedArray[]): SimdLoops | undefined {
  const m = heapModule(FAKE_QUANT_SIMD_WASM);
  if (m == null || !arrays.every((a) => a.buffer === m.memory.buffer)) return undefined;
  return m.exports as unknown as SimdLoops;
}

const FORWARD = 'TensorpressFakeQuantize';
const BACKWARD = 'TensorpressFakeQuantizeGrad';

const forward: ArrayKernelSpec = {
  kernelName: FORWARD,
  inputs: ['x', 'scale', 'zeroPoint'],
  outputs: (shapes) => [{ shape: [...shapes[0]!], dtype: 'float32' }],
  compute([x, s, z], [y], _shapes, attrs) {
    const qmin = attrs['qmin'] as number;
    const qmax = attrs['qmax'] as number;
    const c = s!.length;
    const n = x!.length;
    const perChannel = channelLoops(c, z!, x!, y!);
    if (perChannel) {
      // Four channels at a time down the rows (channels are the last axis).
      const sc = Array.from(s!, (v) => scaleAt(v, attrs));
      for (let k = 0; k < c; k += 4) {
        perChannel.forwardChannels(x!.byteOffset + 4 * k, y!.byteOffset + 4 * k, n / c, 4 * c, sc[k]!, sc[k + 1]!, sc[k + 2]!, sc[k + 3]!, qmin, qmax);
      }
      return;
    }
    // One scale on the wasm heap: the SIMD loop does all but the last n mod 4 values.
    const simd = c === 1 ? simdLoops(x!, y!) : undefined;
    const start = simd ? n - (n % 4) : 0;
    for (let k = 0; k < c; k++) {
      const sv = scaleAt(s![k]!, attrs);
      const zv = roundHalfEven(z![z!.length === 1 ? 0 : k]!);
      // round(clamp(v)) = clamp(round(v)) for integer bounds; clamping first is faster here.
      const lo = qmin - zv;
      const hi = qmax - zv;
      simd?.forward(x!.byteOffset, y!.byteOffset, start, sv, lo, hi);
      for (let i = k + start; i < n; i += c) {
        const v = Math.fround(x![i]! / sv);
        y![i] = roundHalfEven(v > hi ? hi : v < lo ? lo : v) * sv;
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
    const simd = c === 1 ? simdLoops(x!, dy!, dx!) : undefined;
    const start = simd ? n - (n % 4) : 0;
    const scales = Float64Array.from(s!, (v) => scaleAt(v, attrs));
    const mode = learnable ? (pact ? 2 : 1) : 0;
    const perChannel = channelLoops(c, z!, x!, dy!, dx!);
    for (let k = 0; perChannel && k < c; k += 4) {
      const sums = perChannel.backwardChannels(x!.byteOffset + 4 * k, dy!.byteOffset + 4 * k, dx!.byteOffset + 4 * k, n / c, 4 * c, scales[k]!, scales[k + 1]!, scales[k + 2]!, scales[k + 3]!, qmin, qmax, ste ? 1 : 0, mode);
      for (let j = 0; j < 4; j++) {
        dsAcc[k + j] = sums[j]!;
        const zk = zc === 1 ? 0 : k + j;
        dzAcc[zk] = dzAcc[zk]! - sums[4 + j]! * scales[k + j]!;
      }
    }
    for (let k = 0; !perChannel && k < c; k++) {
      const sv = scales[k]!;
      const zk = zc === 1 ? 0 : k;
      const zv = roundHalfEven(z![zk]!);
      let dsk = 0;
      let dzk = 0;
      if (simd) {
        const [dsSum, outside] = simd.backward(x!.byteOffset, dy!.byteOffset, dx!.byteOffset, start, sv, zv, qmin, qmax, ste ? 1 : 0, mode);
        dsk = dsSum;
        dzk = -outside * sv;
      }
      for (let i = k + start; i < n; i += c) {
        const g = dy![i]!;
        const r = Math.fround(x![i]! / sv);
        const v = Math.fround(r + zv);
        const inside = v >= qmin && v <= qmax;
        dx![i] = inside || ste ? g : 0;
        if (!learnable) continue;
        if (inside) {
          // round(v) − v (LSQ); PACT's straight-through scale gradient is 0 inside.
          if (!pact) dsk += g * (roundHalfEven(r) + zv - v);
        } else {
          let q = roundHalfEven(r) + zv;
          q = q > qmax ? qmax : q < qmin ? qmin : q;
          dsk += g * (q - zv);
          dzk -= g * sv;
        }
      }
      dsAcc[k] = dsk;
      dzAcc[zk] = dzAcc[zk]! + dzk;
    }
    const kind = attrs['scaleFrom'] as ScaleInput;
    for (let k = 0; k < c; k++) {
      const g = dsAcc[k]! * gs;
      ds![k] = kind === 'scale' ? g : scaleFromGradient(g, s![k]!, scales[k]!, kind, attrs['scaleArg'] as number);
    }
    const learnZero = learnable && attrs['learnZeroPoint'] === true;
    for (let k = 0; k < zc; k++) dz![k] = learnZero ? dzAcc[k]! * gs : 0;
  },
};

let registered = false;

/** On wasm without the SIMD loops (or per channel), tensors up to this many values use the kernels. */
export const WASM_FUSED_MAX = 1 << 16;

/**
 * Whether the fused kernels serve this call: float32 input on a backend that has them (on wasm, per
 * tensor with the SIMD loops, else up to {@link WASM_FUSED_MAX} values), and one scale (and zero
 * point) or one per channel of x's last axis.
 */
export function fusedFakeQuantAvailable(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor): boolean {
  if (!registered) {
    registerArrayKernel(forward);
    registerArrayKernel(backward);
    registered = true;
  }
  if (x.dtype !== 'float32' || scale.dtype !== 'float32' || !hasArrayKernel(BACKWARD)) return false;
  const c = scale.size;
  if (tf.getBackend() === 'wasm' && x.size > WASM_FUSED_MAX && ((c !== 1 && c % 4 !== 0) || heapModule(FAKE_QUANT_SIMD_WASM) == null)) return false;
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
  /** What the `scale` input is: the scale, or the parameter of a ScaleFrom rule (with its constant). */
  readonly scaleFrom: ScaleInput;
  readonly scaleArg: number;
}

/** The fused fake quantization (see fakeQuantize); call only where {@link fusedFakeQuantAvailable}. */
export function fusedFakeQuantize(x: tf.Tensor, scale: tf.Tensor, zeroPoint: tf.Tensor, attrs: FusedGradAttrs): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [xi, si, zi, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    save([xi, si, zi]);
    return {
      value: tf.engine().runKernel(FORWARD, { x: xi, scale: si, zeroPoint: zi }, { qmin: attrs.qmin, qmax: attrs.qmax, scaleFrom: attrs.scaleFrom, scaleArg: attrs.scaleArg }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [xs, ss, zs] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
        return tf.engine().runKernel(BACKWARD, { x: xs, scale: ss, zeroPoint: zs, dy }, { ...attrs }) as tf.Tensor[];
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, scale, zeroPoint);
}
