import * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, scopeFilter, z, type AlgorithmDefinition, type CompressionBuilder } from '@tensorpress/core-tensor';
import { quantDefinition } from './internal/definition.js';
import { roundSte, type SteVariant } from './fake-quantize.js';
import { qatBuilder, type BitsPlanEntry, type QatSettings } from './internal/qat.js';
import type { UnifiedScales } from './placement.js';
import {
  AffineQuantizer,
  channelVariable,
  signedFromStats,
  thresholdFromStats,
  varName,
  weightAbsMax,
  type ActivationStats,
} from './internal/quantizer.js';
import type { ScaleFrom } from './internal/scale-from.js';
import { MIN_SCALE, integerRange, tensorRange, type QuantSpec } from './quant-params.js';

/** Symmetric quantizer with a learned threshold `t` (NNCF's SymmetricQuantizer): scale = |t| / qmax. */
export class SymmetricQuantizer extends AffineQuantizer {
  private t: tf.Variable;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    gradient: SteVariant,
    init: { threshold: ArrayLike<number>; rank: number; axis: number | undefined } | undefined,
    private readonly forcedSigned?: boolean,
  ) {
    super(id, spec, gradient);
    this.rank = init?.rank ?? 4;
    this.axis = init && init.threshold.length > 1 ? init.axis : undefined;
    this.t = channelVariable(init?.threshold ?? [1], this.rank, this.axis, varName(id, 't'));
    this.initialized = init !== undefined;
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    return { param: this.t, from: { kind: 'abs', divisor: integerRange(this.spec)[1] } };
  }
  initActivation(stats: ActivationStats): void {
    const signed = signedFromStats(stats, this.forcedSigned);
    this.spec = { ...this.spec, signed };
    const t = thresholdFromStats(stats, signed);
    tf.tidy(() => this.t.assign(tf.scalar(t)));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.t];
  }
}

/**
 * Asymmetric quantizer with learned `low` and `range` (NNCF's AsymmetricQuantizer): scale =
 * |range| / (qmax − qmin), zero point = round(qmin − low / scale) with a straight-through gradient.
 */
export class AsymmetricQuantizer extends AffineQuantizer {
  private low: tf.Variable;
  private width: tf.Variable;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    gradient: SteVariant,
    init: { min: ArrayLike<number>; max: ArrayLike<number>; rank: number; axis: number | undefined } | undefined,
  ) {
    super(id, spec, gradient);
    this.rank = init?.rank ?? 4;
    this.axis = init && init.min.length > 1 ? init.axis : undefined;
    const lo = Array.from(init?.min ?? [0], (m) => Math.min(m, 0));
    const wd = Array.from(init?.max ?? [1], (m, i) => Math.max(Math.max(m, 0) - lo[i]!, MIN_SCALE));
    this.low = channelVariable(lo, this.rank, this.axis, varName(id, 'low'));
    this.width = channelVariable(wd, this.rank, this.axis, varName(id, 'range'));
    this.initialized = init !== undefined;
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    const [qmin, qmax] = integerRange(this.spec);
    return { param: this.width, from: { kind: 'abs', divisor: qmax - qmin } };
  }
  protected override zeroPointFor(scale: tf.Tensor): tf.Tensor {
    const [qmin, qmax] = integerRange(this.spec);
    return tf.clipByValue(roundSte(tf.sub(qmin, tf.div(this.low, scale))), qmin, qmax);
  }
  initActivation(stats: ActivationStats): void {
    const lo = Math.min(stats.min, 0);
    tf.tidy(() => this.low.assign(tf.scalar(lo)));
    tf.tidy(() => this.width.assign(tf.scalar(Math.max(Math.max(stats.max, 0) - lo, MIN_SCALE))));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.low, this.width];
  }
}

const bits = z.number().int().min(2).max(8);
const planSchema = z
  .array(
    z
      .object({ node: z.string().min(1), weightBits: z.number().optional(), activationBits: z.number().optional() })
      .strict()
      .superRefine((e, ctx) => {
        for (const key of ['weightBits', 'activationBits'] as const) {
          const v = e[key];
          if (v !== undefined && !(Number.isInteger(v) && v >= 2 && v <= 8)) {
            ctx.addIssue({ code: 'custom', path: [key], message: `node "${e.node}": ${key} must be an integer from 2 to 8, got ${v}` });
          }
        }
      }),
  )
  .default([]);
const rangeInitSchema = z
  .object({
    type: z.enum(['min_max', 'mean_min_max', 'threesigma', 'percentile', 'mean_percentile']).default('mean_min_max'),
    numInitSamples: z.number().int().positive().default(256),
    minPercentile: z.number().min(0).max(50).default(0.1),
    maxPercentile: z.number().min(50).max(100).default(99.9),
  })
  .strict();

/** Shared schema parts of the QAT methods (bits plan, range init, gradient, inputs). */
export const qatCommonSchema = {
  plan: planSchema,
  initializer: z.object({ range: rangeInitSchema.default(rangeInitSchema.parse({})) }).strict().default({ range: rangeInitSchema.parse({}) }),
  quantizeInputs: z.boolean().default(true),
  /**
   * Which ops' inputs share one quantizer: `add_concat` (NNCF's unified scales), `concat` (faster
   * in onnxruntime, whose QLinearAdd rescales: a ReLU output feeding a residual Add stays unsigned
   * and its ReLU fuses into the conv), `none`.
   */
  unifiedScales: z.enum(['add_concat', 'concat', 'none']).default('add_concat'),
  /** Store biases as int32 at scale s_x·s_w in the stripped graph (what integer runtimes need); false keeps them float. */
  quantizeBias: z.boolean().default(true),
};

