/** Typed reads of one Keras layer's config. */
import type { LayerDef, Topology } from './keras-topology.js';
import { invalid, show } from './json.js';

/** Typed access to one layer's config; errors name the JSON path. */
export class LayerConfig {
  constructor(
    readonly def: LayerDef,
    private readonly topo: Pick<Topology, 'kerasMajor' | 'tfjsMajor'>,
  ) {}

  get kerasMajor(): number {
    return this.topo.kerasMajor;
  }

  get tfjsMajor(): number | null {
    return this.topo.tfjsMajor;
  }

  get name(): string {
    return this.def.name;
  }

  raw(key: string): unknown {
    return this.def.config[key];
  }

  private fail(key: string, expected: string): never {
    invalid([...this.def.path, key], `layer "${this.def.name}" (${this.def.className}): expected ${expected}, got ${show(this.raw(key))}`);
  }

  num(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a number');
    return v;
  }

  /** A number, or null when absent/null. */
  optNum(key: string): number | null {
    const v = this.raw(key);
    if (v === undefined || v === null) return null;
    if (typeof v !== 'number' || Number.isNaN(v)) this.fail(key, 'a number or null');
    return v;
  }

  int(key: string, fallback: number, min = 1): number {
    const v = this.num(key, fallback);
    if (!Number.isInteger(v) || v < min) this.fail(key, `an integer >= ${min}`);
    return v;
  }

  bool(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, 'true or false');
    return v;
  }

  str(key: string, fallback: string): string {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string') this.fail(key, 'a string');
    return v;
  }

  /** An int or a pair of ints (Keras' kernel_size, strides, ...). */
  pair(key: string, fallback: readonly [number, number] | null, min = 1): [number, number] {
    const v = this.raw(key);
    if ((v === undefined || v === null) && fallback) return [fallback[0], fallback[1]];
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= min;
    if (ok(v)) return [v, v];
    if (Array.isArray(v) && v.length === 2 && ok(v[0]) && ok(v[1])) return [v[0], v[1]];
    this.fail(key, `an integer >= ${min} or a pair of them`);
  }

  ints(key: string, min: number): number[] {
    const v = this.raw(key);
    if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= min)) {
      this.fail(key, `a list of integers >= ${min}`);
    }
    return v as number[];
  }

  /** Axis as an int or a one-element list. */
  axis(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'number' && Number.isInteger(v)) return v;
    if (Array.isArray(v) && v.length === 1 && Number.isInteger(v[0])) return v[0] as number;
    this.fail(key, 'an integer axis');
  }

  /** Weights of a layer frozen in Keras stay frozen. */
  get trainable(): boolean {
    return this.raw('trainable') !== false;
  }
}
