import { nodeBuiltin, type AttrValue } from '@tensorpress/core-tensor';
import { OnnxError } from '../errors.js';
import type { ReadLimits } from '../limits.js';
import type { onnx } from 'onnx-proto';
import { AT, DT, proto, toNum, unpackInt4 } from './proto.js';

/** A constant tensor read from the file (initializer or Constant node). int64 travels as numbers. */
export interface Konst {
  dims: number[];
  dtype: 'float32' | 'int8' | 'uint8' | 'int32' | 'int64';
  /** int64 values may be null where they stand for a run-time size (the batch) during shape folding. */
  data: Float32Array | Int8Array | Uint8Array | Int32Array | (number | null)[];
}

/** Throws the typed error of a malformed model. */
export function invalid(field: string, message: string, details: Record<string, unknown> = {}): never {
  throw new OnnxError('ONNX_INVALID', `malformed ONNX model: ${field}: ${message}`, { field, ...details });
}

/** Decodes ModelProto bytes; protobufjs errors become ONNX_INVALID with the byte offset. */
export function decodeModel(bytes: Uint8Array, limits: ReadLimits): onnx.ModelProto {
  if (!(bytes instanceof Uint8Array)) invalid('bytes', 'expected a Uint8Array');
  if (bytes.length > limits.maxBytes) {
    throw new OnnxError('ONNX_INVALID', `ONNX model is ${bytes.length} bytes, above the limit of ${limits.maxBytes} (limits.maxBytes)`, {
      field: 'bytes',
      size: bytes.length,
    });
  }
  if (bytes.length === 0) invalid('ModelProto', 'the file is empty', { offset: 0 });
  try {
    return proto.ModelProto.decode(bytes);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    const m = /offset (\d+)/.exec(msg) ?? /index out of range: (\d+)/.exec(msg);
    const offset = m ? Number(m[1]) : undefined;
    const why = e instanceof RangeError && /call stack/.test(msg) ? 'nesting is too deep' : msg;
    throw new OnnxError(
      'ONNX_INVALID',
      `malformed ONNX model: ModelProto: ${why}${offset !== undefined ? ` (at byte offset ${offset})` : ''}`,
      { field: 'ModelProto', ...(offset !== undefined ? { offset } : {}) },
    );
  }
}

const ELEM_BYTES: Record<number, number> = { [DT.FLOAT]: 4, [DT.UINT8]: 1, [DT.INT8]: 1, [DT.INT32]: 4, [DT.INT64]: 8, [DT.DOUBLE]: 8 };

/** Options of {@link decodeTensor}. */
export interface TensorContext {
  limits: ReadLimits;
  /** Running element total over the model, for limits.maxTotalElements. */
  total: { n: number };
  externalDataDir: string | undefined;
}

