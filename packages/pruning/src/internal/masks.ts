import type { Graph } from '@tensorpress/core-tensor';
import type { PruningGroup } from '../groups.js';
import { shuffleEndingAt } from './shuffle.js';

/**
 * Where a group's mask must be applied and how it maps onto each value: for the output of every
 * node the cut reaches (producer, BN, activation, pooling, join, Concat, depthwise, Flatten), the
 * group channel behind each position of the value's last axis, or -1 where the position belongs to
 * another source (a Concat's other inputs). Masking every one of these outputs, not only the BN,
 * keeps the masked model equal to the cut one even where f(0) ≠ 0 (BN shift, a depthwise bias,
 * Sigmoid): whatever reaches a consumer on a pruned channel is exactly zero.
 */
export interface MaskSite {
  readonly node: string;
  /** Group channel per position of the output's last axis (-1: not this group's), or null for the identity. */
  readonly index: readonly number[] | null;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function lastDim(graph: Graph, value: string): number {
  const s = graph.info(value).shape;
  return s[s.length - 1] as number;
}

/** The mask sites of a group, in graph order. */
export function maskSites(graph: Graph, group: PruningGroup): MaskSite[] {
  const maps = new Map<string, number[]>();
  const sites: MaskSite[] = [];
  const identity = range(group.channels);
  const isIdentity = (m: readonly number[]): boolean => m.length === group.channels && m.every((v, i) => v === i);
  for (const step of group.steps) {
    const node = graph.node(step.node)!;
    const out = node.outputs[0]!;
    const inMap = node.inputs.map((v) => maps.get(v)).find((m) => m !== undefined);
    let map: number[] | undefined;
    switch (step.role) {
      case 'producer':
        map = identity;
        break;
      case 'batchnorm':
      case 'passthrough':
      case 'join':
        map = inMap;
        break;
      case 'depthwise': {
        const mult = lastDim(graph, out) / lastDim(graph, node.inputs[0]!);
        map = inMap?.flatMap((c) => range(mult).map(() => c));
        break;
      }
      case 'concat':
        map = node.inputs.flatMap((v) => maps.get(v) ?? range(lastDim(graph, v)).map(() => -1));
        break;
      case 'reshape': {
        const reps = inMap ? lastDim(graph, out) / inMap.length : 0;
        map = inMap ? range(reps).flatMap(() => inMap) : undefined;
        break;
      }
      case 'shuffle': {
        const sh = shuffleEndingAt(graph, node);
        const src = sh ? maps.get(sh.nodes[0]!.inputs[0]!) : undefined;
        map = src && sh ? sh.source.map((c) => src[c]!) : undefined;
        break;
      }
      case 'split': {
        // Slicing keeps zeros zero: no site, only the maps of its outputs.
        let offset = 0;
        for (const o of node.outputs) {
          const d = lastDim(graph, o);
          if (inMap) maps.set(o, inMap.slice(offset, offset + d));
          offset += d;
        }
        continue;
      }
      case 'consumer':
        map = undefined;
        break;
    }
    if (!map) continue;
    maps.set(out, map);
    sites.push({ node: node.name, index: isIdentity(map) ? null : map });
  }
  return sites;
}
