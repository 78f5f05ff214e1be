/**
 * Post-training quantization of any ONNX model onnxruntime runs: it works on the ONNX protobuf,
 * never on the tensorpress IR, so nodes the in-process executor cannot run are kept verbatim.
 * Activation ranges come from onnxruntime-node (the needed intermediate tensors added as outputs of
 * a copy of the model, batches streamed through injected range collectors), and QuantizeLinear /
 * DequantizeLinear pairs go where onnxruntime's QDQ fusions find them (onnxruntime's
 * `quantize_static` QDQ format).
 */
import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from '@tensorpress/core-tensor';
import type { onnx } from 'onnx-proto';
import { OnnxError } from './errors.js';
import { decodeModel, decodeTensor, type TensorContext } from './internal/decode.js';
import { loadOrt, type Ort } from './internal/ort.js';
import { AT, DT, proto, toNum } from './internal/proto.js';
import { DEFAULT_READ_LIMITS, type ReadLimits } from './limits.js';
import { fixedBatches, inputDims, ortRefusal, realInputs, toFeeds } from './ort-inputs.js';

/**
 * The streaming statistics of one tensor that {@link quantizeOnnx} needs: structurally the
 * `RangeCollector` of @tensorpress/quant's `createCollector` (min-max, percentile, KL, MSE), which
 * the caller injects; export-onnx never imports a technique.
 */
export interface RangeObserver {
  /** Adds one batch of values (the tensor is disposed by the caller). */
  observe(x: tf.Tensor): void;
  /**
   * Optional: adds one batch of values given as a plain array (no tfjs tensor is made). When an
   * observer has it, {@link quantizeOnnx} calls it instead of `observe`.
   */
  observeData?(data: Float32Array): void;
  /** The chosen range. */
  range(): { min: number; max: number };
}

/** Makes the observer of one tensor. */
export type RangeObserverFactory = (tensor: string, options: { symmetric: boolean; bits: number }) => RangeObserver;

/** One calibration batch: a Float32Array of whole examples of the (one) float input, or named feeds. */
export type CalibrationBatch = Float32Array | Record<string, { data: ArrayLike<number> | BigInt64Array; dims: readonly number[]; type?: string }>;

/** The ops {@link quantizeOnnx} puts QDQ around by default. */
export const ORT_PTQ_OPS = [
  'Conv',
  'ConvTranspose',
  'MatMul',
  'Gemm',
  'Add',
  'Mul',
  'MaxPool',
  'AveragePool',
  'GlobalAveragePool',
  'GlobalMaxPool',
  'Concat',
  'Resize',
] as const;

/** Options of {@link quantizeOnnx}. */
export interface OrtPtqOptions {
  /** Range collector per activation tensor. Default: min-max (onnxruntime's MinMax calibrater). */
  collector?: RangeObserverFactory;
  /** Per-output-channel weight scales (Conv, ConvTranspose with group 1, Gemm, 2-D MatMul weights). Default false. */
  perChannel?: boolean;
  /** Activation type: uint8 asymmetric (onnxruntime's default) or int8 asymmetric. Default 'uint8'. */
  activationType?: 'uint8' | 'int8';
  /** Op types to quantize (a subset of {@link ORT_PTQ_OPS}). Default all of them. */
  ops?: readonly string[];
  /** Node names left in float. */
  exclude?: readonly string[];
  /** Stop after this many calibration examples (first axis of the first input). Default: all. */
  samples?: number;
  /** Limits on the model bytes (the reader's). */
  limits?: Partial<ReadLimits>;
  /** onnxruntime intra-op threads during calibration. Default 1. */
  threads?: number;
  /** Called after each calibration batch with the examples seen so far. */
  onProgress?: (examples: number) => void;
}

/** One activation tensor's quantization. */
export interface QuantizedTensor {
  name: string;
  scale: number;
  zeroPoint: number;
  /** The observed range (before widening to include 0); for outputs sharing their input's parameters, that input's. */
  min: number;
  max: number;
}

