import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, compress, fit, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { binarization, binarizationSchema, reestimateBatchNorm, stagedLearningRate, type BinarizationController } from '@tensorpress/binary';
import { maxAbsDiff } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const N = 8;
const x = Float32Array.from({ length: N * 28 * 28 }, (_, i) => ((i * 7919) % 97) / 97);
const data = arrayDataset({ x, y: Int32Array.from({ length: N }, (_, i) => i % 10), exampleShape: [28, 28, 1], numClasses: 10 });

describe('binarization controller', () => {
  it('staged schedule: FP32, then binary activations, then binary weights too', async () => {
    const g = referenceModels.plainCnn({ seed: 0 });
    const fp = new Executor(g);
    const ctrl = compress(g, [binarization({ schedule: { type: 'staged', unit: 'steps', activationsAt: 1, weightsAt: 2, decayAt: 3 } })]);
    await ctrl.initialize(data, { samples: N, batchSize: N });
    const xb = tf.tensor4d(x, [N, 28, 28, 1]);
    const out = (): tf.Tensor => ctrl.model.executor.run(xb)[0]!;
    const [ref] = fp.run(xb);
    const y0 = out();
    expect(maxAbsDiff(y0, ref!)).toBeLessThan(1e-5);
    const stats = (): Record<string, unknown> => ctrl.controllers[0]!.statistics().total;
    expect(stats()).toMatchObject({ activationsActive: false, weightsActive: false });
    ctrl.scheduler.step();
    const y1 = out();
    expect(stats()).toMatchObject({ activationsActive: true, weightsActive: false });
    expect(maxAbsDiff(y1, ref!)).toBeGreaterThan(1e-3);
    ctrl.scheduler.step();
    const y2 = out();
    expect(stats()).toMatchObject({ activationsActive: true, weightsActive: true });
    expect(maxAbsDiff(y2, y1)).toBeGreaterThan(1e-3);
    tf.dispose([xb, ref!, y0, y1, y2]);
    fp.dispose();
    ctrl.dispose();
  });

  it('stagedLearningRate: constant until decayAt, then polynomial decay to 0', () => {
    const s = binarizationSchema.parse({ schedule: { type: 'staged', activationsAt: 0, weightsAt: 1, decayAt: 2, power: 2 } }).schedule;
    const lr = stagedLearningRate(s, 4);
    expect(lr(0, 5, 10, 1)).toBe(1);
    expect(lr(1, 9, 10, 1)).toBe(1);
    expect(lr(2, 0, 10, 1)).toBe(1);
    expect(lr(3, 0, 10, 1)).toBeCloseTo(0.25, 12);
    expect(lr(3, 5, 10, 1)).toBeCloseTo(0.0625, 12);
    const none = stagedLearningRate(binarizationSchema.parse({}).schedule, 4);
    expect(none(3, 5, 10, 0.1)).toBe(0.1);
  });

  it('bnMomentum sets the momentum of the BatchNormalization nodes', () => {
    const ctrl = compress(referenceModels.residualCnn({ seed: 0 }), [binarization({ bnMomentum: 0.99 })]);
    const bns = ctrl.model.graph.nodes.filter((n) => n.op === 'BatchNormalization');
    expect(bns.length).toBeGreaterThan(0);
    for (const n of bns) expect(n.attrs['momentum']).toBe(0.99);
    ctrl.dispose();
  });

  it('trains with fit, and state() / loadState() restore them', async () => {
    const before = tf.memory().numTensors;
    const g = referenceModels.plainCnn({ seed: 0 });
    const ctrl = compress(g, [binarization({ weights: { method: 'xnor' } })]);
    await fit(ctrl.model.executor, data, { epochs: 1, batchSize: 4, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 1e-2 } });
    const b = ctrl.controllers[0] as BinarizationController;
    // conv2, conv3 and fc1 read binarized inputs (conv1 and fc2 stay FP32): s and t each.
    expect(b.trainableVariables().length).toBe(6);
    const state = ctrl.state();
    const st = JSON.parse(JSON.stringify(state)) as typeof state;
    const ctrl2 = compress(g, [binarization({ weights: { method: 'xnor' } })]);
    ctrl2.loadState(st);
    expect(ctrl2.controllers[0]!.state()).toEqual(b.state());
    expect(b.learningRate(1)(0, 0, 1, 0.5)).toBe(0.5);
    ctrl2.dispose();
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('reestimateBatchNorm: on one batch, eval mode then computes what train mode does on it', async () => {
    const ctrl = compress(referenceModels.residualCnn({ seed: 0 }), [binarization()]);
    await ctrl.initialize(data, { samples: N, batchSize: N });
    const ex = ctrl.model.executor;
    const xb = tf.tensor4d(x, [N, 28, 28, 1]);
    const [train] = ex.run(xb, { training: true, updateStats: false });
    const [before] = ex.run(xb);
    expect(maxAbsDiff(before!, train!)).toBeGreaterThan(1e-2);
    expect(reestimateBatchNorm(ex, data, { samples: N, batchSize: N })).toBe(9);
    const [after] = ex.run(xb);
    const peak = tf.tidy(() => tf.max(tf.abs(train!)).dataSync()[0]!);
    expect(maxAbsDiff(after!, train!)).toBeLessThan(1e-3 * Math.max(1, peak));
    tf.dispose([xb, train!, before!, after!]);
    ctrl.dispose();
  });

  it('ternary gap: trains with fit (previous codes kept between steps) and strips to ternary codes, no leak', async () => {
    const before = tf.memory().numTensors;
    const g = referenceModels.plainCnn({ seed: 0 });
    const ctrl = compress(g, [binarization({ weights: { method: 'twn', ternaryGap: 0.5 }, activations: { method: 'none' } })]);
    await fit(ctrl.model.executor, data, { epochs: 2, batchSize: 4, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 1e-3 } });
    const stripped = ctrl.strip();
    const codes = stripped.params.filter((p) => p.name.endsWith('.w_codes'));
    expect(codes.length).toBe(3);
    for (const p of codes) {
      expect(p.data.some((v) => v === 0)).toBe(true);
      expect(p.data.every((v) => v === -1 || v === 0 || v === 1)).toBe(true);
    }
    ctrl.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
