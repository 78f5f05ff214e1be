/**
 * Reader conversions of shape nodes (Constant, Concat, Flatten, Reshape, Slice, Transpose, Split,
 * Shape, Gather, Unsqueeze, Squeeze, Cast). Shape arithmetic on constants is folded here, with
 * null standing for the run-time batch size, so PyTorch's dynamic-batch Reshapes become static.
 */
import type { AttrValue, Dim, ParamData } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { NHWC_TO_NCHW, nchwAxisToNhwc, permuteShape, transposeData } from '../layout.js';
import type { Konst } from './decode.js';
import { DT } from './proto.js';
import { intListOf, numAttrOf, skip, type NodeAttrs, type ReadContext, type Val } from './read-context.js';

/** A Constant node: its value joins the constants (folded, never a node). */
export function constant(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const out = n.output?.[0] ?? '';
  const v = a['value'];
  let k: Konst;
  if (v && typeof v === 'object' && 'dims' in v) k = v;
  else if (typeof a['value_float'] === 'number') k = { dims: [], dtype: 'float32', data: Float32Array.of(a['value_float']) };
  else if (Array.isArray(a['value_floats'])) k = { dims: [a['value_floats'].length], dtype: 'float32', data: Float32Array.from(a['value_floats'] as number[]) };
  else if (typeof a['value_int'] === 'number') k = { dims: [], dtype: 'int64', data: [a['value_int']] };
  else if (Array.isArray(a['value_ints'])) k = { dims: [a['value_ints'].length], dtype: 'int64', data: [...(a['value_ints'] as number[])] };
  else skip('only tensor, float(s) and int(s) constants are supported');
  r.konsts.set(out, k);
}

/** Concat: folded when every input is an int64 constant (a shape), else along the axis in NHWC or file order. */
export function concat(r: ReadContext, n: onnx.INodeProto, axis: number): void {
  const ins = n.input ?? [];
  if (ins.every((v) => r.konsts.get(v)?.dtype === 'int64')) {
    const data = ins.flatMap((v) => [...(r.konsts.get(v)!.data as (number | null)[])]);
    r.konsts.set(n.output![0]!, { dims: [data.length], dtype: 'int64', data });
    return;
  }
  const vals = ins.map((v) => r.val(v));
  const rank = vals[0]!.info.shape.length;
  if (axis < 0) axis += rank;
  if (rank === 4 && vals.some((v) => v.layout === 'nhwc')) {
    return r.emit(n, 'Concat', vals.map((v) => r.asNhwc(v).name), { axis: nchwAxisToNhwc(axis) }, 'nhwc');
  }
  return r.emit(n, 'Concat', vals.map((v) => r.asFile(v).name), { axis }, 'file');
}

/** File-order dims of a value. */
function fileDims(v: Val): Dim[] {
  return v.layout === 'nhwc' && v.info.shape.length === 4 ? permuteShape(v.info.shape, NHWC_TO_NCHW) : [...v.info.shape];
}

/** Flatten: of an NHWC map read only as Gemm/MatMul rows, a core Flatten whose consumers take H,W,C row order. */
export function flatten(r: ReadContext, n: onnx.INodeProto, axis: number): void {
  const x = r.val(n.input![0]!);
  const out = n.output![0]!;
  const s = x.info.shape;
  if (x.layout === 'nhwc' && s.length === 4 && (axis === 1 || axis === -3)) {
    if (s[1] === 1 && s[2] === 1) return r.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
    if (r.feedsOnlyWeights(out)) {
      r.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
      r.vals.get(out)!.flat = { h: s[1]!, w: s[2]!, c: s[3]! };
      return;
    }
  }
  return r.emit(n, 'Flatten', [r.asFile(x).name], { axis }, 'file');
}

/** Reshape: folded for constants; a map to `[batch, features]` read as weights becomes a Flatten; else in file order. */
export function reshape(r: ReadContext, n: onnx.INodeProto): void {
  const [ix, is] = (n.input ?? []) as [string, string];
  const out = n.output![0]!;
  const target = r.ints(is, 'Reshape shape');
  const k = r.konst(ix);
  if (k) {
    const size = k.data.length;
    const known = target.map((d, i) => (d === 0 ? k.dims[i]! : d));
    if (known.some((d) => d === null)) skip('reshaping a constant to a run-time shape');
    const rest = (known as number[]).filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    r.konsts.set(out, { dims: (known as number[]).map((d) => (d === -1 ? size / rest : d)), dtype: k.dtype, data: k.data });
    return;
  }
  const x = r.val(ix);
  const dims = fileDims(x);
  const shape = target.map((d, i) => {
    if (d !== null) return d;
    if (i < dims.length && dims[i] === null) return 0;
    return skip('the target shape depends on a run-time size other than the batch');
  });
  if (x.layout === 'nhwc' && x.info.shape.length === 4 && shape.length === 2) {
    const [h, w, c] = [x.info.shape[1]!, x.info.shape[2]!, x.info.shape[3]!];
    const per = h * w * c;
    const batchOk = shape[0] === 0 || shape[0] === -1 || (x.info.shape[0] !== null && shape[0] === x.info.shape[0]);
    const restOk = shape[1] === -1 || shape[1] === per;
    if (batchOk && restOk && shape[0] !== -1) {
      if (h * w === 1 || r.feedsOnlyWeights(out)) {
        r.emit(n, 'Flatten', [x.name], { axis: 1 }, 'file');
        if (h * w > 1) r.vals.get(out)!.flat = { h, w, c };
        return;
      }
    }
  }
  return r.emit(n, 'Reshape', [r.asFile(x).name], { shape }, 'file');
}

