/**
 * Multi-threaded XNNPACK for the wasm backend in Node.
 *
 * Why a shim: `@tensorflow/tfjs-backend-wasm` ships a threaded SIMD build but never uses it in Node:
 * its `WASM_HAS_MULTITHREAD_SUPPORT` flag is hard-wired to false there, its pthread workers are
 * started from a `blob:` URL that `worker_threads` refuses, the worker is then told to load the
 * emscripten glue from another Blob (unreadable synchronously in Node), and the C++ side caps the
 * pool at `os.cpus().length / 2` (1 on a 2-core machine). While the backend initializes we:
 *
 * - set the flag, so tfjs picks the threaded binary;
 * - swap the global `Worker` emscripten constructs for a `worker_threads.Worker` subclass that runs
 *   the package's own worker script (`wasm-out/*.worker.js`, as eval code) and points its `load`
 *   message at the package's own glue file (`wasm-out/tfjs-backend-wasm-threaded-simd.js`);
 * - make `os.cpus()` report twice the wanted thread count, which is what lifts the cap.
 *
 * Everything is put back as soon as initialization settles. The workers are unref'd and stay so
 * (emscripten `ref()`s a worker while its pthread runs, and XNNPACK's pool threads run forever,
 * which would keep every process alive): the main thread blocks on them synchronously anyway.
 * Worker errors are reported to the caller instead of thrown (emscripten rethrows them, which
 * would crash the process), so it can fall back to the single-threaded build.
 */
import * as tf from '@tensorflow/tfjs-core';

/** The threaded build pre-starts 8 workers and XNNPACK's pool is capped at 8 threads. */
export const MAX_WASM_THREADS = 8;

/** Patches in place while the wasm backend initializes; see the module docs. */
export interface NodeThreadsShim {
  /** Settles with a reason when a worker failed to start (initialization then never finishes). */
  readonly failed: Promise<string>;
  /** Undoes the global patches; call once initialization has settled either way. */
  restore(): void;
  /** Stops every worker the shim started and ignores their errors (after a failed start). */
  terminate(): void;
}

const NODE_MODULE = 'node:module';
const FLAG = 'WASM_HAS_MULTITHREAD_SUPPORT';

/** Node's `require` (created for this module): built-ins, and `resolve` for the installed packages. */
type NodeRequire = ((id: string) => unknown) & { resolve(id: string): string };

interface WorkerLike {
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  once(event: string, listener: (...args: unknown[]) => void): unknown;
  postMessage(value: unknown, transferList?: readonly unknown[]): void;
  unref(): void;
  terminate(): Promise<number>;
}
type WorkerClass = new (filename: string, options?: Record<string, unknown>) => WorkerLike;

function isNode(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return proc?.versions?.node != null;
}

/** A require function for Node built-ins and the installed packages, or undefined outside Node. */
export async function nodeRequire(): Promise<NodeRequire | undefined> {
  if (!isNode()) return undefined;
  try {
    // Loaded lazily so browser bundles never see a node: import.
    const nodeModule = (await import(/* @vite-ignore */ /* webpackIgnore: true */ NODE_MODULE)) as typeof import('node:module');
    return nodeModule.createRequire(import.meta.url) as NodeRequire;
  } catch {
    return undefined;
  }
}

/** Logical CPUs of this Node process, or undefined outside Node. */
export async function nodeCpuCount(): Promise<number | undefined> {
  const req = await nodeRequire();
  if (req == null) return undefined;
  try {
    const os = req('os') as { availableParallelism?: () => number; cpus(): unknown[] };
    return Math.max(1, os.availableParallelism?.() ?? os.cpus().length);
  } catch {
    return undefined;
  }
}

/**
 * Prepares the next wasm backend initialization to run on `threads` XNNPACK threads. Returns
 * undefined, touching nothing, where that cannot work (not Node, no SharedArrayBuffer, an install
 * without the worker files): the caller then initializes the single-threaded SIMD build.
 */
