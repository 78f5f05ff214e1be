/**
 * The inputs side of onnxruntime-backed calibration: a model's graph inputs, calibration batches
 * turned into checked onnxruntime feeds, and onnxruntime's refusals turned into one-line errors.
 */
import { TensorpressError } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { OnnxError } from './errors.js';
import { decodeModel } from './internal/decode.js';
import type { Ort } from './internal/ort.js';
import { DT, toNum } from './internal/proto.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from './limits.js';
import type { CalibrationBatch } from './ort-ptq.js';

/** Graph inputs (initializers listed as inputs, as older exporters do, left out). */
export function realInputs(g: onnx.IGraphProto): onnx.IValueInfoProto[] {
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  return (g.input ?? []).filter((v) => !inits.has(v.name ?? ''));
}

export function inputDims(v: onnx.IValueInfoProto): (number | null)[] {
  return (v.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimValue !== undefined && d.dimValue !== null && d.dimParam == null ? toNum(d.dimValue, 'dim') : null)).map((d) => (d === null || d <= 0 ? null : d));
}

/** A graph input as {@link graphInputs} describes it. */
export interface GraphInput {
  name: string;
  /** `float32`, `int64`, … (`ONNX type N` for others). */
  dtype: string;
  /** Dimensions; null where dynamic. */
  dims: (number | null)[];
}

/** The graph inputs of an ONNX model (initializers listed as inputs left out), checked against the read limits. */
export function graphInputs(bytes: Uint8Array, limits: Partial<ReadLimits> = {}): GraphInput[] {
  const m = decodeModel(bytes, { ...DEFAULT_READ_LIMITS, ...limits });
  if (!m.graph) throw new OnnxError('ONNX_INVALID', 'malformed ONNX model: ModelProto.graph is missing', { field: 'ModelProto.graph' });
  return realInputs(m.graph).map((v) => ({ name: v.name ?? '', dtype: elemName(v.type?.tensorType?.elemType ?? 0), dims: inputDims(v) }));
}

/**
 * Float32Array batches cut to a model's fixed batch size (exports without a dynamic batch axis),
 * when the batch holds a whole number of them; everything else passes through.
 */
export async function* fixedBatches(
  batches: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch>,
  fixed: number | null,
  perExample: number,
): AsyncGenerator<CalibrationBatch> {
  for await (const b of batches) {
    const size = fixed !== null && perExample > 0 ? fixed * perExample : 0;
    if (!(b instanceof Float32Array) || size === 0 || b.length === size || b.length % size !== 0) {
      yield b;
      continue;
    }
    for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
  }
}

/** Turns a calibration batch into onnxruntime feeds, checking shape and dtype against the model's inputs. */
export function toFeeds(ort: Ort, batch: CalibrationBatch, inputs: onnx.IValueInfoProto[], index: number): { feeds: Record<string, InstanceType<Ort['Tensor']>>; examples: number } {
  if (batch instanceof Float32Array) {
    const floatInputs = inputs.filter((v) => v.type?.tensorType?.elemType === DT.FLOAT);
    if (inputs.length !== 1 || floatInputs.length !== 1) {
      const list = inputs.map((v) => `"${v.name}" (${elemName(v.type?.tensorType?.elemType ?? 0)})`).join(', ');
      throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: a Float32Array feeds one float input, but the model has ${list}; pass named feeds instead`, { batch: index });
    }
    const info = inputs[0]!;
    const dims = inputDims(info);
    const rest = dims.slice(1);
    if (rest.some((d) => d === null)) {
      throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: input "${info.name}" has dynamic dimensions [${dims.map((d) => d ?? '?').join(', ')}]; pass named feeds with their dims`, { input: info.name });
    }
    const per = (rest as number[]).reduce((p, d) => p * d, 1);
    if (batch.length === 0 || batch.length % per !== 0) {
      throw new TensorpressError(
        'DATA_INVALID',
        `calibration batch ${index}: ${batch.length} values are not whole examples of input "${info.name}" [N, ${rest.join(', ')}] (${per} values each); resize or reshape the data to ${rest.join('×')}`,
        { input: info.name, batch: index },
      );
    }
    const n = batch.length / per;
    if (dims[0] !== null && dims[0] !== n) {
      throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: input "${info.name}" has a fixed batch of ${dims[0]}, the batch holds ${n} examples; give batches of ${dims[0]}`, { input: info.name });
    }
    return { feeds: { [info.name ?? '']: new ort.Tensor('float32', batch, [n, ...(rest as number[])]) }, examples: n };
  }
  const feeds: Record<string, InstanceType<Ort['Tensor']>> = {};
  let examples = 0;
  for (const info of inputs) {
    const name = info.name ?? '';
    const f = batch[name];
    if (!f) throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: no feed for input "${name}" (given: ${Object.keys(batch).join(', ') || 'none'})`, { input: name });
    const dims = inputDims(info);
    const elem = info.type?.tensorType?.elemType ?? DT.FLOAT;
    const ok = f.dims.length === dims.length && dims.every((d, i) => d === null || d === f.dims[i]);
    if (!ok) {
      throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: input "${name}" expects dims [${dims.map((d) => d ?? '?').join(', ')}], the feed has [${f.dims.join(', ')}]`, { input: name });
    }
    const want = elemName(elem);
    const have = f.type ?? (f.data instanceof Float32Array ? 'float32' : f.data instanceof BigInt64Array ? 'int64' : f.data instanceof Int32Array ? 'int32' : 'unknown');
    if (have !== want) {
      throw new TensorpressError('DATA_INVALID', `calibration batch ${index}: input "${name}" is ${want}, the feed is ${have}; convert it to ${want}`, { input: name });
    }
    feeds[name] = new ort.Tensor(want as 'float32', f.data as Float32Array, [...f.dims]);
    if (!examples) examples = f.dims[0] ?? 1;
  }
  return { feeds, examples };
}

export function elemName(t: number): string {
  switch (t) {
    case DT.FLOAT:
      return 'float32';
    case DT.INT64:
      return 'int64';
    case DT.INT32:
      return 'int32';
    case DT.UINT8:
      return 'uint8';
    case DT.INT8:
      return 'int8';
    case DT.BOOL:
      return 'bool';
    default:
      return `ONNX type ${t}`;
  }
}

/**
 * Turns onnxruntime's refusal of a model into a one-line typed error naming the node and op where
 * onnxruntime names them (`details.ortRefused` is true, so callers can try another path).
 */
export function ortRefusal(e: unknown, what: string): OnnxError {
  const msg = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ');
  const impl = /implementation for (\w+)\((\d+)\) node with name '([^']*)'/.exec(msg);
  const inNode = /In Node, \("([^"]*)", (\w+), "([^"]*)"/.exec(msg);
  const node = impl?.[3] ?? inNode?.[1];
  const op = impl?.[1] ?? inNode?.[2];
  const why = /(No Op registered for [^;]*?with domain_version of \d+)/.exec(msg)?.[1] ?? (impl ? `onnxruntime has no kernel for ${impl[1]} at opset ${impl[2]}` : msg.slice(0, 300));
  return new OnnxError(
    'ONNX_UNSUPPORTED',
    `${what}: onnxruntime does not run ${node !== undefined ? `node "${node}" (${op})` : 'the model'}: ${why}; re-export the model with ops onnxruntime implements (onnx.checker.check_model shows what is wrong)`,
    { ...(node !== undefined ? { node } : {}), ...(op !== undefined ? { op } : {}), ortRefused: true },
  );
}
