import * as tf from '@tensorflow/tfjs-core';
import {
  batchNormFold,
  createGraph,
  foldAllBatchNorms,
  GraphError,
  TensorpressError,
  type Graph,
  type Node,
  type Param,
} from '@tensorpress/core-tensor';
import { roundHalfEven } from './quant-params.js';

/** A weight as integers: the codes of the weight's shape plus its grid. */
export interface WeightQuantization {
  /** The Conv/Gemm/MatMul node whose port-1 weight this is. */
  readonly node: string;
  /** Integer codes, one per weight value (the float weight's shape). */
  readonly codes: Int32Array;
  /** One scale per output channel (length 1: per tensor). */
  readonly scale: Float32Array;
  readonly zeroPoint: Int32Array;
}

/** An activation quantizer: the values it covers and its grid. */
export interface ActivationQuantization {
  readonly id: string;
  /** Values quantized by this grid. */
  readonly values: readonly string[];
  /** Outputs of agnostic ops downstream that carry the same grid (repeated Q/DQ). */
  readonly carriers: readonly string[];
  readonly scale: number;
  readonly zeroPoint: number;
  readonly signed: boolean;
  /** Integer range when narrower than the storage type (activations under 8 bits); a Clip keeps it. */
  readonly range?: readonly [number, number];
}

/** A Gemm/MatMul input quantized at run time (DynamicQuantizeLinear). */
export interface DynamicQuantization {
  readonly node: string;
  readonly input: number;
}

/** What {@link buildQuantizedGraph} writes into a float graph. */
export interface QuantizedGraphPlan {
  readonly weights: readonly WeightQuantization[];
  readonly activations: readonly ActivationQuantization[];
  readonly dynamic?: readonly DynamicQuantization[];
  /** Store the bias of a node with a quantized input and weight as int32 at scale s_x·s_w. Default true. */
  readonly quantizeBias?: boolean;
}

const INT32_MAX = 2147483647;

function sanitize(name: string): string {
  return name.replace(/[^A-Za-z0-9_./:-]/g, '_');
}

/**
 * Turns a float graph plus quantization decisions into the deployable form (notes in
 * QUANT-CONTRACT): int8 weights with DequantizeLinear (per tensor or per output channel), the
 * BatchNormalization after a quantized weight folded into its per-channel scale and bias (so the
 * stripped graph computes exactly what the fake-quantized one did in eval mode), int32 biases at
 * scale s_x·s_w, QuantizeLinear/DequantizeLinear pairs on quantized activations, and
 * DynamicQuantizeLinear for dynamic inputs. Remaining foldable BatchNormalizations (float layers) are
 * folded too. The input graph is not modified.
 */
