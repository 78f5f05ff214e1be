/**
 * @tensorpress/mixed-precision: HAWQ-v2 bit allocation (Hutchinson Hessian traces, exact Pareto
 * allocation under a budget) and per-layer sensitivity analysis for every method, producing plans
 * that quant (`plan` of bits per layer) and pruning (`plan` of ratios per layer) take as plain data.
 */
export { weightLayers, WEIGHT_OPS } from './layers.js';
export type { WeightLayer } from './layers.js';
export { quantizeWeight, quantizationError, sparsifyWeight, filterMask, binarizeWeight } from './weight-transforms.js';
export { hessianTraces } from './hutchinson.js';
export { hessianVectorProduct, crossEntropyLoss } from './hessian.js';
export type { HessianLoss, HvpOptions } from './hessian.js';
export type { HutchinsonOptions, HutchinsonResult, LayerTrace } from './hutchinson.js';
export { paretoFrontier, pickWithin } from './allocate.js';
export type { Choice, FrontierPoint } from './allocate.js';
export { hawqV2, planCost, checkBits } from './hawq.js';
export type { BitsPlanEntry, HawqBudget, HawqOptions, HawqResult, LayerSensitivity } from './hawq.js';
export { sensitivity, SENSITIVITY_METHODS } from './sensitivity.js';
export type { LayerCompressor, SensitivityOptions, SensitivityResult, SensitivityRow, SkippedLayer } from './sensitivity.js';
export { pruningPlan, ratioWithin, estimateFlopsReduction } from './plan.js';
export type { RatioPlanEntry, PruningPlanResult } from './plan.js';
export { sensitivityChart, frontierChart } from './charts.js';
