/** Shape ops: Flatten, Reshape, Transpose, Concat, Split and Pad. */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, numAttr, strAttr } from '../attrs.js';
import type { Dim, Node } from '../graph.js';
import { dimsEqual, fail, fmt, need, normAxis, req } from './helpers.js';
import type { OpSpec } from './registry.js';

function resolveReshape(node: Node, input: readonly Dim[], target: readonly number[]): Dim[] {
  const out: Dim[] = target.map((d, i) => {
    if (d === 0) {
      if (i >= input.length) fail(node, `0 at position ${i} copies a dimension the input does not have`, 'GRAPH_INVALID');
      return input[i]!;
    }
    if (d < -1) fail(node, `shape value ${d} is invalid`, 'GRAPH_INVALID');
    return d;
  });
  const minus = out.filter((d) => d === -1).length;
  if (minus > 1) fail(node, 'shape may hold at most one -1', 'GRAPH_INVALID');
  const staticIn = input.reduce<number>((p, d) => p * (d ?? 1), 1);
  const dynamicIn = input.filter((d) => d === null).length;
  const staticOut = out.reduce<number>((p, d) => (d === -1 || d === null ? p : p * d), 1);
  const dynamicOut = out.filter((d) => d === null).length;
  if (minus === 1) {
    const i = out.indexOf(-1);
    // A dynamic batch either stays in a copied 0 (then -1 is static) or flows into the -1, where
    // the run-time size may also absorb static factors (attention's [T, batch·heads, d] → [T·batch, heads·d]):
    // only the run checks that.
    if (dynamicIn === dynamicOut) {
      if (staticIn % staticOut !== 0) fail(node, `cannot reshape ${fmt(input)} to [${target.join(', ')}]`);
      out[i] = staticIn / staticOut;
    } else {
      out[i] = null;
    }
  } else if (dynamicIn === dynamicOut && staticIn !== staticOut) {
    fail(node, `cannot reshape ${fmt(input)} (${staticIn} values per batch) to [${target.join(', ')}]`);
  }
  return out;
}

