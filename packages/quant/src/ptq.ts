import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  batchNormInputStatistics,
  checkScopeNames,
  compress,
  dynamicQuantParams,
  entryPaths,
  foldAllBatchNorms,
  parseWithSchema,
  scopeFilter,
  TensorpressError,
  type AlgorithmDefinition,
  type AlgorithmStatistics,
  type CompressionBuilder,
  type Dataset,
  type EntryLocation,
  type Graph,
  type Json,
  type ParamData,
} from '@tensorpress/core-tensor';
import { z } from 'zod';
import { fakeQuantize } from './fake-quantize.js';
import { roundHalfEven } from './quant-params.js';
import { AsymmetricQuantizer, SymmetricQuantizer, int8WeightQuantizer } from './qat/affine-quantizers.js';
import { qatBuilder } from './qat/controller.js';
import { quantDefinition } from './qat/definition.js';
import type { Grid, Quantizer } from './qat/quantizer.js';
import { bitsSchema, planSchema, quantizeBiasSchema, quantModeSchema, unifiedScalesSchema } from './qat/schema.js';
import type { ScopeOptions } from './qat/settings.js';

/** Options of {@link quantizePostTraining} (and of the `post_training_quantization` algorithm). */
export const ptqSchema = z
  .object({
    /** Activation range calibration. */
    calibration: z.enum(['minmax', 'moving_average_minmax', 'percentile', 'kl', 'mse']).default('minmax'),
    /** `static`: activation ranges calibrated offline; `dynamic`: Gemm/MatMul inputs quantized per batch at run time. */
    mode: z.enum(['static', 'dynamic']).default('static'),
    /** Calibration examples (ONNX Runtime and NNCF use a few hundred). */
    samples: z.number().int().positive().default(256),
    batchSize: z.number().int().positive().default(64),
    percentile: z.number().gt(50).max(100).default(99.99),
    /**
     * `kl`: the threshold never goes below this percentile of |x| (KL clips at most 0.01 % of the
     * values by default). 0 keeps TensorRT's threshold as it is, which clips the pooled output of the
     * first conv of the bench's plain CNN to a third of its range (README, PTQ).
     */
    klFloorPercentile: z.number().min(0).max(100).default(99.99),
    weights: z
      .object({ bits: bitsSchema.default(8), perChannel: z.boolean().default(true) })
      .strict()
      .default({ bits: 8, perChannel: true }),
    activations: z
      .object({ bits: bitsSchema.default(8), mode: quantModeSchema.default('asymmetric') })
      .strict()
      .default({ bits: 8, mode: 'asymmetric' }),
    quantizeBias: quantizeBiasSchema,
    unifiedScales: unifiedScalesSchema,
    /** Fold BatchNormalization into the weights before quantizing (per-tensor weights need it). */
    foldBatchNorm: z.boolean().default(true),
    /** Re-estimate BN statistics with quantized weights on the calibration data (AdaBN) before folding. */
    bnAdaptation: z.boolean().default(false),
    /** Shift each quantized layer's bias by the mean output error measured on the calibration data. */
    biasCorrection: z.boolean().default(false),
    /** Bits per layer (e.g. a HAWQ-v2 plan of @tensorpress/mixed-precision), as the QAT methods take it. */
    plan: planSchema,
  })
  .strict();
/** Validated PTQ options. */
export type PtqParams = z.output<typeof ptqSchema>;
/** PTQ options as written (all optional). */
export type PtqOptions = z.input<typeof ptqSchema> & ScopeOptions;

/** Per-batch range quantization (ONNX DynamicQuantizeLinear: uint8 over [min(0, min x), max(0, max x)]). */
class DynamicQuantizer implements Quantizer {
  readonly kind = 'activation';
  readonly dynamic = true;
  readonly initialized = true;
  readonly bits = 8;
  constructor(readonly id: string) {}
  apply(x: tf.Tensor): tf.Tensor {
    // The very parameters core's DynamicQuantizeLinear op (what strip() writes) computes.
    const { scale, zeroPoint } = dynamicQuantParams(x);
    return fakeQuantize(x, scale, zeroPoint, { range: [0, 255], gradient: 'ste', learnable: false });
  }
  initActivation(): void {}
  variables(): tf.Variable[] {
    return [];
  }
  grid(): Grid {
    throw new TensorpressError('STATE_INVALID', `quantizer ${this.id} is dynamic: it has no stored grid`);
  }
  describe(): Record<string, Json> {
    return { bits: 8, mode: 'dynamic', signed: false };
  }
  state(): Json {
    return {};
  }
  loadState(): void {}
  dispose(): void {}
}

/**
 * The post-training quantization builder (for pipelines): fixed quantizers whose activation ranges
 * come from `initialize` with the chosen calibrator; nothing is trained.
 */
