/**
 * The fuzz targets by name. A target module exports a {@link FuzzTarget}; it is loaded lazily, so
 * a run pays only for the target it fuzzes (the parent and every worker load it by this name).
 */
import type { FuzzTarget } from './harness.js';

/** Loaders of the fuzz targets, by the name `npm run fuzz -- <name>` takes. */
export const TARGETS: Readonly<Record<string, () => Promise<FuzzTarget>>> = {
  onnx: async () => (await import('./onnx-target.js')).default,
};

/** Loads a target by name; throws listing the known names. */
export async function loadTarget(name: string): Promise<FuzzTarget> {
  const load = TARGETS[name];
  if (!load) throw new Error(`unknown fuzz target "${name}" (one of: ${Object.keys(TARGETS).join(', ')})`);
  return load();
}
