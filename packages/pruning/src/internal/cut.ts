import { graphStatistics, type Graph } from '@tensorpress/core-tensor';
import { cutChannels } from '../channel-cut.js';
import type { PruningGroup } from '../groups.js';

/** `graph` with every group physically cut to its kept channels (groups keeping everything are skipped). */
export function cutAll(graph: Graph, groups: readonly PruningGroup[], keep: ReadonlyMap<string, readonly number[]>): Graph {
  let g = graph;
  for (const group of groups) {
    const k = keep.get(group.id);
    if (!k || k.length >= group.channels) continue;
    g = cutChannels(g, { producers: group.producers, keep: k });
  }
  return g;
}

/** FLOPs and params of `graph` after the cut, per example (core statistics). */
export function cutTotals(graph: Graph, groups: readonly PruningGroup[], keep: ReadonlyMap<string, readonly number[]>): { flops: number; params: number } {
  const t = graphStatistics(cutAll(graph, groups, keep)).total;
  return { flops: t.flops, params: t.params };
}
