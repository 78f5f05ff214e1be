/**
 * Fast paths for the cpu backend's elementwise ops and leading-axis reductions, the bulk of a
 * batch-norm training step on cpu.
 *
 * - Binary ops: tfjs' cpu kernels have a fast loop when the smaller operand broadcasts over
 *   leading axes by rank (`[C]` against `[N,H,W,C]`) and a per-element index-array path
 *   otherwise; `[1,1,1,C]` (what batch norm produces) takes the slow one (~300 ns per element).
 *   Leading 1s never change a broadcast, so we drop them and reshape the result back.
 * - Sum / Mean over leading axes (per-channel statistics of NHWC): tfjs transposes with
 *   per-element index arithmetic first; we sum rows into float64 accumulators instead.
 * - Relu and Step (the relu gradient): tfjs calls the operator through a closure shared by all
 *   unary kernels; these are monomorphic loops.
 * Everything else goes to tfjs' kernel unchanged.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs-core';
import type { Scope } from './scope.js';
import { leadingReduceArgs, need } from './scope.js';

/** Binary kernels (inputs `a`, `b`, NumPy broadcasting) that get the leading-1s fast path. */
export const BROADCAST_BINARY_KERNELS = [
  'Add',
  'Sub',
  'Multiply',
  'RealDiv',
  'Maximum',
  'Minimum',
  'SquaredDifference',
  'Pow',
  'Equal',
  'NotEqual',
  'Greater',
  'GreaterEqual',
  'Less',
  'LessEqual',
  'LogicalAnd',
  'LogicalOr',
] as const;

function trimLeadingOnes(shape: readonly number[]): number[] {
  let i = 0;
  while (i < shape.length && shape[i] === 1) i++;
  return shape.slice(i);
}

export function broadcastBinary(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const a = need(inputs, 'a');
  const b = need(inputs, 'b');
  const sa = trimLeadingOnes(a.shape);
  const sb = trimLeadingOnes(b.shape);
  const simple = (t: TensorInfo) => t.dtype !== 'complex64' && t.dtype !== 'string';
  if ((sa.length === a.shape.length && sb.length === b.shape.length) || !simple(a) || !simple(b)) {
    return s.call(original, inputs, attrs);
  }
  const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
  const r = s.call(original, { a: s.view(a, sa), b: s.view(b, sb) }, attrs);
  return s.view(r, outShape);
}

/** Arithmetic kernels with a typed-array loop per op (monomorphic, so V8 inlines the operator). */
export const ARITHMETIC_KERNELS = ['Add', 'Sub', 'Multiply', 'RealDiv'] as const;
type Arithmetic = (typeof ARITHMETIC_KERNELS)[number];

/**
 * float32 `Add` / `Sub` / `Multiply` / `RealDiv` where one operand equals the other or broadcasts
 * as a trailing block (`[C]`, `[1,1,1,C]`, `[W,C]`, scalars against `[N,H,W,C]`). tfjs' cpu loop
 * calls the operator through a closure shared by every binary kernel and takes `i % length` per
 * element (~50 ns per element); these loops are ~1-2 ns. Values are computed in float64 and stored
 * as float32, exactly as tfjs does. Other cases go to {@link broadcastBinary}.
 */
