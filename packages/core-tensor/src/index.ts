/**
 * @tensorpress/core-tensor: backends, graph IR, differentiable executor, transformations,
 * the compression contract, the training loop and statistics, shared by every technique package.
 */
export { TensorpressError, ConfigError, GraphError, jsonPath } from './errors.js';
export type { ErrorCode, ConfigErrorCode } from './errors.js';
export { closestMatch, didYouMean } from './suggest.js';
export { stackingViolation } from './stacking.js';
export type { StackingRule, StackingEntry, StackingViolation } from './stacking.js';
export { createRng, permutation } from './random.js';
export type { Rng } from './random.js';
export { arrayDataset } from './data.js';
export type { Batch, BatchOptions, Dataset, ArrayData } from './data.js';
export { Graph, createGraph, sizeOf, dtypeBytes, allocParamData } from './graph.js';
export type { DType, Dim, TensorInfo, AttrValue, Node, Param, ParamData, GraphDef } from './graph.js';
export { getOp, listOps, registerOp } from './ops/registry.js';
export { opChecks } from './ops/helpers.js';
export type { OpSpec, ForwardContext, OutInfo } from './ops/registry.js';
export { convGeometry, convOutShape, gemmOutShape, runConv } from './ops/conv.js';
export type { ConvGeometry } from './ops/conv.js';
export { qRange, dynamicQuantParams } from './ops/quantize.js';
export { numAttr, intsAttr, strAttr, window2d } from './attrs.js';
export type { Window2D } from './attrs.js';
export { PRIORITY } from './hooks.js';
export type { InsertionPoint, Hook, HookFn, HookContext } from './hooks.js';
export { Executor, runGraph, checkQuantScales } from './executor.js';
export type { Feeds, RunOptions, ExecutorOptions } from './executor.js';
export { GraphBuilder } from './builder.js';
export type { ConvOptions, Init } from './builder.js';
export { scopeFilter, nodePattern, nodePatternError, checkScopeNames } from './scopes.js';
export type { Scopes } from './scopes.js';
export { parsePipelineConfig, createBuilders, parseWithSchema, throwZodError, entryPaths, TRAINING_LIMITS } from './config.js';
export type { AlgorithmConfig, AlgorithmDefinition, AnyAlgorithmDefinition, EntryLocation, ParsePipelineOptions, PipelineConfig } from './config.js';
export { softmaxCrossEntropy } from './losses.js';
export { useBackend, currentBackend, ensureGradients, DEFAULT_BACKEND_ORDER } from './backend.js';
export type { BackendName, BackendSelection, UseBackendOptions, SkippedBackend, FastGradientKernel } from './backend.js';
export { TransformationLayout, applyLayout, replaceNode, removeNode } from './transform.js';
export type {
  Command,
  CommandBase,
  HookCommand,
  ReplaceNodeCommand,
  RemoveNodeCommand,
  FoldBatchNormCommand,
  RewriteCommand,
  StructuralCommand,
  NodeReplacement,
  AppliedLayout,
} from './transform.js';
export { foldBatchNorm, foldAllBatchNorms, batchNormFold } from './fold-batchnorm.js';
export { batchNormInputStatistics } from './bn-statistics.js';
export type { FoldAllResult, FoldSkip, BatchNormFold } from './fold-batchnorm.js';
export { compress, checkCompression, CountingScheduler, defineController } from './compression.js';
export type {
  CompressionBuilder,
  CompressedModel,
  CompressionController,
  CompressionStatistics,
  CompressOptions,
} from './compression.js';
export type {
  InitContext,
  StripContext,
  Json,
  LossContext,
  CompressionScheduler,
  LayerStatistics,
  AlgorithmStatistics,
  AlgorithmController,
} from './compression-types.js';
export { graphStatistics, formatStatistics } from './statistics.js';
export type { GraphStatistics, NodeStats, StatisticsTotal, StatisticsOptions, BitsOverride } from './statistics.js';
export { nodeBuiltin, ioError, writeFileAtomic, removePendingTempFiles, removeStaleTempFiles } from './files.js';
export type { NodeBuiltins } from './files.js';
export { saveGraph, loadGraph, writeGraph, readGraph, GRAPH_FORMAT, GRAPH_FORMAT_VERSION } from './serialize.js';
// The byte and JSON-text helpers of core's saved-graph format, for the formats of packages above
// core (the CLI's training checkpoints).
export { leBytes, fromLeBytes, asBytes, crc32 } from './internal/bytes.js';
export { stringifyExact, untagNumbers, parseJsonText } from './internal/json-text.js';
export type { SavedGraph, LoadGraphOptions, ReadGraphOptions, WriteGraphOptions, WrittenGraph } from './serialize.js';
export { fit, evaluate, learningRateAt } from './train.js';
export type {
  FitCheckpointOptions,
  OptimizerConfig,
  LrSchedule,
  LrScheduleFn,
  FitController,
  BatchEndInfo,
  EpochStats,
  EpochEndInfo,
  FitCallbacks,
  FitOptions,
  FitResult,
  EvaluateOptions,
  EvaluateResult,
} from './train.js';
export type { ProgressMode, ProgressReporter } from './train.js';
export type {
  FitCheckpoint,
  FitFingerprint,
  CheckpointTensor,
  NamedCheckpointTensor,
  OptimizerCheckpoint,
} from './checkpoint.js';
