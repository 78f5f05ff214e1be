import '@tensorflow/tfjs-backend-cpu';
import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset } from '@tensorpress/core-tensor';
import type { Dataset } from '@tensorpress/core-tensor';
import { fromArrays, fromAsyncIterator, fromIterator, loadMnist, trainTestSplit } from '@tensorpress/datasets';
import type { Example } from '@tensorpress/datasets';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function collect(ds: Dataset, batchSize = 1000): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (const b of ds.batches(batchSize)) {
    for (const v of b.x.dataSync()) x.push(v);
    for (const v of b.y.dataSync()) y.push(v);
    tf.dispose([b.x, b.y]);
  }
  return { x, y };
}

/** n examples of shape [2]: x = [i, -i], y = i % classes. */
const examples = (n: number, classes = 3): Example[] =>
  Array.from({ length: n }, (_, i) => ({ x: [i, -i], y: i % classes }));

describe('fromArrays', () => {
  it('wraps a Float32Array without copying and batches it', () => {
    const x = new Float32Array([1, 2, 3, 4, 5, 6]);
    const ds = fromArrays(x, new Int32Array([0, 1, 0]), [2], 2);
    expect([ds.size, ds.numClasses]).toEqual([3, 2]);
    expect(collect(ds)).toEqual({ x: [1, 2, 3, 4, 5, 6], y: [0, 1, 0] });
  });

  it('accepts number[] and other typed arrays, without modifying them', () => {
    const x = [0, 1, 2, 3];
    const y = new Uint16Array([1, 0]);
    const ds = fromArrays(x, y, [1, 2, 1]);
    expect(ds.exampleShape).toEqual([1, 2, 1]);
    expect(ds.numClasses).toBe(2);
    expect(collect(ds)).toEqual({ x: [0, 1, 2, 3], y: [1, 0] });
    expect(x).toEqual([0, 1, 2, 3]);
  });

  it('rejects non-integer labels rather than truncating them', () => {
    expect(errorOf(() => fromArrays([0, 1], new Float32Array([0, 1.5]), [1])).code).toBe('DATA_INVALID');
  });

  it('rejects a bad shape or sizes that do not match', () => {
    expect(errorOf(() => fromArrays([0, 1, 2], [0], [0])).code).toBe('INPUT_INVALID');
    expect(errorOf(() => fromArrays([0, 1, 2], [0], [2])).message).toContain('not a multiple of one example');
    expect(errorOf(() => fromArrays([0, 1, 2, 3], [0], [2])).message).toContain('2 examples but y holds 1 labels');
  });
});

describe('fromIterator', () => {
  it('materialises an iterable into a dataset, growing past its first buffer', () => {
    const ds = fromIterator(examples(2500), [2]);
    expect(ds.size).toBe(2500);
    expect(ds.numClasses).toBe(3);
    const { x, y } = collect(ds);
    expect(x.slice(4998)).toEqual([2499, -2499]);
    expect(y.slice(0, 4)).toEqual([0, 1, 2, 0]);
  });

  it('copies each example, so the source may reuse its buffer', () => {
    function* reuse(): Generator<Example> {
      const buf = new Float32Array(2);
      for (let i = 0; i < 3; i++) {
        buf[0] = i;
        buf[1] = 10 * i;
        yield { x: buf, y: 0 };
      }
    }
    expect(collect(fromIterator(reuse(), [2])).x).toEqual([0, 0, 1, 10, 2, 20]);
  });

  it('stops at limit without reading further (endless sources)', () => {
    let pulled = 0;
    function* endless(): Generator<Example> {
      for (let i = 0; ; i++) {
        pulled++;
        yield { x: [i], y: 0 };
      }
    }
    const ds = fromIterator(endless(), [1], { limit: 5 });
    expect(ds.size).toBe(5);
    expect(pulled).toBe(5);
  });

  it('names the example whose length is wrong', () => {
    const bad = [...examples(4), { x: [1, 2, 3], y: 0 }];
    const e = errorOf(() => fromIterator(bad, [2]));
    expect(e.code).toBe('DATA_INVALID');
    expect(e.message).toBe('example 4: x has 3 values, expected 2 for shape [2]');
    expect(e.details).toMatchObject({ index: 4 });
  });

  it('names the example whose label is invalid', () => {
    expect(errorOf(() => fromIterator([...examples(2), { x: [0, 0], y: 3 }], [2], { numClasses: 3 })).message).toBe(
      'example 2: label 3 is not an integer in [0, 3)',
    );
    expect(errorOf(() => fromIterator([{ x: [0, 0], y: -1 }], [2])).message).toContain('example 0: label -1');
    expect(errorOf(() => fromIterator([null as unknown as Example], [2])).message).toContain('example 0: expected an object');
  });

  it('rejects an empty source and a bad limit', () => {
    expect(errorOf(() => fromIterator([], [2])).message).toContain('no examples');
    expect(errorOf(() => fromIterator(examples(2), [2], { limit: 0 })).code).toBe('INPUT_INVALID');
    expect(errorOf(() => fromIterator(42 as unknown as Iterable<Example>, [2])).code).toBe('INPUT_INVALID');
  });
});

