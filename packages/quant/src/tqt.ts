import * as tf from '@tensorflow/tfjs-core';
import { parseWithSchema, type AlgorithmDefinition, type CompressionBuilder, type EntryLocation } from '@tensorpress/core-tensor';
import type { z } from 'zod';
import type { ScaleFrom } from './internal/scale-from.js';
import type { QuantSpec } from './quant-params.js';
import { quantDefinition } from './qat/definition.js';
import { learnedScaleBuilder, learnedScaleSchema } from './qat/learned-scale.js';
import { AffineQuantizer, channelVariable, signedFromStats, thresholdFromStats, varName, weightAbsMax, type ActivationStats } from './qat/quantizer.js';
import type { ScopeOptions } from './qat/settings.js';

/**
 * TQT quantizer (Jain et al., "Trained Quantization Thresholds", 2020): the learned parameter is
 * `log2 t`; the threshold is rounded up to a power of two, `scale = 2^ceil(log2 t) / 2^(b−1)`
 * (signed) or `/ 2^b` (unsigned), with a straight-through ceil, so
 * `∂y/∂log2 t = scale · ln 2 · (round(x/s) − x/s)` inside the range and `scale · ln 2 · qmin|qmax`
 * outside (the paper's gradient, from fake-quant's scale gradient by the chain rule).
 */
export class TqtQuantizer extends AffineQuantizer {
  private log2t: tf.Variable;
  constructor(
    id: string,
    readonly kind: 'weight' | 'activation',
    spec: QuantSpec,
    weight?: { w: tf.Tensor; axis: number | undefined },
    private readonly forcedSigned?: boolean,
  ) {
    super(id, spec, 'clipped');
    if (weight) {
      this.rank = weight.w.rank;
      const t = weightAbsMax(weight.w, weight.axis);
      this.axis = t.length > 1 ? weight.axis : undefined;
      this.log2t = channelVariable(Float32Array.from(t, (v) => Math.log2(v)), this.rank, this.axis, varName(id, 'log2t'));
      this.initialized = true;
    } else {
      this.log2t = channelVariable([0], 4, undefined, varName(id, 'log2t'));
    }
  }
  private get denominatorLog2(): number {
    return this.spec.signed ? this.spec.bits - 1 : this.spec.bits;
  }
  protected scaleParam(): { param: tf.Tensor; from: ScaleFrom } {
    return { param: this.log2t, from: { kind: 'pow2', shift: this.denominatorLog2 } };
  }
  initActivation(stats: ActivationStats): void {
    const signed = signedFromStats(stats, this.forcedSigned);
    this.spec = { ...this.spec, signed };
    const t = thresholdFromStats(stats, signed);
    tf.tidy(() => this.log2t.assign(tf.scalar(Math.log2(t))));
    this.initialized = true;
  }
  variables(): tf.Variable[] {
    return [this.log2t];
  }
}

/** Parameters of `tqt`. */
export const tqtSchema = learnedScaleSchema(8);
/** Validated `tqt` parameters. */
export type TqtParams = z.output<typeof tqtSchema>;

/** TQT quantization-aware training: power-of-two scales with trained log2 thresholds. */
export function tqt(input: z.input<typeof tqtSchema> = {}, scopes: ScopeOptions = {}, location?: EntryLocation): CompressionBuilder {
  return learnedScaleBuilder('tqt', TqtQuantizer, parseWithSchema(tqtSchema, input), scopes, location);
}

/** The `tqt` algorithm for pipeline configs. */
export const tqtDefinition: AlgorithmDefinition<TqtParams> = quantDefinition('tqt', 'TQT: trained power-of-two quantization thresholds', tqtSchema, tqt);
