import { intsAttr, numAttr, scopeFilter, type Graph, type Node, type Scopes } from '@tensorpress/core-tensor';
import { channelDependencies, type ChannelStep } from './channel-cut.js';
import { producerChannels } from './internal/channel-walk.js';

/** Ops whose output channels (filters, neurons) may be pruned. */
export type PrunableOp = 'Conv' | 'Gemm' | 'ConvTranspose';

/** How kept channels are counted: any number, a multiple of N, or evenly over grouped-conv blocks. */
export type PruningMode = 'normal' | 'regular' | 'group';

/** Options of {@link pruningGroups}. */
export interface PruningGroupsOptions extends Scopes {
  /** Prune the convolution(s) reading the model input. Default false (as NNCF). */
  pruneFirstConv?: boolean;
  /** Prune convolutions with a stride > 1. Default false (as NNCF). */
  pruneDownsampleConvs?: boolean;
  /** Which producers may lose output channels. Default `['Conv', 'Gemm', 'ConvTranspose']`. */
  operations?: readonly PrunableOp[];
  /** Default `'normal'`: groups constrained by a grouped conv are prunable only in `'group'` mode. */
  mode?: PruningMode;
  /** Regular mode: kept channels per group are a multiple of this. Default 8. */
  multipleOf?: number;
  /** Every producer needs a BatchNormalization right after it (the Slim criteria read its γ). */
  requireBatchNorm?: boolean;
}

/** One pruning group: producers that must lose the same output channels. */
export interface PruningGroup {
  /** Stable id: the first producer's name in graph order. */
  readonly id: string;
  /** Producers cut together, in graph order. */
  readonly producers: readonly string[];
  /** Output channels of each producer. */
  readonly channels: number;
  /** Depthwise convolutions that follow the group (they lose the same channels). */
  readonly followers: readonly string[];
  /** Every node the cut reaches and its role (from channelDependencies). */
  readonly steps: readonly ChannelStep[];
  /**
   * Blocks the kept channels must be spread evenly over (the lcm of every grouped conv's group on
   * the way); 1 when unconstrained.
   */
  readonly blocks: number;
  /** The BatchNormalization right after each producer (same order as `producers`), where there is one. */
  readonly batchNorms: readonly (string | undefined)[];
  readonly prunable: boolean;
  /** Why not, when `prunable` is false. */
  readonly reason?: string;
}

/** What {@link pruningGroups} says about one Conv, ConvTranspose or Gemm node. */
export interface NodeGroupInfo {
  readonly node: string;
  readonly op: string;
  /** The group it belongs to (as producer or depthwise follower); null when none. */
  readonly group: string | null;
  /** `producer`, `follower` (a depthwise conv that follows its producer) or `none`. */
  readonly role: 'producer' | 'follower' | 'none';
  readonly prunable: boolean;
  readonly reason?: string;
  /** Output channels of the node. */
  readonly channels: number;
}

/** Result of {@link pruningGroups}. */
export interface PruningGroupsResult {
  /** Every group found, prunable or not, in graph order of their first producer. */
  readonly groups: readonly PruningGroup[];
  /** Every Conv and Gemm of the graph, in graph order. */
  readonly nodes: readonly NodeGroupInfo[];
}

function outChannels(graph: Graph, node: Node): number {
  return producerChannels(graph, node);
}

function isDepthwise(graph: Graph, node: Node): boolean {
  if (node.op !== 'Conv') return false;
  const w = graph.info(node.inputs[1]!).shape;
  const cin = graph.info(node.inputs[0]!).shape[3];
  const group = numAttr(node, 'group', 1);
  return group > 1 && w[2] === 1 && group === cin;
}

function isDownsample(node: Node): boolean {
  return node.op === 'Conv' && intsAttr(node, 'strides', [1, 1]).some((s) => s > 1);
}

const MAC_OPS = new Set(['Conv', 'Gemm', 'MatMul', 'ConvTranspose']);

/** Producers whose input reaches a graph input without passing another Conv/Gemm/MatMul. */
function firstLayers(graph: Graph): Set<string> {
  const first = new Set<string>();
  const reachesInput = new Map<string, boolean>();
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const reaches = (value: string): boolean => {
    if (inputs.has(value)) return true;
    const cached = reachesInput.get(value);
    if (cached !== undefined) return cached;
    const p = graph.producer(value);
    let r = false;
    if (p && !MAC_OPS.has(p.node.op)) r = p.node.inputs.some((v) => v !== '' && !graph.isParam(v) && reaches(v));
    reachesInput.set(value, r);
    return r;
  };
  for (const n of graph.nodes) if (MAC_OPS.has(n.op) && reaches(n.inputs[0]!)) first.add(n.name);
  return first;
}

const PRODUCER_OPS = new Set(['Conv', 'Gemm', 'ConvTranspose']);

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/**
 * Computes the pruning groups of a graph from core's channel dependencies: convolutions feeding
 * one Add prune the same channels, a depthwise conv follows its producer, Concat places a group's
 * channels at its offset, Flatten→Gemm maps channels to features, and an op that mixes channels
 * (or a graph output, a shared weight) blocks the group. Every Conv and Gemm gets a row saying
 * its group and, when it is not prunable, why.
 */
