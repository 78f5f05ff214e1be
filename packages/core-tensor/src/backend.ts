/**
 * Backend selection. tensorpress runs on `@tensorflow/tfjs-core` and picks the fastest backend that
 * loads: `tensorflow` (tfjs-node-gpu, then tfjs-node), `webgpu`, `webgl`, `wasm`, `cpu`. Every
 * backend package except cpu is an optional peer, so each is loaded with a dynamic `import()` and a
 * missing one is simply skipped. Nothing registers on import: backends, gradients and the fast
 * kernels of `@tensorpress/kernels` are installed by {@link useBackend} / {@link ensureGradients}.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from './errors.js';
import {
  MAX_WASM_THREADS,
  installNodeThreads,
  nodeCpuCount,
  registerDilatedConvGradients,
  registerFastGradients,
  releaseIdleWorkers,
  unregisterFastGradients,
} from '@tensorpress/kernels';
import type { FastGradientKernel } from '@tensorpress/kernels';

/** A tfjs backend tensorpress knows how to load. */
export type BackendName = 'tensorflow' | 'webgpu' | 'webgl' | 'wasm' | 'cpu';

/** The order tried when no preference is given: fastest first, `cpu` always works. */
export const DEFAULT_BACKEND_ORDER: readonly BackendName[] = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'];

/** Options of {@link useBackend}. */
export interface UseBackendOptions {
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
  /**
   * Serve convolution gradients on wasm/cpu with tensorpress' fast kernels (default true). `false`
   * puts tfjs' own kernels back (on wasm three of them do not exist, so conv training fails there).
   */
  fastGradients?: boolean;
}

/** A backend that was tried and skipped, with the reason. */
export interface SkippedBackend {
  name: BackendName;
  reason: string;
}

/** What {@link useBackend} selected. */
export interface BackendSelection {
  /** The active backend. */
  name: BackendName;
  /** Backends tried before `name` and skipped, in order; absent when the first choice loaded. */
  fallbackFrom?: SkippedBackend[];
  /** XNNPACK threads the wasm backend runs on (wasm only). */
  threads?: number;
  /** Gradient kernels served by tensorpress' fast implementations on this backend. */
  fastGradients: FastGradientKernel[];
}

const INSTALL_HINT: Record<BackendName, string> = {
  tensorflow: 'install @tensorflow/tfjs-node (or @tensorflow/tfjs-node-gpu on a CUDA machine); it needs internet at install time to fetch libtensorflow',
  webgpu: 'install @tensorflow/tfjs-backend-webgpu and run in a browser with WebGPU (navigator.gpu)',
  webgl: 'install @tensorflow/tfjs-backend-webgl and run in a browser with WebGL',
  wasm: 'install @tensorflow/tfjs-backend-wasm',
  cpu: 'install @tensorflow/tfjs-backend-cpu',
};

let gradientsLoaded: Promise<void> | undefined;

/**
 * Makes `tf.grad` work in Node: tfjs-core's Node bundle registers no gradient functions, while the
 * Node bundle of `@tensorflow/tfjs-layers` registers all of them into tfjs-core's global registry
 * when it loads. Also installs convolution gradients that accept dilation rates above 1.
 * Idempotent; every training entry point awaits it.
 */
export function ensureGradients(): Promise<void> {
  gradientsLoaded ??= (async () => {
    if (tf.getGradient('Conv2D') == null) {
      try {
        await import('@tensorflow/tfjs-layers');
      } catch (e) {
        gradientsLoaded = undefined;
        throw new TensorpressError(
          'BACKEND_UNAVAILABLE',
          `gradients are unavailable: @tensorflow/tfjs-layers could not be loaded (${message(e)}); install @tensorflow/tfjs-layers`,
        );
      }
    }
    if (tf.getGradient('Conv2D') == null) {
      gradientsLoaded = undefined;
      throw new TensorpressError(
        'BACKEND_UNAVAILABLE',
        'gradients are unavailable: @tensorflow/tfjs-layers loaded but registered no gradients into this @tensorflow/tfjs-core; make sure one copy of @tensorflow/tfjs-core is installed (npm dedupe)',
      );
    }
    registerDilatedConvGradients();
  })();
  return gradientsLoaded;
}

