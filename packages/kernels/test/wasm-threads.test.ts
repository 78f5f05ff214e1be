import os from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { describe, expect, it } from 'vitest';
import { activateWasm, initializeBackend, nodeCpuCount } from '@tensorpress/kernels';
import { WASM_THREADS, useKernels } from './backends.js';

describe('activateWasm', () => {
  it('starts tfjs-backend-wasm threaded build in Node on the requested threads and puts the patched globals back', async () => {
    await useKernels('wasm');
    expect(getThreadsCount()).toBe(WASM_THREADS);
    const memory = (tf.backend() as unknown as { wasm: { wasmMemory: { buffer: ArrayBufferLike } } }).wasm.wasmMemory;
    expect(memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(os.cpus().length).toBe(os.availableParallelism());
    expect(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')).toBe(false);
    const y = tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, tf.ones([3, 3, 1, 2]) as tf.Tensor4D, 1, 'same'));
    // 'same' 3x3 all-ones on a 4x4 image: 4 corners x 4 + 8 edges x 6 + 4 inner x 9 = 100, per channel.
    expect(y.dataSync()[0]).toBe(200);
    y.dispose();
  });
});

describe('activateWasm (again)', () => {
  it('switches back to the initialized backend, keeping its threads', async () => {
    await useKernels('cpu');
    expect(await activateWasm({ threads: 1 })).toEqual({ ok: true, threads: WASM_THREADS });
    expect(tf.getBackend()).toBe('wasm');
  });
});

describe('initializeBackend', () => {
  it('says why a backend cannot be activated instead of throwing', async () => {
    expect(await initializeBackend('no-such-backend')).toMatch(/^the backend failed to initialize/);
    await useKernels('cpu');
    expect(await initializeBackend('cpu')).toBeUndefined();
  });
});

describe('nodeCpuCount', () => {
  it("is Node's available parallelism", async () => {
    expect(await nodeCpuCount()).toBe(os.availableParallelism());
  });
});