export function pruningGroups(graph: Graph, options: PruningGroupsOptions = {}): PruningGroupsResult {
  const operations = new Set<string>(options.operations ?? ['Conv', 'Gemm', 'ConvTranspose']);
  const inScope = scopeFilter(options);
  const mode = options.mode ?? 'normal';
  const multipleOf = options.multipleOf ?? 8;
  const first = firstLayers(graph);
  const groups: PruningGroup[] = [];
  const groupOf = new Map<string, PruningGroup>();
  const candidates = graph.nodes.filter((n) => PRODUCER_OPS.has(n.op) && graph.isParam(n.inputs[1]!) && !isDepthwise(graph, n));

  for (const node of candidates) {
    if (groupOf.has(node.name) || !operations.has(node.op)) continue;
    const deps = channelDependencies(graph, node.name);
    const producers = [...deps.producers];
    const followers = deps.steps.filter((s) => s.role === 'depthwise').map((s) => s.node);
    const blocks = deps.groupConstraints.reduce((acc, c) => (acc * c.groups) / gcd(acc, c.groups), 1);
    const batchNorms = producers.map((p) => {
      const out = graph.node(p)!.outputs[0]!;
      const cons = graph.consumers(out);
      return cons.length === 1 && cons[0]!.node.op === 'BatchNormalization' && cons[0]!.input === 0 ? cons[0]!.node.name : undefined;
    });
    let reason: string | undefined;
    const blocker = deps.blockers[0];
    const wrongOp = producers.find((p) => !operations.has(graph.node(p)!.op));
    const ignored = producers.find((p) => !inScope(p));
    const firstOne = producers.find((p) => first.has(p) && graph.node(p)!.op === 'Conv');
    const down = producers.find((p) => isDownsample(graph.node(p)!));
    const noBn = producers.findIndex((_, i) => batchNorms[i] === undefined);
    if (blocker) reason = `the cut is blocked at node "${blocker.node}": ${blocker.reason}`;
    else if (wrongOp) reason = `producer "${wrongOp}" is a ${graph.node(wrongOp)!.op}, which is not in operations`;
    else if (ignored) reason = `producer "${ignored}" is excluded by ignoredScopes/targetScopes, and the group must be cut together`;
    else if (firstOne && !options.pruneFirstConv) reason = `producer "${firstOne}" is the first convolution (set pruneFirstConv to prune it)`;
    else if (down && !options.pruneDownsampleConvs) reason = `producer "${down}" is a downsampling convolution with stride > 1 (set pruneDownsampleConvs to prune it)`;
    else if (blocks > 1 && mode !== 'group') {
      const c = deps.groupConstraints[0]!;
      reason = `grouped Conv "${c.node}" (group=${c.groups}) constrains the group; use mode 'group' to prune it keeping its groups equal`;
    } else if (blocks > 1 && deps.channels % blocks !== 0) {
      reason = `its ${deps.channels} channels cannot be split evenly over the ${blocks} blocks its grouped convs need`;
    } else if (blocks > 1 && deps.channels / blocks < 2) reason = `each of the ${blocks} blocks its grouped convs need has a single channel`;
    else if (mode === 'regular' && deps.channels <= multipleOf) {
      reason = `regular mode keeps a multiple of ${multipleOf} channels and it has only ${deps.channels}`;
    } else if (options.requireBatchNorm && noBn >= 0) {
      reason = `the criterion reads the γ of a BatchNormalization right after producer "${producers[noBn]}", and there is none`;
    }
    const group: PruningGroup = {
      id: producers[0]!,
      producers,
      channels: deps.channels,
      followers,
      steps: deps.steps,
      blocks,
      batchNorms,
      prunable: reason === undefined,
      ...(reason === undefined ? {} : { reason }),
    };
    groups.push(group);
    for (const p of producers) groupOf.set(p, group);
  }

  const followed = new Map<string, PruningGroup>();
  for (const g of groups) for (const f of g.followers) followed.set(f, g);
  const nodes: NodeGroupInfo[] = graph.nodes
    .filter((n) => PRODUCER_OPS.has(n.op))
    .map((n) => {
      const channels = outChannels(graph, n);
      const g = groupOf.get(n.name);
      if (g) return { node: n.name, op: n.op, group: g.id, role: 'producer', prunable: g.prunable, ...(g.reason ? { reason: g.reason } : {}), channels };
      const f = followed.get(n.name);
      if (f) {
        return {
          node: n.name,
          op: n.op,
          group: f.id,
          role: 'follower',
          prunable: f.prunable,
          ...(f.prunable ? {} : { reason: `depthwise: follows group "${f.id}", which is not prunable: ${f.reason!}` }),
          channels,
        };
      }
      let reason: string;
      if (!graph.isParam(n.inputs[1]!)) reason = `its weight "${n.inputs[1]!}" is computed by a node, not stored as a parameter`;
      else if (isDepthwise(graph, n)) reason = 'depthwise: it reads no prunable producer, so no group reaches it';
      else if (!operations.has(n.op)) reason = `${n.op} is not in operations`;
      else reason = 'no pruning group reaches it';
      return { node: n.name, op: n.op, group: null, role: 'none', prunable: false, reason, channels };
    });
  return { groups, nodes };
}
