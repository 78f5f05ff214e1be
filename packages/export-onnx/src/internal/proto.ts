import type { DType, ParamData } from '@tensorpress/core-tensor';
import onnxProto from 'onnx-proto';
import { OnnxError } from '../errors.js';

/**
 * The generated protobufjs static module of onnx.proto. onnx-proto ships CommonJS whose exports
 * Node cannot name statically, hence the default import.
 */
export const proto: typeof onnxProto.onnx = onnxProto.onnx;

/** ONNX TensorProto.DataType values used here (INT4/UINT4 postdate onnx-proto's copy of the schema). */
export const DT = {
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  INT32: 6,
  INT64: 7,
  BOOL: 9,
  DOUBLE: 11,
  UINT4: 21,
  INT4: 22,
} as const;

/** AttributeProto.AttributeType values. */
export const AT = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, GRAPH: 5, FLOATS: 6, INTS: 7, STRINGS: 8 } as const;

/** The dtype code of a core dtype. */
export function onnxDType(dtype: DType): number {
  switch (dtype) {
    case 'float32':
      return DT.FLOAT;
    case 'int32':
      return DT.INT32;
    case 'int8':
      return DT.INT8;
    case 'uint8':
      return DT.UINT8;
  }
}

/** A protobuf int64 (number or Long) as a JS number; throws beyond 2^53. */
export function toNum(v: unknown, field: string): number {
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'low' in v && 'high' in v) {
    const l = v as { low: number; high: number; unsigned?: boolean; toNumber(): number };
    const n = l.toNumber();
    if (!Number.isSafeInteger(n)) {
      throw new OnnxError('ONNX_INVALID', `${field}: integer ${String(v)} is out of the safe range`, { field });
    }
    return n;
  }
  throw new OnnxError('ONNX_INVALID', `${field}: expected an integer`, { field });
}

/** Little-endian bytes of a typed array (copied, so the result owns its buffer). */
export function rawBytes(data: ParamData | BigInt64Array): Uint8Array {
  return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

/** Packs int4 codes (two per byte, the first element in the low nibble), as ONNX stores INT4. */
export function packInt4(codes: ArrayLike<number>): Uint8Array {
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) {
    const nib = codes[i]! & 0x0f;
    out[i >> 1]! |= i % 2 === 0 ? nib : nib << 4;
  }
  return out;
}

/** Unpacks `n` int4 (signed) or uint4 codes. */
export function unpackInt4(bytes: Uint8Array, n: number, signed: boolean): Int8Array | Uint8Array {
  const out = signed ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const b = bytes[i >> 1]!;
    const nib = i % 2 === 0 ? b & 0x0f : b >> 4;
    out[i] = signed && nib >= 8 ? nib - 16 : nib;
  }
  return out;
}
