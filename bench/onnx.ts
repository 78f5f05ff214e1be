/**
 * `npm run bench -- onnx [--quick]`: onnxruntime-node latency of the reference models exported by
 * @tensorpress/export-onnx as FP32, INT8 QDQ and INT8 QOperator, at batch 1 and 256 with 1 and 2
 * intra-op threads, plus file sizes. INT8 and FP32 of one setting are timed side by side in the same
 * run (alternating rounds) and reported as a ratio (`speedup` = FP32 ms / INT8 ms).
 *
 * The INT8 graphs come from `quantizeStandIn` below, a min/max post-training quantizer in the
 * stripped format of notes/QUANT-CONTRACT.md. Once @tensorpress/quant lands, replace the one call in
 * `int8Graph()` with `quantizePostTraining(graph, calibrationData, options)`.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  createGraph,
  foldAllBatchNorms,
  referenceModels,
  useBackend,
  type Graph,
  type Node,
  type Param,
  type ReferenceModelName,
} from '@tensorpress/core-tensor';
import { loadMnist } from '@tensorpress/datasets';
import { ortLatency, toOnnx } from '@tensorpress/export-onnx';
import { median, round } from './common.js';
import type { SuiteResult } from './run.js';

interface Variant {
  model: ReferenceModelName;
  /** Example shape, channels last. */
  input: [number, number, number];
}

const VARIANTS: Variant[] = [
  { model: 'plainCnn', input: [28, 28, 1] },
  { model: 'residualCnn', input: [28, 28, 1] },
  { model: 'mobileNetCnn', input: [28, 28, 1] },
  { model: 'mlp', input: [28, 28, 1] },
  // Larger maps give the integer kernels more work per call; this is where INT8 pays off.
  { model: 'residualCnn', input: [64, 64, 3] },
];

/**
 * Min/max post-training INT8 quantization (stand-in for @tensorpress/quant): BN folded, 7-bit
 * per-channel symmetric weight codes in int8 (onnxruntime's `reduce_range`: its x86 u8s8 kernels
 * without VNNI saturate int16 pair sums with full 8-bit weights), int32 biases with scale s_x·s_w,
 * and a uint8 Q/DQ pair on every activation a Conv/Gemm/Add/pool reads or writes (never on a value
 * only a Relu reads, nor on graph outputs).
 */
