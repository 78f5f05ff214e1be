import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

/** Builds an IDX ubyte file: magic 0x00 0x00 0x08 ndims, big-endian dims, then the bytes. */
export function idxBytes(shape: number[], data: ArrayLike<number>): Uint8Array {
  const header = 4 + 4 * shape.length;
  const out = new Uint8Array(header + data.length);
  out[2] = 0x08;
  out[3] = shape.length;
  const view = new DataView(out.buffer);
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, header);
  return out;
}

/** `count` deterministic 28×28 images: pixel p of image i is (i * 31 + p) % 256. */
export function fakeImages(count: number): Uint8Array {
  const px = new Uint8Array(count * 784);
  for (let i = 0; i < px.length; i++) px[i] = (Math.floor(i / 784) * 31 + (i % 784)) % 256;
  return px;
}

/** A temp folder with the four Fashion-MNIST files: `train` and `test` images, labels i % 10. */
export function fakeFashionDir(train: number, test: number, gzip: boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'tp-fashion-'));
  const write = (name: string, bytes: Uint8Array): void => {
    writeFileSync(join(dir, gzip ? `${name}.gz` : name), gzip ? gzipSync(bytes) : bytes);
  };
  const labels = (n: number): number[] => Array.from({ length: n }, (_, i) => i % 10);
  write('train-images-idx3-ubyte', idxBytes([train, 28, 28], fakeImages(train)));
  write('train-labels-idx1-ubyte', idxBytes([train], labels(train)));
  write('t10k-images-idx3-ubyte', idxBytes([test, 28, 28], fakeImages(test)));
  write('t10k-labels-idx1-ubyte', idxBytes([test], labels(test)));
  return dir;
}
