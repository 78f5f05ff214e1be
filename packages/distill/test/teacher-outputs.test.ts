import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, arrayDataset, compress, ensureGradients, fit, runGraph, useBackend } from '@tensorpress/core-tensor';
import { knowledgeDistillation, precomputeTeacherOutputs } from '@tensorpress/distill';
import { errorOf, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { firstBatch, randomData, student, teacher } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
  await ensureGradients();
});

const totalOf = (ctrl: ReturnType<typeof compress>): Record<string, unknown> => ctrl.statistics().algorithms[0]!.total;

describe('precomputeTeacherOutputs', () => {
  it("holds the eval-mode teacher's outputs and finds a shuffled batch's rows by their bits", async () => {
    const t = teacher();
    const data = randomData(20);
    const cache = await expectNoLeak(() => precomputeTeacherOutputs(data, t, { batchSize: 6 }));
    expect([cache.size, cache.width]).toEqual([20, 3]);
    const { x } = firstBatch(data, 20);
    const { x: shuffled } = firstBatch(data.subset([7, 3, 19, 3, 0]), 5);
    const got = cache.lookup(shuffled)!;
    const want = runGraph(t, x)[0]!;
    const w = want.arraySync() as number[][];
    expect(got.shape).toEqual([5, 3]);
    expect(got.arraySync()).toEqual([w[7], w[3], w[19], w[3], w[0]]);
    tf.dispose([x, shuffled, got, want]);
  });

  it('finds nothing for a batch with one row not in the data (one bit changed), nor for another example shape', async () => {
    const data = randomData(8);
    const cache = await precomputeTeacherOutputs(data, teacher());
    const { x } = firstBatch(data, 8);
    const v = x.dataSync().slice();
    const bits = new Uint32Array(v.buffer);
    bits[16 * 5 + 2]! ^= 1; // row 5, one ulp away
    const near = tf.tensor(v, x.shape);
    expect(cache.lookup(near)).toBeUndefined();
    const rows = tf.tensor(x.dataSync().slice(0, 16 * 4), [4, 4, 4, 1]);
    expect(cache.lookup(rows)!.shape).toEqual([4, 3]);
    const wide = tf.zeros([2, 5, 5, 1]);
    expect(cache.lookup(wide)).toBeUndefined();
    tf.dispose([x, near, rows, wide]);
  });

  it('gives identical examples one output and every other example its own', async () => {
    // Two examples with the same pixels give one teacher output; a third differs.
    const x = new Float32Array(3 * 16);
    for (let i = 0; i < 16; i++) x[i] = x[16 + i] = i / 16;
    x[32] = 1;
    const data = arrayDataset({ x, y: [0, 1, 2], exampleShape: [4, 4, 1], numClasses: 3 });
    const t = teacher();
    const cache = await precomputeTeacherOutputs(data, t);
    const { x: all } = firstBatch(data, 3);
    const got = cache.lookup(all)!;
    const want = runGraph(t, all)[0]!;
    expect(got.arraySync()).toEqual(want.arraySync());
    tf.dispose([all, got, want]);
  });
});

describe('knowledgeDistillation with teacherOutputs', () => {
  it('trains exactly as with the teacher run every step, and counts the batches it served', async () => {
    const t = teacher();
    const data = randomData(32);
    const opts = { epochs: 2, batchSize: 8, progress: false, seed: 4, optimizer: { type: 'adam' as const, learningRate: 0.05 } };
    const plain = compress(student(), [knowledgeDistillation({ teacher: t, alpha: 0.8, temperature: 3 })]);
    const a = await fit(plain.model.executor, data, { ...opts, controller: plain });
    const teacherOutputs = await precomputeTeacherOutputs(data, t);
    const cached = compress(student(), [knowledgeDistillation({ teacher: t, alpha: 0.8, temperature: 3, teacherOutputs })]);
    const b = await expectNoLeak(() => fit(cached.model.executor, data, { ...opts, controller: cached }));
    expect(totalOf(cached)).toMatchObject({ precomputedBatches: 8, teacherRuns: 0 });
    expect(totalOf(plain)['precomputedBatches']).toBeUndefined();
    for (const p of a.graph.params) expect(Array.from(b.graph.params.find((q) => q.name === p.name)!.data)).toEqual(Array.from(p.data));
    // A batch from elsewhere runs the teacher.
    const { x, y } = firstBatch(randomData(4, 11), 4);
    tf.tidy(() => cached.loss({ inputs: x, labels: y, outputs: cached.model.executor.run(x, { training: true, updateStats: false }), executor: cached.model.executor }));
    expect(totalOf(cached)).toMatchObject({ precomputedBatches: 8, teacherRuns: 1 });
    tf.dispose([x, y]);
    plain.dispose();
    cached.dispose();
  });

  it("serves the FP32 original's outputs when no teacher is named", async () => {
    const g = student();
    const data = randomData(16);
    const ctrl = compress(g, [knowledgeDistillation({ alpha: 0.5, teacherOutputs: await precomputeTeacherOutputs(data, g) })]);
    await fit(ctrl.model.executor, data, { epochs: 1, batchSize: 8, controller: ctrl, progress: false });
    expect(totalOf(ctrl)).toMatchObject({ teacher: 'original', precomputedBatches: 2, teacherRuns: 0 });
    ctrl.dispose();
  });

  it('refuses outputs of another graph, with hints, and with self-distillation (ConfigError at the param)', async () => {
    const data = randomData(8);
    const t = teacher();
    const teacherOutputs = await precomputeTeacherOutputs(data, t);
    const cases: [() => unknown, string][] = [
      [() => compress(student(), [knowledgeDistillation({ teacher: teacher(), teacherOutputs })]), '$.teacher'],
      [() => compress(student(), [knowledgeDistillation({ teacherOutputs })]), '$.teacher'],
      [() => compress(student(), [knowledgeDistillation({ teacher: t, teacherOutputs, hints: [{ student: 'relu1', teacher: 'trelu1' }] })]), '$.hints'],
      [() => compress(student(), [knowledgeDistillation({ teacherOutputs, selfDistillation: { mode: 'ema', decay: 0.9 } })]), '$.selfDistillation'],
    ];
    for (const [fn, path] of cases) {
      const e = errorOf(fn);
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).path).toBe(path);
    }
  });
});