export function buildQuantizedGraph(graph: Graph, plan: QuantizedGraphPlan): Graph {
  type MutableNode = Omit<Node, 'inputs' | 'outputs'> & { inputs: string[]; outputs: string[] };
  let nodes: MutableNode[] = graph.nodes.map((n) => ({ ...n, inputs: [...n.inputs], outputs: [...n.outputs] }));
  const params = new Map<string, Param>(graph.params.map((p) => [p.name, p]));
  const addParam = (p: Param): string => {
    if (params.has(p.name)) {
      throw new GraphError('GRAPH_DUPLICATE_NAME', `strip: parameter name "${p.name}" is taken`);
    }
    params.set(p.name, p);
    return p.name;
  };
  const nodeByName = (name: string): MutableNode => {
    const n = nodes.find((x) => x.name === name);
    if (!n) throw new GraphError('GRAPH_INVALID', `strip: no node "${name}"`, { node: name });
    return n;
  };
  const consumersOf = (value: string): MutableNode[] => nodes.filter((n) => n.inputs.includes(value));

  // Activation grids by value (quantized values and their carriers), for bias scales.
  const actScale = new Map<string, number>();
  for (const a of plan.activations) for (const v of [...a.values, ...a.carriers]) actScale.set(v, a.scale);
  const quantizeBias = plan.quantizeBias ?? true;

  for (const w of plan.weights) {
    const node = nodeByName(w.node);
    const wName = node.inputs[1]!;
    const wp = params.get(wName);
    if (!wp) throw new GraphError('GRAPH_INVALID', `strip: node "${node.name}" reads weight "${wName}", which is not a parameter`, { node: node.name });
    if (w.codes.length !== wp.data.length) {
      throw new GraphError('SHAPE_MISMATCH', `strip: ${w.codes.length} codes for weight "${wName}" of ${wp.data.length} values`, { node: node.name });
    }
    const axis = node.op === 'Conv' ? 3 : 1;
    const cout = wp.shape[axis]!;
    let scale = w.scale.length === 1 ? new Float32Array(w.scale) : Float32Array.from(w.scale);
    let zp = Int32Array.from(w.zeroPoint);
    let bias: Float32Array | undefined;
    const biasName = node.inputs[2];
    if (biasName) {
      const bp = params.get(biasName);
      if (!bp || bp.dtype !== 'float32') throw new GraphError('GRAPH_INVALID', `strip: bias "${biasName}" of "${node.name}" is not a float parameter`);
      bias = Float32Array.from(bp.data as Float32Array);
    }

    // Fold the BatchNormalization reading this node (core's arithmetic) into the per-channel scale:
    // W·f = s·|f|·(sign(f)·codes), so codes keep their grid and a negative f flips their sign.
    const cons = consumersOf(node.outputs[0]!);
    const fold = cons.length === 1 && cons[0]!.op === 'BatchNormalization' ? batchNormFold(graph, cons[0]!.name) : undefined;
    let sign: Int32Array | undefined;
    if (fold !== undefined && typeof fold !== 'string') {
      const bn = cons[0]!;
      if (scale.length === 1) scale = new Float32Array(cout).fill(scale[0]!);
      if (zp.length === 1) zp = new Int32Array(cout).fill(zp[0]!);
      sign = Int32Array.from(fold.factor, (f) => (f < 0 ? -1 : 1));
      scale = Float32Array.from(scale, (v, c) => v * Math.abs(fold.factor[c]!));
      zp = Int32Array.from(zp, (z, c) => z * sign![c]!);
      bias = fold.bias;
      // The producer takes over the BN's output name; the BN disappears.
      node.outputs[0] = bn.outputs[0]!;
      nodes = nodes.filter((n) => n !== bn);
      for (const pn of bn.inputs.slice(1)) if (!nodes.some((n) => n.inputs.includes(pn))) params.delete(pn);
    }
    // Codes (sign-flipped per output channel, the last axis of Conv [kh,kw,cin,cout] and Gemm [in,out]) and their range.
    const [codesT, lohi] = tf.tidy(() => {
      let c = tf.tensor(w.codes, [...wp.shape], 'int32');
      if (sign) c = tf.mul(c, tf.tensor1d(sign, 'int32'));
      return [c, tf.stack([tf.min(c), tf.max(c)])];
    });
    const codes = Int8Array.from(codesT.dataSync());
    const [lo, hi] = lohi.dataSync();
    tf.dispose([codesT, lohi]);
    if (lo! < -128 || hi! > 127) {
      throw new TensorpressError('NUMERIC_INVALID', `strip: weight codes of node "${node.name}" span [${lo}, ${hi}], which does not fit int8`, { node: node.name });
    }
    for (const z of zp) {
      if (z < -128 || z > 127) throw new TensorpressError('NUMERIC_INVALID', `strip: weight zero point ${z} of node "${node.name}" does not fit int8`, { node: node.name });
    }
    const base = sanitize(node.name);
    const perChannel = scale.length > 1;
    addParam({ name: `${base}.w_q`, shape: wp.shape, dtype: 'int8', data: codes, trainable: false });
    addParam({ name: `${base}.w_scale`, shape: perChannel ? [scale.length] : [], dtype: 'float32', data: scale, trainable: false });
    addParam({ name: `${base}.w_zp`, shape: perChannel ? [zp.length] : [], dtype: 'int8', data: Int8Array.from(zp), trainable: false });
    nodes.push({
      name: `${base}/dq_w`,
      op: 'DequantizeLinear',
      inputs: [`${base}.w_q`, `${base}.w_scale`, `${base}.w_zp`],
      outputs: [`${base}.w_dq`],
      attrs: perChannel ? { axis } : {},
    });
    node.inputs[1] = `${base}.w_dq`;
    if (!nodes.some((n) => n.inputs.includes(wName))) params.delete(wName);

    if (bias) {
      const sx = actScale.get(node.inputs[0]!);
      if (biasName && !nodes.some((n) => n !== node && n.inputs.includes(biasName))) params.delete(biasName);
      if (quantizeBias && sx !== undefined) {
        const bScale = Float32Array.from({ length: cout }, (_, c) => sx * scale[scale.length > 1 ? c : 0]!);
        const bq = new Int32Array(cout);
        for (let c = 0; c < cout; c++) bq[c] = Math.max(-INT32_MAX, Math.min(INT32_MAX, roundHalfEven(bias[c]! / bScale[c]!)));
        addParam({ name: `${base}.b_q`, shape: [cout], dtype: 'int32', data: bq, trainable: false });
        addParam({ name: `${base}.b_scale`, shape: [cout], dtype: 'float32', data: bScale, trainable: false });
        nodes.push({ name: `${base}/dq_b`, op: 'DequantizeLinear', inputs: [`${base}.b_q`, `${base}.b_scale`], outputs: [`${base}.b_dq`], attrs: { axis: 0 } });
        node.inputs[2] = `${base}.b_dq`;
      } else {
        const name = params.has(`${base}.b`) ? `${base}.b_folded` : `${base}.b`;
        addParam({ name, shape: [cout], dtype: 'float32', data: bias, trainable: true });
        node.inputs[2] = name;
      }
    }
  }

  for (const a of plan.activations) {
    const base = sanitize(a.id.replace(/^act:/, 'q:'));
    const zdtype = a.signed ? 'int8' : 'uint8';
    addParam({ name: `${base}.scale`, shape: [], dtype: 'float32', data: Float32Array.of(a.scale), trainable: false });
    addParam({
      name: `${base}.zp`,
      shape: [],
      dtype: zdtype,
      data: a.signed ? Int8Array.of(a.zeroPoint) : Uint8Array.of(a.zeroPoint),
      trainable: false,
    });
    const full: readonly [number, number] = a.signed ? [-128, 127] : [0, 255];
    const narrow = a.range !== undefined && (a.range[0] > full[0] || a.range[1] < full[1]);
    [...a.values, ...a.carriers].forEach((v, i) => {
      const tag = i === 0 ? base : `${base}#${i}`;
      const consumers = consumersOf(v);
      let src = v;
      if (narrow) {
        // QuantizeLinear clamps to the storage type only: a b-bit grid needs its own clamp first.
        src = `${tag}.clipped`;
        nodes.push({
          name: `${tag}/clip`,
          op: 'Clip',
          inputs: [v],
          outputs: [src],
          attrs: { min: a.scale * (a.range![0] - a.zeroPoint), max: a.scale * (a.range![1] - a.zeroPoint) },
        });
      }
      nodes.push({ name: `${tag}/q`, op: 'QuantizeLinear', inputs: [src, `${base}.scale`, `${base}.zp`], outputs: [`${tag}.q`], attrs: {} });
      nodes.push({ name: `${tag}/dq`, op: 'DequantizeLinear', inputs: [`${tag}.q`, `${base}.scale`, `${base}.zp`], outputs: [`${tag}.dq`], attrs: {} });
      for (const c of consumers) c.inputs.forEach((x, k) => (x === v ? (c.inputs[k] = `${tag}.dq`) : undefined));
    });
  }

  for (const d of plan.dynamic ?? []) {
    const node = nodeByName(d.node);
    const v = node.inputs[d.input]!;
    const base = sanitize(`dyn:${node.name}:${d.input}`);
    nodes.push({ name: `${base}/dql`, op: 'DynamicQuantizeLinear', inputs: [v], outputs: [`${base}.y`, `${base}.scale`, `${base}.zp`], attrs: {} });
    nodes.push({ name: `${base}/dq`, op: 'DequantizeLinear', inputs: [`${base}.y`, `${base}.scale`, `${base}.zp`], outputs: [`${base}.dq`], attrs: {} });
    node.inputs[d.input] = `${base}.dq`;
  }

  const stripped = createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: [...params.values()] });
  return foldAllBatchNorms(stripped).graph;
}
