/**
 * Reader conversions of convolution, dense, normalisation and pooling nodes: their weights take
 * core's layouts (HWIO conv weights, `[in, out]` Gemm weights) and their maps NHWC.
 */
import type { AttrValue, ParamData } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { chwRowsFromHwc, gatherRows, invertIndex } from '../layout.js';
import { intListOf, numAttrOf, skip, type NodeAttrs, type ReadContext, type Val } from './read-context.js';
import { exactPool } from './read-pool.js';
import { reduce } from './read-onnx-ops.js';

/**
 * The window attributes core's Conv and pools share with ONNX (auto_pad only when not NOTSET),
 * after checking that each describes the input's two spatial axes (the schema checked that they
 * agree with each other).
 */
function windowAttrs(r: ReadContext, a: NodeAttrs): Record<string, AttrValue> {
  for (const [k, want] of [['kernel_shape', 2], ['strides', 2], ['dilations', 2], ['pads', 4]] as const) {
    const v = intListOf(a, k);
    if (v && v.length !== want) r.fail(`has ${v.length} values; a 2-D input needs ${want}`, { attribute: k });
  }
  const attrs: Record<string, AttrValue> = {};
  for (const k of ['strides', 'dilations', 'pads', 'kernel_shape']) if (intListOf(a, k)) attrs[k] = intListOf(a, k)!;
  if (typeof a['auto_pad'] === 'string' && a['auto_pad'] !== 'NOTSET') attrs['auto_pad'] = a['auto_pad'];
  return attrs;
}

/** A 2-D Conv: NHWC input, HWIO weight (a constant or a DequantizeLinear of one), optional bias. */
export function conv(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.asNhwc(r.val(ins[0]!));
  if (x.info.shape.length !== 4) skip('only 2-D convolutions are supported');
  const w = r.weight(ins[1]!, 'conv');
  const b = ins[2] ? bias(r, ins[2]) : undefined;
  const attrs: Record<string, AttrValue> = { group: numAttrOf(a, 'group', 1), ...windowAttrs(r, a) };
  return r.emit(n, 'Conv', [x.name, w, ...(b ? [b] : [])], attrs, 'nhwc');
}

/** Gemm and MatMul: a constant weight becomes `[in, out]` (rows reordered behind a Flatten of a map), two run-time operands a MatMul. */
export function gemm(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const num = (k: string, d: number): number => numAttrOf(a, k, d);
  if (num('transA', 0) !== 0) skip('transA=1 is not supported');
  const x = r.val(ins[0]!);
  const constW = r.konsts.has(ins[1]!) || r.deferredDq.has(ins[1]!);
  if (op === 'MatMul' && !constW) {
    const y = r.val(ins[1]!);
    return r.emit(n, 'MatMul', [r.asFile(x).name, r.asFile(y).name], {}, 'file');
  }
  if (op === 'MatMul' && x.info.shape.length > 2) {
    // Batched MatMul with a constant matrix (a transformer's Linear): rows of the last axis.
    if ((r.konst(ins[1]!)?.dims.length ?? 2) !== 2) skip('MatMul with a constant weight of rank other than 2');
    return r.emit(n, 'MatMul', [r.asFile(x).name, r.weight(ins[1]!, 'none')], {}, 'file');
  }
  if (x.info.shape.length !== 2) skip(`${op} with a constant weight needs a rank-2 input`);
  const flat = x.flat;
  const extra = flat
    ? (data: ParamData, shape: number[]): { data: ParamData; shape: number[] } => {
        if (shape.length !== 2) skip(`${op} with a constant weight needs a rank-2 weight`);
        const features = flat.h * flat.w * flat.c;
        // Checked before the row index is built: its size is the input's, not the weight's.
        if (shape[0] !== features) r.fail(`its input has ${features} features per example, but its weight "${ins[1]}" has ${shape[0]} rows`, { input: 1 });
        // The file's rows follow C,H,W order; the core Flatten yields H,W,C.
        return { data: gatherRows(data, shape[1]!, invertIndex(chwRowsFromHwc(flat.h, flat.w, flat.c))), shape };
      }
    : undefined;
  const w = r.weight(ins[1]!, op === 'Gemm' && num('transB', 0) !== 0 ? 'gemmT' : 'none', extra);
  const inputs = [x.name, w];
  if (op === 'Gemm' && ins[2]) {
    let c = bias(r, ins[2]);
    const out = r.infos.get(w)!.shape[1]!;
    const ci = r.infos.get(c)!;
    if (ci.shape.length === 0 || (ci.shape.length === 1 && ci.shape[0] === 1 && out !== 1)) {
      const p = r.params.get(c);
      if (!p || p.dtype !== 'float32') skip('a broadcast Gemm bias must be a float constant');
      c = r.param(`${c}.broadcast`, { dims: [out], dtype: 'float32', data: new Float32Array(out).fill(p.data[0]!) }, 'none');
    }
    inputs.push(c);
  }
  const attrs: Record<string, AttrValue> = op === 'Gemm' ? { alpha: num('alpha', 1), beta: num('beta', 1) } : {};
  return r.emit(n, op, inputs, attrs, 'file');
}

