/**
 * Seeded mutations of pipeline configs: what a user's typo, a bad copy-paste or a hostile file
 * can make of a valid config. Pure data in, data out: no tensorpress import beyond the RNG.
 */
import { createRng, type Rng } from '@tensorpress/core-tensor';

/** A JSON-like value (numbers may be NaN or ±Infinity: objects are handed over as they are). */
export type Value = null | boolean | number | string | Value[] | { [k: string]: Value };
type Seg = string | number;

/** A valid config to start from: an example file, or one expanded with every default. */
export interface ConfigBase {
  readonly name: string;
  readonly config: { [k: string]: Value };
}

/** Mutation families; each case applies one (sometimes two). */
export const MUTATION_KINDS = [
  'key-typo',
  'wrong-type',
  'out-of-range',
  'bad-value',
  'unknown-algorithm',
  'stacked',
  'duplicate-entry',
  'bad-regex',
  'scope-names',
  'plan',
  'huge-array',
  'deep-nesting',
  'remove-key',
  'top-level',
  'json-text',
] as const;
/** One mutation family. */
export type MutationKind = (typeof MUTATION_KINDS)[number];

/** Relative frequency of each family (key typos first: the bug this target was written for). */
const WEIGHTS: Readonly<Record<MutationKind, number>> = {
  'key-typo': 30,
  'wrong-type': 10,
  'out-of-range': 12,
  'bad-value': 6,
  'unknown-algorithm': 5,
  stacked: 8,
  'duplicate-entry': 3,
  'bad-regex': 5,
  'scope-names': 4,
  plan: 5,
  'huge-array': 2,
  'deep-nesting': 2,
  'remove-key': 3,
  'top-level': 1,
  'json-text': 6,
};

/** One mutated config: the input handed to `parsePipelineConfig` (an object, or JSON text) and what was done. */
export interface ConfigMutation {
  readonly index: number;
  readonly base: string;
  readonly kinds: readonly MutationKind[];
  /** What was changed, e.g. `key-typo $.compression[0].params → "parms"`. */
  readonly description: string;
  readonly input: unknown;
  /** JSON paths of keys a key typo renamed (for the coverage count). */
  readonly renamedKeys: readonly string[];
}

/** What a mutation may draw on: the installed algorithms and the model's node names. */
export interface MutationContext {
  readonly algorithms: readonly string[];
  readonly nodeNames: readonly string[];
}

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(xs.length)]!;

function pathText(path: readonly Seg[]): string {
  return '$' + path.map((s) => (typeof s === 'number' ? `[${s}]` : `.${s}`)).join('');
}

/** Every node of the value with its path (containers included), in a stable order. */
function nodes(v: Value, path: Seg[] = [], out: { path: Seg[]; value: Value }[] = []): { path: Seg[]; value: Value }[] {
  out.push({ path, value: v });
  if (Array.isArray(v)) v.forEach((x, i) => nodes(x, [...path, i], out));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) nodes(x, [...path, k], out);
  return out;
}

function parentOf(root: Value, path: readonly Seg[]): { [k: string]: Value } | Value[] {
  let v = root;
  for (const s of path.slice(0, -1)) v = (v as Record<Seg, Value>)[s]!;
  return v as { [k: string]: Value } | Value[];
}

function setAt(root: Value, path: readonly Seg[], value: Value): void {
  (parentOf(root, path) as Record<Seg, Value>)[path[path.length - 1]!] = value;
}

/** Misspellings of a key or a value: an edit, a case change, snake/kebab case, a plural. */
export function typo(rng: Rng, word: string): string {
  const i = rng.int(Math.max(1, word.length));
  const letter = 'abcdefghijklmnopqrstuvwxyz'[rng.int(26)]!;
  const variants: (() => string)[] = [
    () => word.slice(0, i) + word.slice(i + 1),
    () => (word.length > 1 ? word.slice(0, i) + (word[i + 1] ?? '') + (word[i] ?? '') + word.slice(i + 2) : word + word),
    () => word.slice(0, i) + (word[i] ?? '') + word.slice(i),
    () => word.slice(0, i) + letter + word.slice(i + 1),
    () => word.slice(0, i) + letter + word.slice(i),
    () => word.toLowerCase(),
    () => word.toUpperCase(),
    () => word.charAt(0).toUpperCase() + word.slice(1),
    () => word.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`),
    () => word.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`),
    () => word.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase()),
    () => (word.endsWith('s') ? word.slice(0, -1) : `${word}s`),
    () => ` ${word}`,
    () => `${word} `,
  ];
  return pick(rng, variants)();
}

