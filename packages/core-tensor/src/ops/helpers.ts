/**
 * Checks shared by the op families: typed errors that name the node, required inputs, shape
 * formatting and broadcasting. Internal to core-tensor (not exported from the package).
 */
import type * as tf from '@tensorflow/tfjs-core';
import { GraphError } from '../errors.js';
import type { Dim, Node, TensorInfo } from '../graph.js';

/** Throws the GraphError of a node: its name and op first, then `message`. */
export function fail(node: Node, message: string, code: 'SHAPE_MISMATCH' | 'GRAPH_INVALID' | 'UNSUPPORTED_OP' = 'SHAPE_MISMATCH'): never {
  throw new GraphError(code, `node "${node.name}" (${node.op}): ${message}`, { node: node.name, op: node.op });
}

/** Input `i` of an op's shape inference; fails when it is absent. */
export function need(node: Node, inputs: readonly (TensorInfo | undefined)[], i: number): TensorInfo {
  const t = inputs[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

/**
 * Input `i` of an op's shape inference that must hold floats (a convolution, an activation that
 * computes): onnxruntime refuses such an op on integer tensors, and tfjs would throw when it runs.
 */
export function needFloat(node: Node, inputs: readonly (TensorInfo | undefined)[], i: number): TensorInfo {
  const t = need(node, inputs, i);
  if (t.dtype !== 'float32') fail(node, `input ${i} must be float32, got ${t.dtype}`, 'GRAPH_INVALID');
  return t;
}

/** Input `i` of an op's forward pass; fails when it is absent. */
export function req(node: Node, inputs: readonly (tf.Tensor | undefined)[], i: number): tf.Tensor {
  const t = inputs[i];
  if (!t) fail(node, `input ${i} is required`, 'GRAPH_INVALID');
  return t;
}

/** A shape as error messages print it: `[?, 28, 28, 1]`. */
export function fmt(shape: readonly Dim[]): string {
  return `[${shape.map((d) => (d === null ? '?' : d)).join(', ')}]`;
}

/** Whether two dimensions can be equal (a run-time dimension matches any). */
export function dimsEqual(a: Dim, b: Dim): boolean {
  return a === null || b === null || a === b;
}

/** The numpy-style broadcast of two shapes; fails when they do not broadcast. */
export function broadcast(node: Node, a: readonly Dim[], b: readonly Dim[]): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const x = i < n - a.length ? 1 : a[i - (n - a.length)]!;
    const y = i < n - b.length ? 1 : b[i - (n - b.length)]!;
    if (x === 1) out.push(y);
    else if (y === 1) out.push(x);
    else if (dimsEqual(x, y)) out.push(x ?? y);
    else fail(node, `shapes ${fmt(a)} and ${fmt(b)} do not broadcast`);
  }
  return out;
}

/** A possibly negative axis as an index below `rank`; fails when it is out of range. */
export function normAxis(node: Node, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) fail(node, `axis ${axis} is out of range for rank ${rank}`, 'GRAPH_INVALID');
  return a;
}
