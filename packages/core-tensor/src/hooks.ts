import type * as tf from '@tensorflow/tfjs-core';

/**
 * Where a compression algorithm may act on a running graph:
 * - `weight`: a parameter read by port `input` of `node` (Conv/Gemm weights, BN gamma ...);
 * - `pre`: the activation entering port `input` of `node`, for that node only;
 * - `post`: output `output` of `node`, as every consumer sees it;
 * - `input`: a graph input, as every consumer sees it.
 */
export type InsertionPoint =
  | { readonly type: 'weight'; readonly node: string; readonly input: number }
  | { readonly type: 'pre'; readonly node: string; readonly input: number }
  | { readonly type: 'post'; readonly node: string; readonly output: number }
  | { readonly type: 'input'; readonly name: string };

/** What a hook sees besides the tensor it transforms. */
export interface HookContext {
  /** Train mode (fake-quant ranges update, masks may be resampled, ...). */
  readonly training: boolean;
  readonly point: InsertionPoint;
}

/** A tensor-to-tensor transform run at an insertion point; it must be differentiable where training needs it. */
export type HookFn = (x: tf.Tensor, ctx: HookContext) => tf.Tensor;

/** Algorithm priorities at a shared point: lower runs first (DESIGN §3). */
export const PRIORITY = {
  pruning: 100,
  sparsity: 200,
  binarization: 250,
  quantization: 300,
} as const;

/** A transform registered at an insertion point by an algorithm. */
export interface Hook {
  readonly point: InsertionPoint;
  readonly fn: HookFn;
  /** Lower runs first; see {@link PRIORITY}. */
  readonly priority: number;
  /** The algorithm that registered it (for statistics and errors). */
  readonly algorithm: string;
  /** A stable id, unique per algorithm (for state and debugging). */
  readonly id: string;
}

/** A stable string key of an insertion point. */
export function pointKey(p: InsertionPoint): string {
  switch (p.type) {
    case 'weight':
      return `weight:${p.node}:${p.input}`;
    case 'pre':
      return `pre:${p.node}:${p.input}`;
    case 'post':
      return `post:${p.node}:${p.output}`;
    case 'input':
      return `input:${p.name}`;
  }
}
