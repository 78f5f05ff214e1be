import type * as tf from '@tensorflow/tfjs-core';
import {
  batchNormFold,
  createGraph,
  foldAllBatchNorms,
  GraphError,
  numAttr,
  TensorpressError,
  type Graph,
  type Node,
  type Param,
} from '@tensorpress/core-tensor';
import type { ActivationMethod } from './activation.js';
import { scalingPool } from './scaling-map.js';

/** A binarized weight as integer codes and per-filter scales. */
export interface BinaryWeight {
  /** The Conv/Gemm node whose port-1 weight this is. */
  readonly node: string;
  /** Codes in {−1, 0, +1}, one per weight value. */
  readonly codes: Int8Array;
  /** One scale per output filter (length 1: per tensor). */
  readonly scale: Float32Array;
}

/** A binarized activation: the value, the nodes that read it binarized, and its learned s and t. */
export interface BinaryActivation {
  readonly id: string;
  readonly value: string;
  readonly consumers: readonly string[];
  readonly method: ActivationMethod;
  /** Learned scale and per-channel threshold: out = s·H(in − s·t); absent: out = H(in). */
  readonly learned?: { readonly scale: number; readonly threshold: Float32Array };
}

/** A layer whose output XNOR-Net's K map multiplies (see scalingMap). */
export interface ScalingMapSite {
  /** The Conv/Gemm/MatMul node. */
  readonly node: string;
  /** Its weight's kernel size [kh, kw] (Conv). */
  readonly kernel: readonly number[];
}

/** What {@link buildBinaryGraph} writes into a float graph. */
export interface BinaryGraphPlan {
  readonly weights: readonly BinaryWeight[];
  readonly activations: readonly BinaryActivation[];
  /** Layers with XNOR-Net's K map (none by default). */
  readonly scalingMaps?: readonly ScalingMapSite[];
}

/** A per-channel threshold that replaced BatchNormalization → sign (see {@link bnSignThreshold}). */
export interface BnSignThreshold {
  /** sign(γ) per channel: −1 flips the comparison, 0 makes the channel constant. */
  readonly flip: Float32Array;
  /** Per channel: out = sign⁺(flip·z − offset), sign⁺(0) = +1. */
  readonly offset: Float32Array;
}

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_./:-]/g, '_');
}

/**
 * BatchNormalization followed by a binary activation, folded into a per-channel threshold:
 * sign⁺(BN(z) − c) = sign⁺(f·z − f·θ) with f = sign(γ) and θ = μ + (c − β)·√(var + ε)/γ, where
 * c = s·t is the learned threshold (0 without one). Where γ < 0 the comparison flips (f = −1);
 * where γ = 0 the output is the constant sign⁺(β − c) (f = 0, offset = c − β).
 */
export function bnSignThreshold(
  bn: { gamma: ArrayLike<number>; beta: ArrayLike<number>; mean: ArrayLike<number>; variance: ArrayLike<number>; epsilon: number },
  c: ArrayLike<number> | number,
): BnSignThreshold {
  const n = bn.gamma.length;
  const flip = new Float32Array(n);
  const offset = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const g = bn.gamma[i]!;
    const ci = typeof c === 'number' ? c : c[i]!;
    if (g === 0) {
      offset[i] = ci - bn.beta[i]!;
      continue;
    }
    const f = g > 0 ? 1 : -1;
    const theta = bn.mean[i]! + ((ci - bn.beta[i]!) * Math.sqrt(bn.variance[i]! + bn.epsilon)) / g;
    flip[i] = f;
    offset[i] = f * theta;
  }
  return { flip, offset };
}

type MutableNode = Omit<Node, 'inputs' | 'outputs'> & { inputs: string[]; outputs: string[] };

/**
 * Turns a float graph plus binarization decisions into the deployable form: weights as int8 codes
 * {−1, 0, +1} with their per-filter scale through DequantizeLinear (a BatchNormalization after
 * such a weight folded into scale and bias, a negative factor flipping the codes), binary
 * activations as `Sign` (ONNX's Sign has sign(0) = 0, so sign⁺(u) = Sign(Sign(u) + ½)), a
 * BatchNormalization directly before a binary activation folded into a per-channel threshold
 * ({@link bnSignThreshold}), and every other foldable BatchNormalization folded into its producer.
 * The input graph is not modified.
 */
