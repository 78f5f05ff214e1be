import type { Graph, InsertionPoint } from '@tensorpress/core-tensor';
import { TensorpressError } from '@tensorpress/core-tensor';

/** Ops whose weight (port 1) is quantized. */
export const WEIGHT_OPS: ReadonlySet<string> = new Set(['Conv', 'Gemm', 'MatMul']);
/** Ops whose activation inputs are quantized with one unified scale (by default). */
export const UNIFIED_OPS: ReadonlySet<string> = new Set(['Add', 'Concat']);
/**
 * Averaging ops whose input is quantized (as NNCF does for AvgPool): integer runtimes then run them
 * on codes (onnxruntime's QLinearAveragePool / QLinearGlobalAveragePool) and fuse the op before.
 */
export const POOL_OPS: ReadonlySet<string> = new Set(['AveragePool', 'GlobalAveragePool']);

/**
 * Which ops' inputs share one quantizer: `add_concat` (NNCF's unified scales, the default),
 * `concat` (an Add's inputs keep their own quantizers: runtimes that rescale inside Add, like
 * onnxruntime's QLinearAdd, then keep a ReLU output feeding a residual Add unsigned and fuse the
 * ReLU), or `none`.
 */
export type UnifiedScales = 'add_concat' | 'concat' | 'none';

const UNIFIED_BY_SETTING: Record<UnifiedScales, ReadonlySet<string>> = {
  add_concat: UNIFIED_OPS,
  concat: new Set(['Concat']),
  none: new Set(),
};
/**
 * Ops that neither create nor destroy grid points (they select, move or reshape values): a
 * quantizer moves up through them to the value they read, as NNCF's propagation does.
 */
export const AGNOSTIC_OPS: ReadonlySet<string> = new Set(['MaxPool', 'Flatten', 'Reshape', 'Identity', 'Dropout', 'Transpose']);

/** A weight to quantize. */
export interface WeightPlacement {
  /** `<node>.w`: unique per node. */
  readonly id: string;
  readonly node: string;
  readonly op: string;
  readonly param: string;
  /** Output-channel axis of the weight (Conv [kh,kw,cin,cout]: 3; Gemm/MatMul [in,out]: 1); -1 when it has none. */
  readonly axis: number;
  readonly channels: number;
}

/** An activation quantizer: one per value, shared by all consumers, unified across Add/Concat inputs. */
export interface ActivationPlacement {
  /** `act:<first value>`. */
  readonly id: string;
  /** The values it quantizes (one, or several sharing a scale). */
  readonly values: readonly string[];
  /** Where the fake-quant hooks go (one per value). */
  readonly points: readonly InsertionPoint[];
  /**
   * Outputs of agnostic ops (MaxPool, Flatten ...) between a quantized value and the op that needed
   * it: they carry the same grid, and strip() repeats the Q/DQ pair on them so every quantized op
   * reads a DequantizeLinear directly.
   */
  readonly carriers: readonly string[];
  /**
   * The value each hook rounds, `values[k]` or the bottom of its agnostic chain (a MaxPool or
   * Flatten output): calibration observes these, since that is the distribution the grid serves
   * (max-pooling keeps the maxima, so its output has fewer zeros and a heavier tail than its input).
   */
  readonly observed: readonly string[];
  /** Nodes whose inputs asked for this quantizer. */
  readonly consumers: readonly string[];
}

/** The result of {@link placeQuantizers}. */
export interface Placement {
  readonly weights: readonly WeightPlacement[];
  readonly activations: readonly ActivationPlacement[];
  /** Nodes of quantizable ops left in float, with the reason (never skipped silently). */
  readonly skipped: readonly { node: string; op: string; reason: string }[];
}

/** Options of {@link placeQuantizers}. */
export interface PlacementOptions {
  /** Whether a node is in scope (ignoredScopes / targetScopes). Default: all. */
  readonly inScope?: (node: string) => boolean;
  /** Quantize activations at all (false: weights only). Default true. */
  readonly activations?: boolean;
  /** Quantize the graph inputs feeding quantized ops. Default true. */
  readonly quantizeInputs?: boolean;
  /** Which ops' inputs share one quantizer. Default `add_concat`. */
  readonly unifiedScales?: UnifiedScales;
  /** Ops whose activation inputs are quantized. Default: Conv, Gemm, MatMul, Add, Concat, AveragePool, GlobalAveragePool. */
  readonly activationOps?: ReadonlySet<string>;
}

function weightAxis(op: string): number {
  return op === 'Conv' ? 3 : 1;
}

/**
 * Decides what a quantization algorithm quantizes (NNCF's quantizer propagation, simplified to the
 * op set of tensorpress graphs): the weight of every in-scope Conv/Gemm/MatMul; every activation
 * input of those ops and of Add/Concat/AveragePool/GlobalAveragePool, moved up through agnostic ops
 * to the value that is really computed, one quantizer per value whatever the number of consumers,
 * and one shared quantizer for all inputs of an Add or Concat (see {@link UnifiedScales}). Graph
 * outputs are never quantized.
 */