/**
 * Activates a tfjs backend and makes it ready for training: gradients registered, fast
 * convolution-gradient kernels installed (wasm and cpu).
 *
 * - No preference: tries `tensorflow`, `webgpu`, `webgl`, `wasm`, `cpu` in that order.
 * - A name: that backend or a `TensorpressError` with code `BACKEND_UNAVAILABLE` saying what to
 *   install.
 * - A list: the first of them that loads, or `BACKEND_UNAVAILABLE` listing why each failed.
 *
 * @example
 * const { name, fallbackFrom } = await useBackend();       // best available
 * await useBackend('wasm');                                  // exactly wasm
 * await useBackend(['wasm', 'cpu']);                         // wasm, else cpu
 */
export async function useBackend(
  preference?: BackendName | readonly BackendName[],
  options: UseBackendOptions = {},
): Promise<BackendSelection> {
  const order = preference == null ? DEFAULT_BACKEND_ORDER : typeof preference === 'string' ? [preference] : preference;
  if (order.length === 0) throw new TensorpressError('BACKEND_UNAVAILABLE', 'useBackend: the list of backends is empty');
  for (const name of order) {
    if (!DEFAULT_BACKEND_ORDER.includes(name)) {
      throw new TensorpressError(
        'BACKEND_UNAVAILABLE',
        `useBackend: unknown backend '${String(name)}'; expected one of ${DEFAULT_BACKEND_ORDER.join(', ')}`,
        { backend: name },
      );
    }
  }
  await ensureGradients();
  const skipped: SkippedBackend[] = [];
  for (const name of order) {
    const reason = await activate(name, options);
    if (reason != null) {
      skipped.push({ name, reason });
      continue;
    }
    const selection: BackendSelection = {
      name,
      fastGradients: fastGradients(name, options.fastGradients !== false),
    };
    if (skipped.length > 0) selection.fallbackFrom = skipped;
    if (name === 'wasm') selection.threads = await wasmThreads();
    return selection;
  }
  const why = skipped.map((s) => `${s.name}: ${s.reason}`).join('; ');
  const hint = skipped.length === 1 ? `; ${INSTALL_HINT[skipped[0]!.name]}` : '';
  throw new TensorpressError('BACKEND_UNAVAILABLE', `no requested backend could be loaded (${why})${hint}`, {
    tried: skipped,
  });
}

function fastGradients(name: BackendName, enable: boolean): FastGradientKernel[] {
  if (enable) return registerFastGradients(name);
  unregisterFastGradients(name);
  return [];
}

/** The active tfjs backend's name, or `null` when none has been initialized yet. */
export function currentBackend(): string | null {
  // ENGINE.backendName is a plain field: reading it does not initialize a backend.
  return tf.getBackend() ?? null;
}

/** Loads and activates one backend; returns why it cannot be used, or undefined on success. */
async function activate(name: BackendName, options: UseBackendOptions): Promise<string | undefined> {
  const loaded = await load(name, options);
  if (loaded != null) return loaded;
  if (name === 'wasm' && tf.engine().registry['wasm'] == null) return await initWasm(options);
  return await initialize(name);
}

