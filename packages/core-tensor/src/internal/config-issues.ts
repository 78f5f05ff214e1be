import type { z } from 'zod';
import { didYouMean } from '../suggest.js';

type Segment = string | number;
type Issue = z.core.$ZodIssue;

/** The parts of a zod schema definition this module walks (zod 4's `_zod.def`). */
interface Def {
  readonly type: string;
  readonly innerType?: unknown;
  readonly in?: unknown;
  readonly element?: unknown;
  readonly shape?: Readonly<Record<string, unknown>>;
  readonly options?: readonly unknown[];
  readonly valueType?: unknown;
  readonly getter?: () => unknown;
}

function defOf(schema: unknown): Def | undefined {
  return (schema as { _zod?: { def?: Def } } | undefined)?._zod?.def;
}

const WRAPPERS = new Set(['default', 'prefault', 'optional', 'nullable', 'nonoptional', 'catch', 'readonly', 'success']);

/** The schemas a value at this schema may be checked against, wrappers peeled and unions opened. */
function alternatives(schema: unknown, depth = 0): unknown[] {
  const d = defOf(schema);
  if (!d || depth > 32) return [];
  if (WRAPPERS.has(d.type)) return alternatives(d.innerType, depth + 1);
  if (d.type === 'pipe') return alternatives(d.in, depth + 1);
  if (d.type === 'lazy' && d.getter) return alternatives(d.getter(), depth + 1);
  if (d.type === 'union') return (d.options ?? []).flatMap((o) => alternatives(o, depth + 1));
  return [schema];
}

function childrenOf(schema: unknown, seg: Segment): unknown[] {
  return alternatives(schema).flatMap((s) => {
    const d = defOf(s)!;
    if (d.type === 'object' && typeof seg === 'string' && d.shape && Object.hasOwn(d.shape, seg)) return [d.shape[seg]];
    if (d.type === 'array' && typeof seg === 'number') return [d.element];
    if (d.type === 'record') return [d.valueType];
    return [];
  });
}

/** The keys the schema allows for the object at `path` (every object alternative's). */
export function allowedKeys(schema: unknown, path: readonly Segment[]): string[] {
  let at: unknown[] = [schema];
  for (const seg of path) at = at.flatMap((s) => childrenOf(s, seg));
  const keys = new Set<string>();
  for (const s of at.flatMap((x) => alternatives(x))) {
    const d = defOf(s)!;
    if (d.type === 'object' && d.shape) for (const k of Object.keys(d.shape)) keys.add(k);
  }
  return [...keys];
}

/** The value at `path` of `input`, or undefined. */
export function valueAt(input: unknown, path: readonly Segment[]): unknown {
  let v = input;
  for (const seg of path) {
    if (typeof v !== 'object' || v === null || !Object.hasOwn(v, seg)) return undefined;
    v = (v as Record<Segment, unknown>)[seg];
  }
  return v;
}

/** A value as a message shows it: short, JSON where it can be. */
export function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
}

function quoted(values: readonly unknown[]): string {
  return values.map((v) => JSON.stringify(v) ?? String(v)).join(', ');
}

/** What one branch of a failed union expected, from its root issue; undefined if it got deeper. */
function branchExpectation(issues: readonly Issue[]): { expected: string; literals: unknown[] } | undefined {
  const root = issues.find((i) => i.path.length === 0);
  if (!root || issues.some((i) => i.path.length > 0)) return undefined;
  if (root.code === 'invalid_type') return { expected: `a ${root.expected}`, literals: [] };
  if (root.code === 'invalid_value') return { expected: quoted(root.values), literals: [...root.values] };
  return { expected: root.message, literals: [] };
}

/** A failed value and where it is: the JSON path (below the parse prefix) and an actionable message. */
export interface DescribedIssue {
  readonly path: readonly Segment[];
  readonly message: string;
}

/**
 * One zod issue as a user should read it: an unknown key names itself in the path and gets a
 * "did you mean" among the keys the schema allows there; a bad enum value gets one among the
 * values; a failed union says what each alternative expected (or, when the value matched one
 * alternative's type, the issue inside it); a missing key says so; numbers show what was given.
 */
export function describeIssue(issue: Issue, schema: unknown, input: unknown, base: readonly Segment[] = []): DescribedIssue {
  const path = [...base, ...(issue.path as Segment[])];
  const value = valueAt(input, path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const present = new Set(typeof value === 'object' && value !== null ? Object.keys(value) : []);
      const allowed = allowedKeys(schema, path).filter((k) => !present.has(k));
      const [key, ...rest] = issue.keys;
      const hint = didYouMean(key!, allowed);
      const more = rest.length ? ` (also unknown: ${quoted(rest.slice(0, 5))}${rest.length > 5 ? ', ...' : ''})` : '';
      const list = !hint && allowed.length && allowed.length <= 20 ? `; allowed here: ${allowed.join(', ')}` : '';
      return { path: [...path, key!], message: `unknown key "${key}"${hint}${list}${more}` };
    }
    case 'invalid_value': {
      const hint = typeof value === 'string' ? didYouMean(value, issue.values.filter((v): v is string => typeof v === 'string')) : '';
      const what = issue.values.length === 1 ? quoted(issue.values) : `one of ${quoted(issue.values)}`;
      return { path, message: `expected ${what}, got ${show(value)}${hint}` };
    }
    case 'invalid_union': {
      const branches = issue.errors.map(branchExpectation);
      const deeper = issue.errors.find((e, i) => branches[i] === undefined && e.length > 0);
      if (deeper) return describeIssue(pickIssue(deeper), schema, input, path);
      const literals = branches.flatMap((b) => b?.literals ?? []).filter((v): v is string => typeof v === 'string');
      const hint = typeof value === 'string' ? didYouMean(value, literals) : '';
      return { path, message: `expected ${branches.map((b) => b!.expected).join(' or ')}, got ${show(value)}${hint}` };
    }
    case 'invalid_type':
      if (value === undefined && path.length > 0) {
        const parent = valueAt(input, path.slice(0, -1));
        if (typeof parent === 'object' && parent !== null && !Object.hasOwn(parent, path[path.length - 1]!)) {
          return { path, message: `missing: expected ${issue.expected}` };
        }
      }
      return { path, message: `expected ${issue.expected}, got ${typeof value === 'number' || value === null ? show(value) : Array.isArray(value) ? 'array' : typeof value}` };
    case 'too_big':
    case 'too_small':
    case 'not_multiple_of':
      return { path, message: `${issue.message}, got ${show(value)}` };
    default:
      return { path, message: issue.message };
  }
}

/**
 * The issue to report when several failed: an unknown key first (a typo explains the missing
 * key it was meant to be), else zod's first.
 */
export function pickIssue(issues: readonly Issue[]): Issue {
  return issues.find((i) => i.code === 'unrecognized_keys') ?? issues[0]!;
}