/** The shape ops, in registration order. */
export const SHAPE_OPS: readonly OpSpec[] = [
  {
    op: 'Flatten',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const axis = numAttr(node, 'axis', 1);
      const a = axis < 0 ? axis + x.shape.length : axis;
      if (a < 0 || a > x.shape.length) fail(node, `axis ${axis} out of range`, 'GRAPH_INVALID');
      const prod = (ds: readonly Dim[]): Dim => (ds.some((d) => d === null) ? null : ds.reduce<number>((p, d) => p * d!, 1));
      return [{ name: '', shape: [prod(x.shape.slice(0, a)), prod(x.shape.slice(a))], dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const axis = numAttr(node, 'axis', 1);
      const a = axis < 0 ? axis + x.rank : axis;
      const outer = x.shape.slice(0, a).reduce((p, d) => p * d, 1);
      return [tf.reshape(x, [outer, -1])];
    },
  },
  {
    op: 'Reshape',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const shape = intsAttr(node, 'shape', []);
      if (shape.length === 0) fail(node, 'attribute shape is required', 'GRAPH_INVALID');
      return [{ name: '', shape: resolveReshape(node, x.shape, shape), dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const shape = intsAttr(node, 'shape', []).map((d, i) => (d === 0 ? x.shape[i]! : d));
      return [tf.reshape(x, shape)];
    },
  },
  {
    op: 'Transpose',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const perm = intsAttr(node, 'perm', [...Array(x.shape.length).keys()].reverse());
      if (perm.length !== x.shape.length || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
        fail(node, `perm [${perm.join(', ')}] is not a permutation of rank ${x.shape.length}`, 'GRAPH_INVALID');
      }
      return [{ name: '', shape: perm.map((p) => x.shape[p]!), dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      return [tf.transpose(x, intsAttr(node, 'perm', [...Array(x.rank).keys()].reverse()))];
    },
  },
  {
    op: 'Concat',
    arity: [1, 64],
    weightInputs: [],
    infer: (ins, node) => {
      const xs = ins.map((_, i) => need(node, ins, i));
      const rank = xs[0]!.shape.length;
      const axis = normAxis(node, numAttr(node, 'axis', -1), rank);
      let total: Dim = 0;
      for (const x of xs) {
        if (x.shape.length !== rank) fail(node, `inputs have different ranks: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
        x.shape.forEach((d, i) => {
          if (i !== axis && !dimsEqual(d, xs[0]!.shape[i]!)) {
            fail(node, `inputs differ outside axis ${axis}: ${xs.map((t) => fmt(t.shape)).join(', ')}`);
          }
        });
        const d = x.shape[axis]!;
        total = total === null || d === null ? null : total + d;
      }
      const shape = [...xs[0]!.shape];
      shape[axis] = total;
      return [{ name: '', shape, dtype: xs[0]!.dtype }];
    },
    forward: (ins, node) => {
      const xs = ins.map((_, i) => req(node, ins, i));
      return [tf.concat(xs, normAxis(node, numAttr(node, 'axis', -1), xs[0]!.rank))];
    },
  },
  {
    op: 'Split',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', 0), x.shape.length);
      const split = intsAttr(node, 'split', []);
      const d = x.shape[axis]!;
      const n = node.outputs.length;
      const sizes = split.length > 0 ? split : d === null ? fail(node, 'split sizes are needed for a dynamic axis') : Array(n).fill(d / n);
      if (sizes.length !== n) fail(node, `split has ${sizes.length} sizes for ${n} outputs`, 'GRAPH_INVALID');
      if (d !== null && sizes.reduce((a, b) => a + b, 0) !== d) fail(node, `split sizes [${sizes.join(', ')}] do not sum to ${d}`);
      if (!sizes.every((s) => Number.isInteger(s) && s > 0)) fail(node, `axis size ${d} does not split evenly into ${n}`);
      return sizes.map((s) => {
        const shape = [...x.shape];
        shape[axis] = s;
        return { name: '', shape, dtype: x.dtype };
      });
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const axis = normAxis(node, numAttr(node, 'axis', 0), x.rank);
      const split = intsAttr(node, 'split', []);
      return tf.split(x, split.length > 0 ? split : node.outputs.length, axis);
    },
  },
  {
    op: 'Pad',
    arity: [1, 1],
    weightInputs: [],
    infer: (ins, node) => {
      const x = need(node, ins, 0);
      const pads = intsAttr(node, 'pads', []);
      const r = x.shape.length;
      if (pads.length !== 2 * r || pads.some((p) => p < 0)) fail(node, `pads must hold ${2 * r} non-negative values`, 'GRAPH_INVALID');
      const mode = strAttr(node, 'mode', 'constant');
      if (mode !== 'constant' && mode !== 'reflect') fail(node, `mode "${mode}" is not supported (constant, reflect)`, 'UNSUPPORTED_OP');
      if (mode === 'reflect') {
        // A reflection repeats no edge value: at most size - 1 values fit on each side.
        x.shape.forEach((d, i) => {
          const most = Math.max(pads[i]!, pads[i + r]!);
          if (d !== null && most > 0 && most > d - 1) fail(node, `reflect padding of ${most} on axis ${i} is larger than the input's size ${d} - 1`, 'GRAPH_INVALID');
        });
      }
      return [{ name: '', shape: x.shape.map((d, i) => (d === null ? null : d + pads[i]! + pads[i + r]!)), dtype: x.dtype }];
    },
    forward: (ins, node) => {
      const x = req(node, ins, 0);
      const pads = intsAttr(node, 'pads', []);
      const r = x.rank;
      const p = [...Array(r).keys()].map((i) => [pads[i]!, pads[i + r]!] as [number, number]);
      if (strAttr(node, 'mode', 'constant') === 'reflect') return [tf.mirrorPad(x, p, 'reflect')];
      return [tf.pad(x, p, numAttr(node, 'value', 0))];
    },
  },
];
