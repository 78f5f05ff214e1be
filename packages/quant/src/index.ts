/**
 * @tensorpress/quant: quantization-aware training (the NNCF-style default, DoReFa, PACT, TQT, LSQ)
 * and post-training quantization (min-max, percentile, KL/entropy, MSE; static and dynamic), with a
 * strip step that produces int8 weights and QuantizeLinear/DequantizeLinear in core vocabulary.
 */
export { quantization, quantizationDefinition, quantizationSchema } from './quantization.js';
export type { QuantizationParams, QuantizationInput } from './quantization.js';
export { SymmetricQuantizer, AsymmetricQuantizer } from './qat/affine-quantizers.js';
export { qatCommonSchema } from './qat/schema.js';
export type { ScopeOptions, BitsPlanEntry } from './qat/settings.js';
export { dorefa, dorefaDefinition, dorefaSchema, DorefaActivationQuantizer } from './dorefa.js';
export { quantizeK, DorefaWeightQuantizer } from './qat/dorefa-weight.js';
export type { DorefaParams } from './dorefa.js';
export { pact, pactDefinition, pactSchema, PactQuantizer } from './pact.js';
export type { PactParams } from './pact.js';
export { tqt, tqtDefinition, tqtSchema, TqtQuantizer } from './tqt.js';
export type { TqtParams } from './tqt.js';
export { lsq, lsqDefinition, lsqSchema, LsqQuantizer } from './lsq.js';
export type { LsqParams } from './lsq.js';
export { quantizePostTraining, postTrainingQuantization, postTrainingQuantizationDefinition, ptqSchema } from './ptq.js';
export type { PtqOptions, PtqParams, PostTrainingResult } from './ptq.js';
export { inq, inqDefinition, inqLrSchedule, inqSchema, minErrorPowerOfTwoSet, powerOfTwoSet, powerOfTwoExponent, quantizePowerOfTwo, nextPartition } from './inq.js';
export type { InqParams, InqInput, PowerOfTwoSet } from './inq.js';
export {
  int8Training,
  int8TrainingDefinition,
  int8TrainingSchema,
  gradientQuantSchema,
  magnitudeAwareError,
  optimalClip,
  gradientClipping,
  quantizeGradient,
  gradientQuantizer,
} from './int8-training.js';
export type { Int8TrainingParams, Int8TrainingInput, GradientQuantOptions, GradientFamily } from './int8-training.js';
export { quantAlgorithms } from './algorithms.js';
export { fakeQuantize, roundSte, ceilSte, reduceToShape } from './fake-quantize.js';
export type { FakeQuantOptions, SteVariant } from './fake-quantize.js';
export type { ScaleFrom } from './internal/scale-from.js';
export {
  quantParams,
  quantParamsPerChannel,
  integerRange,
  roundHalfEven,
  quantizeToCodes,
  tensorRange,
  checkBits,
  MIN_SCALE,
} from './quant-params.js';
export type { QuantSpec, QuantParams } from './quant-params.js';
export { placeQuantizers, WEIGHT_OPS, UNIFIED_OPS, AGNOSTIC_OPS, POOL_OPS } from './placement.js';
export type { Placement, PlacementOptions, WeightPlacement, ActivationPlacement } from './placement.js';
export { buildQuantizedGraph } from './strip.js';
export type { QuantizedGraphPlan, WeightQuantization, ActivationQuantization, DynamicQuantization } from './strip.js';
export { createCollector } from './calibration.js';
export type { CalibrationMethod, RangeInitMethod, CollectorOptions, RangeCollector } from './calibration.js';
export type { Quantizer, Grid, ActivationStats } from './qat/quantizer.js';
