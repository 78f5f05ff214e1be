import { optSlimPrunedCount } from './criteria.js';
import type { PruningMode } from './groups.js';

/** Importance scores of one pruning group (one per output channel). */
export interface GroupScores {
  readonly id: string;
  /** Blocks the kept channels must be spread evenly over (grouped convs); 1 when unconstrained. */
  readonly blocks: number;
  readonly scores: ArrayLike<number>;
}

/** Options of {@link selectFilters}. */
export interface SelectionOptions {
  /** Default `'normal'`. */
  readonly mode?: PruningMode;
  /** Regular mode's N. Default 8. */
  readonly multipleOf?: number;
  /** `'layer'` (default): every group prunes `ratio` of its own filters; `'global'`: one ranking of normalised scores. */
  readonly ranking?: 'layer' | 'global';
  /**
   * `'fraction'` (default): `ratio` is the fraction of filters pruned; `'energy'` (OptSlim): the
   * pruned filters hold at most `ratio` of `Σs²`.
   */
  readonly rule?: 'fraction' | 'energy';
}

/** Scores divided by their root mean square, so that layers of different scale rank together. */
export function normalizeScores(scores: ArrayLike<number>): number[] {
  const s = Array.from(scores);
  const rms = Math.sqrt(s.reduce((a, v) => a + v * v, 0) / Math.max(1, s.length));
  return rms > 0 ? s.map((v) => v / rms) : s;
}

/** How many channels a group of `channels` keeps when `pruned` are wanted gone, rounded as `mode` says. */
export function roundedKeep(channels: number, pruned: number, blocks: number, mode: PruningMode, multipleOf: number): number {
  const want = Math.min(channels, Math.max(1, channels - pruned));
  if (blocks > 1) return Math.max(1, Math.ceil(want / blocks)) * blocks;
  if (mode === 'regular') {
    const k = Math.max(multipleOf, Math.ceil(want / multipleOf) * multipleOf);
    return k >= channels ? channels : k;
  }
  return want;
}

/** Indices of the `count` largest scores among `indices` (ties keep the lower index). */
function topIndices(scores: ArrayLike<number>, indices: readonly number[], count: number): number[] {
  return [...indices].sort((a, b) => scores[b]! - scores[a]! || a - b).slice(0, count);
}

/** The kept channels of a group: the highest scores, evenly per block when `blocks > 1`; sorted ascending. */
export function keepHighest(scores: ArrayLike<number>, keepCount: number, blocks = 1): number[] {
  const c = scores.length;
  const size = c / blocks;
  const perBlock = keepCount / blocks;
  const keep: number[] = [];
  for (let b = 0; b < blocks; b++) {
    keep.push(...topIndices(scores, Array.from({ length: size }, (_, i) => b * size + i), perBlock));
  }
  return keep.sort((a, b) => a - b);
}

/**
 * Chooses the channels every group keeps at pruning level `ratio` in [0, 1) (or a ratio per group
 * id, with layer ranking: a per-layer plan). With `'layer'`
 * ranking each group prunes its own lowest scores; with `'global'` ranking the scores of all groups
 * (each divided by its root mean square) are ranked together. The count is then rounded by the mode
 * (regular: a multiple of N; grouped convs: the same count in every block) and never drops below
 * one channel (one per block). Returns the kept indices by group id.
 */
export function selectFilters(
  groups: readonly GroupScores[],
  ratio: number | ((groupId: string) => number),
  options: SelectionOptions = {},
): Map<string, number[]> {
  const mode = options.mode ?? 'normal';
  const multipleOf = options.multipleOf ?? 8;
  const rule = options.rule ?? 'fraction';
  const pruned = new Map<string, number>();
  const countFor = (scores: ArrayLike<number>, r: number): number => (rule === 'energy' ? optSlimPrunedCount(scores, r) : Math.floor(r * scores.length + 1e-9));
  if ((options.ranking ?? 'layer') === 'layer') {
    for (const g of groups) pruned.set(g.id, countFor(g.scores, typeof ratio === 'number' ? ratio : ratio(g.id)));
  } else {
    if (typeof ratio !== 'number') throw new TypeError('selectFilters: per-group ratios need layer ranking');
    const pool: { g: string; v: number; i: number }[] = [];
    for (const g of groups) normalizeScores(g.scores).forEach((v, i) => pool.push({ g: g.id, v, i }));
    const n = countFor(pool.map((p) => p.v), ratio);
    pool.sort((a, b) => a.v - b.v || a.i - b.i);
    for (const g of groups) pruned.set(g.id, 0);
    for (const p of pool.slice(0, n)) pruned.set(p.g, pruned.get(p.g)! + 1);
  }
  const out = new Map<string, number[]>();
  for (const g of groups) {
    const k = roundedKeep(g.scores.length, pruned.get(g.id)!, g.blocks, mode, multipleOf);
    out.set(g.id, keepHighest(g.scores, k, g.blocks));
  }
  return out;
}
