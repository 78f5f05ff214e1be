/**
 * Reader conversions of the ops export-onnx adds to core (src/ops): unary math, Pow, PRelu,
 * comparisons and Where, reductions, LogSoftmax, ArgMax, LayerNormalization,
 * InstanceNormalization, ConvTranspose, Expand and Tile, plus the constant generators
 * ConstantOfShape and Range (folded: their shapes depend on values). Operands on constants are
 * folded where they are shape arithmetic; axes follow the value's layout (NHWC for a map).
 */
import type { AttrValue } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { nchwAxisToNhwc } from '../layout.js';
import type { Konst } from './decode.js';
import { intListOf, numAttrOf, skip, type NodeAttrs, type ReadContext, type Val } from './read-context.js';

const UNARY_MATH: Record<string, ((x: number) => number) | undefined> = {
  Exp: Math.exp,
  Log: Math.log,
  Sqrt: Math.sqrt,
  Reciprocal: (x) => 1 / x,
  Neg: (x) => -x,
  Abs: Math.abs,
  Erf: undefined,
  Softplus: undefined,
  Mish: undefined,
  Gelu: undefined,
};
const COMPARE = new Set(['Equal', 'Less', 'Greater']);

/** Ops this module converts. */
export const ONNX_READ_OPS = new Set([
  ...Object.keys(UNARY_MATH),
  ...COMPARE,
  'PRelu',
  'Pow',
  'Where',
  'ReduceSum',
  'ReduceMax',
  'LogSoftmax',
  'ArgMax',
  'LayerNormalization',
  'InstanceNormalization',
  'ConvTranspose',
  'Expand',
  'Tile',
  'ConstantOfShape',
  'Range',
]);

/** Converts a node of an op in {@link ONNX_READ_OPS}. */
export function convertOnnxOp(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  if (op in UNARY_MATH) return unaryMath(r, n, op, a);
  if (COMPARE.has(op)) return compare(r, n, op);
  switch (op) {
    case 'PRelu':
      return prelu(r, n);
    case 'Pow': {
      const [ka, kb] = [r.konst(n.input![0]!), r.konst(n.input![1]!)];
      if (ka?.dtype === 'float32' && kb?.dtype === 'float32' && kb.data.length === 1) {
        const e = kb.data[0]!;
        r.konsts.set(n.output![0]!, { dims: ka.dims, dtype: 'float32', data: Float32Array.from(ka.data as Float32Array, (v) => v ** e) });
        return;
      }
      return elementwise(r, n, 'Pow', [n.input![0]!, n.input![1]!]);
    }
    case 'Where':
      return where(r, n);
    case 'ReduceSum':
    case 'ReduceMax':
      return reduce(r, n, op, a);
    case 'LogSoftmax':
    case 'ArgMax':
      return axisOp(r, n, op, a);
    case 'LayerNormalization':
      return layerNorm(r, n, a);
    case 'InstanceNormalization': {
      const x = r.asNhwc(r.val(n.input![0]!));
      if (x.info.shape.length !== 4) skip('only 2-D (rank-4) InstanceNormalization is supported');
      const ps = [1, 2].map((i) => r.param(n.input![i]!, r.konst(n.input![i]!) ?? skip('scale and bias must be constants'), 'none'));
      return r.emit(n, op, [x.name, ...ps], { epsilon: numAttrOf(a, 'epsilon', 1e-5) }, 'nhwc');
    }
    case 'ConvTranspose':
      return convTranspose(r, n, a);
    case 'Expand':
      return expand(r, n);
    case 'Tile': {
      const x = r.asFile(valOrParam(r, n.input![0]!));
      return r.emit(n, 'Tile', [x.name], { repeats: r.knownInts(n.input![1]!, 'Tile repeats') }, 'file');
    }
    case 'ConstantOfShape':
      return constantOfShape(r, n, a);
    case 'Range':
      return range(r, n);
    default:
      skip('no core equivalent');
  }
}

/** A value, or a constant as a (trainable float) parameter in the file's layout. */
function valOrParam(r: ReadContext, v: string): Val {
  return r.val(v);
}

