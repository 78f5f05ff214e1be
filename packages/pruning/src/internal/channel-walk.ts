/**
 * The walk behind cutChannels and channelDependencies (../channel-cut.ts): from the producers, in
 * topological order, which channels of every reached value survive and what that changes in
 * parameters and attributes.
 */
import { GraphError, TensorpressError, intsAttr, numAttr, type AttrValue, type Graph, type Node, type Param } from '@tensorpress/core-tensor';
import type { ChannelRole, ChannelStep } from '../channel-cut.js';
import { gatherAxis, gatherGroupedInputs, type ParamSlice } from './channels-gather.js';
import { matchShuffle } from './shuffle.js';

/** Output channels of a producer: a Conv or Gemm weight's last axis, a ConvTranspose's `[kh, kw, cout/group, cin]` axis 2 × group. */
export function producerChannels(graph: Graph, node: Node): number {
  const w = graph.info(node.inputs[1]!).shape as number[];
  if (node.op === 'ConvTranspose') return w[2]! * numAttr(node, 'group', 1);
  return w[w.length - 1]!;
}

/** Channel state of a value whose last axis is being cut. */
interface Cut {
  /** Kept indices along the value's last axis, ascending. */
  readonly keep: readonly number[];
  /** Full size of the last axis before the cut. */
  readonly channels: number;
}

const PASSTHROUGH = new Set([
  'Relu',
  'Clip',
  'LeakyRelu',
  'Sigmoid',
  'Tanh',
  'HardSwish',
  'HardSigmoid',
  'Dropout',
  'Identity',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
]);

const JOINS = new Set(['Add', 'Sub', 'Mul', 'Div']);

/** Thrown in analysis mode to stop propagating past one node; never escapes this module. */
class Stop extends Error {}

export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function lastDim(graph: Graph, value: string): number | null | undefined {
  const s = graph.info(value).shape;
  return s.length === 0 ? undefined : s[s.length - 1];
}

/**
 * Walks the graph in topological order from the producers, computing which channels of every
 * reached value survive and which parameters and attributes change. In `apply` mode any problem
 * throws; in `analyze` mode problems are recorded and only stop the walk past the node at fault.
 */
export class ChannelWalk {
  readonly cuts = new Map<string, Cut>();
  readonly params = new Map<string, ParamSlice>();
  readonly attrs = new Map<string, Record<string, AttrValue>>();
  readonly steps: ChannelStep[] = [];
  readonly blockers: { node: string; reason: string }[] = [];
  readonly groupConstraints: { node: string; groups: number }[] = [];
  /** Producers found upstream of a join operand that is not cut (analysis grows the group with them). */
  readonly missing = new Set<string>();
  private readonly producerSet: Set<string>;

  constructor(
    readonly graph: Graph,
    readonly producers: readonly string[],
    readonly keep: readonly number[],
    readonly mode: 'apply' | 'analyze',
  ) {
    this.producerSet = new Set(producers);
  }

  private fail(node: Node, reason: string): never {
    if (this.mode === 'analyze') {
      this.blockers.push({ node: node.name, reason });
      throw new Stop();
    }
    const who = this.producers.map((p) => `"${p}"`).join(', ');
    throw new TensorpressError('TRANSFORM_INVALID', `cannot cut output channels of ${who}: at node "${node.name}" (${node.op}), ${reason}`, {
      node: node.name,
      op: node.op,
      producers: [...this.producers],
    });
  }

  private step(node: Node, role: ChannelRole): void {
    this.steps.push({ node: node.name, op: node.op, role });
  }

  private current(name: string): ParamSlice {
    const p = this.params.get(name);
    if (p) return p;
    const orig = this.graph.param(name)!;
    return { data: orig.data, shape: orig.shape };
  }

  /** Checks that port `port` of `node` is a parameter read by this node only; returns it (or undefined when absent). */
  private ownParam(node: Node, port: number, what: string): Param | undefined {
    const name = node.inputs[port];
    if (name === undefined || name === '') return undefined;
    const p = this.graph.param(name);
    if (!p) this.fail(node, `its ${what} "${name}" is computed by a node, not stored as a parameter (cut channels before stripping quantization)`);
    const others = this.graph.consumers(name).filter((c) => c.node.name !== node.name);
    if (others.length > 0) {
      this.fail(node, `its ${what} "${name}" is shared with node "${others[0]!.node.name}", which the cut would change too`);
    }
    return p;
  }

  private gather(node: Node, port: number, what: string, axis: number, indices: readonly number[]): void {
    const p = this.ownParam(node, port, what);
    if (!p || this.mode === 'analyze') return;
    this.params.set(p.name, gatherAxis(this.current(p.name), axis, indices));
  }

