/**
 * Hand-written WebAssembly on the wasm backend's own heap, for array kernels (array-kernels.ts)
 * whose views live there: tfjs' own elementwise kernels are SIMD, and a JavaScript loop over the
 * heap is several times slower.
 */
import * as tf from '@tensorflow/tfjs-core';

/**
 * A WebAssembly module whose only import is the wasm backend's memory, `(import "env" "memory"
 * (memory 0))`, assembled twice: as is, and with `(memory 0 65536 shared)` for tfjs' threaded build
 * (whose heap is shared memory). Bytes or base64.
 */
export interface HeapModuleBinaries {
  readonly unshared: Uint8Array | string;
  readonly shared: Uint8Array | string;
}

/** A `WebAssembly.Memory` (typed here: the package compiles without the DOM library). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}

/** An instantiated heap module: its exports and the memory they address (byte offsets). */
export interface HeapModule {
  readonly exports: Readonly<Record<string, unknown>>;
  readonly memory: WasmMemory;
}

interface WasmBackendModule {
  wasmMemory?: WasmMemory;
  asm?: { memory?: WasmMemory };
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

const heapModules = new WeakMap<WasmMemory, Map<HeapModuleBinaries, HeapModule | null>>();

function bytesOf(b: Uint8Array | string): Uint8Array {
  return typeof b === 'string' ? Uint8Array.from(atob(b), (ch) => ch.charCodeAt(0)) : b;
}

/**
 * `binaries` instantiated on the wasm backend's heap, so an array kernel can hand its views'
 * `byteOffset`s to hand-written SIMD loops (tfjs' own elementwise kernels are SIMD; a JavaScript
 * loop over the heap is several times slower). Compiled once per heap. Undefined when the wasm
 * backend is not initialised, its memory is not reachable, or the engine refuses the module (no
 * SIMD): callers then use their JavaScript loop or tensor ops. Pass the array views' `buffer` to
 * check that they live in `memory`.
 */
export function heapModule(binaries: HeapModuleBinaries): HeapModule | undefined {
  let wasm: WasmBackendModule | undefined;
  try {
    // The registry holds initialised backends only. tf.findBackend would start initialising wasm
    // where its factory is registered but another backend is active (a page that bundles wasm and
    // runs cpu): asynchronously, so every kernel run meanwhile fails with "not yet initialized".
    wasm = (tf.engine().registry['wasm'] as { wasm?: WasmBackendModule } | undefined)?.wasm;
  } catch {
    return undefined;
  }
  const memory = wasm?.wasmMemory ?? wasm?.asm?.memory;
  const api = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
  if (memory == null || api == null) return undefined;
  let cache = heapModules.get(memory);
  if (cache == null) heapModules.set(memory, (cache = new Map()));
  let entry = cache.get(binaries);
  if (entry === undefined) {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    try {
      const module = new api.Module(bytesOf(shared ? binaries.shared : binaries.unshared));
      entry = { exports: new api.Instance(module, { env: { memory } }).exports, memory };
    } catch {
      entry = null;
    }
    cache.set(binaries, entry);
  }
  return entry ?? undefined;
}