/** What {@link quantizeOnnx} did. */
export interface OrtPtqResult {
  /** The QDQ model. */
  bytes: Uint8Array;
  /** Nodes with QDQ around them. */
  quantized: { node: string; op: string }[];
  /** Quantizable nodes left in float, and why. */
  skipped: { node: string; op: string; reason: string }[];
  /** Activation tensors with a QuantizeLinear/DequantizeLinear pair. */
  tensors: QuantizedTensor[];
  /** Weights stored as int8. */
  weights: number;
  /** Calibration examples and batches used. */
  examples: number;
  batches: number;
}

type Node = onnx.INodeProto;
interface Params {
  scale: number;
  zeroPoint: number;
  min: number;
  max: number;
}

const MS_DOMAIN = 'com.microsoft';
/** Default-domain ops whose opset-10 form reads differently from their opset-9 one. */
const OPS_CHANGED_AT_10 = new Set(['Slice', 'TopK', 'Upsample']);
const WEIGHT_INPUTS: Record<string, number[]> = { Conv: [1], ConvTranspose: [1], Gemm: [1], MatMul: [0, 1] };
const BIAS_INPUT: Record<string, number> = { Conv: 2, ConvTranspose: 2, Gemm: 2 };
/** Ops whose output takes its input's scale and zero point (onnxruntime drops their Q/DQ pair). */
const SAME_AS_INPUT = new Set(['MaxPool', 'GlobalMaxPool', 'Resize']);
/** Activations a Q with zero point at the lowest code replaces (onnxruntime's ReluQuantFusion / ClipQuantFusion). */
const FUSED_ACTIVATIONS = new Set(['Relu', 'Clip']);

/** Rounds half to even, as QuantizeLinear and numpy do. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * Scale and zero point of a range, as onnxruntime's `compute_scale_zp` (float32 arithmetic): the
 * range widened to contain 0, scale (max − min) / (qmax − qmin), zero point round(qmin − min / scale)
 * (half to even); symmetric ranges are [−m, m] with zero point (qmin + qmax) / 2 rounded; an empty
 * range gets scale 1, zero point 0.
 */
export function scaleZeroPoint(min: number, max: number, qmin: number, qmax: number, symmetric = false): { scale: number; zeroPoint: number } {
  let lo = Math.fround(Math.min(min, 0));
  let hi = Math.fround(Math.max(max, 0));
  if (symmetric) {
    const m = Math.max(Math.abs(lo), Math.abs(hi));
    lo = -m;
    hi = m;
  }
  const scale = Math.fround(Math.fround(hi - lo) / (qmax - qmin));
  if (!(scale > 0) || !Number.isFinite(scale)) return { scale: 1, zeroPoint: symmetric ? roundHalfEven((qmin + qmax) / 2) : 0 };
  const zeroPoint = symmetric ? roundHalfEven((qmin + qmax) / 2) : roundHalfEven(Math.fround(qmin - Math.fround(lo / scale)));
  return { scale, zeroPoint: Math.min(qmax, Math.max(qmin, zeroPoint)) };
}

