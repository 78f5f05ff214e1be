import { TensorpressError } from '@tensorpress/core-tensor';

/**
 * Node's built-in modules, fetched with `process.getBuiltinModule` (Node >= 20.16) instead of an
 * `import`: bundlers for the browser never see them, so this package bundles with no Node
 * built-ins on its import path. Only the functions that take file paths call it; in a browser they
 * throw `NODE_ONLY` naming the byte- or URL-taking function to use instead.
 */
interface Builtins {
  'node:fs/promises': typeof import('node:fs/promises');
  'node:path': typeof import('node:path');
  'node:zlib': typeof import('node:zlib');
  'node:module': typeof import('node:module');
}

export function nodeBuiltin<K extends keyof Builtins>(id: K, caller: string, instead: string): Builtins[K] {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const mod = proc?.getBuiltinModule?.(id) as Builtins[K] | undefined;
  if (mod == null) {
    throw new TensorpressError('INPUT_INVALID', `${caller} reads files and needs Node (>= 20.16); in a browser use ${instead}`, {
      caller,
    });
  }
  return mod;
}

/** An environment variable in Node; undefined in a browser. */
export function envVar(name: string): string | undefined {
  return (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[name];
}
