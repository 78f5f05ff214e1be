import * as tf from '@tensorflow/tfjs-core';
import { decodeCheckpoint, encodeCheckpoint } from '@tensorpress/cli';
import { arrayDataset, compress, createRng, fit, saveGraph, useBackend, type BackendName, type Dataset, type FitOptions, type OptimizerConfig } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { filterPruning } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import { describe, expect, it } from 'vitest';

// core-tensor's own resume tests use core-only controllers (core may not import a technique); the
// real pipeline, FPGM filter pruning + INT8 QAT, stacks two technique packages, so it is tested here.

/** 52 examples of 10×10×1 in 4 classes: 4 batches of 16 per epoch, the last one of 4. */
function data(): Dataset {
  const rng = createRng(21);
  const n = 52;
  const x = new Float32Array(n * 100);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 4;
    for (let k = 0; k < 100; k++) x[i * 100 + k] = rng.next() + ((k % 4) === y[i] ? 0.8 : 0);
  }
  return arrayDataset({ x, y, exampleShape: [10, 10, 1], numClasses: 4 });
}

/** Pruning whose masks change at every epoch end (exponential schedule) + QAT with learned ranges. */
function pipeline(): ReturnType<typeof compress> {
  const model = referenceModels.plainCnn({ inputShape: [10, 10, 1], numClasses: 4, width: 0.25, seed: 2 });
  return compress(model, [filterPruning({ criterion: 'fpgm', ratio: 0.5, schedule: { type: 'exponential', steps: 2 } }), quantization({ overflowFix: 'enable' })], {
    seed: 0,
  });
}

/** The stripped (deployable) graph's bytes, and the weights of the trained model. */
async function run(optimizer: OptimizerConfig, extra: Partial<FitOptions> = {}): Promise<{ stripped?: Uint8Array; weights?: Uint8Array; error?: unknown }> {
  const ctrl = pipeline();
  try {
    await fit(ctrl.model.executor, data(), { epochs: 3, batchSize: 16, seed: 4, optimizer, lrSchedule: 'cosine', controller: ctrl, progress: false, ...extra });
    return { stripped: saveGraph(ctrl.strip()).weights, weights: saveGraph(ctrl.model.executor.snapshot()).weights };
  } catch (error) {
    return { error };
  } finally {
    ctrl.dispose();
  }
}

describe.each(['cpu', 'wasm'] as BackendName[])('fit resume of filter pruning + INT8 QAT on %s', (backend) => {
  it.each<[string, OptimizerConfig]>([
    ['adam', { type: 'adam', learningRate: 0.005 }],
    ['sgd', { type: 'sgd', learningRate: 0.05 }],
    ['momentum', { type: 'momentum', learningRate: 0.02 }],
  ])('%s: stopped mid-epoch (signal) or after a periodic checkpoint, resumed from the bytes in a fresh pipeline: bit-identical weights', async (_name, optimizer) => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const reference = await run(optimizer);
    expect(reference.error).toBeUndefined();
    // Through the signal, mid-epoch 2 (4 steps per epoch): the pruning level has already changed once.
    const abort = new AbortController();
    let bytes: Uint8Array | undefined;
    const stopped = await run(optimizer, {
      signal: abort.signal,
      checkpoint: { save: (c) => void (bytes = encodeCheckpoint(c)) },
      callbacks: { onBatchEnd: (i) => void (i.globalStep === 6 && abort.abort()) },
    });
    expect((stopped.error as { code?: string }).code).toBe('ABORTED');
    expect(decodeCheckpoint(bytes!).step).toBe(2);
    const resumed = await run(optimizer, { resumeFrom: decodeCheckpoint(bytes!) });
    expect(Buffer.from(resumed.weights!).equals(Buffer.from(reference.weights!))).toBe(true);
    expect(Buffer.from(resumed.stripped!).equals(Buffer.from(reference.stripped!))).toBe(true);
    // Through a checkpoint every 3 steps and a crash at step 10: resumed from step 9 (epoch 3, step 1).
    let latest: Uint8Array | undefined;
    const crashed = await run(optimizer, {
      checkpoint: { everySteps: 3, save: (c) => void (latest = encodeCheckpoint(c)) },
      callbacks: {
        onBatchEnd: (i) => {
          if (i.globalStep === 10) throw new Error('killed');
        },
      },
    });
    expect((crashed.error as Error).message).toBe('killed');
    expect([decodeCheckpoint(latest!).epoch, decodeCheckpoint(latest!).step]).toEqual([2, 1]);
    const again = await run(optimizer, { resumeFrom: decodeCheckpoint(latest!) });
    expect(Buffer.from(again.weights!).equals(Buffer.from(reference.weights!))).toBe(true);
    expect(Buffer.from(again.stripped!).equals(Buffer.from(reference.stripped!))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });
});