  private setAttr(node: Node, key: string, value: AttrValue): void {
    this.attrs.set(node.name, { ...(this.attrs.get(node.name) ?? node.attrs), [key]: value });
  }

  private setCut(node: Node, cut: Cut): void {
    const value = node.outputs[0]!;
    if (this.graph.outputs.includes(value)) {
      this.fail(node, `its output "${value}" is a graph output, and cutting its channels would change the model's output`);
    }
    // A cut that keeps everything is no cut: consumers stay as they are.
    if (cut.keep.length < cut.channels) this.cuts.set(value, cut);
  }

  /** Checks that `keep` spreads evenly over `groups` blocks of `channels`; returns the local indices per block. */
  private perGroup(node: Node, groups: number, channels: number, keep: readonly number[], what: string): number[][] {
    const size = channels / groups;
    const local: number[][] = Array.from({ length: groups }, () => []);
    for (const c of keep) local[Math.floor(c / size)]!.push(c % size);
    if (this.mode === 'analyze') {
      this.groupConstraints.push({ node: node.name, groups });
      if (size === 1) this.fail(node, `each of its ${groups} groups has a single ${what}, so no ${what} can be removed without removing a group`);
      return local;
    }
    const k = local[0]!.length;
    if (k === 0 || local.some((l) => l.length !== k)) {
      this.fail(
        node,
        `it has group=${groups} and the kept ${what}s must be spread evenly over the groups, but they are ` +
          `[${local.map((l) => l.length).join(', ')}] per group (the pruning group must keep the same number per group)`,
      );
    }
    return local;
  }

  /** Producers upstream of an operand whose channels the cut would need (through channel-wise ops). */
  private origins(value: string, seen = new Set<string>()): { producers: string[]; blocked?: string } {
    const src = this.graph.producer(value);
    if (!src) return { producers: [], blocked: `"${value}" is a graph input or parameter` };
    const n = src.node;
    if (seen.has(n.name)) return { producers: [] };
    seen.add(n.name);
    if (n.op === 'Gemm' || n.op === 'ConvTranspose') return { producers: [n.name] };
    if (n.op === 'Conv') {
      const w = this.graph.info(n.inputs[1]!).shape;
      const cin = lastDim(this.graph, n.inputs[0]!);
      const depthwise = numAttr(n, 'group', 1) === cin && w[2] === 1 && cin !== 1;
      return depthwise ? this.origins(n.inputs[0]!, seen) : { producers: [n.name] };
    }
    let inputs: string[];
    if (PASSTHROUGH.has(n.op) || n.op === 'BatchNormalization' || n.op === 'Pad' || n.op === 'Softmax') inputs = [n.inputs[0]!];
    else if (JOINS.has(n.op)) {
      const c = lastDim(this.graph, n.outputs[0]!);
      inputs = n.inputs.filter((v) => !this.graph.isParam(v) && lastDim(this.graph, v) === c);
    } else return { producers: [], blocked: `"${value}" comes from ${n.op} "${n.name}"` };
    const out: string[] = [];
    for (const v of inputs) {
      const r = this.origins(v, seen);
      if (r.blocked) return r;
      out.push(...r.producers);
    }
    return { producers: out };
  }

  run(): void {
    for (const node of this.graph.nodes) {
      const ins = node.inputs.map((v) => (v === '' ? undefined : this.cuts.get(v)));
      const isProducer = this.producerSet.has(node.name);
      if (!isProducer && ins.every((c) => c === undefined)) continue;
      try {
        this.visit(node, ins, isProducer);
      } catch (e) {
        if (!(e instanceof Stop)) throw e;
      }
    }
  }

