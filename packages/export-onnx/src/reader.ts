import { TensorpressError, nodeBuiltin, type Graph } from '@tensorpress/core-tensor';
import { OnnxError } from './errors.js';
import { decodeModel } from './internal/decode.js';
import { graphOffsets } from './internal/offsets.js';
import { readGraph } from './internal/read-graph.js';
import { registerOnnxOps } from './ops/index.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from './limits.js';
import type { OnnxWarning } from './warnings.js';

/** Options of {@link fromOnnx} and {@link readOnnx}. */
export interface FromOnnxOptions {
  /** Bounds on the untrusted bytes (merged over {@link DEFAULT_READ_LIMITS}). */
  limits?: Partial<ReadLimits>;
  /**
   * Allow tensors stored as external data, read only from files inside this folder. Default:
   * external data is refused.
   */
  externalDataDir?: string;
  /**
   * Hears each problem that does not stop the read (NaN or ±Inf weights, quantization scales that
   * are not finite and positive), once per tensor. Default: `console.warn` of the message.
   */
  onWarning?: (warning: OnnxWarning) => void;
  /**
   * Sizes of named dynamic dimensions (an input's `dim_param`, e.g. `{ height: 224 }`). The first
   * dimension may stay dynamic (the batch); any other dynamic dimension needs a size here or in
   * {@link FromOnnxOptions.inputShapes}.
   */
  dims?: Readonly<Record<string, number>>;
  /**
   * Nodes of ops the executor has no equivalent for: `'error'` (default) refuses the file with one
   * `ONNX_UNSUPPORTED` error listing every such node (what callers that ask "can tensorpress run
   * this model?" rely on); `'keep'` keeps each verbatim as an `OnnxNode` (and any node of a known
   * op in a form the executor lacks, such as a cubic Resize), so the graph reads,
   * writes back unchanged (toOnnx) and can be quantized through onnxruntime, while running or
   * training it in tensorpress raises an `UNSUPPORTED_OP` error naming the node.
   */
  unsupportedOps?: 'keep' | 'error';
  /** Full shapes (in the file's order, NCHW for images) of graph inputs by name; `null` keeps the batch dynamic. Unnamed dynamic dimensions take their size here. */
  inputShapes?: Readonly<Record<string, readonly (number | null)[]>>;
}

function printWarning(w: OnnxWarning): void {
  console.warn(`tensorpress: warning: ${w.message}`);
}

/**
 * Reads ONNX bytes into a validated core graph (NCHW in the file becomes NHWC inside: conv weights
 * are transposed, channel axes remapped). Untrusted input is safe: sizes, dims and dtypes are
 * checked before allocation, external data is refused unless `externalDataDir` allows it, and any
 * malformed input raises an {@link OnnxError} `ONNX_INVALID` naming the field or the node, op and
 * attribute, with the byte offset (of a protobuf error, or of the node). Every node is checked
 * against its op's schema (inputs, outputs, attribute names, types and ranges) as onnxruntime
 * does, and every inferred tensor against `limits.maxTensorElements`. Ops without a core
 * equivalent raise one `ONNX_UNSUPPORTED` error that lists every such node.
 */
export function fromOnnx(bytes: Uint8Array, options: FromOnnxOptions = {}): Graph {
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...options.limits };
  const model = decodeModel(bytes, limits);
  registerOnnxOps();
  return readGraph(model, {
    limits,
    total: { n: 0 },
    externalDataDir: options.externalDataDir,
    nodeOffsets: graphOffsets(bytes).nodes,
    onWarning: options.onWarning ?? printWarning,
    dims: options.dims,
    inputShapes: options.inputShapes,
    unsupportedOps: options.unsupportedOps,
  });
}

/** Reads an ONNX file (size-checked before it is read) into a core graph; see {@link fromOnnx}. */
export async function readOnnx(file: string, options: FromOnnxOptions = {}): Promise<Graph> {
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...options.limits };
  const { readFile, stat } = nodeBuiltin('node:fs/promises', 'readOnnx', 'fromOnnx on the bytes');
  let size: number;
  try {
    size = (await stat(file)).size;
  } catch (e) {
    throw new TensorpressError('IO_ERROR', `cannot read ${file}: ${(e as Error).message}`, { file });
  }
  if (size > limits.maxBytes) {
    throw new OnnxError('ONNX_INVALID', `${file} is ${size} bytes, above the limit of ${limits.maxBytes} (limits.maxBytes)`, { file, size });
  }
  return fromOnnx(new Uint8Array(await readFile(file)), options);
}
