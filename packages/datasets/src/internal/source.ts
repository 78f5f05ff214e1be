import { TensorpressError } from '@tensorpress/core-tensor';
import { gzipError, isGzip } from '../read-idx.js';
import { readMaybeGzip } from './read-file.js';

/** Where IDX bytes come from: a file path (Node), a URL (fetched), or the bytes themselves. */
export type ByteSource = string | URL | Uint8Array | ArrayBuffer;

/** A name for messages: the path, the URL, or `what (bytes)`. */
export function sourceName(src: ByteSource, what: string): string {
  return typeof src === 'string' ? src : src instanceof URL ? src.href : `${what} (bytes)`;
}

/**
 * The bytes of a source, inflated when gzip, with `maxBytes` enforced on what is read and on what
 * it inflates to. Paths need Node; URLs and bytes work anywhere (inflating with Node's zlib where
 * there is one, else the platform's `DecompressionStream`).
 */
export async function sourceBytes(src: ByteSource, what: string, maxBytes: number): Promise<Uint8Array> {
  if (typeof src === 'string') return await readMaybeGzip(src, maxBytes);
  const name = sourceName(src, what);
  let bytes: Uint8Array;
  if (src instanceof URL) {
    let res: Response;
    try {
      res = await fetch(src);
    } catch (e) {
      throw new TensorpressError('DATASET_MISSING', `cannot fetch ${name} (${(e as Error).message})`, { url: name });
    }
    if (!res.ok) throw new TensorpressError('DATASET_MISSING', `cannot fetch ${name}: HTTP ${res.status}`, { url: name });
    const length = Number(res.headers.get('content-length') ?? NaN);
    if (length > maxBytes) throw new TensorpressError('DATA_INVALID', `${name}: ${length} bytes is above maxBytes (${maxBytes})`, { url: name, maxBytes });
    bytes = new Uint8Array(await res.arrayBuffer());
  } else if (src instanceof Uint8Array) {
    bytes = src;
  } else if (src instanceof ArrayBuffer) {
    bytes = new Uint8Array(src);
  } else {
    throw new TensorpressError('INPUT_INVALID', `${what}: expected a file path, a URL, a Uint8Array or an ArrayBuffer`);
  }
  if (bytes.length > maxBytes) throw new TensorpressError('DATA_INVALID', `${name}: ${bytes.length} bytes is above maxBytes (${maxBytes})`, { file: name, maxBytes });
  return isGzip(bytes) ? await inflate(bytes, name, maxBytes) : bytes;
}

async function inflate(bytes: Uint8Array, name: string, maxBytes: number): Promise<Uint8Array> {
  const zlib = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process?.getBuiltinModule?.('node:zlib') as
    | typeof import('node:zlib')
    | undefined;
  if (zlib != null) {
    try {
      return await new Promise<Uint8Array>((resolve, reject) => zlib.gunzip(bytes, { maxOutputLength: maxBytes }, (e, out) => (e ? reject(e) : resolve(out))));
    } catch (e) {
      throw gzipError(e, name, maxBytes);
    }
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const input = new ReadableStream<Uint8Array>({
      start(c) {
        c.enqueue(bytes);
        c.close();
      },
    });
    const reader = input.pipeThrough(new DecompressionStream('gzip')).getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if (total > maxBytes) {
        await reader.cancel();
        throw new TensorpressError('DATA_INVALID', `${name}: inflates to more than maxBytes (${maxBytes} bytes)`, { file: name, maxBytes });
      }
      chunks.push(value);
    }
  } catch (e) {
    if (e instanceof TensorpressError) throw e;
    throw new TensorpressError('DATA_INVALID', `${name}: not valid gzip (${(e as Error).message})`, { file: name });
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
