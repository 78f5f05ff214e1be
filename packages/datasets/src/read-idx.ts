import { TensorpressError, nodeBuiltin } from '@tensorpress/core-tensor';

/** Element types of the IDX format this package reads. */
export type IdxDType = 'uint8';

/** A decoded IDX array. */
export interface IdxArray {
  dtype: IdxDType;
  /** Dimensions as stored, outermost first, e.g. `[60000, 28, 28]`. */
  shape: number[];
  /** Row-major elements. A view on the input bytes (or on the inflated bytes for gzip): no copy. */
  data: Uint8Array;
}

/** Options of {@link readIdx}. */
export interface ReadIdxOptions {
  /** Largest IDX payload accepted, checked before anything is allocated (and while inflating gzip). Default 1 GiB. */
  maxBytes?: number;
}

/** Default {@link ReadIdxOptions.maxBytes}: 1 GiB, over 20 times the largest standard file (47 MB). */
export const IDX_MAX_BYTES = 2 ** 30;

const MAX_DIMS = 16;

const DTYPES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};

const hex = (v: number): string => `0x${v.toString(16).padStart(2, '0')}`;

function fail(name: string, message: string, details: Record<string, unknown>): never {
  throw new TensorpressError('DATA_INVALID', `${name}: ${message}`, { file: name, ...details });
}

/** True when `bytes` start with the gzip magic number (IDX files start with 0x00 0x00). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

/** Inflates gzip bytes with an output cap; a broken stream becomes a `DATA_INVALID` naming the file. */
export function gunzipLimited(bytes: Uint8Array, name: string, maxBytes: number): Uint8Array {
  try {
    const zlib = nodeBuiltin('node:zlib', `${name}: inflating gzip`, 'DecompressionStream("gzip") on the bytes first');
    return zlib.gunzipSync(bytes, { maxOutputLength: maxBytes });
  } catch (e) {
    throw gzipError(e, name, maxBytes);
  }
}

/** Maps a zlib failure to a `DATA_INVALID` error. */
export function gzipError(e: unknown, name: string, maxBytes: number): TensorpressError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ERR_BUFFER_TOO_LARGE') {
    return new TensorpressError('DATA_INVALID', `${name}: inflates to more than maxBytes (${maxBytes} bytes)`, {
      file: name,
      maxBytes,
    });
  }
  return new TensorpressError('DATA_INVALID', `${name}: gzip data is corrupt or truncated (${err.message})`, { file: name });
}

/**
 * Parses an IDX file (the MNIST / Fashion-MNIST format): magic `0x00 0x00 <dtype> <ndims>`,
 * `ndims` big-endian uint32 dimensions, then the elements. Gzip input (`.gz` files) is
 * inflated first. Header, dimensions and the exact byte length are checked before any
 * allocation; every failure is a `TensorpressError` with code `DATA_INVALID` that names
 * `name` and the byte offset at fault. Only dtype 0x08 (unsigned byte) is supported.
 *
 * @param bytes the file's bytes; never modified.
 * @param name how errors refer to the data, typically the file path.
 */
export function readIdx(bytes: Uint8Array, name = 'IDX data', options: ReadIdxOptions = {}): IdxArray {
  const maxBytes = options.maxBytes ?? IDX_MAX_BYTES;
  if (!(maxBytes > 0)) {
    throw new TensorpressError('INPUT_INVALID', `readIdx: maxBytes must be positive, got ${String(maxBytes)}`);
  }
  if (!(bytes instanceof Uint8Array)) {
    throw new TensorpressError('INPUT_INVALID', `readIdx: ${name} must be a Uint8Array (or Buffer)`);
  }
  if (isGzip(bytes)) return readIdx(gunzipLimited(bytes, name, maxBytes), name, options);

  const len = bytes.length;
  if (len < 4) {
    fail(name, `truncated: the IDX header needs 4 bytes, the data ends at byte offset ${len}`, { offset: len, expected: 4 });
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    fail(
      name,
      `bad magic number at byte offset 0: expected 0x00 0x00, got ${hex(bytes[0]!)} ${hex(bytes[1]!)} (not an IDX file)`,
      { offset: 0 },
    );
  }
  const code = bytes[2]!;
  if (code !== 0x08) {
    const known = DTYPES[code];
    fail(
      name,
      known
        ? `unsupported dtype ${hex(code)} (${known}) at byte offset 2; only 0x08 (unsigned byte) is supported`
        : `unknown dtype ${hex(code)} at byte offset 2; only 0x08 (unsigned byte) is supported`,
      { offset: 2, dtype: code },
    );
  }
  const ndims = bytes[3]!;
  if (ndims === 0 || ndims > MAX_DIMS) {
    fail(name, `${ndims} dimensions at byte offset 3; expected 1 to ${MAX_DIMS}`, { offset: 3, ndims });
  }
  const headerBytes = 4 + 4 * ndims;
  if (len < headerBytes) {
    fail(name, `truncated: the header of ${ndims} dimensions needs ${headerBytes} bytes, the data ends at byte offset ${len}`, {
      offset: len,
      expected: headerBytes,
    });
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, headerBytes);
  const shape: number[] = [];
  let count = 1;
  for (let d = 0; d < ndims; d++) {
    const dim = view.getUint32(4 + 4 * d, false);
    shape.push(dim);
    count *= dim; // exact: stays far below 2^53 until it passes maxBytes, checked below
    if (count > maxBytes) {
      fail(name, `shape [${shape.join(', ')}${d < ndims - 1 ? ', …' : ''}] holds more than maxBytes (${maxBytes}) elements`, {
        offset: 4 + 4 * d,
        maxBytes,
      });
    }
  }
  const expected = headerBytes + count;
  if (len < expected) {
    fail(
      name,
      `truncated: shape [${shape.join(', ')}] needs ${expected} bytes (${headerBytes} header + ${count} data), ` +
        `the data ends at byte offset ${len}`,
      { offset: len, expected },
    );
  }
  if (len > expected) {
    fail(
      name,
      `${len - expected} unexpected trailing bytes from byte offset ${expected}: shape [${shape.join(', ')}] ` +
        `needs exactly ${expected} bytes`,
      { offset: expected, expected },
    );
  }
  return { dtype: 'uint8', shape, data: bytes.subarray(headerBytes, expected) };
}