  private visit(node: Node, ins: readonly (Cut | undefined)[], isProducer: boolean): void {
    const x = ins[0];
    if (node.op !== 'Concat' && !JOINS.has(node.op) && ins.some((c, i) => c !== undefined && i > 0)) {
      this.fail(node, `it reads a cut value at input ${ins.findIndex((c, i) => c !== undefined && i > 0)}, which is not a channel-wise activation input`);
    }
    switch (node.op) {
      case 'Conv':
        return this.conv(node, x, isProducer);
      case 'Gemm':
        if (x) {
          this.step(node, 'consumer');
          this.gather(node, 1, 'weight', 0, x.keep);
        }
        if (isProducer) {
          this.step(node, 'producer');
          const out = this.graph.info(node.inputs[1]!).shape[1] as number;
          this.gather(node, 1, 'weight', 1, this.keep);
          this.gather(node, 2, 'bias', 0, this.keep);
          this.setCut(node, { keep: this.keep, channels: out });
        }
        return;
      case 'MatMul': {
        const w = this.graph.param(node.inputs[1]!);
        if (!w || w.shape.length !== 2) this.fail(node, 'only a MatMul by a rank-2 weight parameter can drop input features');
        this.step(node, 'consumer');
        this.gather(node, 1, 'weight', 0, x!.keep);
        return;
      }
      case 'BatchNormalization':
        this.step(node, 'batchnorm');
        for (let i = 1; i <= 4; i++) this.gather(node, i, ['', 'scale', 'bias', 'mean', 'variance'][i]!, 0, x!.keep);
        return this.setCut(node, x!);
      case 'Softmax': {
        const rank = this.graph.info(node.inputs[0]!).shape.length;
        const axis = numAttr(node, 'axis', -1);
        if (axis === -1 || axis === rank - 1) this.fail(node, 'it normalizes over the channel axis, so removing channels changes every other channel');
        this.step(node, 'passthrough');
        return this.setCut(node, x!);
      }
      case 'Pad': {
        const pads = intsAttr(node, 'pads', []);
        const r = pads.length / 2;
        if (pads[r - 1] !== 0 || pads[2 * r - 1] !== 0) this.fail(node, 'it pads the channel axis');
        this.step(node, 'passthrough');
        return this.setCut(node, x!);
      }
      case 'Concat':
        return this.concat(node, ins);
      case 'ConvTranspose':
        return this.convTranspose(node, x, isProducer);
      case 'Transpose':
        return this.shuffle(node, x!);
      case 'Split':
        return this.split(node, x!);
      case 'Flatten':
      case 'Reshape':
        return this.reshape(node, x!);
      default:
        if (PASSTHROUGH.has(node.op)) {
          this.step(node, 'passthrough');
          return this.setCut(node, x!);
        }
        if (JOINS.has(node.op)) return this.join(node, ins);
        this.fail(
          node,
          `${node.op} cannot drop channels; leave this producer out of pruning (ignoredScopes) or remove the channels by hand`,
        );
    }
  }

  private conv(node: Node, x: Cut | undefined, isProducer: boolean): void {
    const wShape = this.graph.info(node.inputs[1]!).shape as number[];
    const [, , cpg, cout] = wShape as [number, number, number, number];
    const group = numAttr(node, 'group', 1);
    const cin = cpg * group;
    const depthwise = group > 1 && cpg === 1;
    if (x) {
      if (group === 1) {
        this.step(node, 'consumer');
        this.gather(node, 1, 'weight', 2, x.keep);
      } else if (depthwise) {
        if (isProducer) this.fail(node, 'a depthwise Conv that receives the cut cannot also be one of its producers');
        this.step(node, 'depthwise');
        const mult = cout / cin;
        const outKeep = x.keep.flatMap((c) => range(mult).map((m) => c * mult + m));
        this.gather(node, 1, 'weight', 3, outKeep);
        this.gather(node, 2, 'bias', 0, outKeep);
        this.setAttr(node, 'group', x.keep.length);
        return this.setCut(node, { keep: outKeep, channels: cout });
      } else {
        this.step(node, 'consumer');
        const local = this.perGroup(node, group, cin, x.keep, 'input channel');
        const w = this.ownParam(node, 1, 'weight');
        if (w && this.mode === 'apply') this.params.set(w.name, gatherGroupedInputs(this.current(w.name), local));
      }
    }
    if (isProducer) {
      this.step(node, 'producer');
      if (group > 1) this.perGroup(node, group, cout, this.keep, 'output channel');
      this.gather(node, 1, 'weight', 3, this.keep);
      this.gather(node, 2, 'bias', 0, this.keep);
      this.setCut(node, { keep: this.keep, channels: cout });
    }
  }

  /** ConvTranspose `[kh, kw, cout/group, cin]`: a consumer loses weight columns (axis 3), a producer (group 1) output channels (axis 2). */
  private convTranspose(node: Node, x: Cut | undefined, isProducer: boolean): void {
    const [, , coutG, cin] = this.graph.info(node.inputs[1]!).shape as [number, number, number, number];
    const group = numAttr(node, 'group', 1);
    if (x) {
      this.step(node, 'consumer');
      if (group > 1) this.perGroup(node, group, cin, x.keep, 'input channel');
      this.gather(node, 1, 'weight', 3, x.keep);
    }
    if (isProducer) {
      if (group > 1) this.fail(node, `a grouped ConvTranspose (group=${group}) cannot lose output channels: every group shares the weight's output axis`);
      this.step(node, 'producer');
      this.gather(node, 1, 'weight', 2, this.keep);
      this.gather(node, 2, 'bias', 0, this.keep);
      this.setCut(node, { keep: this.keep, channels: coutG });
    }
  }

