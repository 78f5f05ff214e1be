import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from '@tensorpress/core-tensor';
import { FASHION_MNIST_DIR_ENV, FASHION_MNIST_FILES, loadFashionMnist } from '@tensorpress/datasets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fakeFashionDir, fakeImages, idxBytes } from './idx-fixtures.js';

const dirs: string[] = [];
const track = (d: string): string => (dirs.push(d), d);

beforeAll(async () => {
  await tf.setBackend('cpu');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('loadFashionMnist', () => {
  it.each([false, true])('loads a folder of the four IDX files (gzip: %s)', async (gzip) => {
    const dir = track(fakeFashionDir(12, 5, gzip));
    const { train, test } = await loadFashionMnist({ dir });
    expect(train.size).toBe(12);
    expect(test.size).toBe(5);
    expect(train.exampleShape).toEqual([28, 28, 1]);
    expect(train.numClasses).toBe(10);

    const [batch] = test.batches(5);
    const { x, y } = batch!;
    expect(x.shape).toEqual([5, 28, 28, 1]);
    expect(Array.from(y.dataSync())).toEqual([0, 1, 2, 3, 4]);
    const px = x.dataSync();
    const raw = fakeImages(5);
    for (const i of [0, 1, 783, 784, 3000, raw.length - 1]) expect(px[i]).toBe(Math.fround(raw[i]! / 255));
    tf.dispose([x, y]);
  });

  it('reads the folder named by the environment variable when no dir is given', async () => {
    const dir = track(fakeFashionDir(3, 2, true));
    const old = process.env[FASHION_MNIST_DIR_ENV];
    process.env[FASHION_MNIST_DIR_ENV] = dir;
    try {
      const { train, test } = await loadFashionMnist();
      expect([train.size, test.size]).toEqual([3, 2]);
    } finally {
      if (old === undefined) delete process.env[FASHION_MNIST_DIR_ENV];
      else process.env[FASHION_MNIST_DIR_ENV] = old;
    }
  });

  it('flattens to [784] on request', async () => {
    const { train } = await loadFashionMnist({ dir: track(fakeFashionDir(2, 1, false)), flatten: true });
    expect(train.exampleShape).toEqual([784]);
  });

  it('throws DATASET_MISSING with the install hint when the folder is absent', async () => {
    const dir = join(tmpdir(), 'tp-no-such-fashion-dir');
    const err = await loadFashionMnist({ dir }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TensorpressError);
    const e = err as TensorpressError;
    expect(e.code).toBe('DATASET_MISSING');
    expect(e.message).toContain(dir);
    expect(e.message).toContain('apt-get install -y dataset-fashion-mnist');
    expect(e.message).toContain(FASHION_MNIST_DIR_ENV);
    for (const name of Object.values(FASHION_MNIST_FILES)) expect(e.message).toContain(name);
  });

  it('names only the missing files when the folder is incomplete', async () => {
    const dir = track(fakeFashionDir(2, 1, false));
    rmSync(join(dir, 't10k-labels-idx1-ubyte'));
    const e = (await loadFashionMnist({ dir }).catch((x: unknown) => x)) as TensorpressError;
    expect(e.code).toBe('DATASET_MISSING');
    expect(e.message).toContain('missing t10k-labels-idx1-ubyte (plain or .gz)');
    expect(e.details).toMatchObject({ missing: ['t10k-labels-idx1-ubyte'] });
  });

  it('rejects images that are not 28×28', async () => {
    const dir = track(mkdtempSync(join(tmpdir(), 'tp-fashion-')));
    writeFileSync(join(dir, 'train-images-idx3-ubyte'), idxBytes([1, 4, 4], new Uint8Array(16)));
    writeFileSync(join(dir, 'train-labels-idx1-ubyte'), idxBytes([1], [0]));
    writeFileSync(join(dir, 't10k-images-idx3-ubyte'), idxBytes([1, 4, 4], new Uint8Array(16)));
    writeFileSync(join(dir, 't10k-labels-idx1-ubyte'), idxBytes([1], [0]));
    await expect(loadFashionMnist({ dir })).rejects.toMatchObject({ code: 'DATA_INVALID' });
  });

  it('leaks no tensors when batches are disposed', async () => {
    const { train } = await loadFashionMnist({ dir: track(fakeFashionDir(10, 2, true)) });
    const before = tf.memory().numTensors;
    for (const { x, y } of train.batches(3, { shuffle: true, seed: 2 })) tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
  });
});
