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
  activateWasm,
  initializeBackend,
  registerDilatedConvGradients,
  registerFastGradients,
  unregisterFastGradients,
} from '@tensorpress/kernels';
import type { FastGradientKernel, WasmOptions } from '@tensorpress/kernels';

/** A tfjs backend tensorpress knows how to load. */
export type BackendName = 'tensorflow' | 'webgpu' | 'webgl' | 'wasm' | 'cpu';

/** The order tried when no preference is given: fastest first, `cpu` always works. */
export const DEFAULT_BACKEND_ORDER: readonly BackendName[] = ['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu'];

/**
 * Options of {@link useBackend}. `wasmPaths` (where the `.wasm` binaries are) and `threads`
 * (XNNPACK threads, default `min(2, CPUs)` in Node) are the wasm backend's, documented with
 * `WasmOptions` in `@tensorpress/kernels`, which starts it.
 */
export interface UseBackendOptions extends WasmOptions {
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
    const started = await activate(name, options);
    if (!started.ok) {
      skipped.push({ name, reason: started.reason });
      continue;
    }
    const selection: BackendSelection = {
      name,
      fastGradients: fastGradients(name, options.fastGradients !== false),
    };
    if (skipped.length > 0) selection.fallbackFrom = skipped;
    if (started.threads !== undefined) selection.threads = started.threads;
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

/** Loads and activates one backend (wasm: started by `@tensorpress/kernels`, threads included); says why it cannot be used. */
async function activate(name: BackendName, options: UseBackendOptions): Promise<{ ok: true; threads?: number } | { ok: false; reason: string }> {
  if (name === 'wasm') return await activateWasm(options);
  const reason = (await load(name)) ?? (await initializeBackend(name));
  return reason == null ? { ok: true } : { ok: false, reason };
}

/** Makes sure `name` has a registered factory; returns why not, or undefined. */
async function load(name: Exclude<BackendName, 'wasm'>): Promise<string | undefined> {
  if (tf.findBackendFactory(name) != null) return undefined;
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