async function initialize(name: BackendName): Promise<string | undefined> {
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

/**
 * First initialization of the wasm backend: multi-threaded in Node when more than one thread is
 * wanted and the threads shim can start, else tfjs' own choice. Never fails because of threads.
 */
async function initWasm(options: UseBackendOptions): Promise<string | undefined> {
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
  if (shim == null) return await initialize('wasm');

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('the threaded wasm build did not start in time'), THREADED_INIT_TIMEOUT_MS);
    (timer as { unref?: () => void }).unref?.();
  });
  let failure: string | undefined;
  try {
    const outcome = await Promise.race([
      initialize('wasm').then((reason) => ({ reason, stuck: false })),
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
  const single = await initialize('wasm');
  return single == null ? undefined : `${single}; threaded start: ${failure}`;
}

/** Makes sure `name` has a registered factory; returns why not, or undefined. */
async function load(name: BackendName, options: UseBackendOptions): Promise<string | undefined> {
  if (name !== 'wasm' && tf.findBackendFactory(name) != null) return undefined;
  switch (name) {
    case 'tensorflow': {
      const reasons: string[] = [];
      for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
        const r = await importOptional(pkg);
        if (r == null && tf.findBackendFactory('tensorflow') != null) return undefined;
        reasons.push(r ?? `${pkg} registered its backend into another copy of @tensorflow/tfjs-core`);
      }
      return `${reasons.join('; ')}; ${INSTALL_HINT.tensorflow}`;
    }
    case 'webgpu': {
      const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
      if (nav?.gpu == null) return 'WebGPU is not available here (no navigator.gpu)';
      return await importBackend('webgpu', '@tensorflow/tfjs-backend-webgpu');
    }
    case 'webgl': {
      if (!hasWebGL()) return 'WebGL is not available here (not a browser with a WebGL context)';
      return await importBackend('webgl', '@tensorflow/tfjs-backend-webgl');
    }
    case 'wasm':
      return await loadWasm(options);
    case 'cpu':
      if (tf.findBackendFactory('cpu') != null) return undefined;
      try {
        await import('@tensorflow/tfjs-backend-cpu');
      } catch (e) {
        return `@tensorflow/tfjs-backend-cpu could not be loaded (${message(e)}); ${INSTALL_HINT.cpu}`;
      }
      return tf.findBackendFactory('cpu') != null ? undefined : 'cpu registered into another copy of @tensorflow/tfjs-core';
  }
}

async function importBackend(name: BackendName, pkg: string): Promise<string | undefined> {
  const r = await importOptional(pkg);
  if (r != null) return `${r}; ${INSTALL_HINT[name]}`;
  return tf.findBackendFactory(name) != null ? undefined : `${pkg} registered into another copy of @tensorflow/tfjs-core`;
}

/** Minimal surface of `@tensorflow/tfjs-backend-wasm` used here. */
interface WasmModule {
  setWasmPaths(prefixOrFileMap: string | Record<string, string>, usePlatformFetch?: boolean): void;
  setThreadsCount?(n: number): void;
  getThreadsCount?(): number;
}

let wasmModule: WasmModule | undefined;

async function loadWasm(options: UseBackendOptions): Promise<string | undefined> {
  if (wasmModule == null) {
    try {
      wasmModule = (await import(/* @vite-ignore */ /* webpackIgnore: true */ WASM_PKG)) as WasmModule;
    } catch (e) {
      return `@tensorflow/tfjs-backend-wasm could not be loaded (${message(e)}); ${INSTALL_HINT.wasm}`;
    }
  }
  if (tf.findBackendFactory('wasm') == null) return '@tensorflow/tfjs-backend-wasm registered into another copy of @tensorflow/tfjs-core';
  // Paths only matter before the backend's first initialization; later calls are no-ops.
  if (tf.engine().registry['wasm'] == null) {
    const paths = options.wasmPaths ?? (await nodeWasmFolder());
    try {
      if (paths != null) wasmModule.setWasmPaths(paths);
    } catch {
      // Already initialized by someone else: their settings stand.
    }
  }
  return undefined;
}

const WASM_PKG = '@tensorflow/tfjs-backend-wasm';
const NODE_MODULE = 'node:module';

/** The installed wasm package's main file (a file path, so it works from any install layout). */
async function nodeWasmMain(): Promise<string | undefined> {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  if (proc?.versions?.node == null) return undefined;
  try {
    // Loaded lazily so browser bundles never see a node: import.
    const nodeModule = (await import(/* @vite-ignore */ /* webpackIgnore: true */ NODE_MODULE)) as typeof import('node:module');
    return nodeModule.createRequire(import.meta.url).resolve(WASM_PKG);
  } catch {
    return undefined;
  }
}

/** The installed wasm package's dist folder. */
async function nodeWasmFolder(): Promise<string | undefined> {
  return (await nodeWasmMain())?.replace(/[^/\\]+$/, '');
}

async function wasmThreads(): Promise<number> {
  try {
    return wasmModule?.getThreadsCount?.() ?? 1;
  } catch {
    return 1;
  }
}

function hasWebGL(): boolean {
  const doc = (globalThis as { document?: { createElement(tag: string): { getContext(kind: string): unknown } } }).document;
  if (doc == null) return false;
  try {
    const canvas = doc.createElement('canvas');
    return canvas.getContext('webgl2') != null || canvas.getContext('webgl') != null;
  } catch {
    return false;
  }
}

/** Imports a package that may be absent; returns why it failed, or undefined. */
async function importOptional(pkg: string): Promise<string | undefined> {
  try {
    // A non-literal specifier: bundlers and the type checker must not require optional peers.
    await import(/* @vite-ignore */ /* webpackIgnore: true */ pkg);
    return undefined;
  } catch (e) {
    return `${pkg} could not be loaded (${message(e)})`;
  }
}

function message(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const first = m.split('\n')[0] ?? m;
  return first.length > 200 ? `${first.slice(0, 200)}...` : first;
}

// BackendSelection names it: users of core-tensor should not need to import kernels for a type.
export type { FastGradientKernel } from '@tensorpress/kernels';
