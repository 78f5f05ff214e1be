import type { AnyAlgorithmDefinition } from '@tensorpress/core-tensor';

/** What {@link discoverAlgorithms} found in one package. */
export interface DiscoveredPackage {
  readonly name: string;
  /** False when the package is not installed. */
  readonly installed: boolean;
  /** Algorithm names it provides. */
  readonly algorithms: readonly string[];
  /** Why an installed package failed to load (it is then skipped). */
  readonly error?: string;
}

/** Every algorithm definition found, and where they came from. */
export interface DiscoveredAlgorithms {
  readonly definitions: readonly AnyAlgorithmDefinition[];
  readonly packages: readonly DiscoveredPackage[];
}

/**
 * The published technique packages of the tensorpress family and the algorithms each provides:
 * the packages the CLI tries to load, and the "run npm i X" hints for a config that names an
 * algorithm of one that is not installed. Only packages that exist are listed (a test checks each
 * row against the package's own algorithm list), so a hint never points at nothing.
 */
export const KNOWN_TECHNIQUES: Readonly<Record<string, readonly string[]>> = {
  '@tensorpress/binary': ['binarization'],
  '@tensorpress/distill': ['knowledge_distillation'],
  '@tensorpress/pruning': ['filter_pruning'],
  '@tensorpress/quant': ['quantization', 'dorefa', 'pact', 'tqt', 'lsq', 'post_training_quantization', 'inq', 'int8_training'],
  '@tensorpress/sparsity': ['magnitude_sparsity', 'nm_sparsity', 'l0_sparsity', 'rb_sparsity'],
};

/** The technique packages of the tensorpress family, in the order they are tried. */
export function techniquePackages(): string[] {
  return Object.keys(KNOWN_TECHNIQUES).sort();
}

/** Algorithm name to the package that provides it, from {@link KNOWN_TECHNIQUES}. */
export function algorithmHints(): Record<string, string> {
  return Object.fromEntries(Object.entries(KNOWN_TECHNIQUES).flatMap(([pkg, names]) => names.map((n) => [n, pkg])));
}

/** True for a value shaped like an `AlgorithmDefinition`. */
export function isAlgorithmDefinition(v: unknown): v is AnyAlgorithmDefinition {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return false;
  const d = v as Partial<Record<keyof AnyAlgorithmDefinition, unknown>>;
  const schema = d.schema as { safeParse?: unknown } | undefined;
  return (
    typeof d.algorithm === 'string' &&
    typeof d.version === 'number' &&
    typeof d.create === 'function' &&
    typeof schema === 'object' &&
    schema !== null &&
    typeof schema.safeParse === 'function'
  );
}

/**
 * The export holding a package's algorithm definitions: `<package>Algorithms`, the package's name
 * without scope in camelCase (`@tensorpress/quant` -> `quantAlgorithms`, `@tensorpress/mixed-precision`
 * -> `mixedPrecisionAlgorithms`).
 */
function algorithmListName(packageName: string): string {
  const base = packageName.slice(packageName.lastIndexOf('/') + 1);
  return `${base.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase())}Algorithms`;
}

function isNotFound(e: unknown, name: string): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND') && String(err.message).includes(name);
}

/**
 * Finds the algorithms of every installed technique package: each package in `packages` (default:
 * every package of {@link KNOWN_TECHNIQUES}) is imported if present, and the definitions in its
 * `<package>Algorithms` list (see {@link algorithmListName}) are collected. Nothing registers itself
 * on import; a package that is not installed is reported as such, so a config naming one of its
 * algorithms gets the "run npm i X" hint of {@link algorithmHints}.
 */
export async function discoverAlgorithms(packages: readonly string[] = techniquePackages()): Promise<DiscoveredAlgorithms> {
  const byName = new Map<string, AnyAlgorithmDefinition>();
  const found: DiscoveredPackage[] = [];
  for (const name of packages) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(name)) as Record<string, unknown>;
    } catch (e) {
      if (isNotFound(e, name)) found.push({ name, installed: false, algorithms: [] });
      else found.push({ name, installed: true, algorithms: [], error: e instanceof Error ? e.message : String(e) });
      continue;
    }
    const listName = algorithmListName(name);
    const list = mod[listName];
    if (!Array.isArray(list)) {
      found.push({ name, installed: true, algorithms: [], error: `${name} exports no ${listName} list of algorithm definitions` });
      continue;
    }
    const algorithms: string[] = [];
    for (const v of list) {
      if (!isAlgorithmDefinition(v)) continue;
      if (!byName.has(v.algorithm)) byName.set(v.algorithm, v);
      if (!algorithms.includes(v.algorithm)) algorithms.push(v.algorithm);
    }
    found.push({ name, installed: true, algorithms });
  }
  return { definitions: [...byName.values()], packages: found };
}