function unaryMath(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const k = r.konst(ins[0]!);
  const f = UNARY_MATH[op];
  if (k && f && k.dtype === 'float32') {
    r.konsts.set(n.output![0]!, { dims: k.dims, dtype: 'float32', data: Float32Array.from(k.data as Float32Array, f) });
    return;
  }
  const x = r.val(ins[0]!);
  const attrs: Record<string, AttrValue> = {};
  if (op === 'Gelu') {
    const approx = typeof a['approximate'] === 'string' ? a['approximate'] : 'none';
    if (approx !== 'none' && approx !== 'tanh') r.fail(`approximate must be "none" or "tanh", got "${approx}"`, { attribute: 'approximate' });
    attrs['approximate'] = approx;
  }
  return r.emit(n, op, [x.name], attrs, x.layout);
}

/** The int64 (or 0/1) values of a constant, for folding comparisons. */
function foldable(k: Konst | undefined): (number | null)[] | undefined {
  if (!k || k.data.length > 64) return undefined;
  return Array.from(k.data as ArrayLike<number | null>);
}

function compare(r: ReadContext, n: onnx.INodeProto, op: string): void {
  const [ia, ib] = n.input as [string, string];
  const xa = foldable(r.konst(ia));
  const xb = foldable(r.konst(ib));
  if (xa && xb) {
    const len = Math.max(xa.length, xb.length);
    if ((xa.length !== len && xa.length !== 1) || (xb.length !== len && xb.length !== 1)) r.fail('constant operands do not broadcast');
    const data = Array.from({ length: len }, (_, i) => {
      const p = xa[xa.length === 1 ? 0 : i]!;
      const q = xb[xb.length === 1 ? 0 : i]!;
      // A run-time size (null) is >= 0: it differs from any negative constant.
      if (p === null || q === null) {
        const known = p ?? q!;
        if (op === 'Equal' && known < 0) return 0;
        return skip(`${op} of a run-time size`);
      }
      return (op === 'Equal' ? p === q : op === 'Less' ? p < q : p > q) ? 1 : 0;
    });
    r.konsts.set(n.output![0]!, { dims: r.konst(xa.length === len ? ia : ib)!.dims, dtype: 'int64', data });
    return;
  }
  return elementwise(r, n, op, [ia, ib]);
}

/**
 * A broadcasting op on run-time values (and constants as parameters): on NHWC maps when every
 * operand of rank 4 is one (constants of lower rank broadcast as NCHW), else in the file's order.
 */
function elementwise(r: ReadContext, n: onnx.INodeProto, op: string, names: string[], attrs: Record<string, AttrValue> = {}): void {
  const vals = names.map((v) => (r.konst(v) ? undefined : r.val(v)));
  const ranks = vals.map((v, i) => v?.info.shape.length ?? r.konst(names[i]!)!.dims.length);
  const nhwc = vals.some((v) => v?.layout === 'nhwc' && v.info.shape.length === 4) && vals.every((v) => !v || v.info.shape.length === 4 || v.info.shape.length === 0);
  const inputs = names.map((v, i) => {
    const val = vals[i];
    if (val) return (nhwc ? r.asNhwc(val) : r.asFile(val)).name;
    const k = r.konst(v)!;
    const kk = op === 'Where' && i === 0 ? { ...k, dtype: 'uint8' as const, data: Uint8Array.from(k.data as ArrayLike<number>, (x) => (x ? 1 : 0)) } : k;
    return r.param(v, kk, nhwc && ranks[i]! > 0 ? 'bcast4' : 'none');
  });
  return r.emit(n, op, inputs, attrs, nhwc ? 'nhwc' : 'file');
}

function prelu(r: ReadContext, n: onnx.INodeProto): void {
  if (!r.konst(n.input![1]!) && !r.deferredDq.has(n.input![1]!)) skip('the slope must be a constant');
  return elementwise(r, n, 'PRelu', [n.input![0]!, n.input![1]!]);
}

function where(r: ReadContext, n: onnx.INodeProto): void {
  const [c, x, y] = n.input as [string, string, string];
  const kc = foldable(r.konst(c));
  const kx = foldable(r.konst(x));
  const ky = foldable(r.konst(y));
  if (kc && kx && ky) {
    const len = Math.max(kc.length, kx.length, ky.length);
    const at = (xs: (number | null)[], i: number): number | null => xs[xs.length === 1 ? 0 : i]!;
    const data = Array.from({ length: len }, (_, i) => (at(kc, i) ? at(kx, i) : at(ky, i)));
    const kxx = r.konst(x)!;
    const dims = [kc, kx, ky].find((xs) => xs.length === len) === kx ? kxx.dims : len === 1 ? kxx.dims : [len];
    r.konsts.set(n.output![0]!, kxx.dtype === 'int64' ? { dims, dtype: 'int64', data } : { dims, dtype: 'float32', data: Float32Array.from(data as number[]) });
    return;
  }
  return elementwise(r, n, 'Where', [c, x, y]);
}

