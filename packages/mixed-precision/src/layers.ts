import { graphStatistics, type Graph } from '@tensorpress/core-tensor';

/** The ops whose weights a plan assigns (the MAC ops). */
export const WEIGHT_OPS: ReadonlySet<string> = new Set(['Conv', 'Gemm', 'MatMul']);

/** One layer with a float weight parameter: what plans are made of. */
export interface WeightLayer {
  /** Node name (what a plan entry names). */
  readonly node: string;
  readonly op: string;
  /** The weight parameter (output channels on the last axis). */
  readonly weight: string;
  /** The bias parameter, when there is one. */
  readonly bias?: string;
  readonly shape: readonly number[];
  /** Weight elements. */
  readonly params: number;
  /** Multiply-accumulates per example. */
  readonly macs: number;
}

/**
 * The layers of a graph with a trainable float32 weight parameter (Conv, Gemm, MatMul), in graph
 * order, with their parameter counts and MACs per example.
 */
export function weightLayers(graph: Graph): WeightLayer[] {
  const stats = new Map(graphStatistics(graph).nodes.map((n) => [n.name, n]));
  const out: WeightLayer[] = [];
  for (const node of graph.nodes) {
    if (!WEIGHT_OPS.has(node.op)) continue;
    const w = graph.param(node.inputs[1] ?? '');
    if (!w || w.dtype !== 'float32' || !w.trainable) continue;
    const b = graph.param(node.inputs[2] ?? '');
    out.push({
      node: node.name,
      op: node.op,
      weight: w.name,
      ...(b ? { bias: b.name } : {}),
      shape: w.shape,
      params: w.shape.reduce((a, d) => a * d, 1),
      macs: stats.get(node.name)?.macs ?? 0,
    });
  }
  return out;
}
