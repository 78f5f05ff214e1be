import { TensorpressError, nodeBuiltin } from '@tensorpress/core-tensor';
import { gzipError, isGzip } from '../read-idx.js';

/**
 * Reads a file, inflating it when it is gzip, with `maxBytes` enforced on the file and on
 * what it inflates to before the memory is taken. A missing file is `DATASET_MISSING`.
 */
export async function readMaybeGzip(path: string, maxBytes: number): Promise<Uint8Array> {
  const { readFile, stat } = nodeBuiltin('node:fs/promises', `reading ${path}`, 'readIdx / fromArrays on the bytes');
  let size: number;
  try {
    const s = await stat(path);
    if (!s.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
    size = s.size;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' || err.code === 'ENOTDIR') {
      throw new TensorpressError('DATASET_MISSING', `${path}: no such file`, { file: path });
    }
    throw new TensorpressError('IO_ERROR', `${path}: cannot read (${err.message})`, { file: path });
  }
  if (size > maxBytes) {
    throw new TensorpressError('DATA_INVALID', `${path}: ${size} bytes is above maxBytes (${maxBytes})`, { file: path, maxBytes });
  }
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (e) {
    throw new TensorpressError('IO_ERROR', `${path}: cannot read (${(e as Error).message})`, { file: path });
  }
  if (!isGzip(bytes)) return bytes;
  try {
    const zlib = nodeBuiltin('node:zlib', `inflating ${path}`, 'readIdx on the bytes');
    return await new Promise<Uint8Array>((resolve, reject) =>
      zlib.gunzip(bytes, { maxOutputLength: maxBytes }, (e, out) => (e ? reject(e) : resolve(out))),
    );
  } catch (e) {
    throw gzipError(e, path, maxBytes);
  }
}