export async function installNodeThreads(threads: number, wasmMain: string): Promise<NodeThreadsShim | undefined> {
  if (typeof SharedArrayBuffer !== 'function' || typeof Atomics !== 'object') return undefined;
  const req = await nodeRequire();
  if (req == null) return undefined;
  let os: { cpus: (...args: unknown[]) => unknown[] };
  let NodeWorker: WorkerClass;
  let code: string;
  let glue: string;
  try {
    os = req('os') as typeof os;
    NodeWorker = (req('worker_threads') as { Worker: WorkerClass }).Worker;
    const fs = req('fs') as { existsSync(p: string): boolean };
    const path = req('path') as { join(...p: string[]): string; dirname(p: string): string };
    const root = path.dirname(path.dirname(wasmMain));
    glue = path.join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.js');
    const script = (req(path.join(root, 'wasm-out', 'tfjs-backend-wasm-threaded-simd.worker.js')) as { wasmWorkerContents?: unknown })
      .wasmWorkerContents;
    if (typeof script !== 'string' || !script.includes('WasmBackendModuleThreadedSimd(Module)') || !fs.existsSync(glue)) return undefined;
    if (!fs.existsSync(path.join(path.dirname(wasmMain), 'tfjs-backend-wasm-threaded-simd.wasm'))) return undefined;
    // The script holds "\n" escapes inside string literals that its template literal turned into
    // real newlines; tfjs escapes them back the same way before making its Blob.
    code = script.replace(/\n/g, '\\n');
  } catch {
    return undefined;
  }

  const started: WorkerLike[] = [];
  let reportFailure: (reason: string) => void = () => {};
  const failed = new Promise<string>((resolve) => {
    reportFailure = resolve;
  });
  let restored = false;
  let abandoned = false;

  class ThreadWorker extends NodeWorker {
    private readonly errorListeners: ((...args: unknown[]) => void)[] = [];

    constructor(_blobUrl: string, options?: Record<string, unknown>) {
      // No inherited flags: the script is plain CommonJS, and loaders such as `--import tsx`
      // (or `--input-type=module`, which would make it ESM) only slow down or break 8 workers.
      super(code, { ...options, eval: true, execArgv: [] });
      started.push(this);
      this.unref();
      super.on('error', (e: unknown) => {
        if (abandoned) return;
        // During initialization a failure means "use the single-threaded build"; afterwards
        // emscripten's own handling (it throws) beats a main thread waiting forever on a pool.
        if (!restored) reportFailure(`a wasm worker thread failed (${e instanceof Error ? e.message : String(e)})`);
        else for (const l of this.errorListeners) l(e);
      });
    }

    override on(event: string, listener: (...args: unknown[]) => void): this {
      if (event === 'error') this.errorListeners.push(listener);
      else super.on(event, listener);
      return this;
    }

    ref(): void {}

    override postMessage(value: unknown, transferList?: readonly unknown[]): void {
      const msg = value as { cmd?: unknown } | null;
      super.postMessage(msg != null && msg.cmd === 'load' ? { ...msg, urlOrBlob: glue } : value, transferList);
    }
  }

  const g = globalThis as Record<string, unknown>;
  const priorWorker = Object.getOwnPropertyDescriptor(g, 'Worker');
  // emscripten assigns worker_threads' Worker to the global while it starts; keep what it assigns
  // for afterwards, so the global ends up exactly as without the shim.
  let assigned: unknown = priorWorker != null && 'value' in priorWorker ? priorWorker.value : undefined;
  const cpus = os.cpus;
  const flagBefore = tf.env().getFlags()[FLAG];
  try {
    Object.defineProperty(g, 'Worker', {
      configurable: true,
      enumerable: priorWorker?.enumerable ?? false,
      get: () => ThreadWorker,
      set: (v: unknown) => {
        assigned = v;
      },
    });
    os.cpus = function (this: unknown, ...args: unknown[]) {
      const list = cpus.apply(this, args);
      return Array.from({ length: 2 * threads }, (_, i) => list[i % Math.max(1, list.length)]);
    };
    tf.env().set(FLAG, true);
  } catch {
    restore();
    return undefined;
  }

  function restore(): void {
    if (restored) return;
    restored = true;
    os.cpus = cpus;
    if (priorWorker != null) Object.defineProperty(g, 'Worker', priorWorker);
    else if (assigned !== undefined) Object.defineProperty(g, 'Worker', { configurable: true, writable: true, enumerable: true, value: assigned });
    else delete g['Worker'];
    // A later re-initialization without the shim must take the single-threaded build again.
    tf.env().set(FLAG, flagBefore === true);
  }

  return {
    failed,
    restore,
    terminate: () => {
      abandoned = true;
      for (const w of started) void w.terminate().catch(() => {});
      started.length = 0;
    },
  };
}

/**
 * Stops the pre-started workers XNNPACK's pool did not take (7 of 8 for 2 threads, ~10 MB each).
 * Nothing starts threads after initialization, and emscripten tolerates an empty spare list.
 */
export function releaseIdleWorkers(backend: unknown): void {
  try {
    const pthread = (backend as { wasm?: { PThread?: { unusedWorkers?: WorkerLike[] } } }).wasm?.PThread;
    const idle = pthread?.unusedWorkers;
    if (pthread == null || !Array.isArray(idle)) return;
    pthread.unusedWorkers = [];
    for (const w of idle) void w.terminate().catch(() => {});
  } catch {
    // Not the threaded build, or another emscripten layout: keep the spares.
  }
}
