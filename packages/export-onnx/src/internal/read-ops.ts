/**
 * The reader's per-node dispatch, and the conversions of elementwise and quantization nodes. Conv,
 * dense, normalisation and pooling nodes are in read-conv.ts, shape nodes in read-shape.ts.
 */
import type { AttrValue } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { NCHW_TO_NHWC, NHWC_TO_NCHW, nchwAxisToNhwc, permuteShape } from '../layout.js';
import type { Konst } from './decode.js';
import { batchNorm, conv, gemm, globalPool, pool, reduceMean } from './read-conv.js';
import { intListOf, numAttrOf, skip, type NodeAttrs, type ReadContext, type Val } from './read-context.js';
import { ONNX_READ_OPS, coercedSoftmax, convertOnnxOp } from './read-onnx-ops.js';
import { resize } from './read-resize.js';
import { concat, constant, flatten, reshape, shapeOp, slice, split, transpose } from './read-shape.js';

const UNARY = new Set(['Relu', 'Sigmoid', 'Tanh', 'Sign', 'LeakyRelu', 'HardSigmoid', 'HardSwish', 'Identity']);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div']);
/** Every op type the reader converts (some only in the forms their error messages name). */
export const SUPPORTED = new Set([
  ...UNARY,
  ...BINARY,
  'Constant',
  'Conv',
  'Gemm',
  'MatMul',
  'BatchNormalization',
  'Dropout',
  'Clip',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'ReduceMean',
  'Flatten',
  'Reshape',
  'Transpose',
  'Concat',
  'Split',
  'Slice',
  'Softmax',
  'Pad',
  'QuantizeLinear',
  'DequantizeLinear',
  'DynamicQuantizeLinear',
  'Shape',
  'Gather',
  'Unsqueeze',
  'Squeeze',
  'Cast',
  'Resize',
  'Upsample',
  ...ONNX_READ_OPS,
]);

/** Converts one file node (QOperator nodes already expanded) into core nodes, constants or nothing. */
export function convertNode(r: ReadContext, n: onnx.INodeProto): void {
  if (r.skipNodes.has(n)) return;
  const op = n.opType ?? '';
  // Attributes are decoded (and their tensors counted against the limits) before anything else.
  const a = r.attrs(n);
  if (UNARY.has(op)) return unary(r, n, op, a);
  if (BINARY.has(op)) return binary(r, n, op);
  if (ONNX_READ_OPS.has(op)) return convertOnnxOp(r, n, op, a);
  switch (op) {
    case 'Resize':
    case 'Upsample':
      return resize(r, n, op, a);
    case 'Constant':
      return constant(r, n, a);
    case 'Conv':
      return conv(r, n, a);
    case 'Gemm':
    case 'MatMul':
      return gemm(r, n, op, a);
    case 'BatchNormalization':
      return batchNorm(r, n, a);
    case 'Dropout':
      return dropout(r, n);
    case 'Clip':
      return clip(r, n, a);
    case 'MaxPool':
    case 'AveragePool':
      return pool(r, n, op, a);
    case 'GlobalAveragePool':
    case 'GlobalMaxPool':
      return globalPool(r, n, op);
    case 'ReduceMean':
      return reduceMean(r, n, a);
    case 'Flatten':
      return flatten(r, n, numAttrOf(a, 'axis', 1));
    case 'Reshape':
      if (numAttrOf(a, 'allowzero', 0) !== 0 && r.ints((n.input ?? [])[1]!, 'Reshape shape').includes(0)) skip('allowzero=1 with a 0 in the shape is not supported');
      return reshape(r, n);
    case 'Transpose':
      return transpose(r, n, a);
    case 'Concat':
      return concat(r, n, numAttrOf(a, 'axis', 0));
    case 'Split':
      return split(r, n, a);
    case 'Slice':
      return slice(r, n, a);
    case 'Softmax':
      return softmax(r, n, a);
    case 'Pad':
      return pad(r, n, a);
    case 'QuantizeLinear':
    case 'DequantizeLinear':
      return qdq(r, n, op, a);
    case 'DynamicQuantizeLinear': {
      const x = r.val((n.input ?? [])[0]!);
      return r.emit(n, 'DynamicQuantizeLinear', [x.name], {}, x.layout);
    }
    case 'Shape':
    case 'Gather':
    case 'Unsqueeze':
    case 'Squeeze':
    case 'Cast':
      return shapeOp(r, n, op, a);
    default:
      skip('no core equivalent');
  }
}

