import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from '@tensorpress/core-tensor';
import { loadMnist, MNIST_SPLIT } from '@tensorpress/datasets';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Labels and a pixel fingerprint of every batch, disposing the tensors. */
function readAll(ds: Dataset, batchSize: number, options?: { shuffle?: boolean; seed?: number }) {
  const labels: number[] = [];
  const sums: number[] = [];
  const hashes: string[] = [];
  let min = Infinity;
  let max = -Infinity;
  for (const { x, y } of ds.batches(batchSize, options)) {
    expect(x.dtype).toBe('float32');
    expect(y.dtype).toBe('int32');
    const px = x.dataSync();
    const per = px.length / y.shape[0];
    for (let i = 0; i < y.shape[0]; i++) {
      let s = 0;
      for (let k = 0; k < per; k++) {
        const v = px[i * per + k]!;
        s += v;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      sums.push(s);
      hashes.push(createHash('sha1').update(new Uint8Array(px.buffer, px.byteOffset + i * per * 4, per * 4)).digest('hex'));
    }
    labels.push(...y.dataSync());
    tf.dispose([x, y]);
  }
  return { labels, sums, hashes, min, max };
}

const perClass = (labels: number[]): number[] => {
  const out = new Array<number>(10).fill(0);
  for (const l of labels) out[l]!++;
  return out;
};

describe('loadMnist', () => {
  it('splits 8000 / 2000 with the documented per-class counts (80 / 20)', async () => {
    const { train, test } = await loadMnist();
    expect(train.size).toBe(8000);
    expect(test.size).toBe(2000);
    expect(train.exampleShape).toEqual([28, 28, 1]);
    expect(train.numClasses).toBe(10);
    const trainCounts = perClass(readAll(train, 1000).labels);
    const testCounts = perClass(readAll(test, 1000).labels);
    expect(trainCounts).toEqual([...MNIST_SPLIT.trainPerClass]);
    expect(testCounts).toEqual([...MNIST_SPLIT.testPerClass]);
    for (let c = 0; c < 10; c++) {
      const n = MNIST_SPLIT.perClass[c]!;
      expect(trainCounts[c]! + testCounts[c]!).toBe(n);
      expect(trainCounts[c]).toBe(Math.round(0.8 * n));
      expect(Math.abs(trainCounts[c]! / n - 0.8)).toBeLessThan(0.5 / n + 1e-12);
    }
    expect(MNIST_SPLIT.trainSize + MNIST_SPLIT.testSize).toBe(10000);
  });

  it('keeps train and test disjoint and covers all 10,000 digits', async () => {
    const { train, test } = await loadMnist();
    const a = readAll(train, 2000).hashes;
    const b = readAll(test, 2000).hashes;
    // the 10,000 digits of the package are pairwise distinct, so distinct hashes = distinct examples
    expect(new Set([...a, ...b]).size).toBe(10000);
  });

  it('has float32 pixels in [0, 1] and uses the whole range', async () => {
    const { test } = await loadMnist();
    const { min, max, sums } = readAll(test, 500);
    expect(min).toBe(0);
    expect(max).toBe(1);
    expect(sums.every((s) => s > 10)).toBe(true);
  });

  it('mixes classes in the stored order (seeded shuffle)', async () => {
    const { train } = await loadMnist();
    const first = readAll(train.subset(Int32Array.from({ length: 100 }, (_, i) => i)), 100).labels;
    expect(new Set(first).size).toBe(10);
  });

  it('is deterministic for a seed and differs across seeds', async () => {
    const a = readAll((await loadMnist({ seed: 7 })).train, 256, { shuffle: true, seed: 3 });
    const b = readAll((await loadMnist({ seed: 7 })).train, 256, { shuffle: true, seed: 3 });
    expect(a.labels).toEqual(b.labels);
    expect(a.sums).toEqual(b.sums);

    const c = readAll((await loadMnist({ seed: 7 })).train, 256, { shuffle: true, seed: 4 });
    expect(c.labels).not.toEqual(a.labels);
    const d = readAll((await loadMnist({ seed: 8 })).train, 256);
    const e = readAll((await loadMnist({ seed: 7 })).train, 256);
    expect(d.labels).not.toEqual(e.labels);
    // a different order of the same examples
    expect([...d.sums].sort((p, q) => p - q)).toEqual([...e.sums].sort((p, q) => p - q));
  });

  it('uses seed 0 by default', async () => {
    const a = readAll((await loadMnist()).test, 2000).labels;
    const b = readAll((await loadMnist({ seed: MNIST_SPLIT.defaultSeed })).test, 2000).labels;
    expect(a).toEqual(b);
  });

  it('flattens to [784] examples on request', async () => {
    const { train } = await loadMnist({ flatten: true });
    expect(train.exampleShape).toEqual([784]);
    const [batch] = train.batches(8);
    expect(batch!.x.shape).toEqual([8, 784]);
    tf.dispose([batch!.x, batch!.y]);
  });

  it('rejects a non-integer seed', async () => {
    await expect(loadMnist({ seed: 0.5 })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('leaks no tensors when batches are disposed', async () => {
    const { train } = await loadMnist();
    const before = tf.memory().numTensors;
    for (const { x, y } of train.batches(512, { shuffle: true, seed: 1 })) {
      tf.tidy(() => {
        tf.sum(x);
      });
      tf.dispose([x, y]);
    }
    expect(tf.memory().numTensors).toBe(before);
  });

  // The browser paths: the same ten files as bytes, or fetched from a URL, give the same split.
  it('loads the same split from the files as bytes (`digits`) and from a URL (`url`)', async () => {
    const dir = join(dirname(createRequire(import.meta.url).resolve('mnist/package.json')), 'src', 'digits');
    const files = await Promise.all(Array.from({ length: 10 }, (_, c) => readFile(join(dir, `${c}.json`))));
    const server = createServer((req, res) => {
      const m = /^\/d\/(\d)\.json$/.exec(req.url ?? '');
      if (m == null) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(files[Number(m[1])]);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const port = (server.address() as { port: number }).port;
      const reference = await loadMnist({ seed: 3 });
      const fromBytes = await loadMnist({ seed: 3, digits: files.map((f) => new Uint8Array(f)) });
      const fromUrl = await loadMnist({ seed: 3, url: `http://127.0.0.1:${port}/d/` });
      const want = readAll(reference.test, 500);
      expect(readAll(fromBytes.test, 500)).toEqual(want);
      expect(readAll(fromUrl.test, 500)).toEqual(want);
      expect(fromBytes.train.size).toBe(MNIST_SPLIT.trainSize);
      await expect(loadMnist({ url: `http://127.0.0.1:${port}/missing/` })).rejects.toMatchObject({ code: 'DATASET_MISSING' });
      await expect(loadMnist({ digits: files.slice(0, 9) })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    } finally {
      server.close();
    }
  });
});