/** A Conv or Gemm bias: a constant as a rank-1 parameter, a DequantizeLinear of one, or a run-time value. */
function bias(r: ReadContext, v: string): string {
  const k = r.konst(v);
  if (k) {
    return r.param(v, k, 'none', (data, shape) => {
      const n = shape.reduce((p, d) => p * d, 1);
      if (shape.length > 1 && n === shape[shape.length - 1]) return { data, shape: [n] };
      return { data, shape };
    });
  }
  if (r.deferredDq.has(v)) return r.dqWeight(v, 'none').name;
  return r.val(v).name;
}

/** Inference-mode BatchNormalization over the channels (running statistics are not trainable). */
export function batchNorm(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  if (outs.filter(Boolean).length > 1) skip('training-mode outputs are not supported');
  if (numAttrOf(a, 'training_mode', 0) !== 0) skip('training_mode=1 (batch statistics) is not supported');
  // Opsets 7 and 8: spatial=0 normalises each (channel, position) on its own.
  if (numAttrOf(a, 'spatial', 1) !== 1) skip('spatial=0 (per-position statistics) is not supported');
  const x = r.asNhwc(r.val(ins[0]!));
  if (x.info.shape.length !== 4 && x.info.shape.length !== 2) skip('BatchNormalization needs a rank-2 or rank-4 input');
  const ps = [1, 2, 3, 4].map((i) => r.param(ins[i]!, r.konst(ins[i]!) ?? skip('BN parameters must be constants'), 'none'));
  for (const i of [2, 3]) {
    const p = r.params.get(ps[i]!)!;
    r.params.set(p.name, { ...p, trainable: false });
  }
  return r.emit(n, 'BatchNormalization', [x.name, ...ps], { epsilon: numAttrOf(a, 'epsilon', 1e-5), momentum: numAttrOf(a, 'momentum', 0.9) }, x.layout);
}

/** A 2-D MaxPool or AveragePool over an NHWC map. */
export function pool(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  if (outs.length > 1 && outs[1]) skip('the indices output is not supported');
  const x = r.asNhwc(r.val(ins[0]!));
  if (x.info.shape.length !== 4) skip('only 2-D pooling is supported');
  const attrs = windowAttrs(r, a);
  const includePad = numAttrOf(a, 'count_include_pad', 0) !== 0;
  if (op === 'AveragePool') attrs['count_include_pad'] = includePad ? 1 : 0;
  const ceil = numAttrOf(a, 'ceil_mode', 0) !== 0 && !ceilIsFloor(x, attrs);
  const pads = (attrs['pads'] as number[] | undefined) ?? [0, 0, 0, 0];
  const cutAverage = op === 'AveragePool' && !includePad && attrs['auto_pad'] === undefined && pads.some((v) => v > 0);
  if (ceil || cutAverage) {
    if (attrs['auto_pad'] !== undefined) skip('ceil_mode=1 with auto_pad is not supported');
    if (x.info.shape[1] === null || x.info.shape[2] === null) skip('ceil_mode=1 needs static H and W');
    return exactPool(r, n, op, x, attrs, ceil, includePad);
  }
  return r.emit(n, op, [x.name], attrs, 'nhwc');
}

/** Whether ceil_mode=1 gives the same output size as floor for this input (then it can be ignored). */
function ceilIsFloor(x: Val, attrs: Record<string, AttrValue>): boolean {
  const k = (attrs['kernel_shape'] as number[] | undefined) ?? [1, 1];
  const s = (attrs['strides'] as number[] | undefined) ?? [1, 1];
  const p = (attrs['pads'] as number[] | undefined) ?? [0, 0, 0, 0];
  const sizes = [x.info.shape[1], x.info.shape[2]];
  return sizes.every((d, i) => {
    if (d === null || d === undefined) return false;
    const span = d + p[i]! + p[i + 2]! - k[i]!;
    return span % s[i]! === 0;
  });
}

/** GlobalAveragePool or GlobalMaxPool of a rank-4 map. */
export function globalPool(r: ReadContext, n: onnx.INodeProto, op: string): void {
  const x = r.asNhwc(r.val((n.input ?? [])[0]!));
  if (x.info.shape.length !== 4) skip('only rank-4 inputs are supported');
  return r.emit(n, op, [x.name], {}, 'nhwc');
}

/** ReduceMean over the spatial axes of a map: a GlobalAveragePool (and a Flatten without keepdims). */
export function reduceMean(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  const x = r.val(ins[0]!);
  const axes = (intListOf(a, 'axes') ?? (ins[1] ? r.knownInts(ins[1], 'axes') : [])).map((d) => (d < 0 ? d + 4 : d)).sort();
  if (x.info.shape.length !== 4 || axes.join() !== '2,3') return reduce(r, n, 'ReduceMean', a);
  const keep = numAttrOf(a, 'keepdims', 1) !== 0;
  const xn = r.asNhwc(x);
  if (keep) return r.emit(n, 'GlobalAveragePool', [xn.name], {}, 'nhwc');
  const mid = r.unique(`${outs[0]!}.gap`);
  r.emitCore({ name: r.unique(`${n.name || 'reducemean'}/gap`), op: 'GlobalAveragePool', inputs: [xn.name], outputs: [mid], attrs: {} });
  return r.emit(n, 'Flatten', [mid], { axis: 1 }, 'file');
}