/** The axes of a reduction: the attribute (before opset 18; 13 for ReduceSum) or input 1. */
export function reduceAxes(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): number[] {
  const ins = n.input ?? [];
  return intListOf(a, 'axes') ?? (ins[1] ? r.knownInts(ins[1], 'axes') : []);
}

/** ReduceMean (other than over a map's H and W), ReduceSum and ReduceMax over any axes. */
export function reduce(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const x0 = r.val(n.input![0]!);
  const rank = x0.info.shape.length;
  let axes = reduceAxes(r, n, a);
  if (axes.length === 0 && numAttrOf(a, 'noop_with_empty_axes', 0) !== 0) return r.emit(n, 'Identity', [x0.name], {}, x0.layout);
  for (const ax of axes) r.checkAxis(ax, rank, 0, 'axes');
  axes = axes.map((ax) => (ax < 0 ? ax + rank : ax));
  const keep = numAttrOf(a, 'keepdims', 1) !== 0;
  const x = keep ? x0 : r.asFile(x0);
  if (x.layout === 'nhwc' && rank === 4) axes = axes.map((ax) => nchwAxisToNhwc(ax));
  return r.emit(n, op, [x.name], { axes, keepdims: keep ? 1 : 0 }, x.layout);
}

/** LogSoftmax and ArgMax along one axis (an NHWC axis for a map). */
function axisOp(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const x0 = r.val(n.input![0]!);
  const rank = x0.info.shape.length;
  let axis = numAttrOf(a, 'axis', op === 'LogSoftmax' ? (r.opset >= 13 ? -1 : 1) : 0);
  r.checkAxis(axis, rank);
  if (axis < 0) axis += rank;
  if (op === 'LogSoftmax' && r.opset < 13 && axis !== rank - 1) return coercedSoftmax(r, n, op, x0, axis);
  const attrs: Record<string, AttrValue> = {};
  const keep = numAttrOf(a, 'keepdims', 1) !== 0;
  if (op === 'ArgMax') {
    if (numAttrOf(a, 'select_last_index', 0) !== 0) skip('select_last_index=1 is not supported');
    attrs['keepdims'] = keep ? 1 : 0;
  }
  const x = op === 'ArgMax' && !keep ? r.asFile(x0) : x0;
  attrs['axis'] = x.layout === 'nhwc' && rank === 4 ? nchwAxisToNhwc(axis) : axis;
  return r.emit(n, op, [x.name], attrs, x.layout);
}

function layerNorm(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  if (outs.slice(1).some((o) => o && (r.consumers.get(o) ?? []).length > 0)) skip('the Mean and InvStdDev outputs are not supported');
  const x = r.asFile(r.val(ins[0]!));
  const rank = x.info.shape.length;
  let axis = numAttrOf(a, 'axis', -1);
  r.checkAxis(axis, rank);
  if (axis < 0) axis += rank;
  const ps = ins.slice(1).filter(Boolean).map((v) => r.param(v, r.konst(v) ?? skip('scale and bias must be constants'), 'none'));
  return r.emit(n, 'LayerNormalization', [x.name, ...ps], { axis, epsilon: numAttrOf(a, 'epsilon', 1e-5) }, 'file', [outs[0]!]);
}

function convTranspose(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.asNhwc(r.val(ins[0]!));
  if (x.info.shape.length !== 4) skip('only 2-D ConvTranspose is supported');
  if (typeof a['auto_pad'] === 'string' && a['auto_pad'] !== 'NOTSET') skip(`auto_pad ${a['auto_pad']} is not supported; export with explicit pads`);
  if (intListOf(a, 'output_shape')) skip('output_shape is not supported; export with explicit pads and output_padding');
  if ((intListOf(a, 'dilations') ?? [1, 1]).some((d) => d !== 1)) skip('dilations other than 1 are not supported');
  for (const [k, want] of [['strides', 2], ['pads', 4], ['output_padding', 2], ['kernel_shape', 2]] as const) {
    const v = intListOf(a, k);
    if (v && v.length !== want) r.fail(`has ${v.length} values; a 2-D input needs ${want}`, { attribute: k });
  }
  const w = r.weight(ins[1]!, 'conv');
  const b = ins[2] ? r.param(ins[2], r.konst(ins[2]) ?? skip('the bias must be a constant'), 'none') : undefined;
  const attrs: Record<string, AttrValue> = {
    group: numAttrOf(a, 'group', 1),
    strides: intListOf(a, 'strides') ?? [1, 1],
    pads: intListOf(a, 'pads') ?? [0, 0, 0, 0],
    output_padding: intListOf(a, 'output_padding') ?? [0, 0],
  };
  return r.emit(n, 'ConvTranspose', [x.name, w, ...(b ? [b] : [])], attrs, 'nhwc');
}

