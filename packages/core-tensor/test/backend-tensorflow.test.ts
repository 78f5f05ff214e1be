/**
 * tfjs-node / tfjs-node-gpu where they are installed. Their install downloads libtensorflow, so on
 * machines without internet (ours) they are absent: backend.test.ts checks the absent case (and the
 * present one where they exist). Here both packages are present as stand-ins (vi.mock): importing
 * one registers a `tensorflow` backend the way the real packages do (a cpu backend underneath),
 * and `useBackend` must pick it with no preference, tfjs-node-gpu before tfjs-node.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { describe, expect, it, vi } from 'vitest';
import { useBackend } from '@tensorpress/core-tensor';

const imported: string[] = [];
const gpuPresent = { value: true };

/** What the real packages do on import: a `tensorflow` backend with its kernels (cpu's, here). */
function registerTensorflow(flavour: string): void {
  tf.registerBackend('tensorflow', () => Object.assign(new MathBackendCPU(), { flavour }), 3);
  for (const k of tf.getKernelsForBackend('cpu')) if (tf.getKernel(k.kernelName, 'tensorflow') == null) tf.registerKernel({ ...k, backendName: 'tensorflow' });
}

vi.mock('@tensorflow/tfjs-node-gpu', () => {
  imported.push('@tensorflow/tfjs-node-gpu');
  if (!gpuPresent.value) throw new Error("Cannot find module '@tensorflow/tfjs-node-gpu'");
  registerTensorflow('gpu');
  return {};
});
vi.mock('@tensorflow/tfjs-node', () => {
  imported.push('@tensorflow/tfjs-node');
  registerTensorflow('cpu');
  return {};
});

describe('useBackend with tfjs-node installed', () => {
  it('picks tensorflow by default, from tfjs-node-gpu first, with gradients', async () => {
    const sel = await useBackend();
    expect(sel.name).toBe('tensorflow');
    expect(sel.fallbackFrom).toBeUndefined();
    expect(imported).toEqual(['@tensorflow/tfjs-node-gpu']);
    expect((tf.backend() as unknown as { flavour: string }).flavour).toBe('gpu');
    // Training works on it: gradients are registered.
    const g = tf.grad((x: tf.Tensor) => tf.sum(tf.square(x)))(tf.tensor1d([1, 2, 3]));
    expect([...g.dataSync()]).toEqual([2, 4, 6]);
    // Asked for by name, and as the first of a list, it is the same backend.
    expect((await useBackend('tensorflow')).name).toBe('tensorflow');
    expect((await useBackend(['tensorflow', 'cpu'])).name).toBe('tensorflow');
  });

  it('falls back to tfjs-node where tfjs-node-gpu is absent', async () => {
    await useBackend('cpu');
    tf.removeBackend('tensorflow');
    gpuPresent.value = false;
    imported.length = 0;
    vi.resetModules();
    const sel = await useBackend();
    expect(sel.name).toBe('tensorflow');
    // tfjs-node-gpu was tried first (its module is cached from the first test and registers
    // nothing now, as an absent or failing package would), then tfjs-node loaded.
    expect(imported).toEqual(['@tensorflow/tfjs-node']);
    expect((tf.backend() as unknown as { flavour: string }).flavour).toBe('cpu');
  });
});