export function arithmetic(op: Arithmetic) {
  return (s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo => {
    const a = need(inputs, 'a');
    const b = need(inputs, 'b');
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return broadcastBinary(s, inputs, attrs, original);
    const sa = trimLeadingOnes(a.shape);
    const sb = trimLeadingOnes(b.shape);
    const suffix = (long: number[], short: number[]) => short.length <= long.length && short.every((d, i) => d === long[long.length - short.length + i]);
    const aLong = suffix(sa, sb);
    if (!aLong && !suffix(sb, sa)) return broadcastBinary(s, inputs, attrs, original);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const { info, values } = s.output(outShape, 'float32');
    const out = values as Float32Array;
    const av = s.values(a) as Float32Array;
    const bv = s.values(b) as Float32Array;
    if (out.length === 0) return info;
    if (aLong) LOOPS[op].longA(av, bv, out);
    else LOOPS[op].longB(av, bv, out);
    return info;
  };
}

type Loop = (a: Float32Array, b: Float32Array, out: Float32Array) => void;

/** `longA`: a has the output's size and b repeats along it; `longB` the other way round. */
const LOOPS: Record<Arithmetic, { longA: Loop; longB: Loop }> = {
  Add: {
    longA: (a, b, out) => {
      const nb = b.length;
      for (let o = 0; o < out.length; o += nb) for (let j = 0; j < nb; j++) out[o + j] = a[o + j]! + b[j]!;
    },
    longB: (a, b, out) => {
      const na = a.length;
      for (let o = 0; o < out.length; o += na) for (let j = 0; j < na; j++) out[o + j] = a[j]! + b[o + j]!;
    },
  },
  Sub: {
    longA: (a, b, out) => {
      const nb = b.length;
      for (let o = 0; o < out.length; o += nb) for (let j = 0; j < nb; j++) out[o + j] = a[o + j]! - b[j]!;
    },
    longB: (a, b, out) => {
      const na = a.length;
      for (let o = 0; o < out.length; o += na) for (let j = 0; j < na; j++) out[o + j] = a[j]! - b[o + j]!;
    },
  },
  Multiply: {
    longA: (a, b, out) => {
      const nb = b.length;
      for (let o = 0; o < out.length; o += nb) for (let j = 0; j < nb; j++) out[o + j] = a[o + j]! * b[j]!;
    },
    longB: (a, b, out) => {
      const na = a.length;
      for (let o = 0; o < out.length; o += na) for (let j = 0; j < na; j++) out[o + j] = a[j]! * b[o + j]!;
    },
  },
  RealDiv: {
    longA: (a, b, out) => {
      const nb = b.length;
      for (let o = 0; o < out.length; o += nb) for (let j = 0; j < nb; j++) out[o + j] = a[o + j]! / b[j]!;
    },
    longB: (a, b, out) => {
      const na = a.length;
      for (let o = 0; o < out.length; o += na) for (let j = 0; j < na; j++) out[o + j] = a[j]! / b[o + j]!;
    },
  },
};

/** Sum (`mean` false) or Mean over a leading run of axes of a float32 tensor. */
export function leadingReduce(mean: boolean) {
  return (s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo => {
    const args = leadingReduceArgs(inputs, attrs);
    if (args == null) return s.call(original, inputs, attrs);
    const { x, rows, cols, outShape } = args;
    const { info, values: out } = s.output(outShape, 'float32');
    const xv = s.values(x);
    const acc = new Float64Array(cols);
    for (let r = 0; r < rows; r++) {
      const base = r * cols;
      for (let c = 0; c < cols; c++) acc[c] = acc[c]! + xv[base + c]!;
    }
    if (mean && rows > 0) for (let c = 0; c < cols; c++) acc[c] = acc[c]! / rows;
    if (mean && rows === 0) acc.fill(NaN);
    out.set(acc);
    return info;
  };
}

/** Relu: `max(0, x)` as tfjs computes it (NaN stays NaN). */
export function cpuRelu(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  if (x.dtype !== 'float32') return s.call(original, inputs, attrs);
  const { info, values: y } = s.output(x.shape, 'float32');
  const xv = s.values(x);
  for (let i = 0; i < y.length; i++) y[i] = Math.max(0, xv[i]!);
  return info;
}

/** Step: 1 where x > 0, `alpha` elsewhere, NaN for NaN (tfjs' definition). */
export function cpuStep(s: Scope, inputs: NamedTensorInfoMap, attrs: NamedAttrMap, original: KernelFunc): TensorInfo {
  const x = need(inputs, 'x');
  if (x.dtype !== 'float32') return s.call(original, inputs, attrs);
  const alpha = (attrs['alpha'] as number | undefined) ?? 0;
  const { info, values: y } = s.output(x.shape, 'float32');
  const xv = s.values(x);
  for (let i = 0; i < y.length; i++) {
    const v = xv[i]!;
    y[i] = v > 0 ? 1 : v !== v ? NaN : alpha;
  }
  return info;
}
