import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, useBackend } from '@tensorpress/core-tensor';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('Dataset.batches skip', () => {
  it('skips leading batches of the same (shuffled) order without changing the rest', () => {
    const n = 23;
    const ds = arrayDataset({ x: Float32Array.from({ length: n * 2 }, (_, i) => i), y: Int32Array.from({ length: n }, (_, i) => i % 4), exampleShape: [2] });
    const rows = (skip: number): number[][] =>
      [...ds.batches(5, { shuffle: true, seed: 9, skip })].map((b) => {
        const v = Array.from(b.x.dataSync());
        tf.dispose([b.x, b.y]);
        return v;
      });
    const all = rows(0);
    expect(all).toHaveLength(5);
    expect(rows(2)).toEqual(all.slice(2));
    expect(rows(5)).toEqual([]);
    expect(() => [...ds.batches(5, { skip: -1 })]).toThrow(/skip must be an integer >= 0/);
  });
});
