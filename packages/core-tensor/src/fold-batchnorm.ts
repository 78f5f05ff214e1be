import * as tf from '@tensorflow/tfjs-core';
import { numAttr } from './attrs.js';
import { GraphError, TensorpressError } from './errors.js';
import type { AttrValue, Graph, Node, Param } from './graph.js';

/** A BatchNormalization that could not be folded, and why. */
export interface FoldSkip {
  readonly node: string;
  readonly reason: string;
}

/** Result of {@link foldAllBatchNorms}. */
export interface FoldAllResult {
  /** The graph with every foldable BatchNormalization folded into its producer. */
  readonly graph: Graph;
  /** Names of the BatchNormalization nodes that were folded, in graph order. */
  readonly folded: readonly string[];
  /** BatchNormalization nodes left in place, with the reason (never skipped silently). */
  readonly skipped: readonly FoldSkip[];
}

interface FoldPlan {
  readonly bn: Node;
  readonly producer: Node;
  readonly weight: Param;
  /** Existing bias parameter, or undefined when a new one must be added. */
  readonly bias: Param | undefined;
  /** Gemm's `beta` multiplies the bias: it is folded into the new bias and reset to 1. */
  readonly biasScale: number;
}

function float32Param(graph: Graph, node: Node, port: number, what: string): Param | string {
  const name = node.inputs[port];
  if (name === undefined || name === '') return `${what} is missing`;
  const p = graph.param(name);
  if (!p) return `${what} "${name}" is computed by a node, not stored as a parameter`;
  if (p.dtype !== 'float32') return `${what} "${name}" is ${p.dtype}; fold BatchNormalization before quantizing`;
  const readers = graph.consumers(name).filter((c) => c.node.name !== node.name);
  if (readers.length > 0) {
    return `${what} "${name}" is shared with node "${readers[0]!.node.name}"; folding would change that node too`;
  }
  return p;
}

function plan(graph: Graph, bnName: string): FoldPlan | string {
  const bn = graph.node(bnName);
  if (!bn) return 'no node has this name';
  if (bn.op !== 'BatchNormalization') return `it is a ${bn.op}, not a BatchNormalization`;
  const x = bn.inputs[0]!;
  for (let i = 1; i <= 4; i++) {
    const p = float32Param(graph, bn, i, `input ${i}`);
    if (typeof p === 'string') return p;
  }
  const src = graph.producer(x);
  if (!src) return `its input "${x}" is a graph input, not the output of a Conv or Gemm`;
  const producer = src.node;
  if (producer.op !== 'Conv' && producer.op !== 'Gemm') {
    return `its input "${x}" comes from ${producer.op} "${producer.name}"; only Conv and Gemm outputs fold`;
  }
  if (graph.outputs.includes(x)) return `"${x}" (output of "${producer.name}") is also a graph output`;
  const readers = graph.consumers(x);
  if (readers.length !== 1) {
    const others = readers.filter((r) => r.node.name !== bn.name).map((r) => `"${r.node.name}"`);
    return `"${x}" (output of "${producer.name}") is also read by ${others.join(', ')}`;
  }
  const weight = float32Param(graph, producer, 1, `the weight of "${producer.name}"`);
  if (typeof weight === 'string') return weight;
  const hasBias = (producer.inputs[2] ?? '') !== '';
  let bias: Param | undefined;
  if (hasBias) {
    const b = float32Param(graph, producer, 2, `the bias of "${producer.name}"`);
    if (typeof b === 'string') return b;
    bias = b;
  }
  const channels = weight.shape[weight.shape.length - 1]!;
  const bnChannels = graph.param(bn.inputs[1]!)!.shape[0];
  if (bnChannels !== channels) return `it normalizes ${bnChannels} channels but "${producer.name}" has ${channels} outputs`;
  return { bn, producer, weight, bias, biasScale: producer.op === 'Gemm' ? numAttr(producer, 'beta', 1) : 1 };
}

function uniqueName(graph: Graph, taken: Set<string>, base: string): string {
  let name = base;
  for (let n = 1; taken.has(name) || graph.isParam(name) || graph.producer(name) || graph.inputs.some((i) => i.name === name); n++) {
    name = `${base}_${n}`;
  }
  taken.add(name);
  return name;
}

/** The per-channel factor s = γ/√(var+ε) and the folded bias (b·beta − mean)·s + β of one plan. */
function foldFactors(graph: Graph, p: FoldPlan): { factor: Float32Array; bias: Float32Array } {
  const param = (i: number): Float32Array => graph.param(p.bn.inputs[i]!)!.data as Float32Array;
  const eps = numAttr(p.bn, 'epsilon', 1e-5);
  const channels = param(1).length;
  // Same arithmetic as the eval-mode kernel (float32 tensor ops).
  const [s, b] = tf.tidy(() => {
    const st = tf.div(tf.tensor1d(param(1)), tf.sqrt(tf.add(tf.tensor1d(param(4)), eps)));
    const b0 = p.bias ? tf.mul(tf.tensor1d(p.bias.data as Float32Array), p.biasScale) : tf.zeros([channels]);
    return [st, tf.add(tf.mul(tf.sub(b0, tf.tensor1d(param(3))), st), tf.tensor1d(param(2)))];
  });
  const out = { factor: Float32Array.from(s.dataSync() as Float32Array), bias: Float32Array.from(b.dataSync() as Float32Array) };
  tf.dispose([s, b]);
  return out;
}