export function placeQuantizers(graph: Graph, options: PlacementOptions = {}): Placement {
  const inScope = options.inScope ?? (() => true);
  const quantizeActivations = options.activations ?? true;
  const quantizeInputs = options.quantizeInputs ?? true;
  const unifiedOps = UNIFIED_BY_SETTING[options.unifiedScales ?? 'add_concat'];
  const weights: WeightPlacement[] = [];
  const skipped: { node: string; op: string; reason: string }[] = [];
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const graphOutputs = new Set(graph.outputs);

  // Union-find over activation values: Add/Concat inputs end up in one set.
  const parent = new Map<string, string>();
  const find = (v: string): string => {
    let r = v;
    while (parent.get(r) !== r) r = parent.get(r)!;
    parent.set(v, r);
    return r;
  };
  const carriersOf = new Map<string, string[]>();
  const consumersOf = new Map<string, Set<string>>();
  const order: string[] = [];

  /** Walks from the value read by a node up through agnostic single-consumer ops. */
  const source = (value: string): { value: string; carriers: string[] } => {
    const carriers: string[] = [];
    let v = value;
    for (;;) {
      const p = graph.producer(v);
      if (!p || !AGNOSTIC_OPS.has(p.node.op)) break;
      const up = p.node.inputs[0];
      if (!up || graph.isParam(up) || graph.consumers(up).length !== 1 || graphOutputs.has(up)) break;
      carriers.push(v);
      v = up;
    }
    return { value: v, carriers };
  };

  const activationOps = options.activationOps ?? new Set([...WEIGHT_OPS, ...UNIFIED_OPS, ...POOL_OPS]);
  const request = (value: string, consumer: string): string | undefined => {
    if (!activationOps.has(graph.requireNode(consumer).op)) return undefined;
    if (!quantizeActivations || graph.isParam(value) || graphOutputs.has(value)) return undefined;
    const { value: src, carriers } = source(value);
    if (graphInputs.has(src) && !quantizeInputs) return undefined;
    if (graph.info(src).dtype !== 'float32') return undefined;
    if (!parent.has(src)) {
      parent.set(src, src);
      order.push(src);
    }
    const c = carriersOf.get(src) ?? [];
    for (const x of carriers) if (!c.includes(x)) c.push(x);
    carriersOf.set(src, c);
    const cs = consumersOf.get(src) ?? new Set();
    cs.add(consumer);
    consumersOf.set(src, cs);
    return src;
  };

  for (const node of graph.nodes) {
    const quantOp = WEIGHT_OPS.has(node.op);
    const multiInputOp = UNIFIED_OPS.has(node.op);
    if (!quantOp && !multiInputOp && !POOL_OPS.has(node.op)) continue;
    if (!inScope(node.name)) {
      skipped.push({ node: node.name, op: node.op, reason: 'excluded by ignoredScopes/targetScopes' });
      continue;
    }
    if (quantOp) {
      const w = node.inputs[1];
      const p = w ? graph.param(w) : undefined;
      if (node.op === 'MatMul' && !p) {
        // Two activations: both inputs are quantized, no weight.
        for (const v of node.inputs.slice(0, 2)) if (v) request(v, node.name);
        continue;
      }
      if (!p) {
        skipped.push({ node: node.name, op: node.op, reason: `its weight "${w ?? ''}" is computed by the graph, not a parameter` });
        continue;
      }
      if (p.dtype !== 'float32') {
        skipped.push({ node: node.name, op: node.op, reason: `its weight "${p.name}" is already ${p.dtype}` });
        continue;
      }
      // A weight without an output-channel axis (rank too small) can only be quantized per tensor: axis -1.
      const axis = p.shape.length > weightAxis(node.op) ? weightAxis(node.op) : -1;
      weights.push({ id: `${node.name}.w`, node: node.name, op: node.op, param: p.name, axis, channels: axis < 0 ? 1 : p.shape[axis]! });
      const x = node.inputs[0];
      if (x) request(x, node.name);
      continue;
    }
    // Add / Concat (one unified scale unless the setting says otherwise) and average pools.
    const members = node.inputs.filter((v) => v && !graph.isParam(v)).map((v) => request(v, node.name));
    if (unifiedOps.has(node.op)) {
      const present = members.filter((m): m is string => m !== undefined);
      for (const m of present.slice(1)) parent.set(find(m), find(present[0]!));
    }
  }

  const groups = new Map<string, string[]>();
  for (const v of order) {
    const r = find(v);
    const g = groups.get(r) ?? [];
    g.push(v);
    groups.set(r, g);
  }
  const pointOf = (v: string): InsertionPoint => {
    if (graphInputs.has(v)) return { type: 'input', name: v };
    const p = graph.producer(v);
    if (!p) throw new TensorpressError('GRAPH_INVALID', `value "${v}" has no producer`);
    return { type: 'post', node: p.node.name, output: p.output };
  };
  // The fake-quant hook goes on the value the quantized op reads (the bottom of an agnostic chain):
  // MaxPool commutes with a monotonic quantizer, so this is exact and touches 4x fewer values than
  // quantizing before a 2x2 pool. strip() still repeats the Q/DQ pair up the chain for ONNX runtimes.
  const hookValue = (v: string): string => carriersOf.get(v)?.[0] ?? v;
  const activations: ActivationPlacement[] = [...groups.values()].map((values) => ({
    id: `act:${values[0]!}`,
    values,
    points: values.map((v) => pointOf(hookValue(v))),
    carriers: values.flatMap((v) => carriersOf.get(v) ?? []),
    observed: values.map(hookValue),
    consumers: [...new Set(values.flatMap((v) => [...(consumersOf.get(v) ?? [])]))],
  }));
  return { weights, activations, skipped };
}