function readExternal(t: onnx.ITensorProto, field: string, byteLength: number, ctx: TensorContext): Uint8Array {
  if (!ctx.externalDataDir) {
    throw new OnnxError(
      'ONNX_UNSUPPORTED',
      `${field} keeps its data in an external file; pass externalDataDir to allow reading it from one folder`,
      { field },
    );
  }
  const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
  const location = entries.get('location');
  if (!location) invalid(field, 'external data has no location');
  const { closeSync, fstatSync, openSync, readSync, realpathSync } = nodeBuiltin('node:fs', 'externalDataDir', 'a model without external data');
  const path = nodeBuiltin('node:path', 'externalDataDir', 'a model without external data');
  const dir = realpathSync(ctx.externalDataDir);
  const file = path.resolve(dir, location);
  const rel = path.relative(dir, file);
  if (path.isAbsolute(location) || rel.startsWith('..') || path.isAbsolute(rel)) {
    invalid(field, `external data location "${location}" is outside ${ctx.externalDataDir}`);
  }
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    invalid(field, `external data file "${location}" does not exist`);
  }
  if (path.relative(dir, real).startsWith('..')) invalid(field, `external data location "${location}" leaves ${ctx.externalDataDir}`);
  const offset = Number(entries.get('offset') ?? '0');
  const length = entries.has('length') ? Number(entries.get('length')) : byteLength;
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length !== byteLength) {
    invalid(field, `external data offset ${entries.get('offset')} / length ${entries.get('length')} do not describe ${byteLength} bytes`);
  }
  const fd = openSync(real, 'r');
  try {
    if (offset + length > fstatSync(fd).size) invalid(field, `external data "${location}" is shorter than offset ${offset} + length ${length}`);
    const buf = new Uint8Array(length);
    if (readSync(fd, buf, 0, length, offset) !== length) invalid(field, 'short read of external data');
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** Checks dims against the limits; returns the element count. */
export function checkDims(dims: readonly unknown[], field: string, limits: ReadLimits): number[] {
  if (dims.length > limits.maxRank) invalid(field, `rank ${dims.length} is above limits.maxRank ${limits.maxRank}`);
  const out = dims.map((d, i) => {
    const v = toNum(d, `${field}.dims[${i}]`);
    if (!Number.isInteger(v) || v < 0 || v > limits.maxDim) invalid(`${field}.dims[${i}]`, `dimension ${v} is not in [0, ${limits.maxDim}]`);
    return v;
  });
  return out;
}

/** Reads a TensorProto into a {@link Konst}, checking sizes and dtypes before allocating. */
export function decodeTensor(t: onnx.ITensorProto, field: string, ctx: TensorContext): Konst {
  const dims = checkDims(t.dims ?? [], field, ctx.limits);
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (n > ctx.limits.maxTensorElements) invalid(field, `more than limits.maxTensorElements (${ctx.limits.maxTensorElements}) elements`);
  }
  ctx.total.n += n;
  if (ctx.total.n > ctx.limits.maxTotalElements) invalid(field, `the model holds more than limits.maxTotalElements (${ctx.limits.maxTotalElements}) constant elements`);
  const dt = t.dataType ?? 0;
  const int4 = dt === DT.INT4 || dt === DT.UINT4;
  const eb = ELEM_BYTES[dt];
  if (eb === undefined && !int4) {
    throw new OnnxError('ONNX_UNSUPPORTED', `${field}: tensor data type ${dt} is not supported (float, double, int8, uint8, int32, int64, int4, uint4)`, {
      field,
      dataType: dt,
    });
  }
  const byteLength = int4 ? Math.ceil(n / 2) : n * eb!;
  let raw: Uint8Array | undefined;
  if (t.dataLocation === 1) raw = readExternal(t, field, byteLength, ctx);
  else if (t.rawData && t.rawData.length > 0) {
    if (t.rawData.length !== byteLength) invalid(`${field}.raw_data`, `holds ${t.rawData.length} bytes, but dims [${dims.join(', ')}] need ${byteLength}`);
    raw = t.rawData;
  }
  if (raw) {
    // A fresh, aligned copy: protobufjs hands out Buffer views into the whole input.
    const own = new Uint8Array(raw.length);
    own.set(raw);
    const copy = own.buffer;
    if (int4) return { dims, dtype: dt === DT.INT4 ? 'int8' : 'uint8', data: unpackInt4(new Uint8Array(copy), n, dt === DT.INT4) };
    switch (dt) {
      case DT.FLOAT:
        return { dims, dtype: 'float32', data: new Float32Array(copy) };
      case DT.DOUBLE:
        return { dims, dtype: 'float32', data: Float32Array.from(new Float64Array(copy)) };
      case DT.INT8:
        return { dims, dtype: 'int8', data: new Int8Array(copy) };
      case DT.UINT8:
        return { dims, dtype: 'uint8', data: new Uint8Array(copy) };
      case DT.INT32:
        return { dims, dtype: 'int32', data: new Int32Array(copy) };
      default: {
        const v = new BigInt64Array(copy);
        return { dims, dtype: 'int64', data: Array.from(v, (b) => safeInt(b, field)) };
      }
    }
  }
  const need = (arr: readonly unknown[] | null | undefined, name: string): readonly unknown[] => {
    const a = arr ?? [];
    if (a.length !== (int4 ? Math.ceil(n / 2) : n)) invalid(`${field}.${name}`, `holds ${a.length} values, but dims [${dims.join(', ')}] need ${n}`);
    return a;
  };
  switch (dt) {
    case DT.FLOAT:
      return { dims, dtype: 'float32', data: Float32Array.from(need(t.floatData, 'float_data') as number[]) };
    case DT.DOUBLE:
      return { dims, dtype: 'float32', data: Float32Array.from(need(t.doubleData, 'double_data') as number[]) };
    case DT.INT8:
      return { dims, dtype: 'int8', data: Int8Array.from(need(t.int32Data, 'int32_data') as number[]) };
    case DT.UINT8:
      return { dims, dtype: 'uint8', data: Uint8Array.from(need(t.int32Data, 'int32_data') as number[]) };
    case DT.INT32:
      return { dims, dtype: 'int32', data: Int32Array.from(need(t.int32Data, 'int32_data') as number[]) };
    case DT.INT64:
      return { dims, dtype: 'int64', data: need(t.int64Data, 'int64_data').map((v, i) => toNum(v, `${field}.int64_data[${i}]`)) };
    default: {
      const packed = Uint8Array.from(need(t.int32Data, 'int32_data') as number[]);
      return { dims, dtype: dt === DT.INT4 ? 'int8' : 'uint8', data: unpackInt4(packed, n, dt === DT.INT4) };
    }
  }
}

/**
 * Reads a SparseTensorProto (a sparse initializer) into a dense {@link Konst} named by its values
 * tensor: the values [nnz], the indices as [nnz] linear positions or [nnz, rank] coordinates, in
 * ascending order without repeats (the ONNX rule), each checked before it is written.
 */
