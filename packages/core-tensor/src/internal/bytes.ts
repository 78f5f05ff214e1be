/**
 * Little-endian byte views of typed arrays, byte input and CRC-32, shared by the saved-graph format
 * and the CLI's training checkpoint format (both store tensors as aligned little-endian blobs with a checksum).
 */
import { allocParamData, type DType, type ParamData } from '../graph.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/** The little-endian bytes of a typed array (a copy on big-endian hosts, a view otherwise). */
export function leBytes(data: ParamData): Uint8Array {
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const size = data.BYTES_PER_ELEMENT;
  if (LITTLE_ENDIAN || size === 1) return view;
  const out = new Uint8Array(view.length);
  for (let i = 0; i < view.length; i += size) for (let j = 0; j < size; j++) out[i + j] = view[i + size - 1 - j]!;
  return out;
}

/** Copies little-endian bytes into a new typed array of `dtype` (bit-exact: no float conversion). */
export function fromLeBytes(bytes: Uint8Array, dtype: DType, n: number): ParamData {
  const data = allocParamData(dtype, n);
  const dst = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  dst.set(bytes);
  const size = data.BYTES_PER_ELEMENT;
  if (!LITTLE_ENDIAN && size > 1) {
    for (let i = 0; i < dst.length; i += size) dst.subarray(i, i + size).reverse();
  }
  return data;
}

/** A Uint8Array or an ArrayBuffer as a Uint8Array (no copy); undefined for anything else. */
export function asBytes(x: Uint8Array | ArrayBuffer): Uint8Array | undefined {
  return x instanceof Uint8Array ? x : x instanceof ArrayBuffer ? new Uint8Array(x) : undefined;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (IEEE): catches torn, truncated or mismatched files. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const t = crcTable;
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = t[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