/** Slice with step 1: folded for a 1-D constant, else a chain of Splits keeping the wanted part. */
export function slice(r: ReadContext, n: onnx.INodeProto): void {
  const ins = n.input ?? [];
  const starts = r.ints(ins[1]!, 'Slice starts');
  const ends = r.ints(ins[2]!, 'Slice ends');
  const k = r.konst(ins[0]!);
  const axesIn = ins[3] ? r.knownInts(ins[3], 'Slice axes') : undefined;
  const steps = ins[4] ? r.knownInts(ins[4], 'Slice steps') : undefined;
  if (steps && steps.some((s) => s !== 1)) skip('only step 1 is supported');
  if (k) {
    if (k.dims.length !== 1 || (axesIn && axesIn.some((x) => x !== 0 && x !== -1))) skip('only 1-D constant slices are folded');
    const d = k.data.length;
    const [s, e] = [starts[0], ends[0]];
    if (s === null || e === null || s === undefined || e === undefined) skip('slice bounds depend on run-time sizes');
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    const data = Array.from(k.data as ArrayLike<number | null>).slice(clamp(s), clamp(e));
    r.konsts.set(n.output![0]!, { dims: [data.length], dtype: k.dtype, data: k.dtype === 'int64' ? data : (Float32Array.from(data as number[]) as never) });
    return;
  }
  let x = r.val(ins[0]!);
  const rank = x.info.shape.length;
  const axes = axesIn ?? starts.map((_, i) => i);
  axes.forEach((axisRaw, j) => {
    const s0 = starts[j];
    const e0 = ends[j];
    if (s0 === null || e0 === null || s0 === undefined || e0 === undefined) skip('slice bounds depend on run-time sizes');
    const fileAxis = axisRaw < 0 ? axisRaw + rank : axisRaw;
    const axis = x.layout === 'nhwc' && rank === 4 ? nchwAxisToNhwc(fileAxis) : fileAxis;
    const d = x.info.shape[axis];
    if (d === null || d === undefined) skip('slicing a dynamic axis');
    const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + d : v, 0), d);
    const [s, e] = [clamp(s0), Math.max(clamp(s0), clamp(e0))];
    if (s === e) skip('an empty slice');
    if (s === 0 && e === d) return;
    const sizes = [s, e - s, d - e].filter((z) => z > 0);
    const pick = s > 0 ? 1 : 0;
    const isLast = j === axes.length - 1;
    const outs = sizes.map((_, i) => (i === pick && isLast ? n.output![0]! : r.unique(`${n.output![0]!}.part${j}_${i}`)));
    const infos = r.emitCore({ name: r.unique(`${n.name || 'slice'}.${j}`), op: 'Split', inputs: [x.name], outputs: outs, attrs: { axis, split: sizes } });
    x = { name: outs[pick]!, layout: x.layout, info: infos[pick]! };
  });
  r.vals.set(n.output![0]!, x);
}

/** Transpose: folded for a constant; a map's permutation is rewritten in NHWC axes. */
export function transpose(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const outs = n.output ?? [];
  const k = r.konst(ins[0]!);
  const perm = intListOf(a, 'perm');
  if (k) {
    const p = perm ?? [...k.dims.keys()].reverse();
    if (k.dtype === 'int64') skip('transposing an int64 constant is not supported');
    r.konsts.set(outs[0]!, { dims: permuteShape(k.dims, p), dtype: k.dtype, data: transposeData(k.data as ParamData, k.dims, p) });
    return;
  }
  const x = r.val(ins[0]!);
  const p = perm ?? [...x.info.shape.keys()].reverse();
  const q = x.layout === 'nhwc' && x.info.shape.length === 4 ? p.map((i) => nchwAxisToNhwc(i)) : p;
  return r.emit(n, 'Transpose', [x.name], { perm: q }, 'file');
}

/** Split along an axis (NHWC axis for a map), sizes from the input (opset 13) or the attribute. */
export function split(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.val(ins[0]!);
  const rank = x.info.shape.length;
  let axis = numAttrOf(a, 'axis', 0);
  if (axis < 0) axis += rank;
  const sizes = ins[1] ? r.knownInts(ins[1], 'split') : intListOf(a, 'split');
  const attrs: Record<string, AttrValue> = { axis: x.layout === 'nhwc' && rank === 4 ? nchwAxisToNhwc(axis) : axis };
  if (sizes) attrs['split'] = sizes;
  return r.emit(n, 'Split', [x.name], attrs, x.layout);
}

