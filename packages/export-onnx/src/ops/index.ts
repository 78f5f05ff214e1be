/** The op families ONNX import adds to core's registry, and their explicit registration. */
import { registerOp, type OpSpec } from '@tensorpress/core-tensor';
import { CONV_TRANSPOSE_OP } from './conv-transpose.js';
import { ELEMENTWISE_ONNX_OPS } from './elementwise.js';
import { NORM_ONNX_OPS } from './norm.js';
import { ONNX_NODE } from './opaque.js';
import { REDUCE_ONNX_OPS } from './reduce.js';
import { RESIZE_OP } from './resize.js';
import { SHAPE_ONNX_OPS } from './shape.js';

/** Every op export-onnx defines for imported graphs (none of them is in core). */
export const ONNX_OPS: readonly OpSpec[] = [...ELEMENTWISE_ONNX_OPS, ...REDUCE_ONNX_OPS, ...NORM_ONNX_OPS, RESIZE_OP, CONV_TRANSPOSE_OP, ...SHAPE_ONNX_OPS, ONNX_NODE];

/** Names of {@link ONNX_OPS}. */
export const ONNX_OP_NAMES: ReadonlySet<string> = new Set(ONNX_OPS.map((s) => s.op));

/**
 * Registers the ops of imported graphs (Resize, ConvTranspose, LayerNormalization, Gelu, Erf,
 * Where, Expand, …) with core, so that a graph holding them validates and runs. `fromOnnx` calls
 * it; call it yourself before deserialising (loadGraph) a graph read from ONNX in another process.
 * Idempotent.
 */
export function registerOnnxOps(): void {
  for (const spec of ONNX_OPS) registerOp(spec);
}
