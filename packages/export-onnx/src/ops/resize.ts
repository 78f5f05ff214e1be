/**
 * Resize of an NHWC map over H and W: nearest (four rounding modes) or linear, with ONNX's
 * coordinate transformation modes, to a static output size. Each output row and column is a
 * gather of input rows and columns (two, weighted, for linear), so the op is exact and
 * differentiable (tf.gather's gradient is a segment sum).
 */
import * as tf from '@tensorflow/tfjs-core';
import { intsAttr, strAttr, type Node, type OpSpec } from '@tensorpress/core-tensor';
import { fail, floatsAttr, fmt, needFloat, req } from './helpers.js';

/** Coordinate transformation modes the executor runs (tf_crop_and_resize needs a region of interest). */
export const RESIZE_COORDINATE_MODES = new Set(['half_pixel', 'pytorch_half_pixel', 'align_corners', 'asymmetric', 'tf_half_pixel_for_nn', 'half_pixel_symmetric']);
/** Nearest rounding modes. */
export const RESIZE_NEAREST_MODES = new Set(['round_prefer_floor', 'round_prefer_ceil', 'floor', 'ceil']);

/**
 * The input coordinate of output coordinate `x` along one axis (ONNX Resize, opset 19), in float32
 * arithmetic step by step as onnxruntime computes it (a half-way case then rounds the same way).
 */
export function sourceCoordinate(mode: string, x: number, scale: number, inSize: number, outSize: number): number {
  const f = Math.fround;
  const sc = f(scale);
  switch (mode) {
    case 'half_pixel':
      return f(f(f(x + 0.5) / sc) - 0.5);
    case 'pytorch_half_pixel':
      return outSize > 1 ? f(f(f(x + 0.5) / sc) - 0.5) : 0;
    case 'align_corners':
      return outSize === 1 ? 0 : f(f(x * (inSize - 1)) / (outSize - 1));
    case 'asymmetric':
      return f(x / sc);
    case 'tf_half_pixel_for_nn':
      return f(f(x + 0.5) / sc);
    case 'half_pixel_symmetric': {
      const adjustment = f(outSize / f(sc * inSize));
      const center = f(inSize / 2);
      return f(f(center * f(1 - adjustment)) + f(f(f(x + 0.5) / sc) - 0.5));
    }
    default:
      throw new Error(`unknown coordinate_transformation_mode "${mode}"`);
  }
}

function nearestIndex(mode: string, c: number): number {
  switch (mode) {
    case 'floor':
      return Math.floor(c);
    case 'ceil':
      return Math.ceil(c);
    case 'round_prefer_ceil':
      return Math.floor(c + 0.5);
    default:
      // round_prefer_floor: halves go down.
      return c - Math.floor(c) === 0.5 ? Math.floor(c) : Math.round(c);
  }
}

/** Gather indices (and linear weights) of one axis. */
function axisPlan(node: Node, inSize: number, outSize: number, scale: number): { i0: Int32Array; i1: Int32Array; w1: Float32Array } {
  const mode = strAttr(node, 'mode', 'nearest');
  const coord = strAttr(node, 'coordinate_transformation_mode', 'half_pixel');
  const nearest = strAttr(node, 'nearest_mode', 'round_prefer_floor');
  const i0 = new Int32Array(outSize);
  const i1 = new Int32Array(outSize);
  const w1 = new Float32Array(outSize);
  for (let x = 0; x < outSize; x++) {
    const c = sourceCoordinate(coord, x, scale, inSize, outSize);
    if (mode === 'nearest') {
      i0[x] = Math.min(Math.max(nearestIndex(nearest, c), 0), inSize - 1);
      i1[x] = i0[x]!;
      continue;
    }
    const cc = Math.min(Math.max(c, 0), inSize - 1);
    const lo = Math.floor(cc);
    i0[x] = lo;
    i1[x] = Math.min(lo + 1, inSize - 1);
    w1[x] = cc - lo;
  }
  return { i0, i1, w1 };
}

function resizeAxis(x: tf.Tensor, axis: number, plan: { i0: Int32Array; i1: Int32Array; w1: Float32Array }, linear: boolean): tf.Tensor {
  const a = tf.gather(x, tf.tensor1d(plan.i0, 'int32'), axis);
  if (!linear) return a;
  const b = tf.gather(x, tf.tensor1d(plan.i1, 'int32'), axis);
  const shape = [1, 1, 1, 1];
  shape[axis] = plan.w1.length;
  const w1 = tf.tensor(plan.w1, shape);
  return tf.add(a, tf.mul(tf.sub(b, a), w1));
}

/** The Resize op (attributes: `sizes` [h, w], `scales` [h, w], mode, coordinate_transformation_mode, nearest_mode). */
export const RESIZE_OP: OpSpec = {
  op: 'Resize',
  arity: [1, 1],
  weightInputs: [],
  infer: (ins, node) => {
    const x = needFloat(node, ins, 0);
    if (x.shape.length !== 4) fail(node, `input must be an NHWC map, got ${fmt(x.shape)}`);
    const sizes = intsAttr(node, 'sizes', []);
    const scales = floatsAttr(node, 'scales', []);
    if (sizes.length !== 2 || sizes.some((s) => !Number.isInteger(s) || s < 1)) fail(node, 'sizes must be two positive integers', 'GRAPH_INVALID');
    if (scales.length !== 2 || scales.some((s) => !(s > 0 && Number.isFinite(s)))) fail(node, 'scales must be two positive numbers', 'GRAPH_INVALID');
    const mode = strAttr(node, 'mode', 'nearest');
    if (mode !== 'nearest' && mode !== 'linear') fail(node, `mode "${mode}" is not supported (nearest, linear)`, 'UNSUPPORTED_OP');
    const coord = strAttr(node, 'coordinate_transformation_mode', 'half_pixel');
    if (!RESIZE_COORDINATE_MODES.has(coord)) fail(node, `coordinate_transformation_mode "${coord}" is not supported`, 'UNSUPPORTED_OP');
    const nearest = strAttr(node, 'nearest_mode', 'round_prefer_floor');
    if (!RESIZE_NEAREST_MODES.has(nearest)) fail(node, `nearest_mode "${nearest}" is not supported`, 'UNSUPPORTED_OP');
    return [{ name: '', shape: [x.shape[0]!, sizes[0]!, sizes[1]!, x.shape[3]!], dtype: 'float32' }];
  },
  forward: (ins, node) => {
    const x = req(node, ins, 0);
    const sizes = intsAttr(node, 'sizes', []);
    const scales = floatsAttr(node, 'scales', []);
    const linear = strAttr(node, 'mode', 'nearest') === 'linear';
    let y = x;
    for (const axis of [1, 2]) {
      const inSize = x.shape[axis]!;
      const outSize = sizes[axis - 1]!;
      if (inSize === outSize && scales[axis - 1] === 1) continue;
      y = resizeAxis(y, axis, axisPlan(node, inSize, outSize, scales[axis - 1]!), linear);
    }
    return [y === x ? tf.clone(x) : y];
  },
};