/** Parameters of the default `quantization` algorithm (NNCF-style trainable scales). */
export const quantizationSchema = z
  .object({
    /** `performance`: every quantizer symmetric; `mixed`: asymmetric activations. */
    preset: z.enum(['performance', 'mixed']).default('performance'),
    weights: z
      .object({
        bits: bits.default(8),
        mode: z.enum(['symmetric', 'asymmetric']).default('symmetric'),
        perChannel: z.boolean().default(true),
      })
      .strict()
      .default({ bits: 8, mode: 'symmetric', perChannel: true }),
    activations: z
      .object({
        bits: bits.default(8),
        mode: z.enum(['symmetric', 'asymmetric']).optional(),
        signed: z.boolean().optional(),
      })
      .strict()
      .default({ bits: 8 }),
    /** 7-bit weight range stored in 8 bits (avoids VPMADDUBSW saturation on CPUs without VNNI). */
    overflowFix: z.enum(['disable', 'enable', 'first_layer_only']).default('disable'),
    gradient: z.enum(['ste', 'clipped']).default('clipped'),
    ...qatCommonSchema,
  })
  .strict();

/** Validated parameters of the default `quantization` algorithm. */
export type QuantizationParams = z.output<typeof quantizationSchema>;
/** Parameters as written in a config (every field optional). */
export type QuantizationInput = z.input<typeof quantizationSchema>;

/** Scopes of an algorithm entry. */
export interface ScopeOptions {
  readonly ignoredScopes?: readonly string[];
  readonly targetScopes?: readonly string[];
}

/** Settings every QAT method derives from its parameters. */
export function qatSettings(
  params: {
    plan: readonly BitsPlanEntry[];
    initializer: { range: { type: QatSettings['rangeInit']['type']; numInitSamples: number; minPercentile: number; maxPercentile: number } };
    quantizeInputs: boolean;
    quantizeBias: boolean;
    unifiedScales: UnifiedScales;
  },
  bitsOf: { weightBits: number; activationBits: number; perChannel: boolean },
  scopes: ScopeOptions,
): QatSettings {
  const r = params.initializer.range;
  return {
    ...bitsOf,
    quantizeActivations: true,
    quantizeInputs: params.quantizeInputs,
    quantizeBias: params.quantizeBias,
    unifiedScales: params.unifiedScales,
    plan: params.plan,
    rangeInit: { type: r.type, samples: r.numInitSamples, minPercentile: r.minPercentile, maxPercentile: r.maxPercentile },
    inScope: scopeFilter(scopes),
  };
}

/**
 * The default quantization algorithm (NNCF's `quantization`): symmetric per-channel 8-bit weights
 * with learned thresholds, activations symmetric (`performance`) or asymmetric (`mixed`) with
 * learned ranges, ranges initialised from data, placement from the graph.
 */
export function quantization(input: QuantizationInput = {}, scopes: ScopeOptions = {}): CompressionBuilder {
  const p = parseWithSchema(quantizationSchema, input);
  const gradient = p.gradient;
  const actMode = p.activations.mode ?? (p.preset === 'mixed' ? 'asymmetric' : 'symmetric');
  let firstWeight = true;
  return qatBuilder({
    algorithm: 'quantization',
    settings: qatSettings(p, { weightBits: p.weights.bits, activationBits: p.activations.bits, perChannel: p.weights.perChannel }, scopes),
    weight(site) {
      const overflow = p.overflowFix === 'enable' || (p.overflowFix === 'first_layer_only' && firstWeight);
      firstWeight = false;
      const wb = overflow && site.bits === 8 ? 7 : site.bits;
      const axis = site.perChannel ? site.axis : undefined;
      if (p.weights.mode === 'asymmetric') {
        const { min, max } = tensorRange(site.weight, axis);
        return new AsymmetricQuantizer(site.id, 'weight', { bits: wb, mode: 'asymmetric', signed: true, narrowRange: true }, gradient, {
          min,
          max,
          rank: site.weight.rank,
          axis,
        });
      }
      return new SymmetricQuantizer(site.id, 'weight', { bits: wb, mode: 'symmetric', signed: true, narrowRange: true }, gradient, {
        threshold: weightAbsMax(site.weight, axis),
        rank: site.weight.rank,
        axis,
      });
    },
    activation(site) {
      if (actMode === 'asymmetric') {
        return new AsymmetricQuantizer(site.id, 'activation', { bits: site.bits, mode: 'asymmetric', signed: false, narrowRange: false }, gradient, undefined);
      }
      return new SymmetricQuantizer(
        site.id,
        'activation',
        { bits: site.bits, mode: 'symmetric', signed: p.activations.signed ?? true, narrowRange: false },
        gradient,
        undefined,
        p.activations.signed,
      );
    },
  });
}

/** The `quantization` algorithm for pipeline configs. */
export const quantizationDefinition: AlgorithmDefinition<QuantizationParams> = quantDefinition('quantization', 'INT8 (2–8 bit) quantization-aware training with trainable scales (NNCF-style)', quantizationSchema, quantization);
