/**
 * Hand-built ONNX files for reader tests: one float graph input, a list of nodes, initializers and
 * one output, encoded with the writer's own protobuf code, and onnxruntime as the oracle (does it
 * load the file, what does it compute).
 */
import * as ort from 'onnxruntime-node';
import { encodeModel, type OAttr, type ONode, type OTensor } from '../../src/internal/ir.js';
import { DT } from '../../src/internal/proto.js';

/** A float32 initializer (values default to 0.1, 0.2, …). */
export function f32(name: string, dims: number[], values?: readonly number[]): OTensor {
  const n = dims.reduce((p, d) => p * d, 1);
  const data = Float32Array.from(values ?? Array.from({ length: n }, (_, i) => ((i % 10) + 1) / 10));
  return { name, dims, dataType: DT.FLOAT, raw: new Uint8Array(data.buffer) };
}

/** An int64 initializer. */
export function i64(name: string, values: readonly number[], dims: number[] = [values.length]): OTensor {
  const data = BigInt64Array.from(values, (v) => BigInt(v));
  return { name, dims, dataType: DT.INT64, raw: new Uint8Array(data.buffer) };
}

/** A uint8 initializer. */
export function u8(name: string, values: readonly number[], dims: number[] = []): OTensor {
  return { name, dims, dataType: DT.UINT8, raw: Uint8Array.from(values) };
}

/** A node (named after its op unless told). */
export function node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, OAttr> = {}, name = opType.toLowerCase()): ONode {
  return { name, opType, inputs, outputs, attrs };
}

/** What {@link onnxModel} builds. */
export interface ModelSpec {
  nodes: ONode[];
  inits?: OTensor[];
  /** Graph input dims (NCHW for maps); a string is a dynamic dim. Default [1, 3, 8, 8]. */
  input?: (number | string)[];
  /** Graph output value. Default "y". */
  output?: string;
  opset?: number;
}

/** Encodes a one-input, one-output ONNX model. */
export function onnxModel(spec: ModelSpec): Uint8Array {
  return encodeModel({
    opset: spec.opset ?? 13,
    producer: 'test',
    inputs: [{ name: 'x', elemType: DT.FLOAT, dims: spec.input ?? [1, 3, 8, 8] }],
    outputs: [{ name: spec.output ?? 'y', elemType: DT.FLOAT, dims: [] }],
    nodes: spec.nodes,
    initializers: new Map((spec.inits ?? []).map((t) => [t.name, t])),
  });
}

/** Whether onnxruntime loads the file: undefined when it does, else its error message. */
export async function ortRefuses(bytes: Uint8Array): Promise<string | undefined> {
  try {
    const s = await ort.InferenceSession.create(bytes);
    await s.release();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/**
 * Whether onnxruntime rejects the file, when loading it or when running it on zeros of `dims`
 * (some checks of onnxruntime's kernels only run with the data): undefined when it runs.
 */
export async function ortRejects(bytes: Uint8Array, dims: number[] = [1, 3, 8, 8]): Promise<string | undefined> {
  const r = await ortRun(bytes, new Float32Array(dims.reduce((p, d) => p * d, 1)), dims);
  return typeof r === 'string' ? r : undefined;
}

/** Runs the file in onnxruntime on `x` (its one input); returns the output, or the error message. */
export async function ortRun(bytes: Uint8Array, x: Float32Array, dims: number[]): Promise<Float32Array | string> {
  let s: ort.InferenceSession | undefined;
  try {
    s = await ort.InferenceSession.create(bytes);
    const out = await s.run({ [s.inputNames[0]!]: new ort.Tensor('float32', x, dims) });
    return out[s.outputNames[0]!]!.data as Float32Array;
  } catch (e) {
    return (e as Error).message;
  } finally {
    await s?.release();
  }
}
