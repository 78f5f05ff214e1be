/**
 * Checks shared by the op families: typed errors that name the node, required inputs, shape
 * formatting and broadcasting. Exported as {@link opChecks} for ops registered above core.
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

/** The numpy-style broadcast of shapes; fails when they do not broadcast. */
export function broadcast(node: Node, ...shapes: (readonly Dim[])[]): Dim[] {
  const n = Math.max(...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const x = i < n - s.length ? 1 : s[i - (n - s.length)]!;
      if (x === 1) continue;
      if (d !== 1 && !dimsEqual(d, x)) fail(node, `shapes ${shapes.map(fmt).join(' and ')} do not broadcast`);
      d = d === 1 ? x : (d ?? x);
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

/**
 * The checks core's own ops use, for an `OpSpec` registered from above core (`registerOp`):
 * its errors then name the node and op the way core's do.
 */
export const opChecks = { fail, need, needFloat, req, fmt, broadcast, normAxis } as const;
