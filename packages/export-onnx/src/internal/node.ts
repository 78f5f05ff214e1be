import { TensorpressError } from '@tensorpress/core-tensor';

/**
 * Node's built-in modules, fetched with `process.getBuiltinModule` (Node >= 20.16) instead of an
 * `import`: browser bundlers never see them, so this package bundles with no Node built-ins on its
 * import path. Only the functions that take file paths (readOnnx, checkParity on a path, external
 * data) call it; in a browser they throw, naming the byte-taking function to use instead.
 */
interface Builtins {
  'node:fs': typeof import('node:fs');
  'node:fs/promises': typeof import('node:fs/promises');
  'node:path': typeof import('node:path');
}

export function nodeBuiltin<K extends keyof Builtins>(id: K, caller: string, instead: string): Builtins[K] {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id) as Builtins[K] | undefined;
  if (mod == null) {
    throw new TensorpressError('INPUT_INVALID', `${caller} reads files and needs Node (>= 20.16); in a browser use ${instead}`, { caller });
  }
  return mod;
}
