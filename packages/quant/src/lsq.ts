import * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, type AlgorithmDefinition, type CompressionBuilder, type EntryLocation } from '@tensorpress/core-tensor';
import type { z } from 'zod';
import type { ScaleFrom } from './internal/scale-from.js';
import { MIN_SCALE, integerRange, type QuantSpec } from './quant-params.js';
import { quantDefinition } from './qat/definition.js';
import { learnedScaleBuilder, learnedScaleSchema } from './qat/learned-scale.js';
import { AffineQuantizer, channelVariable, signedFromStats, varName, type ActivationStats } from './qat/quantizer.js';
import type { ScopeOptions } from './qat/settings.js';

/**
 * LSQ quantizer (Esser et al., "Learned Step Size Quantization", 2020): the step `s` itself is
 * learned, zero point 0, with the gradient of `s` scaled by `1 / sqrt(N · Qp)` (N: values per step,
 * Qp: the top integer level) and initialised to `2 · mean|x| / sqrt(Qp)`.
 */
export class LsqQuantizer extends AffineQuantizer {
  private s: tf.Variable;
  private perStep = 1;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    weight?: { w: tf.Tensor; axis: number | undefined },
    private readonly forcedSigned?: boolean,
  ) {
    super(id, spec, 'clipped');
    const qp = integerRange(spec)[1];
    if (weight) {
      this.rank = weight.w.rank;
      this.axis = weight.axis;
      const init = tf.tidy(() => {
        const a = tf.abs(weight.w);
        if (weight.axis === undefined) return tf.reshape(tf.mean(a), [1]);
        const ax = weight.axis;
        const perm = [ax, ...Array.from({ length: a.rank }, (_, i) => i).filter((i) => i !== ax)];
        return tf.mean(tf.reshape(tf.transpose(a, perm), [a.shape[ax]!, -1]), 1);
      });
      const m = Float32Array.from(init.dataSync(), (v) => Math.max((2 * v) / Math.sqrt(qp), MIN_SCALE));
      init.dispose();
      this.perStep = weight.w.size / m.length;
      this.s = channelVariable(m, this.rank, m.length > 1 ? this.axis : undefined, varName(id, 's'));
      if (m.length === 1) this.axis = undefined;
      this.initialized = true;
    } else {
      this.s = channelVariable([1], 4, undefined, varName(id, 's'));
    }
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    return { param: this.s, from: { kind: 'abs', divisor: 1 } };
  }
  protected override gradScale(): number {
    return 1 / Math.sqrt(this.perStep * integerRange(this.spec)[1]);
  }
  initActivation(stats: ActivationStats): void {
    this.spec = { ...this.spec, signed: signedFromStats(stats, this.forcedSigned) };
    const qp = integerRange(this.spec)[1];
    this.perStep = stats.featuresPerExample;
    tf.tidy(() => this.s.assign(tf.scalar(Math.max((2 * stats.meanAbs) / Math.sqrt(qp), MIN_SCALE))));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.s];
  }
}

/** Parameters of `lsq`. */
export const lsqSchema = learnedScaleSchema(4);
/** Validated `lsq` parameters. */
export type LsqParams = z.output<typeof lsqSchema>;

/** LSQ quantization-aware training (learned step sizes for weights and activations). */
export function lsq(input: z.input<typeof lsqSchema> = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  return learnedScaleBuilder('lsq', LsqQuantizer, parseWithSchema(lsqSchema, input), scopes, location);
}

/** The `lsq` algorithm for pipeline configs. */
export const lsqDefinition: AlgorithmDefinition<LsqParams> = quantDefinition('lsq', 'LSQ: learned step size quantization (2–8 bit weights and activations)', lsqSchema, lsq);