  /**
   * A channel shuffle (see shuffle.ts) permutes channels: it passes the cut on when every one of
   * its `g` blocks keeps the same channels (then the pruned shuffle is the same shuffle with
   * C'/g channels per group). In analysis, producers behind blocks that the cut does not reach
   * join the group (a Concat of branches, as in ShuffleNetV2's downsampling unit).
   */
  private shuffle(node: Node, x: Cut): void {
    const sh = matchShuffle(this.graph, node);
    if (!sh) this.fail(node, 'Transpose cannot drop channels here: it moves the channel axis (only a channel shuffle, Reshape–Transpose–Reshape, passes a cut)');
    const cpg = sh.channels / sh.groups;
    const local: number[][] = Array.from({ length: sh.groups }, () => []);
    for (const c of x.keep) local[Math.floor(c / cpg)]!.push(c % cpg);
    const ref = local.find((l) => l.length < cpg) ?? local[0]!;
    const bad = local.findIndex((l) => !sameList(l, ref));
    if (bad >= 0) {
      if (this.mode === 'analyze') {
        const found = local.map((l, i) => (l.length === cpg ? this.blockOrigins(node.inputs[0]!, i * cpg, (i + 1) * cpg) : { producers: [] }));
        const blocked = found.find((f) => f.blocked);
        if (!blocked && found.some((f) => f.producers.length > 0)) {
          for (const f of found) for (const p of f.producers) this.missing.add(p);
          throw new Stop();
        }
        const why = blocked ? `block ${bad} ${blocked.blocked!}` : `the blocks are cut differently (block 0 keeps ${local[0]!.length}, block ${bad} keeps ${local[bad]!.length} of ${cpg}, at other positions)`;
        this.fail(node, `it shuffles ${sh.groups} blocks of ${cpg} channels and the cut must keep the same channels in each, but ${why}`);
      }
      this.fail(node, `it shuffles ${sh.groups} blocks of ${cpg} channels and the kept channels differ between blocks (the group must keep the same channels in each block)`);
    }
    if (ref.length === 0) this.fail(node, 'the cut removes every channel of a shuffle block');
    const [, r1, , r2, t3] = sh.nodes as [Node, Node, Node, Node, Node];
    for (const r of [r1, r2]) {
      const target = intsAttr(r, 'shape', []);
      const at = r === r1 ? 2 : 1;
      if (target[at]! > 0) {
        target[at] = r === r1 ? ref.length : ref.length * sh.groups;
        this.setAttr(r, 'shape', target);
      }
    }
    this.step(t3, 'shuffle');
    const keep = ref.flatMap((j) => range(sh.groups).map((i) => j * sh.groups + i));
    this.setCut(t3, { keep, channels: sh.channels });
  }

  /** Producers behind channels [lo, hi) of `value`: through channel-wise ops and the input of a Concat that holds exactly them. */
  private blockOrigins(value: string, lo: number, hi: number): { producers: string[]; blocked?: string } {
    const src = this.graph.producer(value)?.node;
    if (src?.op === 'Concat') {
      let offset = 0;
      for (const v of src.inputs) {
        const d = lastDim(this.graph, v) as number;
        if (offset === lo && offset + d === hi) return this.blockOrigins(v, 0, d);
        offset += d;
      }
      return { producers: [], blocked: `spans several inputs of Concat "${src.name}"` };
    }
    if (lo !== 0 || hi !== lastDim(this.graph, value)) return { producers: [], blocked: `is part of "${value}", which no single producer writes` };
    const o = this.origins(value);
    return o.blocked ? { producers: [], blocked: `comes from ${o.blocked}, which cannot join the cut` } : o;
  }

  /** Split over the channel axis: each output keeps its share of the cut (every output must keep one). */
  private split(node: Node, x: Cut): void {
    const rank = this.graph.info(node.inputs[0]!).shape.length;
    const axis = numAttr(node, 'axis', 0);
    if (axis !== -1 && axis !== rank - 1) this.fail(node, 'it splits an axis other than the channels while they are cut');
    const sizes = node.outputs.map((o) => lastDim(this.graph, o) as number);
    const kept: number[] = [];
    let offset = 0;
    node.outputs.forEach((o, k) => {
      const local = x.keep.filter((c) => c >= offset && c < offset + sizes[k]!).map((c) => c - offset);
      if (local.length === 0) this.fail(node, `the cut removes every channel of its output ${k}`);
      kept.push(local.length);
      if (this.graph.outputs.includes(o)) this.fail(node, `its output "${o}" is a graph output`);
      if (local.length < sizes[k]!) this.cuts.set(o, { keep: local, channels: sizes[k]! });
      offset += sizes[k]!;
    });
    this.setAttr(node, 'split', kept);
    this.step(node, 'split');
  }

