import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { arrayDataset, createRng, Executor, fit } from '@tensorpress/core-tensor';
import { mlp } from '@tensorpress/models';
import { PACK_LIMIT, PackedAdamOptimizer } from '../src/internal/packed-adam.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
});

function randomValues(n: number, seed: number): Float32Array {
  const rng = createRng(seed);
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

describe('PackedAdamOptimizer', () => {
  it("matches tf.train.adam bit for bit: packed small variables, a large one alone, a learning-rate change", () => {
    const shapes = [[3], [4, 5], [], [PACK_LIMIT + 7], [2, 2, 3]];
    const make = (tag: string): tf.Variable[] => shapes.map((s, i) => tf.variable(tf.tensor(randomValues(s.reduce((a, b) => a * b, 1), i + 1), s), true, `${tag}${i}`));
    const ours = make('packed');
    const theirs = make('tfjs');
    const a = new PackedAdamOptimizer(0.01);
    const b = tf.train.adam(0.01);
    for (let step = 0; step < 6; step++) {
      const grads = shapes.map((s, i) => tf.tensor(randomValues(s.reduce((x, y) => x * y, 1), 100 * step + i), s));
      a.applyGradients(ours.map((v, i) => ({ name: v.name, tensor: grads[i]! })));
      b.applyGradients(theirs.map((v, i) => ({ name: v.name, tensor: grads[i]! })));
      tf.dispose(grads);
      if (step === 2) {
        // fit's schedule changes the field on both kinds
        a.learningRate = 0.003;
        (b as unknown as { learningRate: number }).learningRate = 0.003;
      }
    }
    ours.forEach((v, i) => expect(Array.from(v.dataSync()), v.name).toEqual(Array.from(theirs[i]!.dataSync())));
    expect(a.iterations).toBe(6);
    a.dispose();
    b.dispose();
    tf.dispose([...ours, ...theirs]);
  });

  it('gives a variable without a gradient zeros, and refuses a changed variable set', () => {
    const x = tf.variable(tf.tensor1d([1, 2]), true, 'pa-x');
    const y = tf.variable(tf.tensor1d([3]), true, 'pa-y');
    const opt = new PackedAdamOptimizer(0.1);
    opt.applyGradients([
      { name: 'pa-x', tensor: tf.tensor1d([1, -1]) },
      { name: 'pa-y', tensor: undefined as unknown as tf.Tensor },
    ]);
    expect(Array.from(y.dataSync())).toEqual([3]);
    expect(x.dataSync()[0]).toBeLessThan(1);
    expect(() => opt.applyGradients([{ name: 'pa-x', tensor: tf.tensor1d([1, 1]) }])).toThrow(/changed/);
    opt.dispose();
    tf.dispose([x, y]);
  });

  it("fit's default Adam trains the same weights as tf.train.adam passed in, and leaks nothing", async () => {
    const rng = createRng(3);
    const n = 64;
    const xs = Float32Array.from({ length: n * 8 }, () => rng.next());
    const ys = Int32Array.from({ length: n }, (_, i) => i % 3);
    const data = arrayDataset({ x: xs, y: ys, exampleShape: [8], numClasses: 3 });
    const graph = mlp({ inputShape: [8], numClasses: 3, width: 0.1, seed: 1 });
    const before = tf.memory().numTensors;
    const packed = await fit(graph, data, { epochs: 2, batchSize: 16, optimizer: { type: 'adam', learningRate: 0.01 }, progress: false, seed: 0 });
    expect(tf.memory().numTensors).toBe(before);
    const ex = new Executor(graph, { seed: 0 });
    const tfjsAdam = tf.train.adam(0.01);
    await fit(ex, data, { epochs: 2, batchSize: 16, optimizer: tfjsAdam, progress: false, seed: 0 });
    expect(packed.graph.params.length).toBeGreaterThan(2);
    for (const p of packed.graph.params) expect(Array.from(p.data), p.name).toEqual(Array.from(ex.paramValue(p.name).dataSync()));
    tfjsAdam.dispose();
    ex.dispose();
  });
});
