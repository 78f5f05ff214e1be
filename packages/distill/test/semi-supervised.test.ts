import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, runGraph, useBackend, type Dataset } from '@tensorpress/core-tensor';
import { concatDatasets, pseudoLabel, semiSupervisedData, withLabels } from '@tensorpress/distill';
import { expectNoLeak, rejectionOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { firstBatch, randomData, teacher } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** Every batch of `d` as [first pixel of each row, label] pairs. */
function rows(d: Dataset, batchSize: number, shuffle = false): [number, number][] {
  const out: [number, number][] = [];
  for (const b of d.batches(batchSize, { shuffle, seed: 4 })) {
    const per = b.x.size / b.x.shape[0]!;
    const x = b.x.dataSync();
    const y = b.y.dataSync();
    for (let i = 0; i < y.length; i++) out.push([x[i * per]!, y[i]!]);
    tf.dispose([b.x, b.y]);
  }
  return out;
}

/** Examples whose first pixel is their index, labels `label(i)`. */
function indexed(n: number, label: (i: number) => number, offset = 0): Dataset {
  const x = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) x[i * 2] = offset + i;
  return arrayDataset({ x, y: Int32Array.from({ length: n }, (_, i) => label(i)), exampleShape: [2], numClasses: 4 });
}

describe('withLabels', () => {
  it('replaces the labels, keeps the examples, shuffles and subsets like a core dataset', () => {
    const d = withLabels(indexed(5, () => 0), Int32Array.from([3, 2, 1, 0, 3]));
    expect(rows(d, 2)).toEqual([[0, 3], [1, 2], [2, 1], [3, 0], [4, 3]]);
    expect(rows(d, 2, true).sort((a, b) => a[0] - b[0])).toEqual(rows(d, 5));
    expect(rows(d.subset([4, 1]), 4)).toEqual([[4, 3], [1, 2]]);
  });
});

describe('concatDatasets', () => {
  it('streams every example of every part once, mixing the parts when shuffled, without leaks', async () => {
    const d = concatDatasets([indexed(3, () => 1), indexed(4, () => 2, 100)]);
    expect(d.size).toBe(7);
    expect(rows(d, 3)).toEqual([[0, 1], [1, 1], [2, 1], [100, 2], [101, 2], [102, 2], [103, 2]]);
    await expectNoLeak(() => {
      const shuffled = rows(d, 3, true);
      expect(shuffled.map((r) => r[0]).sort((a, b) => a - b)).toEqual([0, 1, 2, 100, 101, 102, 103]);
    });
    // Skip and dropRemainder, as fit uses them.
    expect([...d.batches(3, { skip: 1, dropRemainder: true })].map((b) => (tf.dispose([b.x, b.y]), 1)).length).toBe(1);
    expect(rows(d.subset([6, 0]), 2).sort((a, b) => a[0] - b[0])).toEqual([[0, 1], [103, 2]]);
  });
});

describe('pseudoLabel', () => {
  it("labels the pool with the teacher's top class and keeps the examples at or above the threshold", async () => {
    const t = teacher();
    const pool = randomData(40, 11);
    const { x } = firstBatch(pool, 40);
    const probs = tf.tidy(() => tf.softmax(runGraph(t, x)[0]!));
    const top = Array.from(tf.argMax(probs, -1).dataSync());
    const conf = Array.from(tf.max(probs, -1).dataSync());
    tf.dispose([x, probs]);
    const threshold = [...conf].sort((a, b) => a - b)[20]!;
    const r = await expectNoLeak(() => pseudoLabel(pool, t, { threshold, batchSize: 16 }));
    expect(Array.from(r.labels)).toEqual(top);
    expectCloseArray(Array.from(r.confidence), conf);
    const keep = conf.map((c, i) => (c >= threshold ? i : -1)).filter((i) => i >= 0);
    expect(Array.from(r.indices)).toEqual(keep);
    expect(r.kept).toBe(keep.length);
    expect(r.total).toBe(40);
    // The dataset holds exactly those examples, with the teacher's labels, not the pool's.
    const b = firstBatch(r.dataset, 100);
    expect(Array.from(b.y.dataSync())).toEqual(keep.map((i) => top[i]));
    tf.dispose([b.x, b.y]);
  });

  it('works from an executor, joins the labelled data, and refuses a threshold outside [0, 1)', async () => {
    const ex = new Executor(teacher());
    const labelled = randomData(10, 1);
    const r = await semiSupervisedData(labelled, randomData(30, 2), ex, { threshold: 0 });
    expect(r.kept).toBe(30);
    expect(r.joined.size).toBe(40);
    const e = await rejectionOf(pseudoLabel(labelled, ex, { threshold: 1 }));
    expect(e.message).toMatch(/threshold must be in \[0, 1\), got 1/);
    ex.dispose();
  });
});

function expectCloseArray(a: number[], b: number[]): void {
  expect(a.length).toBe(b.length);
  a.forEach((v, i) => expect(v).toBeCloseTo(b[i]!, 6));
}


