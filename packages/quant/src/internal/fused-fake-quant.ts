/**
 * Fake quantization and its gradient as fused kernels (array kernels of @tensorpress/kernels). As
 * tensor ops, forward and backward are about a dozen full-size passes over the activation, each
 * allocating a tensor, plus intermediates kept alive for the backward pass; fused, each is one pass and only the
 * input is kept. On cpu the passes are JavaScript loops (6–9× the tensor ops). On wasm a JavaScript
 * loop over the heap is slower than tfjs' SIMD elementwise ops, so the kernels run the SIMD loops
 * of fake-quant-simd.wat on the heap (kernels' heapModule) per tensor (the JavaScript loop does the
 * last n mod 4 values) and per channel when the channels are a multiple of 4 with one zero point;
 * other per-channel calls take the JavaScript loop up to {@link WASM_FUSED_MAX} values, tensor ops
 * beyond. Same arithmetic as the tensor-op path:
 * float32 `r = x / s`, rounding half to even, `q = clamp(round(r) + zp)`, `y = (q − zp) · s`.
 * A learned scale may come in as its parameter and rule (ScaleFrom): the kernels then compute the
 * scale and return the parameter's gradient.
 *
 * Scales and zero points are one value or one per channel of the LAST axis (activations per
 * tensor; HWIO conv and [in, out] dense weights per output channel); other layouts use tensor ops.
 */