/** The built-in min-max observer (no histogram): onnxruntime's MinMax calibrater. */
function minMaxObserver(): RangeObserver {
  let lo = Infinity;
  let hi = -Infinity;
  const observeData = (d: Float32Array | Int32Array | Uint8Array): void => {
    for (let i = 0; i < d.length; i++) {
      const v = d[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  };
  return {
    observeData,
    observe(x) {
      observeData(x.dataSync() as Float32Array);
    },
    range() {
      return lo <= hi ? { min: lo, max: hi } : { min: 0, max: 0 };
    },
  };
}

function nodeLabel(n: Node, i: number): string {
  return n.name || `${n.opType ?? '?'}#${i}`;
}

/** The opset of the default domain. */
function defaultOpset(m: onnx.ModelProto): number {
  const e = (m.opsetImport ?? []).find((o) => !o.domain || o.domain === 'ai.onnx');
  return e ? toNum(e.version ?? 1, 'opset_import.version') : 1;
}

function attrInt(n: Node, name: string, dflt: number): number {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  return a && a.type === AT.INT ? toNum(a.i ?? 0, `${n.name} ${name}`) : dflt;
}

/**
 * Quantizes an ONNX model to the QDQ format with activation ranges measured in onnxruntime-node.
 *
 * Which nodes: Conv, ConvTranspose, MatMul, Gemm, Add, Mul, pooling, Concat and Resize of the
 * default domain (`options.ops`) whose inputs are float. Their float activation inputs and (except
 * graph outputs) their outputs get one QuantizeLinear → DequantizeLinear pair each, shared by every
 * consumer; an output that feeds exactly one Relu or Clip is quantized after it (onnxruntime folds
 * the activation into the Q). MaxPool and Resize outputs take their input's parameters. Weights
 * (constant inputs of Conv, ConvTranspose, Gemm, MatMul) become int8 symmetric narrow-range
 * initializers [−127, 127] (per output channel with `perChannel`) + DequantizeLinear, biases int32
 * with scale s_x·s_w; other constant inputs of quantized nodes are quantized like activations from
 * their own min and max. Every other node is kept verbatim. Models below opset 13 get com.microsoft
 * QuantizeLinear/DequantizeLinear (which onnxruntime fuses the same way).
 *
 * Memory is flat in the number of calibration examples: each batch's intermediates go to their
 * observers and are dropped.
 *
 * @throws OnnxError for a malformed model, one over the limits, or one onnxruntime does not run;
 *   TensorpressError `DATA_INVALID` for calibration data that does not fit the model's inputs.
 */
export async function quantizeOnnx(bytes: Uint8Array, batches: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch>, options: OrtPtqOptions = {}): Promise<OrtPtqResult> {
  const limits: ReadLimits = { ...DEFAULT_READ_LIMITS, ...options.limits };
  const model = decodeModel(bytes, limits);
  const g = model.graph;
  if (!g) throw new OnnxError('ONNX_INVALID', 'malformed ONNX model: ModelProto.graph is missing', { field: 'ModelProto.graph' });
  const nodes = g.node ?? [];
  if (nodes.length > limits.maxNodes) {
    throw new OnnxError('ONNX_INVALID', `the model has ${nodes.length} nodes, above the limit of ${limits.maxNodes} (limits.maxNodes)`, { field: 'GraphProto.node' });
  }
  const qmin = options.activationType === 'int8' ? -128 : 0;
  const qmax = options.activationType === 'int8' ? 127 : 255;
  const actType = options.activationType === 'int8' ? DT.INT8 : DT.UINT8;
  const ops = new Set(options.ops ?? ORT_PTQ_OPS);
  const exclude = new Set(options.exclude ?? []);
  const opset = defaultOpset(model);
  const qdqDomain = opset >= 13 ? '' : MS_DOMAIN;
  if (opset < 10) {
    // onnxruntime fuses QDQ groups into default-domain QLinearConv & co., which exist from opset 10:
    // an opset-9 model is moved to opset 10 when none of its ops changed meaning there.
    const changed = nodes.find((n) => (!n.domain || n.domain === 'ai.onnx') && OPS_CHANGED_AT_10.has(n.opType ?? ''));
    if (changed) {
      throw new OnnxError(
        'ONNX_UNSUPPORTED',
        `node "${changed.name}" (${changed.opType}): an opset-${opset} model with ${changed.opType} cannot move to opset 10, where onnxruntime's quantized kernels start and ${changed.opType} changed; convert the model first (onnx.version_converter.convert_version(model, 13)) or re-export it at opset 13`,
        { node: changed.name ?? '', op: changed.opType ?? '' },
      );
    }
  }

  // Constants: initializers and Constant nodes' `value` tensors.
  const ctx: TensorContext = { limits, total: { n: 0 }, externalDataDir: undefined };
  const consts = new Map<string, onnx.ITensorProto>();
  for (const t of g.initializer ?? []) consts.set(t.name ?? '', t);
  const constNode = new Map<string, Node>();
  for (const n of nodes) {
    if (n.opType === 'Constant' && (!n.domain || n.domain === 'ai.onnx')) {
      const v = (n.attribute ?? []).find((a) => a.name === 'value' && a.type === AT.TENSOR);
      if (v?.t && n.output?.[0]) {
        consts.set(n.output[0], v.t);
        constNode.set(n.output[0], n);
      }
    }
  }
  // Identity of a constant (how torch's exporter shares a parameter at older opsets) is a constant too.
  const aliasOf = new Map<string, string>();
  for (const n of nodes) {
    const src = n.input?.[0];
    if (n.opType === 'Identity' && (!n.domain || n.domain === 'ai.onnx') && src && consts.has(src) && n.output?.[0]) {
      consts.set(n.output[0], consts.get(src)!);
      aliasOf.set(n.output[0], aliasOf.get(src) ?? src);
    }
  }
  const floatConst = (name: string): Float32Array | undefined => {
    const t = consts.get(name);
    if (!t || (t.dataType !== DT.FLOAT && t.dataType !== DT.DOUBLE)) return undefined;
    return decodeTensor(t, `tensor "${name}"`, ctx).data as Float32Array;
  };
  const constDims = (name: string): number[] => (consts.get(name)?.dims ?? []).map((d) => toNum(d, name));
  const graphOutputs = new Set((g.output ?? []).map((o) => o.name ?? ''));
  const inputs = realInputs(g);
  const inputNames = new Set(inputs.map((v) => v.name ?? ''));
  const consumers = new Map<string, Node[]>();
  for (const n of nodes) for (const x of n.input ?? []) if (x) consumers.set(x, [...(consumers.get(x) ?? []), n]);

  // Selection: per node, activation inputs, weight inputs, bias, constant inputs quantized like activations.
  interface Plan {
    node: Node;
    label: string;
    acts: string[];
    weights: { index: number; axis: number | null }[];
    bias: number | null;
    constActs: number[];
    output: string | null;
    sameAsInput: boolean;
  }
  const plans: Plan[] = [];
  const skipped: OrtPtqResult['skipped'] = [];
  nodes.forEach((n, i) => {
    const op = n.opType ?? '';
    if ((n.domain && n.domain !== 'ai.onnx') || !ops.has(op)) return;
    const label = nodeLabel(n, i);
    if (exclude.has(label)) return void skipped.push({ node: label, op, reason: 'excluded' });
    const ins = n.input ?? [];
    if (op === 'Add' || op === 'Mul') {
      // Through up to 3 reductions/elementwise steps (square → mean → + eps → Sqrt).
      const denominatorOf = (y: string, depth: number): Node | undefined => {
        for (const c of consumers.get(y) ?? []) {
          if (c.opType === 'Sqrt' || c.opType === 'Reciprocal' || (c.opType === 'Div' && c.input?.[1] === y)) return c;
          if (depth > 0 && ['ReduceMean', 'ReduceSum', 'Add', 'Mul', 'Pow'].includes(c.opType ?? '')) {
            const d = denominatorOf(c.output?.[0] ?? '', depth - 1);
            if (d) return d;
          }
        }
        return undefined;
      };
      const denominator = denominatorOf(n.output?.[0] ?? '', 3);
      if (denominator) {
        return void skipped.push({
          node: label,
          op,
          reason: `it feeds the ${denominator.opType} of a normalization (a variance): one range step would wipe out small values, so it stays float`,
        });
      }
    }
    const plan: Plan = { node: n, label, acts: [], weights: [], bias: null, constActs: [], output: null, sameAsInput: SAME_AS_INPUT.has(op) };
    const dataInputs = op === 'Resize' ? [0] : op === 'Concat' || op === 'Add' || op === 'Mul' || op === 'MatMul' ? ins.map((_, k) => k) : op === 'Conv' || op === 'ConvTranspose' || op === 'Gemm' ? [0, 1] : [0];
    let reason: string | null = null;
    for (const k of dataInputs) {
      const x = ins[k];
      if (!x) continue;
      if (consts.has(x)) {
        const t = consts.get(x)!;
        if (t.dataType !== DT.FLOAT) {
          reason = `input ${k} ("${x}") is a constant of ONNX type ${t.dataType}, not float`;
          break;
        }
        if (WEIGHT_INPUTS[op]?.includes(k)) {
          const dims = constDims(x);
          const group = attrInt(n, 'group', 1);
          const axis =
            op === 'Conv' ? 0 : op === 'ConvTranspose' ? (group === 1 ? 1 : null) : op === 'Gemm' ? (attrInt(n, 'transB', 0) ? 0 : 1) : dims.length === 2 && k === 1 ? 1 : null;
          plan.weights.push({ index: k, axis: options.perChannel && dims.length >= 2 ? axis : null });
        } else plan.constActs.push(k);
      } else plan.acts.push(x);
    }
    if (reason) return void skipped.push({ node: label, op, reason });
    if ((op === 'Conv' || op === 'ConvTranspose' || op === 'Gemm') && plan.weights.length === 0) {
      return void skipped.push({ node: label, op, reason: 'its weight is not a constant' });
    }
    if (plan.acts.length === 0) return void skipped.push({ node: label, op, reason: 'no activation input' });
    const b = BIAS_INPUT[op];
    if (b !== undefined && ins[b] && consts.get(ins[b])?.dataType === DT.FLOAT && constDims(ins[b]).length === 1) plan.bias = b;
    let out = n.output?.[0] ?? '';
    const next = consumers.get(out) ?? [];
    if (!plan.sameAsInput && next.length === 1 && FUSED_ACTIVATIONS.has(next[0]!.opType ?? '') && !graphOutputs.has(out) && (!next[0]!.domain || next[0]!.domain === 'ai.onnx')) {
      out = next[0]!.output?.[0] ?? out;
    }
    plan.output = out && !graphOutputs.has(out) ? out : null;
    plans.push(plan);
  });

  // Tensors whose ranges are measured (outputs that share their input's parameters are not).
  const observed = new Set<string>();
  for (const p of plans) {
    for (const a of p.acts) observed.add(a);
    if (p.output && !p.sameAsInput) observed.add(p.output);
  }
  const ort = await loadOrt();
  const aug = proto.ModelProto.decode(bytes);
  const augOutputs = new Set((aug.graph!.output ?? []).map((o) => o.name ?? ''));
  for (const t of observed) if (!augOutputs.has(t) && !inputNames.has(t)) aug.graph!.output!.push(proto.ValueInfoProto.create({ name: t }));
  let session: Awaited<ReturnType<Ort['InferenceSession']['create']>>;
  try {
    session = await ort.InferenceSession.create(proto.ModelProto.encode(aug).finish(), {
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      // Every fusion that keeps the requested outputs: the ranges are those of the float model.
      graphOptimizationLevel: 'all',
    });
  } catch (e) {
    throw ortRefusal(e, 'calibration');
  }
  const observers = new Map<string, RangeObserver>();
  const nonFloat = new Map<string, string>();
  const factory = options.collector ?? (() => minMaxObserver());
  for (const t of observed) observers.set(t, factory(t, { symmetric: false, bits: 8 }));
  const fetches = [...observed].filter((t) => !inputNames.has(t));
  if (fetches.length === 0) fetches.push(session.outputNames[0]!);
  let examples = 0;
  let count = 0;
  const limit = options.samples ?? Infinity;
  try {
    const dims0 = inputs.length === 1 ? inputDims(inputs[0]!) : [];
    const per0 = dims0.slice(1).every((d) => d !== null) ? (dims0.slice(1) as number[]).reduce((p, d) => p * d, 1) : 0;
    for await (const batch of fixedBatches(batches, dims0[0] ?? null, per0)) {
      if (examples >= limit) break;
      let { feeds, examples: n } = toFeeds(ort, batch, inputs, count);
      if (examples + n > limit && dims0[0] === null) {
        const keep = limit - examples;
        const sliced: typeof feeds = {};
        for (const [k, v] of Object.entries(feeds)) {
          const per = v.dims.slice(1).reduce((p, d) => p * d, 1);
          sliced[k] = new ort.Tensor(v.type as 'float32', (v.data as Float32Array).subarray(0, keep * per), [keep, ...v.dims.slice(1)]);
        }
        feeds = sliced;
        n = keep;
      }
      let out: Awaited<ReturnType<typeof session.run>>;
      try {
        out = await session.run(feeds, fetches);
      } catch (e) {
        const msg = e instanceof Error ? e.message : String(e);
        throw new TensorpressError('DATA_INVALID', `calibration batch ${count}: onnxruntime cannot run the model on it: ${msg.split('\n')[0]}; check the input shape and dtype the model expects`, { batch: count });
      }
      for (const t of observed) {
        const v = inputNames.has(t) ? feeds[t] : out[t];
        if (!v) continue;
        if (v.type !== 'float32') {
          nonFloat.set(t, v.type);
          continue;
        }
        const o = observers.get(t)!;
        if (o.observeData) {
          o.observeData(v.data as Float32Array);
          continue;
        }
        const x = tf.tensor(v.data as Float32Array, [...v.dims]);
        try {
          o.observe(x);
        } finally {
          x.dispose();
        }
      }
      examples += n;
      count++;
      options.onProgress?.(examples);
    }
  } finally {
    await session.release();
  }
  if (count === 0) throw new TensorpressError('DATA_INVALID', 'no calibration data: the batches were empty; give at least one example', {});

  // Parameters of every measured tensor, then of outputs sharing their input's.
  const params = new Map<string, Params>();
  for (const [t, o] of observers) {
    if (nonFloat.has(t)) continue;
    const r = o.range();
    params.set(t, { ...scaleZeroPoint(r.min, r.max, qmin, qmax), min: r.min, max: r.max });
  }
  const kept: Plan[] = [];
  for (const p of plans) {
    const bad = [...p.acts, ...(p.output && !p.sameAsInput ? [p.output] : [])].find((t) => nonFloat.has(t));
    if (bad) {
      skipped.push({ node: p.label, op: p.node.opType ?? '', reason: `"${bad}" is ${nonFloat.get(bad)}, not float` });
      continue;
    }
    if (p.sameAsInput && p.output) {
      const src = params.get(p.acts[0]!);
      if (src) params.set(p.output, src);
    }
    kept.push(p);
  }
  const activations = new Set<string>();
  for (const p of kept) {
    for (const a of p.acts) if (params.has(a)) activations.add(a);
    if (p.output && params.has(p.output)) activations.add(p.output);
  }

  // Rewrite on the original model.
  const taken = new Set<string>();
  for (const n of nodes) {
    if (n.name) taken.add(n.name);
    for (const x of [...(n.input ?? []), ...(n.output ?? [])]) if (x) taken.add(x);
  }
  for (const t of g.initializer ?? []) taken.add(t.name ?? '');
  for (const v of [...(g.input ?? []), ...(g.output ?? [])]) taken.add(v.name ?? '');
  const fresh = (base: string): string => {
    let s = base;
    for (let k = 1; taken.has(s); k++) s = `${base}_${k}`;
    taken.add(s);
    return s;
  };
  const newInits: onnx.ITensorProto[] = [];
  const scalarInit = (name: string, dataType: number, value: number): string => {
    const n = fresh(name);
    const raw = dataType === DT.FLOAT ? new Uint8Array(Float32Array.of(value).buffer) : dataType === DT.INT8 ? new Uint8Array(Int8Array.of(value).buffer) : Uint8Array.of(value);
    newInits.push(proto.TensorProto.create({ name: n, dataType, dims: [], rawData: raw }));
    return n;
  };
  const qdq = (kind: 'QuantizeLinear' | 'DequantizeLinear', x: string, s: string, z: string | null, y: string, axis: number | null): Node =>
    proto.NodeProto.create({
      name: fresh(`${y}_${kind === 'QuantizeLinear' ? 'Q' : 'DQ'}`),
      opType: kind,
      domain: qdqDomain,
      input: z === null ? [x, s] : [x, s, z],
      output: [y],
      attribute: axis === null ? [] : [proto.AttributeProto.create({ name: 'axis', type: AT.INT, i: axis })],
    });

  // Activation QDQ pairs: Q/DQ right after the producer (or at the start for graph inputs); every consumer reads the DQ output.
  const dqOf = new Map<string, string>();
  const pairNodes = new Map<string, Node[]>();
  for (const t of activations) {
    const p = params.get(t)!;
    const s = scalarInit(`${t}_scale`, DT.FLOAT, p.scale);
    const z = scalarInit(`${t}_zero_point`, actType, p.zeroPoint);
    const q = fresh(`${t}_quantized`);
    const dq = fresh(`${t}_dequantized`);
    dqOf.set(t, dq);
    pairNodes.set(t, [qdq('QuantizeLinear', t, s, z, q, null), qdq('DequantizeLinear', q, s, z, dq, null)]);
  }
  // Weights, biases and constant inputs, per consuming node.
  const weightNodes = new Map<Node, Node[]>();
  const rewired = new Map<Node, Map<number, string>>();
  let weightCount = 0;
  /** Constants replaced by quantized copies (dropped when nothing else reads them). */
  const replaced = new Set<string>();
  const constCache = new Map<string, { dq: string; node: Node; scales: Float32Array }>();
  const quantizeWeight = (name: string, dims: number[], axis: number | null): { dq: string; node: Node; scales: Float32Array } => {
    // one int8 copy per parameter, however many aliases share it
    const key = `${aliasOf.get(name) ?? name}|${axis}`;
    const hit = constCache.get(key);
    replaced.add(name);
    if (hit) return hit;
    const w = floatConst(name)!;
    const channels = axis === null ? 1 : dims[axis]!;
    const inner = axis === null ? 1 : dims.slice(axis + 1).reduce((p, d) => p * d, 1);
    const absmax = new Float64Array(channels);
    for (let i = 0; i < w.length; i++) {
      const c = axis === null ? 0 : Math.floor(i / inner) % channels;
      absmax[c] = Math.max(absmax[c]!, Math.abs(w[i]!));
    }
    const scales = Float32Array.from(absmax, (m) => scaleZeroPoint(-m, m, -127, 127, true).scale);
    const q = new Int8Array(w.length);
    for (let i = 0; i < w.length; i++) {
      const c = axis === null ? 0 : Math.floor(i / inner) % channels;
      q[i] = Math.max(-127, Math.min(127, roundHalfEven(Math.fround(w[i]! / scales[c]!))));
    }
    const qn = fresh(`${name}_quantized`);
    newInits.push(proto.TensorProto.create({ name: qn, dataType: DT.INT8, dims, rawData: new Uint8Array(q.buffer) }));
    const sn = fresh(`${name}_scale`);
    newInits.push(proto.TensorProto.create({ name: sn, dataType: DT.FLOAT, dims: axis === null ? [] : [channels], rawData: new Uint8Array(Float32Array.from(scales).buffer) }));
    const zn = fresh(`${name}_zero_point`);
    newInits.push(proto.TensorProto.create({ name: zn, dataType: DT.INT8, dims: axis === null ? [] : [channels], rawData: new Uint8Array(channels) }));
    const dq = fresh(`${name}_dequantized`);
    const r = { dq, node: qdq('DequantizeLinear', qn, sn, zn, dq, axis), scales };
    constCache.set(key, r);
    weightCount++;
    return r;
  };
  const quantized: OrtPtqResult['quantized'] = [];
  for (const p of kept) {
    const n = p.node;
    const ins = n.input!;
    const extra: Node[] = [];
    const map = new Map<number, string>();
    let wScales: Float32Array | null = null;
    for (const w of p.weights) {
      const r = quantizeWeight(ins[w.index]!, constDims(ins[w.index]!), w.axis);
      if (!extra.includes(r.node) && ![...weightNodes.values()].some((l) => l.includes(r.node))) extra.push(r.node);
      map.set(w.index, r.dq);
      if (w.index === 1) wScales = r.scales;
    }
    for (const k of p.constActs) {
      const name = ins[k]!;
      const key = `${name}|act`;
      let hit = constCache.get(key);
      if (!hit) {
        replaced.add(name);
        const c = floatConst(name)!;
        let lo = Infinity;
        let hi = -Infinity;
        for (const v of c) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        const sp = scaleZeroPoint(lo, hi, qmin, qmax);
        const codes = Float64Array.from(c, (v) => Math.max(qmin, Math.min(qmax, roundHalfEven(Math.fround(v / sp.scale)) + sp.zeroPoint)));
        const qn = fresh(`${name}_quantized`);
        newInits.push(proto.TensorProto.create({ name: qn, dataType: actType, dims: constDims(name), rawData: actType === DT.INT8 ? new Uint8Array(Int8Array.from(codes).buffer) : Uint8Array.from(codes) }));
        const dq = fresh(`${name}_dequantized`);
        hit = { dq, node: qdq('DequantizeLinear', qn, scalarInit(`${name}_scale`, DT.FLOAT, sp.scale), scalarInit(`${name}_zero_point`, actType, sp.zeroPoint), dq, null), scales: Float32Array.of(sp.scale) };
        constCache.set(key, hit);
        extra.push(hit.node);
      }
      map.set(k, hit.dq);
    }
    const xParams = params.get(ins[0] ?? '');
    if (p.bias !== null && wScales && xParams && p.weights.some((w) => w.index === 1)) {
      const name = ins[p.bias]!;
      const b = floatConst(name)!;
      const scales = Float32Array.from(b, (_, c) => Math.fround(xParams.scale * (wScales!.length === 1 ? wScales![0]! : wScales![c] ?? wScales![0]!)));
      if (wScales.length === 1 || wScales.length === b.length) {
        const codes = Int32Array.from(b, (v, c) => {
          const s = scales[c]! > 0 ? scales[c]! : 1;
          return Math.max(-(2 ** 31), Math.min(2 ** 31 - 1, roundHalfEven(Math.fround(v / s))));
        });
        replaced.add(name);
        const qn = fresh(`${name}_quantized`);
        newInits.push(proto.TensorProto.create({ name: qn, dataType: DT.INT32, dims: [b.length], rawData: new Uint8Array(codes.buffer) }));
        const sn = fresh(`${name}_scale`);
        const perChannel = wScales.length > 1;
        newInits.push(proto.TensorProto.create({ name: sn, dataType: DT.FLOAT, dims: perChannel ? [b.length] : [], rawData: new Uint8Array((perChannel ? scales : scales.subarray(0, 1)).slice().buffer) }));
        const dq = fresh(`${name}_dequantized`);
        extra.push(qdq('DequantizeLinear', qn, sn, null, dq, perChannel ? 0 : null));
        map.set(p.bias, dq);
      }
    }
    weightNodes.set(n, extra);
    rewired.set(n, map);
    quantized.push({ node: p.label, op: n.opType ?? '' });
  }

  // The new node list, in topological order.
  const out: Node[] = [];
  const emitPair = (t: string): void => {
    const pair = pairNodes.get(t);
    if (pair) out.push(...pair);
  };
  for (const v of inputs) emitPair(v.name ?? '');
  for (const n of nodes) {
    out.push(...(weightNodes.get(n) ?? []));
    const map = rewired.get(n);
    n.input = (n.input ?? []).map((x, k) => map?.get(k) ?? dqOf.get(x) ?? x);
    out.push(n);
    for (const y of n.output ?? []) emitPair(y);
  }
  // Constant nodes whose value nothing reads any more go.
  // Constant nodes and Identity aliases of constants whose value nothing reads any more go, then
  // the constants only they read.
  const usedBy = (nodeList: Node[]): Set<string> => {
    const u = new Set<string>([...graphOutputs]);
    for (const n of nodeList) for (const x of n.input ?? []) u.add(x);
    return u;
  };
  let used = usedBy(out);
  const deadAlias = (n: Node): boolean => {
    const y = n.output?.[0] ?? '';
    return replaced.has(y) && !used.has(y) && ((n.opType === 'Constant' && constNode.get(y) === n) || (n.opType === 'Identity' && consts.has(n.input?.[0] ?? '')));
  };
  let live = out.filter((n) => !deadAlias(n));
  for (const n of out) if (deadAlias(n) && n.opType === 'Identity') replaced.add(n.input![0]!);
  used = usedBy(live);
  // an Identity whose source was quantized through another consumer may now be dead too
  live = live.filter((n) => !deadAlias(n));
  used = usedBy(live);
  const dropped = new Set([...replaced].filter((t) => !used.has(t)));
  g.node = live;
  g.initializer = [...(g.initializer ?? []).filter((t) => !dropped.has(t.name ?? '')), ...newInits];
  g.input = (g.input ?? []).filter((v) => !dropped.has(v.name ?? ''));
  if (opset < 10) {
    for (const o of model.opsetImport ?? []) if (!o.domain || o.domain === 'ai.onnx') o.version = 10;
    if (toNum(model.irVersion ?? 0, 'ir_version') < 5) model.irVersion = 5;
  }
  if (qdqDomain && !(model.opsetImport ?? []).some((o) => o.domain === MS_DOMAIN)) {
    model.opsetImport = [...(model.opsetImport ?? []), proto.OperatorSetIdProto.create({ domain: MS_DOMAIN, version: 1 })];
  }
  const result = proto.ModelProto.encode(model).finish();
  return {
    bytes: new Uint8Array(result),
    quantized,
    skipped,
    tensors: [...activations].map((t) => ({ name: t, ...params.get(t)! })),
    weights: weightCount,
    examples,
    batches: count,
  };
}
