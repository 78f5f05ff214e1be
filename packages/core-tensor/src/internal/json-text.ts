/**
 * JSON text helpers shared by the saved-graph and (CLI) checkpoint formats and configs: numbers JSON
 * cannot hold (Infinity, NaN, -0) as tagged objects, the position of a syntax error (JSON.parse's
 * messages do not always carry one), and what JSON.parse hides (a key written twice, deep nesting).
 */

/** The tag of a number JSON cannot hold. */
export type NonFinite = 'Infinity' | '-Infinity' | 'NaN' | '-0';

/** JSON has no Infinity, NaN or -0: those travel as `{ "$float": "..." }`. */
export function encodeNumber(v: number): number | { $float: NonFinite } {
  if (Number.isNaN(v)) return { $float: 'NaN' };
  if (v === Infinity) return { $float: 'Infinity' };
  if (v === -Infinity) return { $float: '-Infinity' };
  if (Object.is(v, -0)) return { $float: '-0' };
  return v;
}

/** The inverse of {@link encodeNumber}. */
export function decodeNumber(v: number | { $float: NonFinite }): number {
  if (typeof v === 'number') return v;
  return v.$float === 'NaN' ? NaN : v.$float === 'Infinity' ? Infinity : v.$float === '-Infinity' ? -Infinity : -0;
}

const TAGS = new Set<string>(['Infinity', '-Infinity', 'NaN', '-0']);

/** `JSON.stringify` with every number kept exactly: non-finite numbers and -0 are tagged. */
export function stringifyExact(value: unknown): string {
  // The replacer sees -0 as a number; `this[key]` is the raw value (toJSON not applied to numbers).
  return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' ? encodeNumber(v) : v));
}

/** Turns the tags of {@link stringifyExact} back into numbers, in a parsed JSON value (a copy). */
export function untagNumbers(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(untagNumbers);
  if (typeof value === 'object' && value !== null) {
    const o = value as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '$float' && typeof o['$float'] === 'string' && TAGS.has(o['$float'])) {
      return decodeNumber(o as { $float: NonFinite });
    }
    return Object.fromEntries(keys.map((k) => [k, untagNumbers(o[k])]));
  }
  return value;
}

/** Parses JSON text; a syntax error becomes `fail(message, position, line, column)`. */
export function parseJsonText(text: string, fail: (what: string, where: { position: number; line: number; column: number }) => never): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    const { pos, what } = scanJson(text) ?? { pos: -1, what: 'unknown syntax error' };
    const before = text.slice(0, Math.max(pos, 0));
    const line = before.split('\n').length;
    const column = pos - before.lastIndexOf('\n');
    return fail(pos >= 0 ? what : (e as Error).message, { position: pos, line, column });
  }
}

/** A problem {@link scanJson} found: where (offset, and for a problem of shape the JSON path) and what. */
export interface JsonProblem {
  readonly pos: number;
  readonly what: string;
  readonly path?: readonly (string | number)[];
}

/**
 * The first problem of JSON text, found by recursive descent: a syntax error, with its offset
 * (JSON.parse's messages do not always carry one). Given `maxDepth`, also what JSON.parse hides in
 * text it accepts, with the JSON path: a key written twice in one object (JSON.parse keeps the
 * last, so the first is silently ignored) and nesting deeper than `maxDepth`.
 */
export function scanJson(s: string, maxDepth?: number): JsonProblem | undefined {
  let i = 0;
  const path: (string | number)[] = [];
  const stop = (what: string, at?: readonly (string | number)[]): never => {
    throw Object.assign(new Error(what), { pos: i, path: at });
  };
  const ws = (): void => {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === '\n' || s[i] === '\r')) i++;
  };
  const str = (): void => {
    i++;
    while (i < s.length) {
      const c = s.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c === 0x5c) {
        i++;
        const e = s[i];
        if (e === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(s.slice(i + 1, i + 5))) stop('invalid \\u escape');
          i += 5;
        } else if (e !== undefined && '"\\/bfnrt'.includes(e)) i++;
        else stop('invalid escape in a string');
        continue;
      }
      if (c < 0x20) stop('control character in a string');
      i++;
    }
    stop('unterminated string');
  };
  const num = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (depth: number): void => {
    ws();
    if (depth > 1000) stop('nesting too deep');
    const c = s[i];
    if (c === '{' || c === '[') {
      if (maxDepth !== undefined && depth >= maxDepth) stop(`nested deeper than ${maxDepth} levels; no config needs that`, [...path]);
      const close = c === '{' ? '}' : ']';
      i++;
      ws();
      if (s[i] === close) {
        i++;
        return;
      }
      const keys = new Set<string>();
      for (let index = 0; ; index++) {
        if (c === '{') {
          ws();
          if (s[i] !== '"') stop('expected a property name in double quotes');
          const start = i;
          str();
          const key = maxDepth === undefined ? '' : (JSON.parse(s.slice(start, i)) as string);
          if (maxDepth !== undefined && keys.has(key)) stop(`key "${key}" is written twice in one object; JSON keeps only the last, so remove one`, [...path, key]);
          keys.add(key);
          path.push(key);
          ws();
          if (s[i] !== ':') stop("expected ':' after a property name");
          i++;
        } else path.push(index);
        value(depth + 1);
        path.pop();
        ws();
        if (s[i] === ',') {
          i++;
          continue;
        }
        if (s[i] === close) {
          i++;
          return;
        }
        stop(`expected ',' or '${close}'`);
      }
    }
    if (c === '"') return str();
    for (const lit of ['true', 'false', 'null']) {
      if (s.startsWith(lit, i)) {
        i += lit.length;
        return;
      }
    }
    num.lastIndex = i;
    if (num.test(s)) {
      i = num.lastIndex;
      return;
    }
    stop(i >= s.length ? 'unexpected end of input' : `unexpected character ${JSON.stringify(c)}`);
  };
  try {
    value(0);
    ws();
    if (i < s.length) stop('unexpected data after the JSON value');
  } catch (e) {
    const { pos, path: at } = e as { pos: number; path?: readonly (string | number)[] };
    return at ? { pos, what: (e as Error).message, path: at } : { pos, what: (e as Error).message };
  }
  return undefined;
}