const WRONG_TYPES: readonly Value[] = ['x', '', 3, -1, 0, true, false, null, [], {}, [1, 2], { a: 1 }, ['a'], '8', '{re}.*'];
const NUMBERS: readonly number[] = [
  -1, 0, -0, 0.5, 1, 1.5, 2, 7, 9, 16, 255, 1e308, -1e308, 2 ** 53 + 2, 1e-320, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 65_537, 10_001, 11, 100,
];
const BAD_REGEXES: readonly string[] = ['{re}((', '{re}[', '{re}*', '{re}(?<', '{re}\\', '{re}a{2,1}', '{re}(?<n>a)\\k<m>', '{re}(a+)+$', '{re}(?=', '{re}'];
const FOREIGN_ALGORITHMS: readonly string[] = ['magnitude_sparsity', 'knowledge_distillation', 'binarization', 'hawq', 'quantisation', '', ' ', 'QUANTIZATION', '__proto__', 'constructor', 'toString'];

function entriesOf(c: { [k: string]: Value }): { [k: string]: Value }[] {
  const comp = c['compression'];
  if (Array.isArray(comp)) return comp.filter((e): e is { [k: string]: Value } => e !== null && typeof e === 'object' && !Array.isArray(e));
  return comp !== null && typeof comp === 'object' ? [comp as { [k: string]: Value }] : [];
}

/**
 * Applies one mutation of `kind` to `c` in place, or returns a replacement (JSON text or a
 * non-object). Returns what it did.
 */
