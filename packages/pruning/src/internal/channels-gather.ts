import type { ParamData } from '@tensorpress/core-tensor';

/** A parameter's storage and shape while a transformation rewrites it. */
export interface ParamSlice {
  readonly data: ParamData;
  readonly shape: readonly number[];
}

function product(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

function sameKind(data: ParamData, n: number): ParamData {
  // The constructor of the source keeps the dtype (int8 weights stay int8).
  return new (data.constructor as new (n: number) => ParamData)(n);
}

/**
 * Keeps the given indices of one axis, in the given order, into a new buffer (the source is never
 * written). Contiguous inner blocks are copied with `set`, so gathering a leading axis costs one
 * copy per kept row. One-off graph surgery, not a per-step path: typed arrays keep every dtype exact.
 */
export function gatherAxis(src: ParamSlice, axis: number, indices: readonly number[]): ParamSlice {
  const { data, shape } = src;
  const outer = product(shape.slice(0, axis));
  const n = shape[axis]!;
  const inner = product(shape.slice(axis + 1));
  const k = indices.length;
  const out = sameKind(data, outer * k * inner);
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < k; j++) {
      const from = (o * n + indices[j]!) * inner;
      const to = (o * k + j) * inner;
      if (inner === 1) out[to] = data[from]!;
      else out.set(data.subarray(from, from + inner), to);
    }
  }
  const outShape = [...shape];
  outShape[axis] = k;
  return { data: out, shape: outShape };
}

/**
 * Drops input channels of a grouped Conv weight [kh, kw, cin/group, cout]: output block `j` (the
 * `cout/group` columns of group `j`) keeps the input rows `local[j]` (indices inside the group).
 * Every group must keep the same number of rows; the caller checks.
 */
export function gatherGroupedInputs(src: ParamSlice, local: readonly (readonly number[])[]): ParamSlice {
  const [kh, kw, cpg, cout] = src.shape as [number, number, number, number];
  const groups = local.length;
  const k = local[0]!.length;
  const opg = cout / groups;
  const out = sameKind(src.data, kh * kw * k * cout);
  for (let s = 0; s < kh * kw; s++) {
    for (let j = 0; j < groups; j++) {
      const rows = local[j]!;
      for (let i = 0; i < k; i++) {
        const from = (s * cpg + rows[i]!) * cout + j * opg;
        const to = (s * k + i) * cout + j * opg;
        out.set(src.data.subarray(from, from + opg), to);
      }
    }
  }
  return { data: out, shape: [kh, kw, k, cout] };
}
