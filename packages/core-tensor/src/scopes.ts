import { ConfigError } from './errors.js';

/** Which nodes an algorithm touches: NNCF's `ignored_scopes` / `target_scopes`. */
export interface Scopes {
  /** Node names never touched. An entry starting with `{re}` is a regular expression matched against the whole name. */
  readonly ignoredScopes?: readonly string[];
  /** If non-empty, only these nodes are touched (same syntax). */
  readonly targetScopes?: readonly string[];
}

function compile(entries: readonly string[], path: string): ((name: string) => boolean)[] {
  return entries.map((e, i) => {
    if (e.startsWith('{re}')) {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${e.slice(4)})$`);
      } catch (err) {
        throw new ConfigError(`${path}[${i}]`, `invalid regular expression "${e.slice(4)}": ${(err as Error).message}`);
      }
      return (name: string) => re.test(name);
    }
    return (name: string) => name === e;
  });
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