/** The first graph input whose first axis is the run-time batch (what -1 in an Expand shape reads). */
function batchReference(r: ReadContext): string | undefined {
  for (const [name, info] of r.infos) if (info.shape[0] === null && r.vals.get(name)?.name === name) return name;
  return undefined;
}

function expand(r: ReadContext, n: onnx.INodeProto): void {
  const [ix, is] = n.input as [string, string];
  const target = r.ints(is, 'Expand shape');
  const x = r.asFile(r.val(ix));
  if (target.filter((d) => d === null).length > 0) {
    const ref = batchReference(r);
    if (!ref) skip('the shape depends on a run-time size that is not the batch');
    return r.emit(n, 'Expand', [x.name, ref], { shape: target.map((d) => d ?? -1) }, 'file');
  }
  return r.emit(n, 'Expand', [x.name], { shape: target as number[] }, 'file');
}

function constantOfShape(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const dims = r.knownInts(n.input![0]!, 'ConstantOfShape shape');
  const size = dims.reduce((p, d) => p * d, 1);
  if (size > r.ctx.limits.maxTensorElements) r.fail(`the constant would hold ${size} values, above limits.maxTensorElements`);
  const v = a['value'];
  const k = v && typeof v === 'object' && 'dims' in v ? v : undefined;
  const first = k ? (k.data as ArrayLike<number | null>)[0] ?? 0 : 0;
  if (!k || k.dtype === 'float32') r.konsts.set(n.output![0]!, { dims, dtype: 'float32', data: new Float32Array(size).fill(first ?? 0) });
  else r.konsts.set(n.output![0]!, { dims, dtype: k.dtype === 'int64' ? 'int64' : k.dtype, data: k.dtype === 'int64' ? new Array<number>(size).fill(first ?? 0) : (new (k.data.constructor as new (n: number) => Int32Array)(size).fill(first ?? 0) as never) });
}

function range(r: ReadContext, n: onnx.INodeProto): void {
  const [s, l, d] = (n.input ?? []).map((v) => r.scalar(v, 'Range operand')) as [number, number, number];
  if (d === 0) r.fail('delta is 0');
  const count = Math.max(Math.ceil((l - s) / d), 0);
  if (count > r.ctx.limits.maxTensorElements) r.fail(`the range would hold ${count} values, above limits.maxTensorElements`);
  const data = Array.from({ length: count }, (_, i) => s + i * d);
  const int = r.konst(n.input![0]!)!.dtype === 'int64';
  r.konsts.set(n.output![0]!, int ? { dims: [count], dtype: 'int64', data } : { dims: [count], dtype: 'float32', data: Float32Array.from(data) });
}

/**
 * Softmax or LogSoftmax below opset 13: over the input coerced to 2-D at `axis` (every axis from
 * `axis` on is one row). Read as a Reshape to [n, rows, features] that keeps the batch, the op over
 * the last axis, and a Reshape back, in the file's order.
 */
export function coercedSoftmax(r: ReadContext, n: onnx.INodeProto, op: string, x0: Val, axis: number): void {
  const x = r.asFile(x0);
  const dims = x.info.shape;
  if (axis < 1) skip(`opset < 13 ${op} over axis 0 folds the batch into a row`);
  if (dims.slice(1).some((d) => d === null)) skip(`opset < 13 ${op} needs static sizes after the batch`);
  const size = (ds: readonly (number | null)[]): number => ds.reduce<number>((p, d) => p * d!, 1);
  const base = n.name || op;
  const flat = r.unique(`${n.output![0]!}.rows`);
  const soft = r.unique(`${n.output![0]!}.soft`);
  r.emitCore({ name: r.unique(`${base}/rows`), op: 'Reshape', inputs: [x.name], outputs: [flat], attrs: { shape: [0, size(dims.slice(1, axis)), size(dims.slice(axis))] } });
  r.emitCore({ name: r.unique(`${base}/op`), op, inputs: [flat], outputs: [soft], attrs: { axis: 2 } });
  return r.emit(n, 'Reshape', [soft], { shape: [0, ...(dims.slice(1) as number[])] }, 'file');
}