describe('fromAsyncIterator', () => {
  it('materialises an async iterable', async () => {
    async function* gen(): AsyncGenerator<Example> {
      for (const e of examples(7)) yield e;
    }
    const ds = await fromAsyncIterator(gen(), [2], { limit: 6 });
    expect(ds.size).toBe(6);
    expect(collect(ds).y).toEqual([0, 1, 2, 0, 1, 2]);
  });
});

describe('trainTestSplit', () => {
  const labelsOf = (ds: Dataset): number[] => collect(ds).y;

  it('splits by round(testFraction * size), disjoint and covering', () => {
    const ds = fromIterator(examples(101), [2]);
    const { train, test } = trainTestSplit(ds, { testFraction: 0.25, seed: 1 });
    expect([train.size, test.size]).toEqual([76, 25]);
    const ids = [...collect(train).x.filter((_, i) => i % 2 === 0), ...collect(test).x.filter((_, i) => i % 2 === 0)];
    expect(ids.sort((a, b) => a - b)).toEqual(Array.from({ length: 101 }, (_, i) => i));
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const ds = fromIterator(examples(200), [2]);
    const a = collect(trainTestSplit(ds, { testFraction: 0.2, seed: 5 }).test).x;
    const b = collect(trainTestSplit(ds, { testFraction: 0.2, seed: 5 }).test).x;
    const c = collect(trainTestSplit(ds, { testFraction: 0.2, seed: 6 }).test).x;
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
  });

  it('stratifies per class, also for datasets whose labels it has to read back', () => {
    const y = Int32Array.from({ length: 1000 }, (_, i) => (i < 700 ? 0 : i < 900 ? 1 : 2));
    const x = Float32Array.from({ length: 1000 }, (_, i) => i);
    for (const ds of [fromArrays(x, y, [1]), arrayDataset({ x, y, exampleShape: [1] })]) {
      const { train, test } = trainTestSplit(ds, { testFraction: 0.1, seed: 3, stratify: true });
      const count = (ls: number[], c: number): number => ls.filter((l) => l === c).length;
      const t = labelsOf(test);
      expect([count(t, 0), count(t, 1), count(t, 2)]).toEqual([70, 20, 10]);
      expect(train.size).toBe(900);
      // the classes are mixed, not left in blocks
      expect(new Set(t.slice(0, 20)).size).toBeGreaterThan(1);
    }
  });

  it('stratifies a split of a split (MNIST train into train / validation)', async () => {
    const { train } = await loadMnist();
    const { test: val } = trainTestSplit(train, { testFraction: 0.1, stratify: true, seed: 0 });
    const ls = labelsOf(val);
    expect(ls.length).toBe(800);
    for (let c = 0; c < 10; c++) expect(Math.abs(ls.filter((l) => l === c).length - 80)).toBeLessThanOrEqual(12);
  });

  it('rejects a fraction outside (0, 1) or one that empties a side', () => {
    const ds = fromIterator(examples(3), [2]);
    expect(errorOf(() => trainTestSplit(ds, { testFraction: 1 })).code).toBe('INPUT_INVALID');
    expect(errorOf(() => trainTestSplit(ds, { testFraction: 0.1 })).message).toContain('both need at least one');
  });

  it('leaks no tensors, also when it reads labels back', () => {
    const ds = arrayDataset({ x: new Float32Array(50), y: Int32Array.from({ length: 50 }, (_, i) => i % 2), exampleShape: [1] });
    const before = tf.memory().numTensors;
    trainTestSplit(ds, { testFraction: 0.2, stratify: true });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('batches skip (resuming fit mid-epoch)', () => {
  it('every dataset of this package skips leading batches of the same shuffled order', async () => {
    const { train } = await loadMnist();
    const datasets: [string, Dataset][] = [
      ['fromArrays', fromArrays(Float32Array.from({ length: 46 }, (_, i) => i), Int32Array.from({ length: 23 }, (_, i) => i % 3), [2])],
      ['fromIterator', fromIterator(examples(23), [2])],
      ['trainTestSplit', trainTestSplit(fromIterator(examples(40), [2]), { testFraction: 0.25, seed: 2, stratify: true }).train],
      ['loadMnist (a subset of 8,000)', train.subset(Int32Array.from({ length: 23 }, (_, i) => i * 7))],
    ];
    for (const [name, ds] of datasets) {
      const labels = (skip: number): number[][] =>
        [...ds.batches(4, { shuffle: true, seed: 11, skip })].map((b) => {
          const y = Array.from(b.y.dataSync());
          tf.dispose([b.x, b.y]);
          return y;
        });
      const all = labels(0);
      expect(labels(3), name).toEqual(all.slice(3));
    }
  });
});