export function quantizeStandIn(float: Graph, calib: tf.Tensor, weightBits = 7): Graph {
  const graph = foldAllBatchNorms(float).graph;
  const qmax = 2 ** (weightBits - 1) - 1;
  const compute = new Set(['Conv', 'Gemm', 'MatMul']);
  const quantized: string[] = [];
  for (const v of [...graph.inputs.map((i) => i.name), ...graph.nodes.flatMap((n) => n.outputs)]) {
    if (graph.outputs.includes(v) || graph.isParam(v)) continue;
    const cs = graph.consumers(v);
    if (cs.length > 0 && cs.every((c) => c.node.op === 'Relu')) continue;
    quantized.push(v);
  }
  const range = new Map<string, [number, number]>();
  const ex = new Executor(graph);
  const ts = ex.run(calib, { outputs: quantized });
  quantized.forEach((v, i) => {
    let lo = 0;
    let hi = 0;
    for (const x of ts[i]!.dataSync() as Float32Array) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    range.set(v, [lo, hi]);
  });
  for (const t of ts) if (t !== calib) t.dispose();
  ex.dispose();
  const params: Param[] = [...graph.params];
  const nodes: Node[] = [];
  const remap = new Map<string, string>();
  const scaleOf = new Map<string, number>();
  const dropped = new Set<string>();
  const after = (v: string): Node[] => {
    if (!range.has(v)) return [];
    const [lo, hi] = range.get(v)!;
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
  for (const i of graph.inputs) nodes.push(...after(i.name));
  for (const n of graph.nodes) {
    const inputs = n.inputs.map((v) => remap.get(v) ?? v);
    if (compute.has(n.op) && graph.isParam(n.inputs[1]!)) {
      const w = graph.param(n.inputs[1]!)!;
      const cout = w.shape[w.shape.length - 1]!;
      const wd = w.data as Float32Array;
      const scale = new Float32Array(cout);
      for (let i = 0; i < wd.length; i++) scale[i % cout] = Math.max(scale[i % cout]!, Math.abs(wd[i]!));
      for (let c = 0; c < cout; c++) scale[c] = Math.max(scale[c]!, 1e-8) / qmax;
      params.push({ name: `${n.name}.w_q`, shape: w.shape, dtype: 'int8', data: Int8Array.from(wd, (x, i) => Math.max(-qmax, Math.min(qmax, Math.round(x / scale[i % cout]!)))), trainable: false });
      params.push({ name: `${n.name}.w_scale`, shape: [cout], dtype: 'float32', data: scale, trainable: false });
      params.push({ name: `${n.name}.w_zp`, shape: [cout], dtype: 'int8', data: new Int8Array(cout), trainable: false });
      nodes.push({ name: `${n.name}/dq_w`, op: 'DequantizeLinear', inputs: [`${n.name}.w_q`, `${n.name}.w_scale`, `${n.name}.w_zp`], outputs: [`${n.name}.w_dq`], attrs: { axis: w.shape.length - 1 } });
      inputs[1] = `${n.name}.w_dq`;
      dropped.add(w.name);
      const sx = scaleOf.get(inputs[0]!);
      const b = n.inputs[2] ? graph.param(n.inputs[2]) : undefined;
      if (b && sx !== undefined) {
        const bs = Float32Array.from(scale, (s) => s * sx);
        params.push({ name: `${n.name}.b_q`, shape: [cout], dtype: 'int32', data: Int32Array.from(b.data as Float32Array, (x, i) => Math.round(x / bs[i]!)), trainable: false });
        params.push({ name: `${n.name}.b_scale`, shape: [cout], dtype: 'float32', data: bs, trainable: false });
        nodes.push({ name: `${n.name}/dq_b`, op: 'DequantizeLinear', inputs: [`${n.name}.b_q`, `${n.name}.b_scale`], outputs: [`${n.name}.b_dq`], attrs: { axis: 0 } });
        inputs[2] = `${n.name}.b_dq`;
        dropped.add(b.name);
      }
    }
    nodes.push({ ...n, inputs });
    for (const o of n.outputs) nodes.push(...after(o));
  }
  return createGraph({ inputs: graph.inputs, outputs: graph.outputs, nodes, params: params.filter((p) => !dropped.has(p.name)) });
}

/** The INT8 graph of a float graph: the one place to call @tensorpress/quant's quantizePostTraining instead. */
function int8Graph(float: Graph, calib: tf.Tensor): Graph {
  return quantizeStandIn(float, calib);
}

async function calibration(input: [number, number, number]): Promise<tf.Tensor> {
  if (input.join() === '28,28,1') {
    const { train } = await loadMnist({ seed: 0 });
    const b = train.batches(256).next().value!;
    b.y.dispose();
    return b.x;
  }
  // No dataset of this shape: seeded uniform noise in the MNIST pixel range stands in.
  return tf.randomUniform([64, ...input], 0, 1, 'float32', 0);
}

export default async function onnxBench(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  await useBackend('wasm');
  const batches = quick ? [1, 8] : [1, 256];
  const threadsList = [1, 2];
  const rounds = quick ? 1 : 3;
  const rows: Record<string, unknown>[] = [];
  for (const v of quick ? VARIANTS.slice(0, 2) : VARIANTS) {
    const float = referenceModels[v.model]({ seed: 0, inputShape: v.input });
    const calib = await calibration(v.input);
    const q = int8Graph(float, calib);
    calib.dispose();
    const files = {
      fp32: toOnnx(float),
      'int8-qdq': toOnnx(q),
      'int8-qoperator': toOnnx(q, { format: 'qoperator' }),
    };
    for (const batch of batches) {
      for (const threads of threadsList) {
        // Rounds alternate the three files so drift and other load hit them alike.
        const runs = Math.max(3, Math.round((batch === 1 ? 60 : 12) / rounds / (quick ? 4 : 1)));
        const samples: Record<keyof typeof files, number[]> = { fp32: [], 'int8-qdq': [], 'int8-qoperator': [] };
        for (let r = 0; r < rounds; r++) {
          for (const f of Object.keys(files) as (keyof typeof files)[]) {
            samples[f].push(...(await ortLatency(files[f], { batch, threads, runs, warmup: 2 })).samples);
          }
        }
        const fp32Ms = median(samples.fp32);
        for (const f of Object.keys(files) as (keyof typeof files)[]) {
          const ms = median(samples[f]);
          rows.push({
            model: v.model,
            input: v.input.join('x'),
            format: f,
            batch,
            threads,
            latencyMs: round(ms, 3),
            bytes: files[f].length,
            sizeRatio: round(files[f].length / files.fp32.length, 3),
            speedup: round(fp32Ms / ms, 2),
          });
          console.log(`${v.model} ${v.input.join('x')} ${f} batch ${batch} threads ${threads}: ${ms.toFixed(3)} ms (×${(fp32Ms / ms).toFixed(2)} vs fp32)`);
        }
      }
    }
  }
  return {
    rows,
    backend: 'onnxruntime-node (CPU EP)',
    notes: [
      'latencyMs: median of one InferenceSession.run over all rounds, after warm-up; graph optimisation level "all", sequential execution, interOpNumThreads 1.',
      'speedup: FP32 median divided by this median, same model, batch and threads, measured in the same run.',
      'INT8: bench/onnx.ts quantizeStandIn (min/max PTQ, 7-bit per-channel weights, uint8 activations, full QDQ), calibrated on 256 MNIST training digits (noise for non-28x28 inputs).',
      'sizeRatio: file bytes divided by the FP32 file (BN unfolded) of the same model.',
    ],
  };
}
