/** Checks shared by export-onnx's op families (core's own helpers are internal to core-tensor). */
import type * as tf from '@tensorflow/tfjs-core';
import { GraphError, type Dim, type Node, type TensorInfo } from '@tensorpress/core-tensor';

/** Throws the GraphError of a node: its name and op first, then `message`. */
export function fail(node: Node, message: string, code: 'SHAPE_MISMATCH' | 'GRAPH_INVALID' | 'UNSUPPORTED_OP' = 'SHAPE_MISMATCH'): never {
  throw new GraphError(code, `node "${node.name}" (${node.op}): ${message}`, { node: node.name, op: node.op });
}

/** Input `i` of an op's shape inference; fails when it is absent. */
export function need(node: Node, ins: readonly (TensorInfo | undefined)[], i: number): TensorInfo {
  const t = ins[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

/** Input `i` of an op's shape inference that must hold floats. */
export function needFloat(node: Node, ins: readonly (TensorInfo | undefined)[], i: number): TensorInfo {
  const t = need(node, ins, i);
  if (t.dtype !== 'float32') fail(node, `input ${i} must be float32, got ${t.dtype}`, 'GRAPH_INVALID');
  return t;
}

/** Input `i` of an op's forward pass; fails when it is absent. */
export function req(node: Node, ins: readonly (tf.Tensor | undefined)[], i: number): tf.Tensor {
  const t = ins[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

/** A shape as messages print it: `[?, 28, 28, 1]`. */
export function fmt(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]`;
}

/** The numpy-style broadcast of shapes; fails when they do not broadcast. */
export function broadcast(node: Node, ...shapes: (readonly Dim[])[]): Dim[] {
  const n = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = i < n - s.length ? 1 : s[i - (n - s.length)]!;
      if (x === 1) continue;
      if (d === 1) d = x;
      else if (d !== null && x !== null && d !== x) fail(node, `shapes ${shapes.map(fmt).join(' and ')} do not broadcast`);
      else d = d ?? x;
    }
    out.push(d);
  }
  return out;
}

/** A possibly negative axis as an index below `rank`; fails when it is out of range. */
export function normAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(node, `axis ${axis} is out of range for rank ${rank}`, 'GRAPH_INVALID');
  return a;
}

/** Every axis of `axes` normalised, checked and sorted (all axes when empty). */
export function normAxes(node: Node, axes: readonly number[], rank: number): number[] {
  const out = (axes.length === 0 ? [...Array(rank).keys()] : axes.map((a) => normAxis(node, a, rank))).sort((p, q) => p - q);
  if (new Set(out).size !== out.length) fail(node, `axes [${axes.join(', ')}] repeat an axis`, 'GRAPH_INVALID');
  return out;
}

/** A list-of-numbers attribute (floats allowed), with a default. */
export function floatsAttr(node: Node, key: string, fallback: readonly number[]): number[] {
  const v = node.attrs[key];
  if (v === undefined) return [...fallback];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number')) fail(node, `attribute ${key} must be a list of numbers`, 'GRAPH_INVALID');
  return [...(v as number[])];
}