  private join(node: Node, ins: readonly (Cut | undefined)[]): void {
    const cut = ins.find((c) => c !== undefined)!;
    for (let i = 0; i < ins.length; i++) {
      const v = node.inputs[i]!;
      const c = ins[i];
      if (c) {
        if (!sameList(c.keep, cut.keep) || c.channels !== cut.channels) {
          this.fail(node, `its operands are cut differently (input 0 keeps [${cut.keep.join(', ')}], input ${i} keeps [${c.keep.join(', ')}])`);
        }
        continue;
      }
      const d = lastDim(this.graph, v);
      if (d === undefined || d === 1) continue;
      if (this.graph.isParam(v)) {
        this.gather(node, i, 'constant operand', this.graph.param(v)!.shape.length - 1, cut.keep);
        continue;
      }
      const o = this.origins(v);
      if (this.mode === 'analyze' && !o.blocked && o.producers.length > 0) {
        for (const p of o.producers) this.missing.add(p);
        continue;
      }
      const from = o.blocked ?? `producer(s) ${o.producers.map((p) => `"${p}"`).join(', ')}`;
      this.fail(
        node,
        `input ${i} "${v}" is not cut: it comes from ${from}, which ${o.blocked ? 'cannot join the cut' : 'must be in the producers with the same keep'} ` +
          `(every operand of ${node.op} must lose the same channels)`,
      );
    }
    this.step(node, 'join');
    this.setCut(node, cut);
  }

  private concat(node: Node, ins: readonly (Cut | undefined)[]): void {
    const rank = this.graph.info(node.outputs[0]!).shape.length;
    const axis = numAttr(node, 'axis', -1);
    if (axis !== -1 && axis !== rank - 1) return this.join(node, ins);
    const keep: number[] = [];
    let offset = 0;
    for (let i = 0; i < ins.length; i++) {
      const c = ins[i];
      const d = lastDim(this.graph, node.inputs[i]!);
      if (typeof d !== 'number') this.fail(node, `input ${i} has no static channel count`);
      for (const k of c ? c.keep : range(d)) keep.push(offset + k);
      offset += d;
    }
    this.step(node, 'concat');
    this.setCut(node, { keep, channels: offset });
  }

  private reshape(node: Node, x: Cut): void {
    const inShape = this.graph.info(node.inputs[0]!).shape;
    const outShape = this.graph.info(node.outputs[0]!).shape;
    const c = inShape[inShape.length - 1];
    const l = outShape[outShape.length - 1];
    // Row-major: when the output's innermost axis is a multiple of C, position r on it is channel r % C.
    if (typeof c !== 'number' || typeof l !== 'number' || l % c !== 0) {
      this.fail(node, `it reshapes [${inShape.join(', ')}] to [${outShape.join(', ')}], which mixes channels with other axes`);
    }
    const reps = l / c;
    const keep = range(reps).flatMap((q) => x.keep.map((k) => q * c + k));
    if (node.op === 'Reshape') {
      const target = intsAttr(node, 'shape', []);
      const last = target.length - 1;
      if (target.some((d, i) => d === 0 && i === inShape.length - 1 && i !== last)) {
        this.fail(node, 'its shape copies the channel count (0) into a non-channel axis');
      }
      if (target[last]! > 0) {
        target[last] = reps * x.keep.length;
        this.setAttr(node, 'shape', target);
      }
    }
    this.step(node, 'reshape');
    this.setCut(node, { keep, channels: l });
  }

  /** The graph with every recorded edit applied. */
  build(): Graph {
    const nodes = this.graph.nodes.map((n) => {
      const a = this.attrs.get(n.name);
      return a ? { ...n, attrs: a } : n;
    });
    const params = this.graph.params.map((p) => {
      const u = this.params.get(p.name);
      return u ? { ...p, data: u.data, shape: u.shape } : p;
    });
    try {
      return this.graph.with({ nodes, params });
    } catch (e) {
      if (!(e instanceof GraphError)) throw e;
      throw new TensorpressError(
        'TRANSFORM_INVALID',
        `cutting output channels of ${this.producers.map((p) => `"${p}"`).join(', ')} produced an invalid graph: ${e.message}`,
        { producers: [...this.producers] },
      );
    }
  }
}
