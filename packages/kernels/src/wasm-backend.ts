/**
 * Starting tfjs' wasm backend: loading the optional `@tensorflow/tfjs-backend-wasm`, pointing it at
 * its `.wasm` binaries, and in Node running its threaded build through the threads shim
 * (wasm-threads.ts), with the single-threaded build as the fallback. core-tensor's
 * `useBackend('wasm')` calls {@link activateWasm}. Problems come back as reasons (sentences), never
 * thrown: core-tensor turns them into its typed `BACKEND_UNAVAILABLE` error, and this package
 * imports no workspace package.
 */
import * as tf from '@tensorflow/tfjs-core';
import { MAX_WASM_THREADS, installNodeThreads, nodeCpuCount, nodeRequire, releaseIdleWorkers } from './wasm-threads.js';

/** Options of {@link activateWasm} (core-tensor's `useBackend` takes them too). */
export interface WasmOptions {
  /**
   * Where the wasm backend finds its `.wasm` binaries: a folder prefix (ending in `/`) or a map
   * from binary name to URL, as `setWasmPaths` takes. Default in Node: the installed
   * `@tensorflow/tfjs-backend-wasm/dist/` folder; in a browser: next to the bundled script.
   */
  wasmPaths?: string | Record<string, string>;
  /**
   * XNNPACK threads for wasm, 1 to 8. Default in Node: `min(2, CPUs)`, run on the package's
   * threaded SIMD build through worker_threads (falls back to the single-threaded SIMD build if
   * that cannot start); `1` takes the single-threaded build directly. In browsers it only matters
   * where wasm threads work (cross-origin isolated) and defaults to tfjs' choice. Only the first
   * initialization of the wasm backend in a process applies it.
   */
  threads?: number;
}

/** What {@link activateWasm} did: wasm is the active backend on `threads` XNNPACK threads, or `reason` says why not. */
export type WasmActivation = { readonly ok: true; readonly threads: number } | { readonly ok: false; readonly reason: string };

/**
 * Loads `@tensorflow/tfjs-backend-wasm` (an optional peer, imported lazily) and makes wasm the
 * active tfjs backend. The first initialization in a process applies `options`: multi-threaded in
 * Node when more than one thread is wanted and the threads shim can start, else tfjs' own choice;
 * it never fails because of threads. Later calls just switch to the initialized backend.
 */
export async function activateWasm(options: WasmOptions = {}): Promise<WasmActivation> {
  const reason = (await loadWasm(options)) ?? (tf.engine().registry['wasm'] == null ? await initWasm(options) : await initializeBackend('wasm'));
  return reason == null ? { ok: true, threads: wasmThreads() } : { ok: false, reason };
}

/**
 * Activates the registered tfjs backend `name` and waits until it is ready; returns why it failed,
 * or undefined once it is the active backend. core-tensor activates every backend through it.
 */
export async function initializeBackend(name: string): Promise<string | undefined> {
  try {
    if (!(await tf.setBackend(name))) return 'the backend failed to initialize';
    await tf.ready();
  } catch (e) {
    return `the backend failed to initialize (${message(e)})`;
  }
  return tf.getBackend() === name ? undefined : 'the backend failed to initialize';
}

/** How long a threaded wasm start may take before the single-threaded build is used instead. */
const THREADED_INIT_TIMEOUT_MS = 30_000;
/** tfjs-backend-wasm registers its factory with this priority (WASM_PRIORITY). */
const WASM_PRIORITY = 2;

