/**
 * Expand (to a static shape whose -1 entries are the run-time batch, read from the optional
 * second input's first axis) and Tile (static repeats). Both broadcast or copy, so their
 * gradients sum back to the input.
 */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, type Dim, type OpSpec } from '@tensorpress/core-tensor';
import { broadcast, fail, fmt, need, req } from './helpers.js';

/** The Expand and Tile ops. */
export const SHAPE_ONNX_OPS: readonly OpSpec[] = [
  {
    op: 'Expand',
    arity: [1, 2],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const shape = intsAttr(node, 'shape', []);
      if (shape.some((d) => d < -1 || !Number.isInteger(d))) fail(node, `shape [${shape.join(', ')}] holds an invalid size`, 'GRAPH_INVALID');
      if (shape.includes(-1) && !ins[1]) fail(node, 'a -1 (run-time batch) in shape needs the batch reference input', 'GRAPH_INVALID');
      const target: Dim[] = shape.map((d) => (d === -1 ? (ins[1]!.shape[0] ?? null) : d));
      return [{ name: '', shape: broadcast(node, x.shape, target), dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const batch = ins[1]?.shape[0] ?? 1;
      const target = intsAttr(node, 'shape', []).map((d) => (d === -1 ? batch : d));
      const dims = broadcast(node, x.shape, target) as number[];
      const lifted = x.rank < dims.length ? tf.reshape(x, [...Array<number>(dims.length - x.rank).fill(1), ...x.shape]) : x;
      return [tf.broadcastTo(lifted, dims)];
    },
  },
  {
    op: 'Tile',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const reps = intsAttr(node, 'repeats', []);
      if (reps.length !== x.shape.length || reps.some((r) => !Number.isInteger(r) || r < 0)) {
        fail(node, `repeats [${reps.join(', ')}] must hold one non-negative integer per axis of ${fmt(x.shape)}`, 'GRAPH_INVALID');
      }
      return [{ name: '', shape: x.shape.map((d, i) => (d === null ? (reps[i] === 1 ? null : fail(node, 'tiling the run-time batch axis is not supported', 'UNSUPPORTED_OP')) : d * reps[i]!)), dtype: x.dtype }];
    },
    forward: (ins, node) => [tf.tile(req(node, ins, 0), intsAttr(node, 'repeats', []))],
  },
];
