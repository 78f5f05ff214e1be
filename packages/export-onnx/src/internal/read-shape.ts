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
  r.warnNonFinite(`Constant node "${n.name || out}"`, out, k);
  r.konsts.set(out, k);
}

/** Concat: folded when every input is an int64 constant (a shape), else along the axis in NHWC or file order. */
export function concat(r: ReadContext, n: onnx.INodeProto, axis: number): void {
  const ins = n.input ?? [];
  if (ins.every((v) => r.konsts.get(v)?.dtype === 'int64')) {
    for (const v of ins) if (r.konsts.get(v)!.dims.length !== 1) skip('only 1-D int64 constants are concatenated while reading');
    r.checkAxis(axis, 1);
    const data = ins.flatMap((v) => [...(r.konsts.get(v)!.data as (number | null)[])]);
    r.konsts.set(n.output![0]!, { dims: [data.length], dtype: 'int64', data });
    return;
  }
  const vals = ins.map((v) => r.val(v));
  const rank = vals[0]!.info.shape.length;
  r.checkAxis(axis, rank);
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
  r.checkAxis(axis, s.length, 1);
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
  if (target.some((d) => d !== null && d < -1)) r.fail(`shape [${target.join(', ')}] holds a value below -1`, { input: 1 });
  if (target.filter((d) => d === -1).length > 1) r.fail(`shape [${target.join(', ')}] holds more than one -1`, { input: 1 });
  const k = r.konst(ix);
  if (k) {
    const size = k.data.length;
    const known = target.map((d, i) => {
      if (d !== 0) return d;
      if (i >= k.dims.length) r.fail(`shape [${target.join(', ')}] copies (0) dimension ${i} of a rank-${k.dims.length} input`, { input: 1 });
      return k.dims[i]!;
    });
    if (known.some((d) => d === null)) skip('reshaping a constant to a run-time shape');
    const rest = (known as number[]).filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    const dims = (known as number[]).map((d) => (d === -1 ? size / rest : d));
    if (dims.some((d) => !Number.isInteger(d)) || dims.reduce((p, d) => p * d, 1) !== size) {
      r.fail(`cannot reshape a constant of shape [${k.dims.join(', ')}] (${size} values) to [${target.join(', ')}]`);
    }
    r.konsts.set(out, { dims, dtype: k.dtype, data: k.data });
    return;
  }
  const x = r.val(ix);
  const dims = fileDims(x);
  // A lone run-time value is whatever the element count leaves (-1): it may be the batch or a
  // multiple of it (attention's [T, batch·heads, d]), which copying a dimension (0) would get wrong.
  const lone = target.filter((d) => d === null).length === 1 && !target.includes(-1);
  const shape = target.map((d, i) => {
    if (d !== null) return d;
    if (lone) return -1;
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
export function slice(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  // Before opset 10, starts, ends and axes are attributes.
  const old = r.opset < 10;
  const starts = old ? (intListOf(a, 'starts') ?? r.fail('starts is required', { attribute: 'starts' })) : r.ints(ins[1]!, 'Slice starts');
  const ends = old ? (intListOf(a, 'ends') ?? r.fail('ends is required', { attribute: 'ends' })) : r.ints(ins[2]!, 'Slice ends');
  const k = r.konst(ins[0]!);
  const axesIn = old ? intListOf(a, 'axes') : ins[3] ? r.knownInts(ins[3], 'Slice axes') : undefined;
  const steps = ins[4] ? r.knownInts(ins[4], 'Slice steps') : undefined;
  const m = starts.length;
  if (ends.length !== m || (axesIn && axesIn.length !== m) || (steps && steps.length !== m)) {
    r.fail(`starts, ends${axesIn ? ', axes' : ''}${steps ? ', steps' : ''} must have one length, got ${[starts, ends, ...(axesIn ? [axesIn] : []), ...(steps ? [steps] : [])].map((v) => v.length).join(', ')}`);
  }
  const rankIn = k ? k.dims.length : r.val(ins[0]!).info.shape.length;
  if (axesIn) {
    axesIn.forEach((ax) => {
      if (ax < -rankIn || ax >= rankIn) r.fail(`axes [${axesIn.join(', ')}] holds ${ax}, out of range for a rank-${rankIn} input ([${-rankIn}, ${rankIn - 1}])`, { input: 3 });
    });
    if (new Set(axesIn.map((ax) => (ax < 0 ? ax + rankIn : ax))).size !== m) r.fail(`axes [${axesIn.join(', ')}] repeats an axis`, { input: 3 });
  } else if (m > rankIn) r.fail(`starts holds ${m} values for a rank-${rankIn} input`, { input: 1 });
  if (steps && steps.some((s) => s === 0)) r.fail('a step is 0', { input: 4 });
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
    if (d === null || d === undefined) skip('slicing the run-time batch axis is not supported');
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
  const rank = k ? k.dims.length : r.val(ins[0]!).info.shape.length;
  if (perm && perm.length !== rank) r.fail(`perm [${perm.join(', ')}] has ${perm.length} values for a rank-${rank} input`, { attribute: 'perm' });
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
  r.checkAxis(axis, rank);
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
    const kx = r.konst(ins[0]!);
    let dims = kx ? [...kx.dims] : fileDims(r.val(ins[0]!));
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
    if (op === 'Gather') return gatherData(r, n, a);
    skip(`${op} of a run-time tensor is not supported`);
  }
  const data = Array.from(k.data as ArrayLike<number | null>);
  switch (op) {
    case 'Gather': {
      const idx = r.knownInts(ins[1]!, 'Gather indices');
      const axis = typeof a['axis'] === 'number' ? a['axis'] : 0;
      r.checkAxis(axis, k.dims.length);
      if (k.dims.length > 1 || axis !== 0) skip('only 1-D constant Gather is folded');
      const picked = idx.map((i) => {
        const j = i < 0 ? i + data.length : i;
        if (j < 0 || j >= data.length) r.fail(`index ${i} is out of range for an axis of size ${data.length}`, { input: 1 });
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
      r.konsts.set(out, { ...k, dims: squeezeDims(r, k.dims, op, axes) });
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
  const dims = squeezeDims(r, x.info.shape, op, axes);
  const batchAt = x.info.shape[0] === null ? dims.indexOf(null) : -1;
  if (dims.some((d, i) => d === null && i !== batchAt) || (batchAt > 0)) skip('the batch axis would move');
  const shape = dims.map((d) => (d === null ? 0 : d));
  return r.emit(n, 'Reshape', [x.name], { shape }, 'file');
}

/**
 * The dims after Unsqueeze (a 1 inserted at each axis of the output) or Squeeze (the given axes
 * dropped, or every 1 when none are given); negative axes count from the end. Axes out of range
 * or repeated, and squeezing an axis that is not 1, are errors of the node (as in onnxruntime).
 */
function squeezeDims<T extends Dim>(r: ReadContext, input: readonly T[], op: string, axes: readonly number[]): T[] {
  let dims = [...input];
  // Unsqueeze's axes index its output; Squeeze's its input.
  const rank = op === 'Unsqueeze' ? dims.length + axes.length : dims.length;
  const where = r.opset >= 13 ? { input: 1 } : { attribute: 'axes' };
  const norm = axes.map((v) => {
    if (v < -rank || v >= rank) r.fail(`axes [${axes.join(', ')}] holds ${v}, out of range [${-rank}, ${rank - 1}]`, where);
    return v < 0 ? v + rank : v;
  });
  if (new Set(norm).size !== norm.length) r.fail(`axes [${axes.join(', ')}] repeats an axis`, where);
  if (op === 'Unsqueeze') {
    if (axes.length === 0) r.fail('needs at least one axis', where);
    for (const ax of [...norm].sort((p, q) => p - q)) dims.splice(ax, 0, 1 as T);
  } else {
    for (const ax of norm) if (dims[ax] !== 1 && dims[ax] !== null) r.fail(`cannot squeeze axis ${ax} of size ${dims[ax]} (only size-1 axes)`, where);
    const drop = new Set(axes.length > 0 ? norm : dims.flatMap((d, i) => (d === 1 ? [i] : [])));
    dims = dims.filter((_, i) => !drop.has(i));
  }
  return dims;
}

/** Gather of run-time data at one constant index (`x[:, i]`): a Split keeping that slice, then a Reshape dropping the axis for a scalar index. */
function gatherData(r: ReadContext, n: onnx.INodeProto, a: NodeAttrs): void {
  const ins = n.input ?? [];
  const x = r.asFile(r.val(ins[0]!));
  const rank = x.info.shape.length;
  let axis = numAttrOf(a, 'axis', 0);
  r.checkAxis(axis, rank);
  if (axis < 0) axis += rank;
  const k = r.konst(ins[1]!);
  if (!k || k.data.length !== 1 || k.dims.length > 1) skip('Gather of run-time data needs one constant index');
  const d = x.info.shape[axis];
  if (d === null || d === undefined) skip('gathering along the run-time batch axis is not supported');
  const raw = (k.data as ArrayLike<number | null>)[0];
  if (raw === null || raw === undefined) skip('the index is a run-time size');
  const i = raw < 0 ? raw + d : raw;
  if (i < 0 || i >= d) r.fail(`index ${raw} is out of range for an axis of size ${d}`, { input: 1 });
  const out = n.output![0]!;
  const sizes = [i, 1, d - i - 1].filter((z) => z > 0);
  const pick = i > 0 ? 1 : 0;
  const scalar = k.dims.length === 0;
  const parts = sizes.map((_, j) => (j === pick && !scalar ? out : r.unique(`${out}.part${j}`)));
  const base = n.name || 'gather';
  if (sizes.length === 1) {
    if (!scalar) return r.emit(n, 'Identity', [x.name], {}, 'file');
  } else {
    r.emitCore({ name: r.unique(`${base}/split`), op: 'Split', inputs: [x.name], outputs: parts, attrs: { axis, split: sizes } });
    if (!scalar) {
      r.vals.set(out, { name: out, layout: 'file', info: r.infos.get(out)! });
      return;
    }
  }
  const src = sizes.length === 1 ? x.name : parts[pick]!;
  const dims = x.info.shape.filter((_, j) => j !== axis);
  if (dims.filter((q) => q === null).length > 1) skip('more than one run-time size');
  return r.emit(n, 'Reshape', [src], { shape: dims.map((q) => q ?? -1) }, 'file');
}