export function buildBinaryGraph(graph: Graph, plan: BinaryGraphPlan): Graph {
  let nodes: MutableNode[] = graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] }));
  const params = new Map<string, Param>(graph.params.map((p) => [p.name, p]));
  const addParam = (p: Param): string => {
    if (params.has(p.name)) throw new GraphError('GRAPH_DUPLICATE_NAME', `binarization strip: parameter name "${p.name}" is taken`);
    params.set(p.name, p);
    return p.name;
  };
  const f32 = (name: string, data: Float32Array, shape: readonly number[]): string =>
    addParam({ name, shape, dtype: 'float32', data, trainable: false });
  const nodeByName = (name: string): MutableNode => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new GraphError('GRAPH_INVALID', `binarization strip: no node "${name}"`, { node: name });
    return n;
  };
  const consumersOf = (value: string): MutableNode[] => nodes.filter((n) => n.inputs.includes(value));
  const dropUnread = (names: readonly string[]): void => {
    for (const pn of names) if (params.has(pn) && !nodes.some((n) => n.inputs.includes(pn))) params.delete(pn);
  };
  const paramData = (name: string): Float32Array => {
    const p = params.get(name);
    if (!p || p.dtype !== 'float32') throw new GraphError('GRAPH_INVALID', `binarization strip: "${name}" is not a float parameter`);
    return p.data as Float32Array;
  };

  // XNOR-Net's K reads each layer's real-valued input: taken before the activations are rewired,
  // and the BN before such an input is not folded into a threshold (K needs its output).
  const kRaw = new Map((plan.scalingMaps ?? []).map((k) => [k.node, nodeByName(k.node).inputs[0]!]));
  const kValues = new Set(kRaw.values());

  for (const a of plan.activations) {
    const base = sanitize(`bin:${a.id}`);
    const channels = graph.info(a.value).shape.at(-1) ?? 1;
    const c = a.learned ? Float32Array.from(a.learned.threshold, (t) => t * a.learned!.scale) : new Float32Array(channels);
    let u: string;
    const producer = nodes.find((n) => n.outputs.includes(a.value));
    const readers = consumersOf(a.value);
    const foldable =
      a.method === 'binary' &&
      !kValues.has(a.value) &&
      producer?.op === 'BatchNormalization' &&
      !graph.outputs.includes(a.value) &&
      readers.every((r) => a.consumers.includes(r.name)) &&
      producer.inputs.slice(1, 5).every((p) => params.get(p)?.dtype === 'float32');
    if (foldable) {
      const bn = producer;
      const th = bnSignThreshold(
        { gamma: paramData(bn.inputs[1]!), beta: paramData(bn.inputs[2]!), mean: paramData(bn.inputs[3]!), variance: paramData(bn.inputs[4]!), epsilon: numAttr(bn, 'epsilon', 1e-5) },
        c,
      );
      const z = bn.inputs[0]!;
      nodes = nodes.filter((n) => n !== bn);
      dropUnread(bn.inputs.slice(1));
      const flipped = th.flip.every((f) => f === 1) ? z : `${base}.flipped`;
      if (flipped !== z) nodes.push({ name: `${base}/flip`, op: 'Mul', inputs: [z, f32(`${base}.flip`, th.flip, [channels])], outputs: [flipped], attrs: {} });
      u = `${base}.u`;
      nodes.push({ name: `${base}/threshold`, op: 'Sub', inputs: [flipped, f32(`${base}.offset`, th.offset, [channels])], outputs: [u], attrs: {} });
    } else if (a.learned) {
      u = `${base}.u`;
      nodes.push({ name: `${base}/threshold`, op: 'Sub', inputs: [a.value, f32(`${base}.threshold`, c, [channels])], outputs: [u], attrs: {} });
    } else {
      u = a.value;
    }
    let h: string;
    if (a.method === 'binary') {
      // sign⁺(u) = Sign(Sign(u) + ½): exact, and sign⁺(0) = +1 where ONNX's Sign gives 0.
      nodes.push({ name: `${base}/sign0`, op: 'Sign', inputs: [u], outputs: [`${base}.s0`], attrs: {} });
      nodes.push({ name: `${base}/half`, op: 'Add', inputs: [`${base}.s0`, f32(`${base}.half`, Float32Array.of(0.5), [])], outputs: [`${base}.s1`], attrs: {} });
      h = `${base}.sign`;
      nodes.push({ name: `${base}/sign`, op: 'Sign', inputs: [`${base}.s1`], outputs: [h], attrs: {} });
    } else {
      // Ternary codes of v = u/s against ½: Sign(Relu(v − ½)) − Sign(Relu(−v − ½)).
      const s = a.learned?.scale ?? 1;
      const half = f32(`${base}.half`, Float32Array.of(0.5), []);
      nodes.push({ name: `${base}/pos`, op: 'Mul', inputs: [u, f32(`${base}.inv_s`, Float32Array.of(1 / s), [])], outputs: [`${base}.v`], attrs: {} });
      nodes.push({ name: `${base}/neg`, op: 'Mul', inputs: [u, f32(`${base}.neg_inv_s`, Float32Array.of(-1 / s), [])], outputs: [`${base}.nv`], attrs: {} });
      for (const side of ['v', 'nv'] as const) {
        nodes.push({ name: `${base}/${side}_sub`, op: 'Sub', inputs: [`${base}.${side}`, half], outputs: [`${base}.${side}_d`], attrs: {} });
        nodes.push({ name: `${base}/${side}_relu`, op: 'Relu', inputs: [`${base}.${side}_d`], outputs: [`${base}.${side}_r`], attrs: {} });
        nodes.push({ name: `${base}/${side}_sign`, op: 'Sign', inputs: [`${base}.${side}_r`], outputs: [`${base}.${side}_s`], attrs: {} });
      }
      h = `${base}.ternary`;
      nodes.push({ name: `${base}/ternary`, op: 'Sub', inputs: [`${base}.v_s`, `${base}.nv_s`], outputs: [h], attrs: {} });
    }
    let out = h;
    if (a.learned) {
      out = `${base}.out`;
      nodes.push({ name: `${base}/scale`, op: 'Mul', inputs: [h, f32(`${base}.scale`, Float32Array.of(a.learned.scale), [])], outputs: [out], attrs: {} });
    }
    for (const cn of a.consumers) {
      const node = nodeByName(cn);
      node.inputs = node.inputs.map((v, i) => (i === 0 && v === a.value ? out : v));
    }
  }

  const meanAbs = new Map<string, string>();
  for (const k of plan.scalingMaps ?? []) {
    const node = nodeByName(k.node);
    const raw = kRaw.get(k.node)!;
    const rb = sanitize(`k:${raw}`);
    const info = graph.info(raw);
    const channels = info.shape.at(-1) ?? 1;
    const image = info.shape.length === 4;
    let m = meanAbs.get(raw);
    if (!m) {
      // |A| = Relu(A) + Relu(−A); its mean over channels as a 1×1 Conv (or a Gemm) with weights 1/C.
      nodes.push({ name: `${rb}/pos`, op: 'Relu', inputs: [raw], outputs: [`${rb}.pos`], attrs: {} });
      nodes.push({ name: `${rb}/negate`, op: 'Mul', inputs: [raw, f32(`${rb}.minus_one`, Float32Array.of(-1), [])], outputs: [`${rb}.neg_in`], attrs: {} });
      nodes.push({ name: `${rb}/neg`, op: 'Relu', inputs: [`${rb}.neg_in`], outputs: [`${rb}.neg`], attrs: {} });
      nodes.push({ name: `${rb}/abs`, op: 'Add', inputs: [`${rb}.pos`, `${rb}.neg`], outputs: [`${rb}.abs`], attrs: {} });
      const wMean = f32(`${rb}.mean_w`, new Float32Array(channels).fill(1 / channels), image ? [1, 1, channels, 1] : [channels, 1]);
      m = `${rb}.mean`;
      nodes.push({ name: `${rb}/mean`, op: image ? 'Conv' : 'Gemm', inputs: [`${rb}.abs`, wMean], outputs: [m], attrs: {} });
      meanAbs.set(raw, m);
    }
    const kb = sanitize(`k:${node.name}`);
    const pool = scalingPool(node, k.kernel, `${kb}/box`, m, `${kb}.k`);
    if (pool) nodes.push({ ...pool, inputs: [...pool.inputs], outputs: [...pool.outputs] });
    const out = node.outputs[0]!;
    node.outputs[0] = `${kb}.unscaled`;
    nodes.push({ name: `${kb}/scale`, op: 'Mul', inputs: [`${kb}.unscaled`, pool ? `${kb}.k` : m], outputs: [out], attrs: {} });
  }

  for (const w of plan.weights) {
    const node = nodeByName(w.node);
    const wName = node.inputs[1]!;
    const wp = params.get(wName);
    if (!wp) throw new GraphError('GRAPH_INVALID', `binarization strip: node "${node.name}" reads weight "${wName}", which is not a parameter`, { node: node.name });
    if (w.codes.length !== wp.data.length) {
      throw new GraphError('SHAPE_MISMATCH', `binarization strip: ${w.codes.length} codes for weight "${wName}" of ${wp.data.length} values`, { node: node.name });
    }
    const axis = wp.shape.length - 1;
    const cout = wp.shape[axis]!;
    let scale = Float32Array.from(w.scale);
    let codes = w.codes;
    let bias: Float32Array | undefined;
    const biasName = node.inputs[2];
    if (biasName) bias = Float32Array.from(paramData(biasName));
    // Fold the BatchNormalization reading this node into the per-filter scale:
    // α·codes·f = α·|f|·(sign(f)·codes), so the codes stay in {−1, 0, +1}.
    const cons = consumersOf(node.outputs[0]!);
    const current = createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: [...params.values()] });
    const fold = cons.length === 1 && cons[0]!.op === 'BatchNormalization' ? batchNormFold(current, cons[0]!.name) : undefined;
    if (fold !== undefined && typeof fold !== 'string') {
      const bn = cons[0]!;
      if (scale.length === 1) scale = new Float32Array(cout).fill(scale[0]!);
      scale = Float32Array.from(scale, (v, ch) => v * Math.abs(fold.factor[ch]!));
      codes = Int8Array.from(codes, (v, i) => (fold.factor[i % cout]! < 0 ? -v : v));
      bias = fold.bias;
      node.outputs[0] = bn.outputs[0]!;
      nodes = nodes.filter((n) => n !== bn);
      dropUnread(bn.inputs.slice(1));
    }
    const base = sanitize(node.name);
    const perChannel = scale.length > 1;
    addParam({ name: `${base}.w_codes`, shape: wp.shape, dtype: 'int8', data: codes, trainable: false });
    f32(`${base}.w_scale`, scale, perChannel ? [scale.length] : []);
    addParam({ name: `${base}.w_zp`, shape: perChannel ? [scale.length] : [], dtype: 'int8', data: new Int8Array(scale.length), trainable: false });
    nodes.push({
      name: `${base}/dq_w`,
      op: 'DequantizeLinear',
      inputs: [`${base}.w_codes`, `${base}.w_scale`, `${base}.w_zp`],
      outputs: [`${base}.w_dq`],
      attrs: perChannel ? { axis } : {},
    });
    node.inputs[1] = `${base}.w_dq`;
    dropUnread([wName]);
    if (bias) {
      // The (possibly folded) bias gets a parameter of its own; the old one goes if nothing else reads it.
      if (biasName) node.inputs[2] = '';
      if (biasName) dropUnread([biasName]);
      const name = params.has(`${base}.b`) ? `${base}.b_folded` : `${base}.b`;
      addParam({ name, shape: [cout], dtype: 'float32', data: bias, trainable: true });
      node.inputs[2] = name;
    }
  }

  try {
    const stripped = createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: [...params.values()] });
    return foldAllBatchNorms(stripped).graph;
  } catch (e) {
    if (e instanceof TensorpressError) throw new TensorpressError('TRANSFORM_INVALID', `binarization strip: ${e.message}`, { ...e.details, cause: e.code });
    throw e;
  }
}

/** Codes of a weight's binarized form as int8 (rounded: the codes are exact small integers). */
export function int8Codes(codes: tf.Tensor): Int8Array {
  return Int8Array.from(codes.dataSync(), (v) => Math.round(v));
}
