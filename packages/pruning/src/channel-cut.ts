import { TensorpressError, type Graph } from '@tensorpress/core-tensor';
import { ChannelWalk, producerChannels, range } from './internal/channel-walk.js';

/** Which output channels of which producers {@link cutChannels} keeps. */
export interface ChannelCutSpec {
  /** Conv or Gemm nodes cut together (a pruning group); all have the same number of output channels. */
  readonly producers: readonly string[];
  /** Output channels kept by every producer, sorted ascending, unique, at least one. */
  readonly keep: readonly number[];
}

/** What a channel cut does at a node it reaches. */
export type ChannelRole =
  /** Output channels removed (a listed Conv or Gemm). */
  | 'producer'
  /** Input channels removed from its weight (Conv, grouped Conv, Gemm, MatMul); output unchanged. */
  | 'consumer'
  /** Depthwise Conv: loses whole channels (weight blocks, bias, group) and passes the cut on. */
  | 'depthwise'
  /** BatchNormalization: its four parameters are cut. */
  | 'batchnorm'
  /** Channel-wise op (activation, pooling, Pad ...): passes the cut on unchanged. */
  | 'passthrough'
  /** Add/Sub/Mul/Div (or Concat off the channel axis): every operand must be cut the same way. */
  | 'join'
  /** Concat over channels: the cut moves to the input's offset; other inputs are untouched. */
  | 'concat'
  /** Flatten or a Reshape that keeps channels innermost: feature r belongs to channel r % C. */
  | 'reshape'
  /** The last Transpose of a channel shuffle: the cut is permuted (every shuffle block keeps the same channels). */
  | 'shuffle'
  /** Split over channels: each output keeps its share of the cut. */
  | 'split';

/** A node a channel cut reaches, in graph order. */
export interface ChannelStep {
  readonly node: string;
  readonly op: string;
  readonly role: ChannelRole;
}

/** Result of {@link channelDependencies}: what cutting one producer's output channels involves. */
export interface ChannelDependencies {
  /**
   * The producers that must be cut together with the given one, itself included, in graph order:
   * the closure over joins (a residual Add needs every branch cut the same way).
   */
  readonly producers: readonly string[];
  /** Output channels of each producer. */
  readonly channels: number;
  /** Every node the cut reaches, in graph order, and what happens there. */
  readonly steps: readonly ChannelStep[];
  /**
   * Grouped convolutions on the way (as producer or consumer): the channels kept must be spread
   * evenly over their `groups` equal blocks of the channel axis they see.
   */
  readonly groupConstraints: readonly { readonly node: string; readonly groups: number }[];
  /** Why the channels cannot be cut at all; empty when {@link cutChannels} can cut them. */
  readonly blockers: readonly { readonly node: string; readonly reason: string }[];
}

function checkProducers(graph: Graph, producers: readonly string[], fn: string): number {
  if (producers.length === 0) throw new TensorpressError('TRANSFORM_INVALID', `${fn}: producers is empty`);
  let channels: number | undefined;
  const seen = new Set<string>();
  for (const name of producers) {
    if (seen.has(name)) throw new TensorpressError('TRANSFORM_INVALID', `${fn}: producer "${name}" is listed twice`, { node: name });
    seen.add(name);
    const n = graph.node(name);
    if (!n) throw new TensorpressError('TRANSFORM_INVALID', `${fn}: no node is called "${name}"`, { node: name });
    if (n.op !== 'Conv' && n.op !== 'Gemm' && n.op !== 'ConvTranspose') {
      throw new TensorpressError('TRANSFORM_INVALID', `${fn}: producer "${name}" is a ${n.op}; only Conv, ConvTranspose and Gemm outputs can be cut`, {
        node: name,
      });
    }
    const c = producerChannels(graph, n);
    if (channels !== undefined && c !== channels) {
      throw new TensorpressError(
        'TRANSFORM_INVALID',
        `${fn}: producers must have the same number of output channels, but "${producers[0]}" has ${channels} and "${name}" has ${c}`,
        { node: name },
      );
    }
    channels = c;
  }
  return channels!;
}

/**
 * Physically removes output channels: every producer (Conv or Gemm) keeps only `keep`, and the
 * cut follows the data to every consumer: BatchNormalization parameters, channel-wise activations,
 * pooling, Pad (off the channel axis), Add/Sub/Mul/Div joins (every operand must be cut the same
 * way), Concat over channels (the cut moves to the input's offset), depthwise Convs (which lose
 * whole channels and pass the cut on), grouped Convs (evenly per group), plain Conv, Gemm and
 * MatMul consumers (input slices of their weight) and Flatten / channel-innermost Reshape before a
 * Gemm (feature r belongs to channel r % C). Pure: the input graph and its buffers are untouched.
 *
 * @throws TensorpressError `TRANSFORM_INVALID` naming the node where the cut cannot go on: a join
 *   with an operand from a producer not in `producers`, a graph output, an op that mixes channels
 *   (Softmax over channels, Transpose, a Reshape that moves channels), a shared weight, uneven groups.
 */
export function cutChannels(graph: Graph, spec: ChannelCutSpec): Graph {
  const channels = checkProducers(graph, spec.producers, 'cutChannels');
  const keep = [...spec.keep];
  if (keep.length === 0) throw new TensorpressError('TRANSFORM_INVALID', 'cutChannels: keep is empty; a layer needs at least one channel');
  keep.forEach((k, i) => {
    if (!Number.isInteger(k) || k < 0 || k >= channels) {
      throw new TensorpressError('TRANSFORM_INVALID', `cutChannels: keep[${i}] = ${k} is not a channel index in [0, ${channels})`);
    }
    if (i > 0 && k <= keep[i - 1]!) throw new TensorpressError('TRANSFORM_INVALID', `cutChannels: keep must be sorted ascending and unique (keep[${i}] = ${k})`);
  });
  if (keep.length === channels) return graph;
  const walk = new ChannelWalk(graph, spec.producers, keep, 'apply');
  walk.run();
  return walk.build();
}

/**
 * What cutting the output channels of `producer` involves, without changing anything: the group of
 * producers that must be cut together (closed over Add/Sub/Mul/Div joins, e.g. every branch of a
 * residual stage), every node the cut reaches, the grouped convolutions that constrain which
 * channels may go, and the blockers (graph outputs, ops that mix channels) that forbid the cut.
 * `pruningGroups` builds its pruning groups from this.
 */
export function channelDependencies(graph: Graph, producer: string): ChannelDependencies {
  const channels = checkProducers(graph, [producer], 'channelDependencies');
  if (channels < 2) {
    return { producers: [producer], channels, steps: [], groupConstraints: [], blockers: [{ node: producer, reason: 'it has a single output channel' }] };
  }
  const group = new Set([producer]);
  for (;;) {
    const ordered = graph.nodes.filter((n) => group.has(n.name)).map((n) => n.name);
    // A representative cut (drop channel 0): what the cut reaches does not depend on which channels go.
    const walk = new ChannelWalk(graph, ordered, range(channels).slice(1), 'analyze');
    walk.run();
    const fresh = [...walk.missing].filter((p) => !group.has(p));
    const mismatch = fresh.find((p) => {
      return producerChannels(graph, graph.node(p)!) !== channels;
    });
    if (fresh.length === 0 || mismatch) {
      const blockers = [...walk.blockers];
      if (mismatch) blockers.push({ node: mismatch, reason: `it joins the group but has a different number of output channels` });
      return { producers: ordered, channels, steps: walk.steps, groupConstraints: walk.groupConstraints, blockers };
    }
    for (const p of fresh) group.add(p);
  }
}