/** Shape, Gather, Unsqueeze, Squeeze and Cast: folded over constants (shape arithmetic); on run-time data, a float Cast, or a Reshape. */
export function shapeOp(r: ReadContext, n: onnx.INodeProto, op: string, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const out = n.output![0]!;
  const list = (k: string): number[] | undefined => (Array.isArray(a[k]) ? (a[k] as number[]) : undefined);
  if (op === 'Shape') {
    const x = r.val(ins[0]!);
    let dims = fileDims(x);
    const rank = dims.length;
    const norm = (v: number): number => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
    dims = dims.slice(norm(typeof a['start'] === 'number' ? a['start'] : 0), norm(typeof a['end'] === 'number' ? a['end'] : rank));
    r.konsts.set(out, { dims: [dims.length], dtype: 'int64', data: dims });
    return;
  }
  const k = r.konst(ins[0]!);
  if (!k) {
    if (op === 'Cast' && a['to'] === DT.FLOAT) {
      const x = r.val(ins[0]!);
      if (x.info.dtype !== 'float32') skip('casting run-time integer tensors is not supported');
      r.vals.set(out, x);
      return;
    }
    if (op === 'Unsqueeze' || op === 'Squeeze') return squeezeData(r, n, op, list('axes'));
    skip(`${op} of a run-time tensor is not supported`);
  }
  const data = Array.from(k.data as ArrayLike<number | null>);
  switch (op) {
    case 'Gather': {
      const idx = r.knownInts(ins[1]!, 'Gather indices');
      const axis = typeof a['axis'] === 'number' ? a['axis'] : 0;
      if (k.dims.length > 1 || axis !== 0) skip('only 1-D constant Gather is folded');
      const picked = idx.map((i) => {
        const j = i < 0 ? i + data.length : i;
        if (j < 0 || j >= data.length) skip('Gather index out of range');
        return data[j]!;
      });
      const kind = k.dtype === 'int64' ? 'int64' : 'float32';
      const dims = r.konst(ins[1]!)!.dims.length === 0 ? [] : [picked.length];
      r.konsts.set(out, { dims, dtype: kind, data: kind === 'int64' ? picked : (Float32Array.from(picked as number[]) as never) });
      return;
    }
    case 'Unsqueeze':
    case 'Squeeze': {
      const axes = list('axes') ?? (ins[1] ? r.knownInts(ins[1], 'axes') : []);
      r.konsts.set(out, { ...k, dims: squeezeDims(k.dims, op, axes) });
      return;
    }
    case 'Cast': {
      const to = a['to'];
      if (to === DT.INT64 || to === DT.INT32) r.konsts.set(out, { dims: k.dims, dtype: 'int64', data: data.map((v) => (v === null ? null : Math.trunc(v))) });
      else if (to === DT.FLOAT) {
        if (data.some((v) => v === null)) skip('casting a run-time size to float');
        r.konsts.set(out, { dims: k.dims, dtype: 'float32', data: Float32Array.from(data as number[]) });
      } else skip(`Cast to type ${String(to)} is not supported`);
      return;
    }
    default:
      skip('no core equivalent');
  }
}

/** Unsqueeze or Squeeze of run-time data: a Reshape in file order that keeps the batch axis first. */
function squeezeData(r: ReadContext, n: onnx.INodeProto, op: string, axesAttr: number[] | undefined): void {
  const ins = n.input ?? [];
  const x = r.asFile(r.val(ins[0]!));
  const axes = axesAttr ?? (ins[1] ? r.knownInts(ins[1], 'axes') : []);
  const dims = squeezeDims(x.info.shape, op, axes);
  const batchAt = x.info.shape[0] === null ? dims.indexOf(null) : -1;
  if (dims.some((d, i) => d === null && i !== batchAt) || (batchAt > 0)) skip('the batch axis would move');
  const shape = dims.map((d) => (d === null ? 0 : d));
  return r.emit(n, 'Reshape', [x.name], { shape }, 'file');
}

/**
 * The dims after Unsqueeze (a 1 inserted at each axis of the output) or Squeeze (the given axes
 * dropped, or every 1 when none are given); negative axes count from the end.
 */
function squeezeDims<T extends Dim>(input: readonly T[], op: string, axes: readonly number[]): T[] {
  let dims = [...input];
  if (op === 'Unsqueeze') {
    const rank = dims.length + axes.length;
    for (const ax of axes.map((v) => (v < 0 ? v + rank : v)).sort((p, q) => p - q)) dims.splice(ax, 0, 1 as T);
  } else {
    const rank = dims.length;
    const drop = new Set(axes.length > 0 ? axes.map((v) => (v < 0 ? v + rank : v)) : dims.flatMap((d, i) => (d === 1 ? [i] : [])));
    dims = dims.filter((_, i) => !drop.has(i));
  }
  return dims;
}
