/**
 * The channel shuffle as an imported ShuffleNet holds it (NHWC inside tensorpress): Transpose to
 * NCHW, Reshape to [n, g, C/g, h, w], Transpose of the two group axes, Reshape back to [n, C, h, w],
 * Transpose to NHWC. Output channel j·g + i is input channel i·(C/g) + j: a fixed permutation.
 */
import { intsAttr, type Graph, type Node } from '@tensorpress/core-tensor';

/** A recognised channel shuffle: its five nodes, its group count and output → input channel map. */
export interface ChannelShuffle {
  /** The nodes in order: Transpose, Reshape, Transpose, Reshape, Transpose. */
  readonly nodes: readonly Node[];
  readonly groups: number;
  readonly channels: number;
  /** `source[p]` is the input channel at output channel `p`. */
  readonly source: readonly number[];
}

function soleConsumer(graph: Graph, node: Node, op: string): Node | undefined {
  const out = node.outputs[0]!;
  if (graph.outputs.includes(out)) return undefined;
  const cs = graph.consumers(out);
  return cs.length === 1 && cs[0]!.node.op === op && cs[0]!.input === 0 ? cs[0]!.node : undefined;
}

const same = (a: readonly number[], b: readonly number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);

/** The channel shuffle that starts at Transpose `t1`, if it is one. */
export function matchShuffle(graph: Graph, t1: Node): ChannelShuffle | undefined {
  if (t1.op !== 'Transpose' || !same(intsAttr(t1, 'perm', []), [0, 3, 1, 2])) return undefined;
  const x = graph.info(t1.inputs[0]!).shape;
  if (x.length !== 4) return undefined;
  const [, h, w, c] = x as [number | null, number, number, number];
  const r1 = soleConsumer(graph, t1, 'Reshape');
  const t2 = r1 && soleConsumer(graph, r1, 'Transpose');
  const r2 = t2 && soleConsumer(graph, t2, 'Reshape');
  const t3 = r2 && soleConsumer(graph, r2, 'Transpose');
  if (!r1 || !t2 || !r2 || !t3) return undefined;
  const s1 = graph.info(r1.outputs[0]!).shape;
  const s2 = graph.info(r2.outputs[0]!).shape;
  if (s1.length !== 5 || s2.length !== 4) return undefined;
  const [, g, cpg, h1, w1] = s1 as [number | null, number, number, number, number];
  if (g * cpg !== c || h1 !== h || w1 !== w || g < 2 || cpg < 1) return undefined;
  if (!same(intsAttr(t2, 'perm', []), [0, 2, 1, 3, 4]) || !same(s2.slice(1) as number[], [c, h, w]) || !same(intsAttr(t3, 'perm', []), [0, 2, 3, 1])) return undefined;
  const source: number[] = [];
  for (let j = 0; j < cpg; j++) for (let i = 0; i < g; i++) source.push(i * cpg + j);
  return { nodes: [t1, r1, t2, r2, t3], groups: g, channels: c, source };
}

/** The shuffle whose last node (the Transpose back to NHWC) is `t3`, if any. */
export function shuffleEndingAt(graph: Graph, t3: Node): ChannelShuffle | undefined {
  let n: Node | undefined = t3;
  for (let k = 0; k < 4 && n; k++) n = graph.producer(n.inputs[0]!)?.node;
  return n ? matchShuffle(graph, n) : undefined;
}