/** An activation (or Identity, folded over a constant), with its attributes' defaults written out. */
function unary(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  if (op === 'Identity' && r.konsts.has(ins[0]!)) {
    r.konsts.set(outs[0]!, r.konsts.get(ins[0]!)!);
    return;
  }
  const x = r.val(ins[0]!);
  const attrs: Record<string, AttrValue> = {};
  if (op === 'LeakyRelu') attrs['alpha'] = numAttrOf(a, 'alpha', 0.01);
  if (op === 'HardSigmoid') {
    attrs['alpha'] = numAttrOf(a, 'alpha', 0.2);
    attrs['beta'] = numAttrOf(a, 'beta', 0.5);
  }
  return r.emit(n, op, [x.name], attrs, x.layout);
}

/** Add, Sub, Mul, Div: int64 constants folded (shape arithmetic); a map with a lower-rank operand broadcasts in file order. */
function binary(r: ReadContext, n: onnx.INodeProto, op: string): void {
  const [ia, ib] = (n.input ?? []) as [string, string];
  const out = n.output![0]!;
  const ka = r.konst(ia);
  const kb = r.konst(ib);
  if (ka && kb && (ka.dtype === 'int64' || kb.dtype === 'int64')) {
    if (ka.dtype !== kb.dtype) r.fail(`operands must have one dtype, got ${ka.dtype} and ${kb.dtype}`);
    const xa = ka.data as ArrayLike<number | null>;
    const xb = kb.data as ArrayLike<number | null>;
    const len = Math.max(xa.length, xb.length);
    if (xa.length !== len && xa.length !== 1) r.fail(`shapes [${ka.dims.join(', ')}] and [${kb.dims.join(', ')}] do not broadcast`);
    if (xb.length !== len && xb.length !== 1) r.fail(`shapes [${ka.dims.join(', ')}] and [${kb.dims.join(', ')}] do not broadcast`);
    const f = (p: number, q: number): number => {
      if (op === 'Div' && q === 0) r.fail('divides an integer by zero');
      const v = op === 'Add' ? p + q : op === 'Sub' ? p - q : op === 'Mul' ? p * q : Math.trunc(p / q);
      if (!Number.isSafeInteger(v)) skip(`int64 shape arithmetic leaves the safe integer range (${v})`);
      return v;
    };
    const data = Array.from({ length: len }, (_, i) => {
      const p = xa[xa.length === 1 ? 0 : i];
      const q = xb[xb.length === 1 ? 0 : i];
      return p === null || q === null || p === undefined || q === undefined ? null : f(p, q);
    });
    r.konsts.set(out, { dims: xa.length === len ? ka.dims : kb.dims, dtype: 'int64', data });
    return;
  }
  const va = ka ? undefined : r.val(ia);
  const vb = kb ? undefined : r.val(ib);
  const map = [va, vb].find((v) => v && v.info.shape.length === 4 && v.layout === 'nhwc');
  const side = (v: Val | undefined, k: Konst | undefined, name: string): string => {
    if (v) {
      if (map && v.info.shape.length === 4) return r.asNhwc(v).name;
      return v.name;
    }
    return r.param(name, k!, map ? 'bcast4' : 'none');
  };
  // A map mixed with non-constant data of a lower (non-scalar) rank broadcasts in NCHW terms.
  const lower = [va, vb].some((v) => v && v.info.shape.length > 0 && v.info.shape.length < 4);
  if (map && lower) {
    const fa = va ? r.asFile(va).name : r.param(ia, ka!, 'none');
    const fb = vb ? r.asFile(vb).name : r.param(ib, kb!, 'none');
    return r.emit(n, op, [fa, fb], {}, 'file');
  }
  return r.emit(n, op, [side(va, ka, ia), side(vb, kb, ib)], {}, map ? 'nhwc' : 'file');
}

/** Dropout is inference-only here: an Identity (a mask output that something reads is refused). */
function dropout(r: ReadContext, n: onnx.INodeProto): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  if (outs.length > 1 && outs[1] && (r.consumers.get(outs[1]) ?? []).length > 0) skip('the dropout mask output is not supported');
  const x = r.val(ins[0]!);
  return r.emit(n, 'Identity', [x.name], {}, x.layout, [outs[0]!]);
}

/** Clip with constant bounds (inputs from opset 11, attributes before); infinite bounds are left out. */
function clip(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.val(ins[0]!);
  const lo = r.opset >= 11 ? r.scalar(ins[1], 'Clip min') : numAttrOf(a, 'min', -Infinity);
  const hi = r.opset >= 11 ? r.scalar(ins[2], 'Clip max') : numAttrOf(a, 'max', Infinity);
  const attrs: Record<string, AttrValue> = {};
  if (lo !== undefined && Number.isFinite(lo)) attrs['min'] = lo;
  if (hi !== undefined && Number.isFinite(hi)) attrs['max'] = hi;
  return r.emit(n, 'Clip', [x.name], attrs, x.layout);
}

