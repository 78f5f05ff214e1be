/**
 * Private test helpers shared by every package's tests: seeded tensors, closeness checks in the
 * three tiers of DESIGN §5, SQNR, a tensor-leak guard, and the check of a package's algorithm list.
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, createRng, runGraph, type AnyAlgorithmDefinition, type Graph, type ParamData } from '@tensorpress/core-tensor';
import { expect } from 'vitest';

/** Uniform random values in [lo, hi) from a seed (test fixtures only). */
export function seededArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  const rng = createRng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.next();
  return a;
}

/** A seeded uniform tensor. */
export function seededTensor(shape: number[], seed: number, lo = -1, hi = 1): tf.Tensor {
  return tf.tensor(seededArray(shape.reduce((a, b) => a * b, 1), seed, lo, hi), shape);
}

/** Close tier: |a - b| <= atol + rtol * |b| elementwise (defaults atol 1e-6, rtol 1e-3). */
export function expectClose(
  actual: tf.Tensor | ArrayLike<number>,
  expected: tf.Tensor | ArrayLike<number>,
  { atol = 1e-6, rtol = 1e-3, label = '' }: { atol?: number; rtol?: number; label?: string } = {},
): void {
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const b = expected instanceof tf.Tensor ? expected.dataSync() : expected;
  expect(a.length, `${label} length`).toBe(b.length);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i]! - b[i]!) - (atol + rtol * Math.abs(b[i]!));
    if (!(excess <= worstExcess)) {
      worst = i;
      worstExcess = Number.isNaN(excess) ? Infinity : excess;
    }
  }
  if (worst >= 0) {
    expect.fail(`${label} index ${worst}: got ${a[worst]}, expected ${b[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** Largest absolute difference. */
export function maxAbsDiff(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>): number {
  const x = a instanceof tf.Tensor ? a.dataSync() : a;
  const y = b instanceof tf.Tensor ? b.dataSync() : b;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** Signal-to-quantization-noise ratio in dB: 10·log10(Σx² / Σ(x−y)²). */
export function sqnrDb(reference: ArrayLike<number>, approx: ArrayLike<number>): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < reference.length; i++) {
    s += reference[i]! ** 2;
    n += (reference[i]! - approx[i]!) ** 2;
  }
  return n === 0 ? Infinity : 10 * Math.log10(s / n);
}

/** Runs `fn` and asserts the live tensor count is unchanged afterwards. */
export async function expectNoLeak<T>(fn: () => T | Promise<T>, allowance = 0): Promise<T> {
  const before = tf.memory().numTensors;
  const out = await fn();
  const after = tf.memory().numTensors;
  expect(after - before, 'tensors leaked').toBeLessThanOrEqual(allowance);
  return out;
}

/**
 * Gives every BatchNormalization random gamma/beta/mean/var and every Conv/Gemm bias random values,
 * so that each channel contributes and a transform that mishandles one shows in the outputs.
 */
export function randomizeBnStats(graph: Graph, seed = 7): Graph {
  const updates = new Map<string, { data: ParamData }>();
  let s = seed;
  for (const n of graph.nodes) {
    if (n.op === 'BatchNormalization') {
      const c = graph.param(n.inputs[1]!)!.shape[0]!;
      updates.set(n.inputs[1]!, { data: seededArray(c, s++, 0.5, 1.5) });
      updates.set(n.inputs[2]!, { data: seededArray(c, s++, -0.5, 0.5) });
      updates.set(n.inputs[3]!, { data: seededArray(c, s++, -0.5, 0.5) });
      updates.set(n.inputs[4]!, { data: seededArray(c, s++, 0.3, 2) });
    }
    if ((n.op === 'Conv' || n.op === 'Gemm') && (n.inputs[2] ?? '') !== '') {
      updates.set(n.inputs[2]!, { data: seededArray(graph.param(n.inputs[2]!)!.data.length, s++, -0.3, 0.3) });
    }
  }
  return graph.withParams(updates);
}

/** A copy of every param's values by name, to check later that a pure transform left them alone. */
export function snapshotParams(graph: Graph): Map<string, number[]> {
  return new Map(graph.params.map((p) => [p.name, Array.from(p.data)]));
}

/** Asserts the graph still has exactly the params of `snap`, with the same values. */
export function expectParamsUntouched(graph: Graph, snap: Map<string, number[]>): void {
  expect(graph.params.length).toBe(snap.size);
  for (const p of graph.params) expect(Array.from(p.data), p.name).toEqual(snap.get(p.name));
}

/** Runs a single-output graph in eval mode and returns its output's values (the tensor is disposed). */
export function runOutput(graph: Graph, x: tf.Tensor): Float32Array {
  const [y] = runGraph(graph, x);
  const d = y!.dataSync() as Float32Array;
  y!.dispose();
  return d;
}

/** The TensorpressError `fn` throws; fails the test if it throws nothing or something else. */
export function errorOf(fn: () => unknown): TensorpressError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(TensorpressError);
    return e as TensorpressError;
  }
  throw new Error('expected an error');
}

/** The TensorpressError `p` rejects with; fails the test if it resolves or rejects with something else. */
export async function rejectionOf(p: Promise<unknown>): Promise<TensorpressError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TensorpressError);
    return e as TensorpressError;
  }
  throw new Error('expected an error');
}

/** The parts of a zod 4 schema definition the walk reads (duck-typed: test-utils does not import zod). */
interface Def {
  readonly type: string;
  readonly innerType?: unknown;
  readonly in?: unknown;
  readonly out?: unknown;
  readonly element?: unknown;
  readonly shape?: Readonly<Record<string, unknown>>;
  readonly catchall?: unknown;
  readonly options?: readonly unknown[];
  readonly valueType?: unknown;
  readonly items?: readonly unknown[];
}

const defOf = (s: unknown): Def | undefined => (s as { _zod?: { def?: Def } } | undefined)?._zod?.def;

/**
 * JSON paths (from `$`) of every object in a zod schema that accepts keys it does not declare: an
 * object without `.strict()` drops an unknown key silently, so a misspelt option changes nothing
 * and says nothing. Wrappers (default, optional, pipe ...), arrays, unions, records and tuples are
 * walked through.
 */
export function looseObjects(schema: unknown, path = '$', seen = new Set<unknown>()): string[] {
  const d = defOf(schema);
  if (!d || seen.has(schema)) return [];
  seen.add(schema);
  const kids: [string, unknown][] = [];
  switch (d.type) {
    case 'object': {
      const strict = defOf(d.catchall)?.type === 'never';
      for (const [k, v] of Object.entries(d.shape ?? {})) kids.push([`${path}.${k}`, v]);
      const below = kids.flatMap(([p, s]) => looseObjects(s, p, seen));
      return strict ? below : [path, ...below];
    }
    case 'array':
      kids.push([`${path}[]`, d.element]);
      break;
    case 'record':
      kids.push([`${path}[*]`, d.valueType]);
      break;
    case 'union':
      for (const o of d.options ?? []) kids.push([path, o]);
      break;
    case 'tuple':
      (d.items ?? []).forEach((s, i) => kids.push([`${path}[${i}]`, s]));
      break;
    case 'pipe':
      kids.push([path, d.in], [path, d.out]);
      break;
    default:
      if (d.innerType) kids.push([path, d.innerType]);
  }
  return [...new Set(kids.flatMap(([p, s]) => looseObjects(s, p, seen)))];
}

function looksLikeDefinition(v: unknown): v is AnyAlgorithmDefinition {
  if ((typeof v !== 'object' && typeof v !== 'function') || v === null) return false;
  const d = v as Record<string, unknown>;
  return typeof d['algorithm'] === 'string' && typeof d['create'] === 'function' && typeof (d['schema'] as { safeParse?: unknown } | undefined)?.safeParse === 'function';
}

/** `filter_pruning` -> `filterPruning`: the builder's name; the definition's is that plus `Definition`. */
function camelCase(algorithm: string): string {
  return algorithm.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/**
 * Checks a technique package against the definition convention (root README, "Adding a package"):
 * its `<package>Algorithms` list holds every algorithm definition the package exports and nothing
 * else, with unique names; each definition is exported as `<algorithm>Definition` beside a plain
 * builder function `<algorithm>` (both camelCase), names `packageName`, and has a schema that
 * parses `{}` (every parameter optional) to parameters that parse back to themselves (`create`
 * receives validated parameters, which builders validate again) and is strict at every level
 * (an unknown key is an error, never dropped); `create` and the builder, given the defaults, make a
 * builder of that algorithm that carries the definition's stacking rule.
 */
export function expectAlgorithmList(mod: Readonly<Record<string, unknown>>, listName: string, packageName: string): void {
  const list = mod[listName];
  expect(Array.isArray(list), `${listName} is an array`).toBe(true);
  const definitions = list as readonly unknown[];
  expect(definitions.length, `${listName} is not empty`).toBeGreaterThan(0);
  const names = new Set<string>();
  for (const d of definitions) {
    expect(looksLikeDefinition(d), `${listName} holds only algorithm definitions`).toBe(true);
    const def = d as AnyAlgorithmDefinition;
    expect(names.has(def.algorithm), `algorithm "${def.algorithm}" is listed once`).toBe(false);
    names.add(def.algorithm);
    const builderName = camelCase(def.algorithm);
    expect(mod[`${builderName}Definition`], `${builderName}Definition is exported and listed`).toBe(def);
    expect(def.packageName).toBe(packageName);
    expect(Number.isInteger(def.version) && def.version >= 1, `${def.algorithm}: version is a positive integer`).toBe(true);
    expect(def.description.length).toBeGreaterThan(0);
    const parsed = def.schema.safeParse({});
    expect(parsed.success, `${def.algorithm}: every parameter is optional`).toBe(true);
    const again = def.schema.safeParse(parsed.data);
    expect(again.success, `${def.algorithm}: validated parameters are valid input`).toBe(true);
    expect(again.data).toEqual(parsed.data);
    expect(looseObjects(def.schema), `${def.algorithm}: every object of the schema is strict`).toEqual([]);
    const created = def.create({ algorithm: def.algorithm, version: def.version, params: parsed.data, ignoredScopes: [], targetScopes: [] });
    expect(created.algorithm).toBe(def.algorithm);
    expect(created.stacking, `${def.algorithm}: the builder carries the definition's stacking rule`).toEqual(def.stacking);
    const builder = mod[builderName];
    expect(typeof builder, `${builderName} is a plain builder function`).toBe('function');
    expect(looksLikeDefinition(builder), `${builderName} is not itself a definition`).toBe(false);
    const plain = (builder as () => { algorithm: string; stacking?: unknown })();
    expect(plain.algorithm).toBe(def.algorithm);
    expect(plain.stacking).toEqual(def.stacking);
  }
  for (const [name, value] of Object.entries(mod)) {
    if (looksLikeDefinition(value)) expect(definitions.includes(value), `export ${name} is in ${listName}`).toBe(true);
  }
}
