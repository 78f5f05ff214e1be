/**
 * @tensorpress/kernels: the fast cpu/wasm forward and gradient kernels core-tensor's `useBackend`
 * installs, array kernels (fused typed-array kernels on wasm and cpu) with heap modules for
 * WebAssembly on the wasm heap, and the wasm backend's start: its binaries found, and its threaded
 * build run in Node through a shim.
 * Nothing registers itself on import: every registration is a call.
 */
export { registerArrayKernel, hasArrayKernel, ARRAY_KERNEL_BACKENDS } from './array-kernels.js';
export type { ArrayKernelSpec, ArrayKernelOutput } from './array-kernels.js';
export { heapModule } from './heap-module.js';
export type { HeapModule, HeapModuleBinaries, WasmMemory } from './heap-module.js';
export { registerFastGradients, unregisterFastGradients } from './gradients.js';
export type { FastGradientKernel } from './gradients.js';
export { registerDilatedConvGradients } from './dilated-conv-gradients.js';
export { installNodeThreads, nodeCpuCount, releaseIdleWorkers, MAX_WASM_THREADS } from './wasm-threads.js';
export type { NodeThreadsShim } from './wasm-threads.js';
export { activateWasm, initializeBackend } from './wasm-backend.js';
export type { WasmActivation, WasmOptions } from './wasm-backend.js';
