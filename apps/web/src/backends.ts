/**
 * Backends in the page. Bundlers cannot follow `useBackend`'s optional imports (their specifiers
 * are not literals, so that Node installs without the browser backends work), so the page imports
 * the backend packages itself: each registers its factory, and `useBackend` then activates it with
 * gradients registered. The wasm binaries are served under `wasm/` (see vite.config.ts).
 */
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-webgl';
import '@tensorflow/tfjs-backend-webgpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { useBackend, type BackendName, type BackendSelection } from '@tensorpress/core-tensor';

export const PAGE_BACKENDS = ['webgpu', 'webgl', 'wasm', 'cpu'] as const satisfies readonly BackendName[];
export type PageBackend = (typeof PAGE_BACKENDS)[number];

let pathsSet = false;

/** Activates `name` (or the best of the page's backends) and says what the device is. */
export async function startBackend(name?: PageBackend): Promise<BackendSelection & { device: string; software: boolean }> {
  if (!pathsSet) {
    // Relative to the bundled script (assets/) or, in the dev server, to src/: the site root's wasm/.
    setWasmPaths(new URL(/* @vite-ignore */ '../wasm/', import.meta.url).href);
    pathsSet = true;
  }
  const selection = await useBackend(name ?? PAGE_BACKENDS, { threads: 1 });
  const device = await describeDevice(selection.name);
  return { ...selection, device, software: /swiftshader|llvmpipe|software/i.test(device) };
}

/** The renderer (WebGL) or adapter (WebGPU) string; for wasm and cpu the user agent's CPU side. */
export async function describeDevice(name: BackendName): Promise<string> {
  if (name === 'webgl') {
    const gl = document.createElement('canvas').getContext('webgl2');
    if (gl == null) return 'WebGL2 unavailable';
    const ext = gl.getExtension('WEBGL_debug_renderer_info');
    const renderer = ext ? (gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) as string) : (gl.getParameter(gl.RENDERER) as string);
    return `WebGL2: ${renderer}`;
  }
  if (name === 'webgpu') {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
    const adapter = (await gpu?.requestAdapter()) as { info?: Record<string, string> } | null | undefined;
    const info = adapter?.info;
    if (info == null) return 'WebGPU adapter (no info)';
    return `WebGPU: ${[info['vendor'], info['architecture'], info['device'], info['description']].filter((s) => s != null && s !== '').join(' / ')}`;
  }
  return `${name} (CPU, ${navigator.hardwareConcurrency} logical cores)`;
}