function apply(
  rng: Rng,
  kind: MutationKind,
  c: { [k: string]: Value },
  ctx: MutationContext,
  renamed: string[],
  target?: string,
): { what: string; replacement?: unknown } {
  const all = nodes(c);
  const keyed = all.filter((n) => typeof n.path[n.path.length - 1] === 'string');
  const entries = entriesOf(c);
  const entry = entries.length ? pick(rng, entries) : undefined;
  switch (kind) {
    case 'key-typo': {
      const n = keyed.find((k) => pathText(k.path) === target) ?? pick(rng, keyed);
      const key = n.path[n.path.length - 1] as string;
      const parent = parentOf(c, n.path) as { [k: string]: Value };
      const next = typo(rng, key);
      if (next in parent) return { what: `key-typo ${pathText(n.path)} (no-op: "${next}" exists)` };
      // Rebuild the object so the renamed key keeps its place.
      const rebuilt = Object.fromEntries(Object.entries(parent).map(([k, v]) => [k === key ? next : k, v]));
      for (const k of Object.keys(parent)) delete parent[k];
      Object.assign(parent, rebuilt);
      renamed.push(pathText(n.path));
      return { what: `key-typo ${pathText(n.path)} -> "${next}"` };
    }
    case 'wrong-type': {
      const n = pick(rng, all.filter((x) => x.path.length > 0));
      const v = pick(rng, WRONG_TYPES);
      setAt(c, n.path, structuredClone(v));
      return { what: `wrong-type ${pathText(n.path)} = ${JSON.stringify(v)}` };
    }
    case 'out-of-range': {
      const nums = all.filter((x) => typeof x.value === 'number');
      const n = nums.length ? pick(rng, nums) : pick(rng, all.filter((x) => x.path.length > 0));
      const v = pick(rng, NUMBERS);
      setAt(c, n.path, v);
      return { what: `out-of-range ${pathText(n.path)} = ${String(v)}` };
    }
    case 'bad-value': {
      const strs = all.filter((x) => typeof x.value === 'string' && x.path.length > 0);
      if (!strs.length) return { what: 'bad-value (no string)' };
      const n = pick(rng, strs);
      const v = rng.next() < 0.7 ? typo(rng, n.value as string) : pick(rng, ['', 'x'.repeat(100_000), 'none', 'auto', 'true', '\u0000', '💥']);
      setAt(c, n.path, v);
      return { what: `bad-value ${pathText(n.path)} = ${JSON.stringify(v.slice(0, 40))}` };
    }
    case 'unknown-algorithm': {
      if (!entry) return { what: 'unknown-algorithm (no entry)' };
      const known = typeof entry['algorithm'] === 'string' ? entry['algorithm'] : pick(rng, ctx.algorithms);
      entry['algorithm'] = rng.next() < 0.5 ? typo(rng, known) : pick(rng, FOREIGN_ALGORITHMS);
      return { what: `unknown-algorithm "${String(entry['algorithm'])}"` };
    }
    case 'stacked': {
      const list = Array.isArray(c['compression']) ? (c['compression'] as Value[]) : (c['compression'] = [c['compression'] ?? null]);
      const algorithm = pick(rng, ctx.algorithms);
      list.splice(rng.int(list.length + 1), 0, { algorithm });
      return { what: `stacked + ${algorithm}` };
    }
    case 'duplicate-entry': {
      const list = Array.isArray(c['compression']) ? (c['compression'] as Value[]) : (c['compression'] = [c['compression'] ?? null]);
      if (!list.length) return { what: 'duplicate-entry (empty)' };
      list.push(structuredClone(pick(rng, list)));
      return { what: 'duplicate-entry' };
    }
    case 'bad-regex': {
      if (!entry) return { what: 'bad-regex (no entry)' };
      const re = pick(rng, BAD_REGEXES);
      const where = pick(rng, ['ignoredScopes', 'targetScopes', 'plan'] as const);
      if (where === 'plan') {
        const params = (entry['params'] ??= {}) as { [k: string]: Value };
        if (params === null || typeof params !== 'object' || Array.isArray(params)) return { what: 'bad-regex (params not an object)' };
        params['plan'] = [{ node: re, weightBits: 4 }];
      } else {
        entry[where] = [re];
      }
      return { what: `bad-regex ${where} ${JSON.stringify(re)}` };
    }
    case 'scope-names': {
      if (!entry) return { what: 'scope-names (no entry)' };
      const name = pick(rng, ctx.nodeNames);
      const v = rng.next() < 0.5 ? typo(rng, name) : rng.next() < 0.5 ? name : `{re}${name.slice(0, 3)}.*`;
      const key = rng.next() < 0.5 ? 'ignoredScopes' : 'targetScopes';
      entry[key] = [v];
      return { what: `scope-names ${key} ${JSON.stringify(v)}` };
    }
    case 'plan': {
      if (!entry) return { what: 'plan (no entry)' };
      const params = (entry['params'] ??= {}) as { [k: string]: Value };
      if (params === null || typeof params !== 'object' || Array.isArray(params)) return { what: 'plan (params not an object)' };
      const name = pick(rng, ctx.nodeNames);
      const node = pick(rng, [name, typo(rng, name), `{re}${name}`, `{re}${name.slice(0, 2)}.*`, 'nope', '']);
      const item: { [k: string]: Value } = { node };
      if (rng.next() < 0.8) item['weightBits'] = pick(rng, [2, 4, 8, 9, 1, 3.5]);
      if (rng.next() < 0.5) item['activationBits'] = pick(rng, [4, 8, 0, 16]);
      params['plan'] = [item];
      return { what: `plan ${JSON.stringify(item)}` };
    }
    case 'huge-array': {
      const n = pick(rng, [10_000, 100_000]);
      const where = pick(rng, ['ignoredScopes', 'compression', 'plan'] as const);
      if (where === 'compression') c['compression'] = Array.from({ length: n }, () => ({ algorithm: pick(rng, ctx.algorithms) }));
      else if (!entry) return { what: 'huge-array (no entry)' };
      else if (where === 'plan') entry['params'] = { plan: Array.from({ length: n }, (_, i) => ({ node: `n${i}`, weightBits: 8 })) };
      else entry['ignoredScopes'] = Array.from({ length: n }, (_, i) => `{re}node${i}`);
      return { what: `huge-array ${where} × ${n}` };
    }
    case 'deep-nesting': {
      const depth = pick(rng, [40, 1_000, 20_000]);
      const n = pick(rng, all.filter((x) => x.path.length > 0));
      const array = rng.next() < 0.5;
      if (rng.next() < 0.5) {
        // As text, written directly: JSON.stringify itself recurses and would overflow here.
        setAt(c, n.path, '\u0000deep');
        const deep = (array ? '['.repeat(depth) : '{"a":'.repeat(depth)) + '1' + (array ? ']' : '}').repeat(depth);
        return { what: `deep-nesting text ${pathText(n.path)} depth ${depth}`, replacement: JSON.stringify(c).replace('"\\u0000deep"', deep) };
      }
      let inner: Value = 1;
      for (let i = 0; i < depth; i++) inner = array ? [inner] : { a: inner };
      setAt(c, n.path, inner);
      return { what: `deep-nesting ${pathText(n.path)} depth ${depth}` };
    }
    case 'remove-key': {
      const n = pick(rng, keyed);
      delete (parentOf(c, n.path) as { [k: string]: Value })[n.path[n.path.length - 1] as string];
      return { what: `remove-key ${pathText(n.path)}` };
    }
    case 'top-level': {
      const v = pick(rng, [null, [], 'x', 42, {}, [c], true] as unknown[]);
      return { what: `top-level ${JSON.stringify(v)?.slice(0, 20)}`, replacement: v };
    }
    case 'json-text': {
      const text = JSON.stringify(c);
      const variants: [string, () => string][] = [
        ['duplicate key', () => dupKeyText(rng, c)],
        ['truncated', () => text.slice(0, rng.int(text.length))],
        ['trailing comma', () => text.replace(/}$/, ',}')],
        ['comment', () => `// config\n${text}`],
        ['BOM', () => `\uFEFF${text}`],
        ['__proto__ key', () => text.replace(/^\{/, '{"__proto__": {"compression": []},')],
        ['constructor key', () => text.replace(/"params":\{/, '"params":{"constructor":{"a":1},')],
        ['NaN literal', () => text.replace(/:(\d+(\.\d+)?)/, ':NaN')],
        ['single quotes', () => text.replace(/"/g, "'")],
        ['pretty', () => JSON.stringify(c, null, 2)],
      ];
      const [name, make] = pick(rng, variants);
      return { what: `json-text ${name}`, replacement: make() };
    }
    default: {
      const never: never = kind;
      throw new Error(`unhandled mutation ${String(never)}`);
    }
  }
}

/** JSON text with one key of the config written twice (the first occurrence keeps another value). */
function dupKeyText(rng: Rng, c: { [k: string]: Value }): string {
  const text = JSON.stringify(c);
  const keys = [...text.matchAll(/"([A-Za-z_]+)":/g)];
  if (!keys.length) return text;
  const m = pick(rng, keys);
  const at = m.index;
  return `${text.slice(0, at)}"${m[1]}":${JSON.stringify(pick(rng, WRONG_TYPES))},${text.slice(at)}`;
}

/** Families after which no second one is applied (their result is huge, deep or no longer an object). */
const HEAVY: ReadonlySet<MutationKind> = new Set(['huge-array', 'deep-nesting', 'json-text', 'top-level']);

function pickKind(rng: Rng): MutationKind {
  const total = MUTATION_KINDS.reduce((s, k) => s + WEIGHTS[k], 0);
  let r = rng.next() * total;
  for (const k of MUTATION_KINDS) if ((r -= WEIGHTS[k]) < 0) return k;
  return 'key-typo';
}

/** Every key path of the bases, with the bases that hold it (cached per list of bases). */
const keyIndex = new WeakMap<readonly ConfigBase[], Map<string, ConfigBase[]>>();

/** The key paths of all bases: a key typo draws one uniformly, so every key at every level gets misspelt. */
export function keyPathsOf(bases: readonly ConfigBase[]): Map<string, ConfigBase[]> {
  let index = keyIndex.get(bases);
  if (!index) {
    index = new Map();
    for (const b of bases) {
      for (const n of nodes(b.config)) {
        if (typeof n.path[n.path.length - 1] !== 'string') continue;
        const k = pathText(n.path);
        index.set(k, [...(index.get(k) ?? []), b]);
      }
    }
    keyIndex.set(bases, index);
  }
  return index;
}

/**
 * The `index`-th mutation of the run seeded `seed`: deterministic per (seed, index), so any case
 * can be replayed alone. One family, or two stacked in one case of five.
 */
export function configMutation(bases: readonly ConfigBase[], ctx: MutationContext, seed: number, index: number): ConfigMutation {
  const rng = createRng((seed * 1_000_003 + index) >>> 0);
  const first = pickKind(rng);
  let base = pick(rng, bases);
  let target: string | undefined;
  if (first === 'key-typo') {
    const keys = keyPathsOf(bases);
    target = pick(rng, [...keys.keys()]);
    base = pick(rng, keys.get(target)!);
  }
  const c = structuredClone(base.config);
  const kinds: MutationKind[] = [first];
  // A second family only after one that leaves a small object to walk.
  if (!HEAVY.has(kinds[0]!) && rng.next() < 0.2) kinds.push(pickKind(rng));
  const renamed: string[] = [];
  const done: string[] = [];
  let input: unknown = c;
  for (const kind of kinds) {
    if (typeof input !== 'object' || input === null || Array.isArray(input)) break;
    const r = apply(rng, kind, input as { [k: string]: Value }, ctx, renamed, kind === first ? target : undefined);
    done.push(r.what);
    if ('replacement' in r) input = r.replacement;
  }
  return { index, base: base.name, kinds, description: done.join('; '), input, renamedKeys: renamed };
}