/** First initialization of the wasm backend (see {@link activateWasm}). */
async function initWasm(options: WasmOptions): Promise<string | undefined> {
  const cpus = await nodeCpuCount();
  const requested = options.threads ?? (cpus != null ? Math.min(2, cpus) : undefined);
  const threads = requested == null ? undefined : Math.max(1, Math.min(MAX_WASM_THREADS, Math.floor(requested)));
  const main = cpus != null && threads != null && threads > 1 ? await nodeWasmMain() : undefined;
  const shim = main != null && threads != null ? await installNodeThreads(threads, main) : undefined;
  try {
    if (threads != null) wasmModule?.setThreadsCount?.(threads);
  } catch {
    // Initialized meanwhile by someone else: their settings stand.
  }
  if (shim == null) return await initializeBackend('wasm');

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('the threaded wasm build did not start in time'), THREADED_INIT_TIMEOUT_MS);
    (timer as { unref?: () => void }).unref?.();
  });
  let failure: string | undefined;
  try {
    const outcome = await Promise.race([
      initializeBackend('wasm').then((reason) => ({ reason, stuck: false })),
      Promise.race([shim.failed, timeout]).then((reason) => ({ reason, stuck: true })),
    ]);
    if (outcome.reason == null) {
      releaseIdleWorkers(tf.backend());
      return undefined;
    }
    failure = outcome.reason;
    shim.terminate();
    if (outcome.stuck) {
      // The pending initialization never settles: start over with a fresh registration.
      const factory = tf.findBackendFactory('wasm');
      tf.removeBackend('wasm');
      if (factory != null) tf.registerBackend('wasm', factory, WASM_PRIORITY);
    }
  } finally {
    clearTimeout(timer);
    shim.restore();
  }
  const single = await initializeBackend('wasm');
  return single == null ? undefined : `${single}; threaded start: ${failure}`;
}

/** Minimal surface of `@tensorflow/tfjs-backend-wasm` used here. */
interface WasmModule {
  setWasmPaths(prefixOrFileMap: string | Record<string, string>, usePlatformFetch?: boolean): void;
  setThreadsCount?(n: number): void;
  getThreadsCount?(): number;
}

let wasmModule: WasmModule | undefined;

const WASM_PKG = '@tensorflow/tfjs-backend-wasm';

/** Makes sure wasm has a registered factory (and its binaries' paths before the first initialization); returns why not, or undefined. */
async function loadWasm(options: WasmOptions): Promise<string | undefined> {
  if (wasmModule == null) {
    try {
      wasmModule = (await import(/* @vite-ignore */ /* webpackIgnore: true */ WASM_PKG)) as WasmModule;
    } catch (e) {
      // In a browser bundle this import cannot resolve (its specifier is not a literal, so that
      // bundlers do not require the optional peer): a page that imported the package itself has
      // registered the factory, and sets the binaries' paths with the package's setWasmPaths.
      if (tf.findBackendFactory('wasm') == null) return `${WASM_PKG} could not be loaded (${message(e)}); install ${WASM_PKG}`;
    }
  }
  if (tf.findBackendFactory('wasm') == null) return `${WASM_PKG} registered into another copy of @tensorflow/tfjs-core`;
  // Paths only matter before the backend's first initialization; later calls are no-ops.
  if (tf.engine().registry['wasm'] == null && wasmModule != null) {
    const paths = options.wasmPaths ?? (await nodeWasmFolder());
    try {
      if (paths != null) wasmModule.setWasmPaths(paths);
    } catch {
      // Already initialized by someone else: their settings stand.
    }
  }
  return undefined;
}

/** The installed wasm package's main file (a file path, so it works from any install layout). */
async function nodeWasmMain(): Promise<string | undefined> {
  try {
    return (await nodeRequire())?.resolve(WASM_PKG);
  } catch {
    return undefined;
  }
}

/** The installed wasm package's dist folder. */
async function nodeWasmFolder(): Promise<string | undefined> {
  return (await nodeWasmMain())?.replace(/[^/\\]+$/, '');
}

function wasmThreads(): number {
  try {
    return wasmModule?.getThreadsCount?.() ?? 1;
  } catch {
    return 1;
  }
}

function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const first = m.split('\n')[0] ?? m;
  return first.length > 200 ? `${first.slice(0, 200)}...` : first;
}
