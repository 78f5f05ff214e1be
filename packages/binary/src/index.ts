/**
 * @tensorpress/binary: binary and ternary networks (BNN, XNOR-Net, DoReFa binary weights, TWN) as a
 * transform over core-tensor, with straight-through estimators, a staged schedule, and a strip step
 * that writes {−1, 0, +1} int8 codes with DequantizeLinear and folds BatchNormalization → sign into
 * per-channel thresholds.
 */
export { binarization, binarizationDefinition, BINARIZER_STACKING } from './binarization.js';
export type { BinarizationOptions, BinarizationController } from './binarization.js';
export { binarizationSchema } from './schema.js';
export type { BinarizationParams, BinarizationInput, StageSchedule } from './schema.js';
export { binaryAlgorithms } from './algorithms.js';
export { signPlus, binarySte, ternarySte, ternaryCodes, steDerivative, STE_VARIANTS } from './ste.js';
export type { SteVariant } from './ste.js';
export { weightParts, binarizeWeight, methodBits, WEIGHT_METHODS } from './binarizers.js';
export type { WeightMethod, WeightBinarizerOptions, WeightParts } from './binarizers.js';
export { ActivationBinarizer } from './activation.js';
export type { ActivationMethod, ActivationBinarizerOptions } from './activation.js';
export { stageAt, stagedLearningRate, StagedScheduler } from './schedule.js';
export type { Stage } from './schedule.js';
export { placeBinarizers, firstAndLastLayers, BINARY_WEIGHT_OPS } from './placement.js';
export type { BinaryPlacement, PlacementOptions } from './placement.js';
export { buildBinaryGraph, bnSignThreshold } from './strip.js';
export type { BinaryGraphPlan, BinaryWeight, BinaryActivation, BnSignThreshold } from './strip.js';
export { packedBytes } from './packing.js';
export type { PackedBytes, PackedLayer } from './packing.js';
export { reestimateBatchNorm } from './bn-stats.js';
export type { ReestimateOptions } from './bn-stats.js';
export { scalingMap } from './scaling-map.js';
export type { ScalingMapSite } from './strip.js';
