import { TensorpressError } from '@tensorpress/core-tensor';

/** A NumPy .npy array read as float32 (uint8 data keeps its 0..255 values; `fromUint8` says so). */
export interface NpyArray {
  shape: number[];
  data: Float32Array;
  /** The file held uint8 values. */
  fromUint8: boolean;
}

const DTYPES: Record<string, { bytes: number; read: (v: DataView, o: number) => number }> = {
  '<f4': { bytes: 4, read: (v, o) => v.getFloat32(o, true) },
  '<f8': { bytes: 8, read: (v, o) => v.getFloat64(o, true) },
  '|u1': { bytes: 1, read: (v, o) => v.getUint8(o) },
  '<u1': { bytes: 1, read: (v, o) => v.getUint8(o) },
  '|i1': { bytes: 1, read: (v, o) => v.getInt8(o) },
};

/**
 * Reads a version 1–3 .npy file of float32, float64, uint8 or int8 values in C order (the formats
 * `numpy.save` writes for images and features); anything else is a `DATA_INVALID` naming the file.
 */
export function readNpy(bytes: Uint8Array, name: string): NpyArray {
  const bad = (why: string): never => {
    throw new TensorpressError('DATA_INVALID', `${name}: ${why}`, { file: name });
  };
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59];
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) bad('not a .npy file (no \\x93NUMPY magic)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  if (start + headerLen > bytes.length) bad('the header runs past the end of the file');
  const header = new TextDecoder().decode(bytes.subarray(start, start + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) bad(`unreadable header ${JSON.stringify(header.trim())}`);
  if (fortran === 'True') bad('Fortran-order arrays are not supported; save it with numpy.ascontiguousarray');
  const dt = DTYPES[descr!];
  if (!dt) bad(`dtype ${descr} is not supported (float32, float64, uint8, int8); convert it with .astype("float32")`);
  const shape = shapeText!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isSafeInteger(d) || d < 0)) bad(`bad shape (${shapeText})`);
  const n = shape.reduce((p, d) => p * d, 1);
  const off = start + headerLen;
  if (bytes.length - off !== n * dt!.bytes) bad(`holds ${bytes.length - off} data bytes, shape (${shape.join(', ')}) of ${descr} needs ${n * dt!.bytes}`);
  const data = new Float32Array(n);
  if (descr === '<f4' && off % 4 === 0 && (bytes.byteOffset + off) % 4 === 0) data.set(new Float32Array(bytes.buffer, bytes.byteOffset + off, n));
  else for (let i = 0; i < n; i++) data[i] = dt!.read(view, off + i * dt!.bytes);
  return { shape, data, fromUint8: descr!.endsWith('u1') };
}
