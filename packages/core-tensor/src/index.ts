/**
 * @tensorpress/core-tensor: backends, graph IR, differentiable executor, transformations,
 * the compression contract, the training loop and statistics, shared by every technique package.
 */
export { TensorpressError, ConfigError, GraphError, jsonPath } from './errors.js';
export type { ErrorCode } from './errors.js';
export { createRng, permutation } from './random.js';
export type { Rng } from './random.js';
export { arrayDataset } from './data.js';
export type { Batch, BatchOptions, Dataset, ArrayData } from './data.js';
export { Graph, createGraph, sizeOf, dtypeBytes, allocParamData } from './graph.js';
export type { DType, Dim, TensorInfo, AttrValue, Node, Param, ParamData, GraphDef } from './graph.js';
export { getOp, listOps, convGeometry, runConv, qRange, dynamicQuantParams, batchNormTrain } from './ops.js';
export type { OpSpec, ForwardContext, OutInfo, ConvGeometry } from './ops.js';
export { numAttr, intsAttr, strAttr, window2d, windowOut } from './attrs.js';
export type { Window2D } from './attrs.js';
export { PRIORITY, pointKey } from './hooks.js';
export type { InsertionPoint, Hook, HookFn, HookContext } from './hooks.js';
export { Executor, runGraph } from './executor.js';
export type { Feeds, RunOptions, ExecutorOptions } from './executor.js';
export { GraphBuilder } from './builder.js';
export type { ConvOptions, Init } from './builder.js';
export { scopeFilter } from './scopes.js';
export type { Scopes } from './scopes.js';
export { parsePipelineConfig, createBuilders, parseWithSchema, throwZodError, ALGORITHM_PACKAGES } from './config.js';
export type { AlgorithmConfig, AlgorithmDefinition, AnyAlgorithmDefinition, PipelineConfig } from './config.js';
export { z } from 'zod';
export { hessianVectorProduct, crossEntropyLoss } from './hessian.js';
export { softmaxCrossEntropy } from './losses.js';
export type { HessianLoss, HvpOptions } from './hessian.js';
export { registerArrayKernel, hasArrayKernel, heapModule, ARRAY_KERNEL_BACKENDS } from './array-kernels.js';
export type { ArrayKernelSpec, ArrayKernelOutput, HeapModule, HeapModuleBinaries, WasmMemory } from './array-kernels.js';
export { useBackend, currentBackend, ensureGradients, registerFastGradients, unregisterFastGradients, DEFAULT_BACKEND_ORDER } from './backend.js';
export type { BackendName, BackendSelection, UseBackendOptions, SkippedBackend, FastGradientKernel } from './backend.js';
export { TransformationLayout, applyLayout, replaceNode, removeNode } from './transform.js';
export type {
  Command,
  CommandBase,
  HookCommand,
  ReplaceNodeCommand,
  RemoveNodeCommand,
  FoldBatchNormCommand,
  CutChannelsCommand,
  StructuralCommand,
  NodeReplacement,
  AppliedLayout,
} from './transform.js';
export { foldBatchNorm, foldAllBatchNorms, batchNormFold } from './fold-batchnorm.js';
export type { FoldAllResult, FoldSkip, BatchNormFold } from './fold-batchnorm.js';
export { toIntegerOps, clampFoldsIntoQuantizer, INTEGER_OPS } from './integer-ops.js';
export type { IntegerOpsResult, IntegerSkip } from './integer-ops.js';
export { cutChannels, channelDependencies } from './channel-cut.js';
export type { ChannelCutSpec, ChannelDependencies, ChannelRole, ChannelStep } from './channel-cut.js';
export { compress, CountingScheduler, defineController } from './compression.js';
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
export { referenceModels, plainCnn, residualCnn, mobileNetCnn, mlp } from './models.js';
export type { ReferenceModelOptions, ReferenceModelFactory, ReferenceModelName } from './models.js';
export { writeFileAtomic, removePendingTempFiles } from './files.js';
export { saveGraph, loadGraph, writeGraph, readGraph, GRAPH_FORMAT, GRAPH_FORMAT_VERSION } from './serialize.js';
export type { SavedGraph, LoadGraphOptions, ReadGraphOptions, WriteGraphOptions, WrittenGraph } from './serialize.js';
export { fit, evaluate, learningRateAt } from './train.js';
export type {
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
export type { ProgressMode } from './train.js';
