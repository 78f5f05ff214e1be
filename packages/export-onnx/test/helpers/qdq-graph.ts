/**
 * Builds stripped INT8 graphs by hand in the format of notes/QUANT-CONTRACT.md (export-onnx may
 * not import @tensorpress/quant): BN folded, per-channel symmetric int8 weights + DequantizeLinear,
 * int32 biases with scale s_x·s_w, and a uint8 QuantizeLinear/DequantizeLinear pair (min/max
 * calibrated) on every activation that a Conv/Gemm/Add/pool reads or writes.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { Executor, createGraph, foldAllBatchNorms, type Graph, type Node, type Param } from '@tensorpress/core-tensor';

/** Options of {@link quantizeForTest}. */
export interface QdqOptions {
  /**
   * Weight bits (codes stay int8). Default 7: onnxruntime's x86 u8s8 kernels without VNNI add pairs
   * of u8·s8 products in int16 and saturate with full 8-bit weights (ORT's own `reduce_range`).
   */
  weightBits?: number;
  /** Quantize Gemm/MatMul inputs dynamically (DynamicQuantizeLinear) instead of with calibrated pairs. */
  dynamicGemm?: boolean;
  /** Quantize Conv inputs dynamically too. */
  dynamicConv?: boolean;
}

/** A stripped INT8 graph and the quantization step its logits would have. */
export interface QdqResult {
  graph: Graph;
  outputStep: number;
}

function ranges(graph: Graph, calib: tf.Tensor, values: string[]): Map<string, [number, number]> {
  const ex = new Executor(graph);
  const out = new Map<string, [number, number]>();
  try {
    const ts = ex.run(calib, { outputs: values });
    values.forEach((v, i) => {
      const d = ts[i]!.dataSync() as Float32Array;
      let lo = 0;
      let hi = 0;
      for (const x of d) {
        if (x < lo) lo = x;
        if (x > hi) hi = x;
      }
      out.set(v, [lo, hi]);
    });
    // Asking for a graph input returns the feed itself, which belongs to the caller.
    for (const t of ts) if (t !== calib) t.dispose();
  } finally {
    ex.dispose();
  }
  return out;
}