/** Softmax along one axis (before opset 13 ONNX flattens, so only the last axis is the same op). */
function softmax(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const x = r.val((n.input ?? [])[0]!);
  let axis = numAttrOf(a, 'axis', r.opset >= 13 ? -1 : 1);
  const rank = x.info.shape.length;
  r.checkAxis(axis, rank);
  if (r.opset < 13 && axis !== rank - 1 && axis !== -1) return coercedSoftmax(r, n, 'Softmax', x, axis < 0 ? axis + rank : axis);
  if (x.layout === 'nhwc' && rank === 4) axis = nchwAxisToNhwc(axis);
  return r.emit(n, 'Softmax', [x.name], { axis }, x.layout);
}

/** Pad with constant pads (input from opset 11, attribute before), reordered to NHWC for a map. */
function pad(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.val(ins[0]!);
  const mode = typeof a['mode'] === 'string' ? a['mode'] : 'constant';
  let pads = ins[1] ? r.knownInts(ins[1], 'pads') : (intListOf(a, 'pads') ?? []);
  const value = ins[2] ? (r.scalar(ins[2], 'constant_value') ?? 0) : numAttrOf(a, 'value', 0);
  if (ins[3]) skip('Pad with axes is not supported');
  const rank = x.info.shape.length;
  if (pads.length !== 2 * rank) r.fail(`pads holds ${pads.length} values; a rank-${rank} input needs ${2 * rank} (a begin and an end per axis)`, { input: 1 });
  if (mode !== 'constant' && mode !== 'reflect') skip(`mode "${mode}" is not supported (constant, reflect)`);
  if (pads.some((p) => p < 0)) skip('negative pads (cropping) are not supported');
  if (mode === 'reflect') {
    // Shapes are in file order here: a reflection can add at most size - 1 values on each side.
    const dims = x.layout === 'nhwc' && rank === 4 ? permuteShape(x.info.shape, NHWC_TO_NCHW) : x.info.shape;
    dims.forEach((d, i) => {
      const most = Math.max(pads[i]!, pads[i + rank]!);
      if (d !== null && most > 0 && most > d - 1) r.fail(`reflect padding of ${most} on axis ${i} is larger than the input's size ${d} - 1`, { input: 1 });
    });
  }
  if (x.layout === 'nhwc' && x.info.shape.length === 4) {
    pads = [...permuteShape(pads.slice(0, 4), NCHW_TO_NHWC), ...permuteShape(pads.slice(4), NCHW_TO_NHWC)];
  }
  return r.emit(n, 'Pad', [x.name], { pads, mode, value }, x.layout);
}

/** QuantizeLinear / DequantizeLinear of data (the axis follows the layout); a DequantizeLinear of a constant waits for its consumer. */
function qdq(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  // Valid attributes (opset 21) whose meaning core's Q/DQ does not have: refused, never ignored.
  if (numAttrOf(a, 'block_size', 0) > 0) skip('blocked quantization (block_size > 0) is not supported');
  if (numAttrOf(a, 'output_dtype', 0) !== 0) skip('output_dtype is not supported; give the zero point the output type');
  if (op === 'DequantizeLinear' && r.konsts.has(ins[0]!)) {
    r.deferredDq.set(n.output![0]!, n);
    return;
  }
  const x = r.val(ins[0]!);
  const rank = x.info.shape.length;
  let axis = typeof a['axis'] === 'number' ? a['axis'] : 1;
  const scale = r.konst(ins[1]!);
  if (scale && scale.data.length > 1) r.checkAxis(axis, rank);
  if (axis < 0) axis += rank;
  if (x.layout === 'nhwc' && rank === 4) axis = nchwAxisToNhwc(axis);
  // Scale and zero point: constants, or the run-time outputs of a DynamicQuantizeLinear.
  const params = ins.slice(1).filter(Boolean).map((v, i) => {
    const k = r.konst(v);
    if (k && i === 0) r.checkScale(v, k, n);
    if (k) return r.param(v, k, 'none');
    if (r.producers.get(v)?.opType !== 'DynamicQuantizeLinear') skip('scale and zero point must be constants or DynamicQuantizeLinear outputs');
    return r.val(v).name;
  });
  const scaleN = (r.infos.get(params[0]!) ?? r.val(ins[1]!).info).shape.reduce<number>((p, d) => p * (d ?? 1), 1);
  const out = r.emit(n, op, [x.name, ...params], scaleN > 1 ? { axis } : {}, x.layout);
  if (x.flat) r.vals.get(n.output![0]!)!.flat = x.flat;
  return out;
}
