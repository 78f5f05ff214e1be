/**
 * Test setup: the cpu or wasm backend with tfjs' gradients and tensorpress' kernels installed, as
 * core-tensor's `useBackend` leaves it (these tests cannot import core-tensor: it depends on this
 * package). wasm runs tfjs' threaded build on two threads through the Node threads shim, as
 * core-tensor does by default, so array kernels and heap modules see the shared-memory heap.
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { activateWasm, registerDilatedConvGradients, registerFastGradients } from '@tensorpress/kernels';

/** XNNPACK threads of the wasm backend in these tests. */
export const WASM_THREADS = 2;

let ready: Promise<void> | undefined;

async function initialize(): Promise<void> {
  // tfjs-core's Node bundle has no gradients; tfjs-layers' registers all of them into it.
  await import('@tensorflow/tfjs-layers');
  registerDilatedConvGradients();
  const wasm = await activateWasm({ threads: WASM_THREADS });
  if (!wasm.ok) throw new Error(`activateWasm: ${wasm.reason}`);
  // activateWasm falls back to the single-threaded build; these tests need the threaded one.
  if (wasm.threads !== WASM_THREADS) throw new Error(`activateWasm: the threaded build did not start (${wasm.threads} thread)`);
}

/** Activates `name` with gradients and tensorpress' fast kernels registered on it. */
export async function useKernels(name: 'cpu' | 'wasm'): Promise<void> {
  ready ??= initialize();
  await ready;
  if (!(await tf.setBackend(name))) throw new Error(`backend '${name}' failed to initialize`);
  registerFastGradients(name);
}