export function decodeSparseTensor(t: onnx.ISparseTensorProto, field: string, ctx: TensorContext): { name: string; konst: Konst } {
  const dims = checkDims(t.dims ?? [], `${field}.dims`, ctx.limits);
  let n = 1;
  for (const d of dims) {
    n *= d;
    if (n > ctx.limits.maxTensorElements) invalid(field, `more than limits.maxTensorElements (${ctx.limits.maxTensorElements}) elements`);
  }
  if (!t.values) invalid(`${field}.values`, 'is missing');
  const name = t.values.name ?? '';
  if (!name) invalid(`${field}.values`, 'has no name (the initializer name)');
  const values = decodeTensor(t.values, `${field}.values`, ctx);
  if (values.dims.length !== 1 || values.dtype === 'int64') invalid(`${field}.values`, 'must be a rank-1 tensor of float, int8, uint8 or int32 values');
  const nnz = values.dims[0]!;
  if (!t.indices) invalid(`${field}.indices`, 'is missing');
  const indices = decodeTensor(t.indices, `${field}.indices`, ctx);
  const coo = indices.dims.length === 2 && indices.dims[1] === dims.length;
  if (indices.dims[0] !== nnz || !(indices.dims.length === 1 || coo) || (indices.dtype !== 'int64' && indices.dtype !== 'int32')) {
    invalid(`${field}.indices`, `must be int64 [${nnz}] or [${nnz}, ${dims.length}], got ${indices.dtype} [${indices.dims.join(', ')}]`);
  }
  ctx.total.n += n;
  if (ctx.total.n > ctx.limits.maxTotalElements) invalid(field, `the model holds more than limits.maxTotalElements (${ctx.limits.maxTotalElements}) constant elements`);
  const raw = indices.data as ArrayLike<number | null>;
  const data = new (values.data.constructor as new (n: number) => Float32Array | Int8Array | Uint8Array | Int32Array)(n);
  let last = -1;
  for (let k = 0; k < nnz; k++) {
    let at = 0;
    if (coo) {
      for (let d = 0; d < dims.length; d++) {
        const c = Number(raw[k * dims.length + d]);
        if (!(Number.isInteger(c) && c >= 0 && c < dims[d]!)) invalid(`${field}.indices`, `coordinate ${c} of entry ${k} is outside dimension ${d} (${dims[d]})`);
        at = at * dims[d]! + c;
      }
    } else at = Number(raw[k]);
    if (!(Number.isInteger(at) && at >= 0 && at < n)) invalid(`${field}.indices`, `index ${at} of entry ${k} is outside [0, ${n})`);
    if (at <= last) invalid(`${field}.indices`, `entry ${k} (${at}) does not come after ${last}: indices must ascend without repeats`);
    last = at;
    data[at] = Number((values.data as ArrayLike<number>)[k]);
  }
  return { name, konst: { dims, dtype: values.dtype, data } };
}

function safeInt(b: bigint, field: string): number {
  const v = Number(b);
  if (!Number.isSafeInteger(v)) {
    // INT64_MAX / INT64_MIN are common "to the end" markers in Slice; clamp them.
    if (b > 0n) return Number.MAX_SAFE_INTEGER;
    if (b < 0n) return Number.MIN_SAFE_INTEGER;
    invalid(field, `int64 value ${b} is out of range`);
  }
  return v;
}

/** An attribute's value by its wire type (numbers, strings and their lists); undefined for other types. */
export function attrValue(a: onnx.IAttributeProto, field: string): AttrValue | Konst | undefined {
  switch (a.type) {
    case AT.FLOAT:
      return a.f ?? 0;
    case AT.INT:
      return toNum(a.i ?? 0, field);
    case AT.STRING:
      return new TextDecoder().decode(a.s ?? new Uint8Array());
    case AT.FLOATS:
      return [...(a.floats ?? [])];
    case AT.INTS:
      // Slice's opset-1 starts/ends attributes hold INT64_MAX / INT64_MIN "to the end" markers too.
      return (a.ints ?? []).map((v, i) => (typeof v === 'number' ? v : safeInt(BigInt((v as { toString(): string }).toString()), `${field}[${i}]`)));
    case AT.STRINGS:
      return (a.strings ?? []).map((s) => new TextDecoder().decode(s));
    default:
      return undefined;
  }
}

/**
 * A node's attributes by name: numbers, strings and their lists as core attribute values, tensors
 * decoded (and counted against the limits) as {@link Konst}s; graph-valued attributes are left out.
 */
export function decodeAttrs(n: onnx.INodeProto, ctx: TensorContext): Record<string, AttrValue | Konst> {
  const out: Record<string, AttrValue | Konst> = {};
  (n.attribute ?? []).forEach((a, i) => {
    const field = `node "${n.name}" attribute ${a.name ?? i}`;
    if (a.type === AT.TENSOR && a.t) out[a.name ?? ''] = decodeTensor(a.t, field, ctx);
    else {
      const v = attrValue(a, field);
      if (v !== undefined) out[a.name ?? ''] = v;
    }
  });
  return out;
}