import * as tf from '@tensorflow/tfjs-core';
import { hasArrayKernel, heapModule, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/kernels';
import type { TypedArray } from '@tensorflow/tfjs-core';
import { roundHalfEven } from '../quant-params.js';
import { FAKE_QUANT_SIMD_WASM } from './fake-quant-simd.js';
import { scaleFromGradient, scaleFromValue, type ScaleFrom } from './scale-from.js';

/** What the `scale` input is: the scale itself, or the parameter of a ScaleFrom rule. */
type ScaleInput = ScaleFrom['kind'] | 'scale';

/** The SIMD loops of fake-quant-simd.wat (pointers are heap byte offsets). */
interface SimdLoops {
  forward(x: number, y: number, rows: number, stride: number, s0: number, s1: number, s2: number, s3: number, lo: number, hi: number): void;
  backward(x: number, dy: number, dx: number, rows: number, stride: number, s0: number, s1: number, s2: number, s3: number, zp: number, qmin: number, qmax: number, ste: number, mode: number): number[];
}

/** Per channel: the scale (the `scale` input, or its rule applied to it) and the rounded zero point. */
function channelParams(s: TypedArray, z: TypedArray, attrs: Record<string, unknown>): { scales: Float64Array; zps: Float64Array } {
  const kind = attrs['scaleFrom'] as ScaleInput;
  const scales = Float64Array.from(s, (v) => (kind === 'scale' ? v : scaleFromValue(v, kind, attrs['scaleArg'] as number)));
  const zps = Float64Array.from(scales, (_, k) => roundHalfEven(z[z.length === 1 ? 0 : k]!));
  return { scales, zps };
}

/**
 * Where the SIMD loops cover x, in groups of four lanes: per tensor, one group of rows of four
 * values over all but the last n mod 4 (every lane the one channel); per channel (channels a
 * multiple of 4, one zero point for all), c / 4 groups of four channels down the rows. `end`: the
 * values covered are [0, end), the JavaScript loop does the rest. Undefined off the wasm heap.
 */
interface SimdCover {
  readonly loops: SimdLoops;
  readonly groups: number;
  readonly rows: number;
  readonly stride: number;
  readonly end: number;
  /** The channel of lane j of group g. */
  lane(g: number, j: number): number;
}

function simdCover(n: number, c: number, zps: Float64Array, ...arrays: TypedArray[]): SimdCover | undefined {
  const perTensor = c === 1;
  if (!perTensor && (c % 4 !== 0 || !zps.every((z) => z === zps[0]))) return undefined;
  const m = heapModule(FAKE_QUANT_SIMD_WASM);
  if (m == null || !arrays.every((a) => a.buffer === m.memory.buffer)) return undefined;
  const loops = m.exports as unknown as SimdLoops;
  if (perTensor) return { loops, groups: 1, rows: n >> 2, stride: 16, end: n - (n % 4), lane: () => 0 };
  return { loops, groups: c / 4, rows: n / c, stride: 4 * c, end: n, lane: (g, j) => 4 * g + j };
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
    const { scales, zps } = channelParams(s!, z!, attrs);
    const cover = simdCover(n, c, zps, x!, y!);
    for (let g = 0; cover && g < cover.groups; g++) {
      const at = (j: number): number => scales[cover.lane(g, j)]!;
      cover.loops.forward(x!.byteOffset + 16 * g, y!.byteOffset + 16 * g, cover.rows, cover.stride, at(0), at(1), at(2), at(3), qmin - zps[0]!, qmax - zps[0]!);
    }
    // The rest (a per-tensor tail, or everything off the wasm heap), channel by channel.
    const start = cover?.end ?? 0;
    for (let k = 0; start < n && k < c; k++) {
      const sv = scales[k]!;
      // round(clamp(v)) = clamp(round(v)) for integer bounds; clamping first is faster here.
      const lo = qmin - zps[k]!;
      const hi = qmax - zps[k]!;
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
    const { scales, zps } = channelParams(s!, z!, attrs);
    // Per channel: Σ dy·∂y/∂s, and Σ dy over the values outside the range (∂y/∂zp = −s there).
    const dsAcc = new Float64Array(c);
    const outAcc = new Float64Array(c);
    const cover = simdCover(n, c, zps, x!, dy!, dx!);
    const mode = learnable ? (pact ? 2 : 1) : 0;
    for (let g = 0; cover && g < cover.groups; g++) {
      const at = (j: number): number => scales[cover.lane(g, j)]!;
      const off = 16 * g;
      const sums = cover.loops.backward(x!.byteOffset + off, dy!.byteOffset + off, dx!.byteOffset + off, cover.rows, cover.stride, at(0), at(1), at(2), at(3), zps[0]!, qmin, qmax, ste ? 1 : 0, mode);
      for (let j = 0; j < 4; j++) {
        const k = cover.lane(g, j);
        dsAcc[k] = dsAcc[k]! + sums[j]!;
        outAcc[k] = outAcc[k]! + sums[4 + j]!;
      }
    }
    const start = cover?.end ?? 0;
    for (let k = 0; start < n && k < c; k++) {
      const sv = scales[k]!;
      const zv = zps[k]!;
      let dsk = 0;
      let outk = 0;
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
          outk += g;
        }
      }
      dsAcc[k] = dsAcc[k]! + dsk;
      outAcc[k] = outAcc[k]! + outk;
    }
    const kind = attrs['scaleFrom'] as ScaleInput;
    for (let k = 0; k < c; k++) {
      const g = dsAcc[k]! * gs;
      ds![k] = kind === 'scale' ? g : scaleFromGradient(g, s![k]!, scales[k]!, kind, attrs['scaleArg'] as number);
    }
    dz!.fill(0);
    if (!learnable || attrs['learnZeroPoint'] !== true) return;
    for (let k = 0; k < c; k++) {
      const j = zc === 1 ? 0 : k;
      dz![j] = dz![j]! - outAcc[k]! * scales[k]! * gs;
    }
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
  // Large tensors on wasm only where the SIMD loops may serve them (see simdCover).
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
    const inputs = args.slice(0, 3) as [tf.Tensor, tf.Tensor, tf.Tensor];
    const save = args[3] as tf.GradSaveFunc;
    // The tape copies what it saves (a caller may tidy between forward and backward). Variables and
    // kept tensors (weights, learned scales, a quantizer's constant zero point) outlive any tidy:
    // the backward reads them directly, which saves a kernel call each per step.
    const lasting = inputs.map((t) => t instanceof tf.Variable || t.kept);
    save(inputs.filter((_, i) => !lasting[i]));
    return {
      value: tf.engine().runKernel(FORWARD, { x: inputs[0], scale: inputs[1], zeroPoint: inputs[2] }, { qmin: attrs.qmin, qmax: attrs.qmax, scaleFrom: attrs.scaleFrom, scaleArg: attrs.scaleArg }) as tf.Tensor,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        let k = 0;
        const [xs, ss, zs] = inputs.map((t, i) => (lasting[i] ? t : saved[k++]!));
        return tf.engine().runKernel(BACKWARD, { x: xs!, scale: ss!, zeroPoint: zs!, dy }, { ...attrs }) as tf.Tensor[];
      },
    };
  });
  return (op as (...t: tf.Tensor[]) => tf.Tensor)(x, scale, zeroPoint);
}
