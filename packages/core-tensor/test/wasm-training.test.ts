import * as tf from '@tensorflow/tfjs-core';
import { arrayDataset, createRng, evaluate, fit, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { describe, expect, it } from 'vitest';

/** Two Gaussian blobs per class in 16 dims: linearly separable, learnt in a few steps. */
function blobs(n: number, seed: number): ReturnType<typeof arrayDataset> {
  const rng = createRng(seed);
  const x = new Float32Array(n * 16);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    y[i] = c;
    for (let j = 0; j < 16; j++) x[i * 16 + j] = rng.normal() * 0.5 + (j % 4 === c ? 2 : 0);
  }
  return arrayDataset({ x, y, exampleShape: [16], numClasses: 4 });
}

describe('fit', () => {
  // Each backend has its own kernels (and its own bugs: wasm's OneHot ignores a float32 dtype);
  // the same loop must learn on both and report the same metrics for the same weights.
  it('learns on wasm and cpu, and evaluate agrees across backends for the same weights', async () => {
    const train = blobs(512, 1);
    const test = blobs(256, 2);
    const results: Record<string, { graph: Graph; accuracy: number; loss: number }> = {};
    for (const backend of ['wasm', 'cpu'] as const) {
      await useBackend(backend);
      const before = tf.memory().numTensors;
      const { graph } = await fit(referenceModels.mlp({ inputShape: [16], numClasses: 4, seed: 3 }), train, {
        epochs: 2,
        batchSize: 32,
        seed: 5,
        progress: false,
      });
      const r = await evaluate(graph, test, { progress: false });
      expect(tf.memory().numTensors).toBe(before);
      results[backend] = { graph, ...r };
    }
    expect(results['wasm']!.accuracy).toBeGreaterThan(0.95);
    expect(results['cpu']!.accuracy).toBeGreaterThan(0.95);
    // Evaluate the wasm-trained weights on cpu: loss and accuracy must match wasm's own numbers.
    const crossCheck = await evaluate(results['wasm']!.graph, test, { progress: false });
    expect(crossCheck.accuracy).toBe(results['wasm']!.accuracy);
    expect(Math.abs(crossCheck.loss - results['wasm']!.loss)).toBeLessThan(1e-4 * Math.max(1, crossCheck.loss));
  });
});