/** Post-training INT8 quantization of a float graph for tests and benches (stand-in for @tensorpress/quant). */
export function quantizeForTest(float: Graph, calib: tf.Tensor, options: QdqOptions = {}): QdqResult {
  const graph = foldAllBatchNorms(float).graph;
  const bits = options.weightBits ?? 7;
  const qmax = 2 ** (bits - 1) - 1;
  const compute = new Set(['Conv', 'Gemm', 'MatMul']);
  // Values that get an activation quantizer: every float activation except graph outputs and a
  // value that only a Relu or Clip reads (its output is quantized; onnxruntime folds the clamp).
  const quantized: string[] = [];
  const dynamic = new Set<string>();
  const candidates = [...graph.inputs.map((i) => i.name), ...graph.nodes.flatMap((n) => n.outputs)];
  for (const v of candidates) {
    if (graph.outputs.includes(v) || graph.isParam(v)) continue;
    const cs = graph.consumers(v);
    const p = graph.producer(v);
    if (p && cs.length > 0 && cs.every((c) => c.node.op === 'Relu' || c.node.op === 'Clip')) continue;
    const dynamicOps = [...(options.dynamicGemm ? ['Gemm', 'MatMul'] : []), ...(options.dynamicConv ? ['Conv'] : [])];
    if (cs.length > 0 && cs.every((c) => dynamicOps.includes(c.node.op) && c.input === 0)) {
      dynamic.add(v);
      continue;
    }
    quantized.push(v);
  }
  const r = ranges(graph, calib, [...quantized, graph.outputs[0]!]);
  const params: Param[] = [...graph.params];
  const nodes: Node[] = [];
  const remap = new Map<string, string>();
  const scaleOf = new Map<string, number>();
  const qNodes = (v: string): Node[] => {
    const [lo, hi] = r.get(v)!;
    const scale = Math.max(hi - lo, 1e-8) / 255;
    const zp = Math.min(255, Math.max(0, Math.round(-lo / scale)));
    const q = `${v}.aq`;
    params.push({ name: `${q}.scale`, shape: [], dtype: 'float32', data: Float32Array.of(scale), trainable: false });
    params.push({ name: `${q}.zp`, shape: [], dtype: 'uint8', data: Uint8Array.of(zp), trainable: false });
    remap.set(v, `${q}.dq`);
    scaleOf.set(`${q}.dq`, scale);
    return [
      { name: `${q}/q`, op: 'QuantizeLinear', inputs: [v, `${q}.scale`, `${q}.zp`], outputs: [`${q}.q`], attrs: {} },
      { name: `${q}/dq`, op: 'DequantizeLinear', inputs: [`${q}.q`, `${q}.scale`, `${q}.zp`], outputs: [`${q}.dq`], attrs: {} },
    ];
  };
  const dynNodes = (v: string): Node[] => {
    const d = `${v}.dyn`;
    remap.set(v, `${d}.dq`);
    return [
      { name: `${d}/dql`, op: 'DynamicQuantizeLinear', inputs: [v], outputs: [`${d}.y`, `${d}.scale`, `${d}.zp`], attrs: {} },
      { name: `${d}/dq`, op: 'DequantizeLinear', inputs: [`${d}.y`, `${d}.scale`, `${d}.zp`], outputs: [`${d}.dq`], attrs: {} },
    ];
  };
  const after = (v: string): Node[] => (quantized.includes(v) ? qNodes(v) : dynamic.has(v) ? dynNodes(v) : []);
  for (const i of graph.inputs) nodes.push(...after(i.name));
  const dropped = new Set<string>();
  for (const n of graph.nodes) {
    const inputs = n.inputs.map((v) => remap.get(v) ?? v);
    if (compute.has(n.op) && graph.isParam(n.inputs[1]!)) {
      const w = graph.param(n.inputs[1]!)!;
      const cout = w.shape[w.shape.length - 1]!;
      const wd = w.data as Float32Array;
      const scale = new Float32Array(cout);
      for (let i = 0; i < wd.length; i++) scale[i % cout] = Math.max(scale[i % cout]!, Math.abs(wd[i]!));
      for (let c = 0; c < cout; c++) scale[c] = Math.max(scale[c]!, 1e-8) / qmax;
      const codes = Int8Array.from(wd, (x, i) => Math.max(-qmax, Math.min(qmax, Math.round(x / scale[i % cout]!))));
      params.push({ name: `${n.name}.w_q`, shape: w.shape, dtype: 'int8', data: codes, trainable: false });
      params.push({ name: `${n.name}.w_scale`, shape: [cout], dtype: 'float32', data: scale, trainable: false });
      params.push({ name: `${n.name}.w_zp`, shape: [cout], dtype: 'int8', data: new Int8Array(cout), trainable: false });
      nodes.push({ name: `${n.name}/dq_w`, op: 'DequantizeLinear', inputs: [`${n.name}.w_q`, `${n.name}.w_scale`, `${n.name}.w_zp`], outputs: [`${n.name}.w_dq`], attrs: { axis: w.shape.length - 1 } });
      inputs[1] = `${n.name}.w_dq`;
      dropped.add(w.name);
      const sx = scaleOf.get(inputs[0]!);
      const b = n.inputs[2] ? graph.param(n.inputs[2]) : undefined;
      if (b && sx !== undefined) {
        const bs = Float32Array.from(scale, (s) => s * sx);
        const bq = Int32Array.from(b.data as Float32Array, (x, i) => Math.round(x / bs[i]!));
        params.push({ name: `${n.name}.b_q`, shape: [cout], dtype: 'int32', data: bq, trainable: false });
        params.push({ name: `${n.name}.b_scale`, shape: [cout], dtype: 'float32', data: bs, trainable: false });
        nodes.push({ name: `${n.name}/dq_b`, op: 'DequantizeLinear', inputs: [`${n.name}.b_q`, `${n.name}.b_scale`], outputs: [`${n.name}.b_dq`], attrs: { axis: 0 } });
        inputs[2] = `${n.name}.b_dq`;
        dropped.add(b.name);
      }
    }
    nodes.push({ ...n, inputs });
    for (const o of n.outputs) nodes.push(...after(o));
  }
  const [lo, hi] = r.get(graph.outputs[0]!)!;
  const g = createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: params.filter((p) => !dropped.has(p.name)) });
  return { graph: g, outputStep: (hi - lo) / 255 };
}