export function postTrainingQuantization(input: z.input<typeof ptqSchema> = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  return ptqBuilder(parseWithSchema(ptqSchema, input), scopes, { ...(location ? { location } : {}), checkScopeNames: true });
}

function ptqBuilder(p: PtqParams, scopes: ScopeOptions, o: { location?: EntryLocation; checkScopeNames: boolean }): CompressionBuilder {
  const paths = entryPaths(o.location);
  const dynamic = p.mode === 'dynamic';
  const symmetric = p.activations.mode === 'symmetric';
  return qatBuilder({
    algorithm: 'post_training_quantization',
    settings: {
      weightBits: p.weights.bits,
      activationBits: p.activations.bits,
      perChannel: p.weights.perChannel,
      quantizeActivations: true,
      quantizeInputs: true,
      quantizeBias: p.quantizeBias,
      unifiedScales: p.unifiedScales,
      plan: p.plan,
      rangeInit: { type: dynamic ? 'minmax' : p.calibration, samples: p.samples, maxPercentile: p.percentile, klFloorPercentile: p.klFloorPercentile },
      inScope: scopeFilter(scopes, paths.entry),
      scopes: o.checkScopeNames ? scopes : {},
      paths,
      ...(dynamic ? { activationOps: new Set(['Gemm', 'MatMul']) } : {}),
    },
    frozen: true,
    weight: (site) => int8WeightQuantizer(site),
    activation: (site) => {
      if (dynamic) return new DynamicQuantizer(site.id);
      const spec = { bits: site.bits, mode: p.activations.mode, signed: symmetric, narrowRange: false } as const;
      return symmetric ? new SymmetricQuantizer(site.id, 'activation', spec, 'ste', undefined) : new AsymmetricQuantizer(site.id, 'activation', spec, 'ste', undefined);
    },
  });
}

/** Result of {@link quantizePostTraining}. */
export interface PostTrainingResult {
  /** The deployable graph: int8 weights + DequantizeLinear, activation Q/DQ (or DynamicQuantizeLinear). */
  readonly graph: Graph;
  /** Per-quantizer decisions (ranges, scales) and the layers left in float with the reason. */
  readonly statistics: AlgorithmStatistics;
}

function checkCalibrationData(graph: Graph, data: Dataset): void {
  const input = graph.inputs[0]!;
  const want = input.shape.slice(1);
  const got = data.exampleShape;
  const ok = want.length === got.length && want.every((d, i) => d === null || d === got[i]);
  if (!ok) {
    throw new TensorpressError(
      'INPUT_INVALID',
      `calibration data has examples of shape [${got.join(', ')}] but graph input "${input.name}" takes [${want.map((d) => d ?? '?').join(', ')}] per example`,
      { input: input.name, setting: 'calibrationData' },
    );
  }
  if (data.size === 0) throw new TensorpressError('INPUT_INVALID', 'calibration data is empty', { setting: 'calibrationData' });
}

/** Per-channel means of `values` over every axis but the last, averaged over the calibration batches. */
function channelMeans(graph: Graph, data: Dataset, values: readonly string[], samples: number, batchSize: number, training: boolean): Map<string, Float32Array> {
  const ex = new Executor(graph);
  const sums = new Map<string, Float64Array>();
  let batches = 0;
  let seen = 0;
  try {
    for (const b of data.batches(batchSize)) {
      const outs = ex.run(b.x, { outputs: values, training, updateStats: false });
      values.forEach((v, i) => {
        const t = outs[i]!;
        const m = tf.tidy(() => tf.mean(tf.reshape(t, [-1, t.shape[t.rank - 1]!]), 0));
        const arr = m.dataSync();
        const acc = sums.get(v) ?? new Float64Array(arr.length);
        arr.forEach((x, k) => (acc[k] = acc[k]! + x));
        sums.set(v, acc);
        m.dispose();
      });
      seen += b.x.shape[0]!;
      tf.dispose([...new Set([...outs, b.x, b.y])]);
      batches++;
      if (seen >= samples) break;
    }
  } finally {
    ex.dispose();
  }
  return new Map([...sums].map(([k, v]) => [k, Float32Array.from(v, (x) => x / batches)]));
}

