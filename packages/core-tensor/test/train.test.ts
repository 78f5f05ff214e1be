import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { arrayDataset, ConfigError, createRng, Executor, GraphBuilder, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { mlp } from '@tensorpress/models';
import { evaluate, fit, learningRateAt, type BatchEndInfo, type FitController } from '../src/train.js';

beforeAll(async () => {
  await tf.setBackend('cpu');
  await import('@tensorflow/tfjs-layers');
});

/** Four Gaussian blobs in 8-D (fixed centres, noise drawn from `seed`), well separated. */
function blobs(n: number, seed: number, classes = 4, dims = 8): Dataset {
  const centreRng = createRng(1234);
  const centers = Array.from({ length: classes }, () => Array.from({ length: dims }, () => centreRng.normal() * 2));
  const rng = createRng(seed);
  const x = new Float32Array(n * dims);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % classes;
    y[i] = c;
    for (let d = 0; d < dims; d++) x[i * dims + d] = centers[c]![d]! + rng.normal() * 0.5;
  }
  return arrayDataset({ x, y, exampleShape: [dims], numClasses: classes });
}

const smallMlp = (seed = 0): Graph => mlp({ inputShape: [8], numClasses: 4, width: 0.125, seed });

/** A tiny CNN with BN and dropout, so determinism covers batch statistics and dropout seeds. */
function tinyCnn(seed = 0): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, 6, 6, 1]);
  h = b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'conv' });
  h = b.relu(b.batchNorm(h, { name: 'bn' }));
  h = b.dropout(b.flatten(h), 0.2);
  b.output(b.dense(h, 3, { name: 'fc' }));
  return b.build();
}

function images(n: number, seed: number): Dataset {
  const rng = createRng(seed);
  const x = new Float32Array(n * 36);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let k = 0; k < 36; k++) x[i * 36 + k] = rng.normal() + (k % 3 === y[i] ? 1 : 0);
  }
  return arrayDataset({ x, y, exampleShape: [6, 6, 1], numClasses: 3 });
}

const weights = (g: Graph): Record<string, number[]> => Object.fromEntries(g.params.map((p) => [p.name, Array.from(p.data)]));