/** What folding one BatchNormalization means for its producer (see {@link batchNormFold}). */
export interface BatchNormFold {
  /** The Conv or Gemm the BN folds into. */
  readonly producer: string;
  /** Per output channel: W' = W · factor. May be negative. */
  readonly factor: Float32Array;
  /** The producer's bias after folding (a new one when it had none). */
  readonly bias: Float32Array;
}

/**
 * The arithmetic of {@link foldBatchNorm} without rebuilding the graph, for transforms that store the
 * weight differently (quantized weights fold the factor into their per-channel scale). Returns the
 * reason as a string when the BN cannot fold.
 */
export function batchNormFold(graph: Graph, bnName: string): BatchNormFold | string {
  const p = plan(graph, bnName);
  if (typeof p === 'string') return p;
  return { producer: p.producer.name, ...foldFactors(graph, p) };
}

/** Rebuilds the graph with every planned fold applied at once (one validation). */
function applyPlans(graph: Graph, plans: readonly FoldPlan[]): Graph {
  const newData = new Map<string, Float32Array>();
  const added: Param[] = [];
  const replacedNodes = new Map<string, Node>();
  const removed = new Set<string>();
  const dropParams = new Set<string>();
  const taken = new Set<string>();
  for (const p of plans) {
    const { factor, bias: bData } = foldFactors(graph, p);
    const channels = factor.length;
    // Per output channel: the weight's last axis for Conv [kh, kw, cin/group, cout] and Gemm [in, out] alike.
    const w = tf.tidy(() => tf.mul(tf.tensor(p.weight.data as Float32Array, [...p.weight.shape]), tf.tensor1d(factor)));
    // Copies: the result owns its buffers, independent of the backend's storage.
    newData.set(p.weight.name, Float32Array.from(w.dataSync() as Float32Array));
    w.dispose();
    const inputs = [...p.producer.inputs];
    if (p.bias) {
      newData.set(p.bias.name, bData);
    } else {
      const name = uniqueName(graph, taken, `${p.producer.name}.bias`);
      added.push({ name, shape: [channels], dtype: 'float32', data: bData, trainable: true });
      inputs[2] = name;
    }
    const attrs: Record<string, AttrValue> = { ...p.producer.attrs };
    if (p.producer.op === 'Gemm') delete attrs['beta'];
    // The producer takes over the BN's output name, so every consumer and graph output is untouched.
    replacedNodes.set(p.producer.name, { ...p.producer, inputs, outputs: [p.bn.outputs[0]!], attrs });
    removed.add(p.bn.name);
    for (let i = 1; i <= 4; i++) dropParams.add(p.bn.inputs[i]!);
  }
  const nodes = graph.nodes.filter((n) => !removed.has(n.name)).map((n) => replacedNodes.get(n.name) ?? n);
  const params = graph.params
    .filter((p) => !dropParams.has(p.name))
    .map((p) => {
      const d = newData.get(p.name);
      return d ? { ...p, data: d } : p;
    });
  return graph.with({ nodes, params: [...params, ...added] });
}

/**
 * Folds the BatchNormalization `bnName` into the Conv or Gemm that produces its input (plain,
 * grouped or depthwise): W' = W·γ/√(var+ε) per output channel, b' = (b − mean)·γ/√(var+ε) + β, a
 * bias being added when the producer had none. The producer takes over the BN's output name, so
 * consumers and graph outputs are untouched; eval-mode outputs are unchanged. Pure: the input graph
 * and its buffers are never written.
 *
 * @throws TensorpressError `TRANSFORM_INVALID` naming the reason when the BN cannot fold (its input
 *   is not a Conv/Gemm output, that output has other readers or is a graph output, a parameter is
 *   shared or not float32).
 */
export function foldBatchNorm(graph: Graph, bnName: string): Graph {
  const p = plan(graph, bnName);
  if (typeof p === 'string') {
    throw new TensorpressError('TRANSFORM_INVALID', `cannot fold BatchNormalization "${bnName}": ${p}`, { node: bnName, reason: p });
  }
  return rebuild(graph, [p]);
}

/**
 * Folds every foldable BatchNormalization (see {@link foldBatchNorm}) in one pass and reports the
 * ones left in place with the reason.
 */
export function foldAllBatchNorms(graph: Graph): FoldAllResult {
  const plans: FoldPlan[] = [];
  const skipped: FoldSkip[] = [];
  for (const n of graph.nodes) {
    if (n.op !== 'BatchNormalization') continue;
    const p = plan(graph, n.name);
    if (typeof p === 'string') skipped.push({ node: n.name, reason: p });
    else plans.push(p);
  }
  return { graph: plans.length > 0 ? rebuild(graph, plans) : graph, folded: plans.map((p) => p.bn.name), skipped };
}

function rebuild(graph: Graph, plans: readonly FoldPlan[]): Graph {
  try {
    return applyPlans(graph, plans);
  } catch (e) {
    if (e instanceof GraphError) {
      throw new TensorpressError('TRANSFORM_INVALID', `folding BatchNormalization produced an invalid graph: ${e.message}`, {
        nodes: plans.map((p) => p.bn.name),
      });
    }
    throw e;
  }
}
