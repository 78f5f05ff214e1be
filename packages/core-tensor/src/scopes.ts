import { ConfigError } from './errors.js';
import { didYouMean } from './suggest.js';

/** Which nodes an algorithm touches: NNCF's `ignored_scopes` / `target_scopes`. */
export interface Scopes {
  /** Node names never touched. An entry starting with `{re}` is a regular expression matched against the whole name. */
  readonly ignoredScopes?: readonly string[];
  /** If non-empty, only these nodes are touched (same syntax). */
  readonly targetScopes?: readonly string[];
}

function compilePattern(pattern: string): RegExp | string {
  try {
    return new RegExp(`^(?:${pattern.slice(4)})$`);
  } catch (err) {
    return `invalid regular expression "${pattern.slice(4)}": ${(err as Error).message}`;
  }
}

/**
 * Why a node pattern (see {@link nodePattern}) is invalid, or undefined: for schemas that check
 * per-node options as they parse them.
 */
export function nodePatternError(pattern: string): string | undefined {
  if (!pattern.startsWith('{re}')) return undefined;
  const re = compilePattern(pattern);
  return typeof re === 'string' ? re : undefined;
}

/**
 * A predicate for one node pattern: a node name, or `{re}` and a regular expression matched
 * against the whole name (the syntax of scopes and of per-node options such as quant's `plan`).
 * A bad regular expression is a {@link ConfigError} at `path`.
 */
export function nodePattern(pattern: string, path: string): (nodeName: string) => boolean {
  if (!pattern.startsWith('{re}')) return (name) => name === pattern;
  const re = compilePattern(pattern);
  if (typeof re === 'string') throw new ConfigError(path, re);
  return (name) => re.test(name);
}

function compile(entries: readonly string[], path: string): ((name: string) => boolean)[] {
  return entries.map((e, i) => nodePattern(e, `${path}[${i}]`));
}

/**
 * A predicate telling whether a node is in scope. `path` is the JSON path of the scopes object,
 * used in error messages.
 */
export function scopeFilter(scopes: Scopes, path = '$'): (nodeName: string) => boolean {
  const ignored = compile(scopes.ignoredScopes ?? [], `${path}.ignoredScopes`);
  const targets = compile(scopes.targetScopes ?? [], `${path}.targetScopes`);
  return (name) => !ignored.some((m) => m(name)) && (targets.length === 0 || targets.some((m) => m(name)));
}

/**
 * Checks that every scope entry written as a plain node name names a node of the graph: a typo
 * there would silently touch (or spare) the wrong nodes. `{re}` entries may match nothing (one
 * config serves several models). Throws a {@link ConfigError} at the entry's path, with the
 * closest node name. Builders call it when they see the graph.
 */
export function checkScopeNames(scopes: Scopes, nodeNames: Iterable<string>, path = '$'): void {
  const names = new Set(nodeNames);
  for (const key of ['ignoredScopes', 'targetScopes'] as const) {
    (scopes[key] ?? []).forEach((e, i) => {
      if (e.startsWith('{re}') || names.has(e)) return;
      throw new ConfigError(`${path}.${key}[${i}]`, `"${e}" names no node of the graph${didYouMean(e, names)}`, { node: e });
    });
  }
}