describe('fit', () => {
  it('trains an MLP to high accuracy on separable data, without leaking tensors', async () => {
    const train = blobs(256, 1);
    const test = blobs(128, 2);
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    const { graph, history } = await fit(smallMlp(), train, {
      epochs: 4,
      batchSize: 32,
      optimizer: { type: 'adam', learningRate: 1e-2 },
      validation: test,
      progress: false,
      log: (l) => lines.push(l),
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(history).toHaveLength(4);
    expect(history.map((h) => h.epoch)).toEqual([0, 1, 2, 3]);
    expect(history[3]!.loss).toBeLessThan(history[0]!.loss);
    expect(history[3]!.accuracy).toBeGreaterThan(0.95);
    expect(history[3]!.valAccuracy).toBeGreaterThan(0.95);
    expect(history[3]!.valLoss).toBeLessThan(0.3);
    expect(history.every((h) => h.ms > 0 && h.learningRate === 1e-2)).toBe(true);
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(/^epoch 1\/4 loss \d+\.\d{4} acc \d\.\d{4} val \d\.\d{4} \d+\.\d s$/);
    const ev = await evaluate(graph, test, { batchSize: 50, progress: false });
    expect(ev.count).toBe(128);
    expect(ev.accuracy).toBeCloseTo(history[3]!.valAccuracy!, 10);
    expect(ev.loss).toBeCloseTo(history[3]!.valLoss!, 5);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is deterministic for a seed (BN and dropout included) and differs across seeds', async () => {
    const data = images(48, 3);
    const run = (seed: number) => fit(tinyCnn(), data, { epochs: 2, batchSize: 16, seed, progress: false });
    const a = await run(7);
    const b = await run(7);
    const c = await run(8);
    expect(weights(a.graph)).toEqual(weights(b.graph));
    expect(a.history.map((h) => h.loss)).toEqual(b.history.map((h) => h.loss));
    expect(weights(a.graph)['fc.weight']).not.toEqual(weights(c.graph)['fc.weight']);
    // BN running statistics were updated in train mode.
    expect(weights(a.graph)['bn.mean']!.some((v) => v !== 0)).toBe(true);
  });

  it('trains an executor in place and leaves a caller optimizer alive with its state', async () => {
    const ex = new Executor(smallMlp());
    const start = tf.memory().numTensors;
    const opt = tf.train.adam(5e-3);
    const before = tf.memory().numTensors;
    const w0 = ex.variables().get('fc1.weight')!.dataSync().slice();
    const { graph } = await fit(ex, blobs(64, 4), { epochs: 1, batchSize: 16, optimizer: opt, progress: false });
    // Adam keeps two moments per trainable variable; nothing else may remain.
    expect(tf.memory().numTensors - before).toBe(2 * ex.trainableVariables().length);
    expect(Array.from(ex.variables().get('fc1.weight')!.dataSync())).not.toEqual(Array.from(w0));
    expect(Array.from(graph.param('fc1.weight')!.data)).toEqual(Array.from(ex.variables().get('fc1.weight')!.dataSync()));
    opt.dispose();
    expect(tf.memory().numTensors).toBe(start);
    ex.dispose();
  });

  it('disposes what it creates for sgd and momentum (weight decay on) too', async () => {
    const before = tf.memory().numTensors;
    for (const optimizer of [
      { type: 'sgd', learningRate: 0.05 },
      { type: 'momentum', learningRate: 0.05, momentum: 0.9, weightDecay: 1e-3 },
    ] as const) {
      await fit(tinyCnn(), images(20, 5), { epochs: 2, batchSize: 8, optimizer, lrSchedule: 'cosine', progress: false });
      expect(tf.memory().numTensors).toBe(before);
    }
  });

  it('applies decoupled weight decay to conv/gemm weights only', async () => {
    const data = blobs(32, 6);
    // One full-batch SGD step: w1 = w0 - lr·g(w0) without decay, and additionally - lr·wd·w0 with it.
    const step = (weightDecay: number) =>
      fit(smallMlp(), data, { epochs: 1, batchSize: 32, optimizer: { type: 'sgd', learningRate: 0.1, weightDecay }, progress: false });
    const w0 = weights(smallMlp());
    const plain = weights((await step(0)).graph);
    const decayed = weights((await step(0.5)).graph);
    for (const name of ['fc1.weight', 'fc2.weight', 'fc3.weight']) {
      decayed[name]!.forEach((v, i) => expect(v).toBeCloseTo(plain[name]![i]! - 0.1 * 0.5 * w0[name]![i]!, 5));
    }
    for (const name of ['fc1.bias', 'fc2.bias', 'fc3.bias']) expect(decayed[name]).toEqual(plain[name]);
  });

  it('sets the scheduled learning rate before every step', async () => {
    const seen: BatchEndInfo[] = [];
    const data = blobs(40, 7);
    await fit(smallMlp(), data, {
      epochs: 2,
      batchSize: 16,
      optimizer: { type: 'sgd', learningRate: 0.2 },
      lrSchedule: 'cosine',
      progress: false,
      callbacks: { onBatchEnd: (info) => void seen.push(info) },
    });
    expect(seen.map((s) => [s.epoch, s.step, s.globalStep])).toEqual([
      [0, 0, 1], [0, 1, 2], [0, 2, 3], [1, 0, 4], [1, 1, 5], [1, 2, 6],
    ]);
    expect(seen.map((s) => s.batchSize)).toEqual([16, 16, 8, 16, 16, 8]);
    seen.forEach((s, k) => expect(s.learningRate).toBeCloseTo(0.2 * 0.5 * (1 + Math.cos((Math.PI * k) / 6)), 12));
    // A zero rate must freeze the weights: the optimizer really uses the scheduled value.
    for (const optimizer of [{ type: 'sgd', learningRate: 0.5 }, { type: 'momentum', learningRate: 0.5 }, { type: 'adam', learningRate: 0.5 }] as const) {
      const g = smallMlp();
      const { graph } = await fit(g, data, { epochs: 1, batchSize: 16, optimizer, lrSchedule: () => 0, progress: false });
      expect(weights(graph)).toEqual(weights(g));
    }
  });

  it('schedules a caller optimizer and restores its rate', async () => {
    const opt = tf.train.sgd(0.3);
    const rates: number[] = [];
    await fit(smallMlp(), blobs(32, 8), {
      epochs: 2,
      batchSize: 32,
      optimizer: opt,
      lrSchedule: (epoch, _s, _n, base) => base / (epoch + 1),
      progress: false,
      callbacks: { onBatchEnd: (i) => void rates.push(i.learningRate) },
    });
    expect(rates).toEqual([0.3, 0.15]);
    expect((opt as unknown as { learningRate: number }).learningRate).toBe(0.3);
    opt.dispose();
  });

  it('calls the controller: its loss, its variables and its scheduler', async () => {
    const alpha = tf.variable(tf.scalar(2), true, 'test_alpha');
    const calls = { step: 0, epochStep: 0, loss: 0 };
    const controller: FitController = {
      loss: (ctx) => {
        calls.loss++;
        expect(ctx.outputs[0]!.shape).toEqual([ctx.labels.shape[0], 4]);
        expect(ctx.inputs.shape[0]).toBe(ctx.labels.shape[0]);
        return tf.mul(tf.square(alpha), 0.5);
      },
      trainableVariables: () => [alpha],
      scheduler: { step: () => void calls.step++, epochStep: () => void calls.epochStep++ },
    };
    const before = tf.memory().numTensors;
    const losses: number[] = [];
    await fit(smallMlp(), blobs(48, 9), {
      epochs: 3,
      batchSize: 16,
      optimizer: { type: 'sgd', learningRate: 0.1 },
      controller,
      progress: false,
      callbacks: { onBatchEnd: async (i) => void losses.push(await i.loss()) },
    });
    expect(calls).toEqual({ step: 9, epochStep: 3, loss: 9 });
    // d/dα ½α² = α: nine SGD steps of rate 0.1 shrink α by 0.9⁹.
    expect(alpha.dataSync()[0]).toBeCloseTo(2 * 0.9 ** 9, 5);
    // The batch loss includes the compression term (≥ ½α² at that step).
    expect(losses[0]).toBeGreaterThan(0.5 * 4);
    expect(tf.memory().numTensors).toBe(before);
    alpha.dispose();
  });

  it('awaits onEpochEnd with the epoch metrics', async () => {
    const ends: number[] = [];
    await fit(smallMlp(), blobs(16, 10), {
      epochs: 2,
      batchSize: 8,
      progress: false,
      callbacks: {
        onEpochEnd: async (i) => {
          await new Promise((r) => setTimeout(r, 1));
          ends.push(i.epoch);
          expect(i.epochs).toBe(2);
          expect(i.accuracy).toBeGreaterThanOrEqual(0);
        },
      },
    });
    expect(ends).toEqual([0, 1]);
  });

  it('drives a progress display of the caller: start, every step, the summary line, then end', async () => {
    const calls: string[] = [];
    const lines: string[] = [];
    await fit(smallMlp(), blobs(48, 13), {
      epochs: 2,
      batchSize: 16,
      log: (l) => lines.push(l),
      progress: {
        start: async (label, total) => {
          await new Promise((r) => setTimeout(r, 1));
          calls.push(`start ${label} ${total}`);
        },
        update: (done, status) => calls.push(`update ${done}${status === undefined ? '' : ' status'}`),
        end: (line) => calls.push(line === undefined ? 'end' : `end ${line.split(' loss ')[0]}`),
      },
    });
    const epoch = (e: number): string[] => [`start epoch ${e}/2 3`, 'update 1', 'update 2', 'update 3 status', `end epoch ${e}/2`, 'end'];
    expect(calls).toEqual([...epoch(1), ...epoch(2)]);
    expect(lines.map((l) => l.split(' loss ')[0])).toEqual(['epoch 1/2', 'epoch 2/2']);
    const evaluated: string[] = [];
    await evaluate(smallMlp(), blobs(20, 14), {
      batchSize: 8,
      progress: { start: (label, total) => void evaluated.push(`${label} ${total}`), update: (done) => void evaluated.push(`${done}`), end: (l) => void evaluated.push(l ?? 'end') },
    });
    expect(evaluated.slice(0, 4)).toEqual(['evaluate 3', '1', '2', '3']);
    expect(evaluated.slice(4)).toEqual([expect.stringMatching(/^evaluate 20 examples: loss /), 'end']);
  });

  it('rejects bad options with the JSON path and mismatched data', async () => {
    const data = blobs(8, 11);
    await expect(fit(smallMlp(), data, { epochs: -1, batchSize: 4 })).rejects.toThrow(ConfigError);
    await expect(fit(smallMlp(), data, { epochs: 1, batchSize: 0 })).rejects.toThrow(/\$\.batchSize/);
    await expect(fit(smallMlp(), data, { epochs: 1, batchSize: 4, optimizer: { type: 'adam', learningRate: -1 } })).rejects.toThrow(
      /\$\.optimizer\.learningRate/,
    );
    await expect(fit(smallMlp(), data, { epochs: 1, batchSize: 4, lrSchedule: 'linear' as never })).rejects.toThrow(/\$\.lrSchedule/);
    const three = mlp({ inputShape: [8], numClasses: 3, width: 0.125 });
    const before = tf.memory().numTensors;
    await expect(fit(three, data, { epochs: 1, batchSize: 4, progress: false })).rejects.toThrow(/4 classes but the model outputs 3 logits/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('returns the graph unchanged for zero epochs', async () => {
    const g = smallMlp();
    const { graph, history } = await fit(g, blobs(8, 12), { epochs: 0, batchSize: 4, progress: false });
    expect(history).toEqual([]);
    expect(weights(graph)).toEqual(weights(g));
  });
});

describe('learningRateAt', () => {
  it('computes constant, cosine, step and custom schedules', () => {
    expect(learningRateAt('constant', 0.1, 3, 5, 10, 4)).toBe(0.1);
    expect(learningRateAt('cosine', 1, 0, 0, 10, 2)).toBe(1);
    expect(learningRateAt('cosine', 1, 1, 0, 10, 2)).toBeCloseTo(0.5, 12);
    expect(learningRateAt('cosine', 1, 1, 5, 10, 2)).toBeCloseTo(0.5 * (1 + Math.cos(Math.PI * 0.75)), 12);
    expect([0, 1, 2, 3].map((e) => learningRateAt('step', 1, e, 0, 10, 4))).toEqual([1, 1, 0.1, 0.1 ** 2]);
    expect([0, 1, 2].map((e) => learningRateAt('step', 1, e, 0, 10, 3))).toEqual([1, 1, 0.1]);
    expect(learningRateAt((e, s, n, b) => b * (e * n + s), 0.5, 1, 2, 10, 3)).toBe(6);
    expect(() => learningRateAt(() => Number.NaN, 1, 0, 0, 1, 1)).toThrow(/\$\.lrSchedule/);
  });
});

describe('evaluate', () => {
  it('matches a direct computation and does not leak', async () => {
    const g = smallMlp(3);
    const data = blobs(30, 13);
    const before = tf.memory().numTensors;
    const r = await evaluate(g, data, { batchSize: 7, progress: false });
    expect(tf.memory().numTensors).toBe(before);
    // Reference: all examples in one batch.
    const [batch] = [...data.batches(30)];
    const ex = new Executor(g);
    const [logits] = ex.run(batch!.x);
    const l = logits!.arraySync() as number[][];
    const y = Array.from(batch!.y.dataSync());
    let correct = 0;
    let loss = 0;
    l.forEach((row, i) => {
      const m = Math.max(...row);
      const lse = m + Math.log(row.reduce((s, v) => s + Math.exp(v - m), 0));
      loss += lse - row[y[i]!]!;
      if (row.indexOf(m) === y[i]) correct++;
    });
    tf.dispose([logits!, batch!.x, batch!.y]);
    ex.dispose();
    expect(r.count).toBe(30);
    expect(r.accuracy).toBe(correct / 30);
    expect(r.loss).toBeCloseTo(loss / 30, 5);
  });

  it('evaluates an executor in eval mode with its state kept', async () => {
    const ex = new Executor(tinyCnn());
    const data = images(12, 14);
    const a = await evaluate(ex, data, { progress: false });
    const b = await evaluate(ex, data, { batchSize: 5, progress: false });
    expect(b.accuracy).toBe(a.accuracy);
    expect(b.loss).toBeCloseTo(a.loss, 5);
    expect(ex.variables().get('bn.mean')!.dataSync().every((v) => v === 0)).toBe(true);
    ex.dispose();
  });
});
