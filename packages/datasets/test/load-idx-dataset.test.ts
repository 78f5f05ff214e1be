import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { loadIdxDataset } from '@tensorpress/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { idxBytes } from './idx-fixtures.js';

let dir = '';
beforeAll(async () => {
  await tf.setBackend('cpu');
  dir = mkdtempSync(join(tmpdir(), 'tp-idx-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const write = (name: string, bytes: Uint8Array): string => {
  const p = join(dir, name);
  writeFileSync(p, bytes);
  return p;
};

describe('loadIdxDataset', () => {
  it('loads any IDX pair, plain or gzipped, scaling bytes to [0, 1]', async () => {
    const images = write('img.gz', gzipSync(idxBytes([3, 2, 2], [0, 51, 102, 255, 1, 2, 3, 4, 5, 6, 7, 8])));
    const labels = write('lab', idxBytes([3], [2, 0, 1]));
    const ds = await loadIdxDataset(images, labels);
    expect(ds.size).toBe(3);
    expect(ds.exampleShape).toEqual([2, 2, 1]);
    expect(ds.numClasses).toBe(3);
    const [b] = ds.batches(3);
    expect(Array.from(b!.x.dataSync()).slice(0, 4)).toEqual([0, 0.2, 0.4, 1].map(Math.fround));
    expect(Array.from(b!.y.dataSync())).toEqual([2, 0, 1]);
    tf.dispose([b!.x, b!.y]);
  });

  it('keeps [N, F] examples flat and honours numClasses', async () => {
    const ds = await loadIdxDataset(write('f', idxBytes([2, 5], new Uint8Array(10))), write('fl', idxBytes([2], [0, 1])), {
      numClasses: 4,
    });
    expect(ds.exampleShape).toEqual([5]);
    expect(ds.numClasses).toBe(4);
  });

  it('rejects mismatched image and label counts, naming both files', async () => {
    const images = write('i3', idxBytes([3, 2, 2], new Uint8Array(12)));
    const labels = write('l2', idxBytes([2], [0, 1]));
    await expect(loadIdxDataset(images, labels)).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: `${images} holds 3 images but ${labels} holds 2 labels`,
    });
  });

  it('rejects a label at or above numClasses', async () => {
    const images = write('i2', idxBytes([2, 1, 1], [0, 0]));
    const labels = write('l9', idxBytes([2], [0, 9]));
    await expect(loadIdxDataset(images, labels, { numClasses: 5 })).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: expect.stringContaining('label 1 is 9, out of range for 5 classes (byte offset 9)'),
    });
  });

  it('names the file and offset of a truncated file', async () => {
    const images = write('trunc', idxBytes([2, 2, 2], new Uint8Array(8)).subarray(0, 20));
    const labels = write('l', idxBytes([2], [0, 1]));
    await expect(loadIdxDataset(images, labels)).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: expect.stringContaining(`${images}: truncated: shape [2, 2, 2] needs 24 bytes`),
      details: expect.objectContaining({ offset: 20 }),
    });
  });

  it('reports a missing file as DATASET_MISSING', async () => {
    await expect(loadIdxDataset(join(dir, 'nope'), join(dir, 'nope2'))).rejects.toMatchObject({ code: 'DATASET_MISSING' });
  });

  it('refuses files above maxBytes before reading them', async () => {
    const images = write('big', idxBytes([10, 10, 10], new Uint8Array(1000)));
    const labels = write('bl', idxBytes([10], new Uint8Array(10)));
    await expect(loadIdxDataset(images, labels, { maxBytes: 500 })).rejects.toMatchObject({
      code: 'DATA_INVALID',
      message: expect.stringContaining('above maxBytes (500)'),
    });
  });

  // The browser forms: bytes and URLs (fetched), plain or gzipped, give what the files give.
  it('takes the pair as bytes or URLs as well as paths', async () => {
    const img = idxBytes([3, 2, 2], [0, 51, 102, 255, 1, 2, 3, 4, 5, 6, 7, 8]);
    const lab = idxBytes([3], [2, 0, 1]);
    const read = (ds: Awaited<ReturnType<typeof loadIdxDataset>>): number[][] => {
      const [b] = ds.batches(3);
      const out = [Array.from(b!.x.dataSync()), Array.from(b!.y.dataSync())];
      tf.dispose([b!.x, b!.y]);
      return out;
    };
    const want = read(await loadIdxDataset(write('i2', img), write('l2', lab)));
    expect(read(await loadIdxDataset(gzipSync(img), lab))).toEqual(want);
    expect(read(await loadIdxDataset(img.slice().buffer, gzipSync(lab).slice().buffer))).toEqual(want);
    const files: Record<string, Uint8Array> = { '/i.gz': gzipSync(img), '/l': lab };
    const server = createServer((req, res) => {
      const body = files[req.url ?? ''];
      if (body == null) res.writeHead(404).end();
      else res.writeHead(200).end(body);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
      expect(read(await loadIdxDataset(new URL(`${base}/i.gz`), new URL(`${base}/l`)))).toEqual(want);
      await expect(loadIdxDataset(new URL(`${base}/nothing`), new URL(`${base}/l`))).rejects.toMatchObject({ code: 'DATASET_MISSING' });
      await expect(loadIdxDataset(img, lab, { maxBytes: 10 })).rejects.toMatchObject({ code: 'DATA_INVALID' });
      await expect(loadIdxDataset(gzipSync(img), lab, { maxBytes: 20 })).rejects.toMatchObject({ code: 'DATA_INVALID' });
    } finally {
      server.close();
    }
  });
});

