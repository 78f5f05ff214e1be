/**
 * Test setup: the cpu or wasm backend with tfjs' gradients and tensorpress' kernels installed, as
 * core-tensor's `useBackend` leaves it (these tests cannot import core-tensor: it depends on this
 * package). wasm runs tfjs' threaded build on two threads through the Node threads shim, as
 * core-tensor does by default, so array kernels and heap modules see the shared-memory heap.
 */
import { createRequire } from 'node:module';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { installNodeThreads, registerDilatedConvGradients, registerFastGradients, releaseIdleWorkers } from '@tensorpress/kernels';

/** XNNPACK threads of the wasm backend in these tests. */
export const WASM_THREADS = 2;

let ready: Promise<void> | undefined;

async function initialize(): Promise<void> {
  // tfjs-core's Node bundle has no gradients; tfjs-layers' registers all of them into it.
  await import('@tensorflow/tfjs-layers');
  registerDilatedConvGradients();
  const main = createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm');
  setWasmPaths(main.replace(/[^/\\]+$/, ''));
  setThreadsCount(WASM_THREADS);
  const shim = await installNodeThreads(WASM_THREADS, main);
  if (shim == null) throw new Error('installNodeThreads: the threads shim cannot run here');
  try {
    const failed = shim.failed.then((reason) => {
      throw new Error(reason);
    });
    if (!(await Promise.race([tf.setBackend('wasm'), failed]))) throw new Error('the threaded wasm build failed to initialize');
  } finally {
    shim.restore();
  }
  releaseIdleWorkers(tf.findBackend('wasm'));
}

/** Activates `name` with gradients and tensorpress' fast kernels registered on it. */
export async function useKernels(name: 'cpu' | 'wasm'): Promise<void> {
  ready ??= initialize();
  await ready;
  if (!(await tf.setBackend(name))) throw new Error(`backend '${name}' failed to initialize`);
  registerFastGradients(name);
}