/** AdaBN with quantized weights: re-estimates every BN's statistics in train mode on the calibration data. */
function adaptBatchNorm(graph: Graph, data: Dataset, p: PtqParams, scopes: ScopeOptions): Graph {
  const bns = graph.nodes.filter((n) => n.op === 'BatchNormalization');
  if (bns.length === 0) return graph;
  const weightsOnly = qatBuilder({
    algorithm: 'bn_adaptation',
    settings: {
      weightBits: p.weights.bits,
      activationBits: 8,
      perChannel: p.weights.perChannel,
      quantizeActivations: false,
      quantizeInputs: false,
      plan: p.plan,
      rangeInit: { type: 'minmax', samples: 1 },
      inScope: scopeFilter(scopes),
      // quantizePostTraining checked the scope names on the graph it was given.
      scopes: {},
      paths: entryPaths(),
    },
    frozen: true,
    weight: (site) => int8WeightQuantizer(site),
    activation: () => {
      throw new TensorpressError('STATE_INVALID', 'bn adaptation quantizes weights only');
    },
  });
  const ctrl = compress(graph, [weightsOnly]);
  let stats: ReturnType<typeof batchNormInputStatistics>;
  try {
    // Train mode: every BN normalises with its batch statistics, as AdaBN re-estimates them.
    stats = batchNormInputStatistics(ctrl.model.executor, data, { samples: p.samples, batchSize: p.batchSize });
  } finally {
    ctrl.dispose();
  }
  const updates = new Map<string, { data: ParamData }>();
  for (const n of bns) {
    const { mean, variance } = stats.get(n.name)!;
    updates.set(n.inputs[3]!, { data: mean });
    updates.set(n.inputs[4]!, { data: variance });
  }
  return graph.withParams(updates);
}

/**
 * Post-training quantization (ONNX Runtime's quantize_static / quantize_dynamic, NNCF's PTQ):
 * BN folding, per-channel symmetric INT8 weights, activation ranges from `calibration`
 * (min-max, moving-average min-max, percentile, KL/entropy, MSE) on up to `samples` examples, with
 * statistics that stream (memory does not grow with the number of samples). Optional AdaBN and
 * bias correction. Returns the stripped graph. The input graph is never modified.
 */
export async function quantizePostTraining(graph: Graph, calibrationData: Dataset, options: PtqOptions = {}): Promise<PostTrainingResult> {
  const { ignoredScopes, targetScopes, ...rest } = options;
  const scopes: ScopeOptions = { ...(ignoredScopes ? { ignoredScopes } : {}), ...(targetScopes ? { targetScopes } : {}) };
  const p = parseWithSchema(ptqSchema, rest);
  checkCalibrationData(graph, calibrationData);
  checkScopeNames(scopes, graph.nodes.map((n) => n.name));
  let g = p.bnAdaptation ? adaptBatchNorm(graph, calibrationData, p, scopes) : graph;
  if (p.foldBatchNorm) g = foldAllBatchNorms(g).graph;
  // Scope names were checked on the caller's graph: folding may have removed some (BN nodes).
  const ctrl = compress(g, [ptqBuilder(p, scopes, { checkScopeNames: false })]);
  let out: Graph;
  let statistics: AlgorithmStatistics;
  try {
    await ctrl.initialize(calibrationData, { samples: p.samples, batchSize: p.batchSize });
    out = ctrl.strip();
    statistics = ctrl.controllers[0]!.statistics();
  } finally {
    ctrl.dispose();
  }
  if (p.biasCorrection) out = correctBias(g, out, calibrationData, p);
  return { graph: out, statistics };
}

/** Empirical bias correction: subtract the mean per-channel output error of each quantized layer. */
function correctBias(float: Graph, quantized: Graph, data: Dataset, p: PtqParams): Graph {
  // Layers with a bias whose output the float graph also computes (same value names after folding).
  const layers = quantized.nodes.filter((n) => (n.op === 'Conv' || n.op === 'Gemm') && n.inputs[2] && float.producer(n.outputs[0]!) !== undefined);
  const values = layers.map((n) => n.outputs[0]!);
  if (values.length === 0) return quantized;
  const ref = channelMeans(float, data, values, p.samples, p.batchSize, false);
  const got = channelMeans(quantized, data, values, p.samples, p.batchSize, false);
  const updates = new Map<string, { data: ParamData }>();
  for (const n of layers) {
    const v = n.outputs[0]!;
    const r = ref.get(v);
    const q = got.get(v);
    if (!r || !q) continue;
    const biasValue = n.inputs[2]!;
    const dq = quantized.producer(biasValue)?.node;
    if (dq?.op === 'DequantizeLinear') {
      const bq = quantized.param(dq.inputs[0]!)!;
      const bs = quantized.param(dq.inputs[1]!)!.data as Float32Array;
      const data = Int32Array.from(bq.data as Int32Array, (x, c) => roundHalfEven(x - (q[c]! - r[c]!) / bs[bs.length > 1 ? c : 0]!));
      updates.set(bq.name, { data });
    } else if (quantized.param(biasValue)) {
      const b = quantized.param(biasValue)!.data as Float32Array;
      updates.set(biasValue, { data: Float32Array.from(b, (x, c) => x - (q[c]! - r[c]!)) });
    }
  }
  return quantized.withParams(updates);
}

/** The `post_training_quantization` algorithm for pipeline configs (calibrated by `initialize`). */
export const postTrainingQuantizationDefinition: AlgorithmDefinition<PtqParams> = quantDefinition('post_training_quantization', 'INT8 post-training quantization: min-max, percentile, KL or MSE calibration; static or dynamic', ptqSchema, postTrainingQuantization);
