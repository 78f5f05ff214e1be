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
export { getOp, listOps, convGeometry, runConv, qRange } from './ops.js';
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
export type { AlgorithmConfig, AlgorithmDefinition, PipelineConfig } from './config.js';
export { z } from 'zod';
export { hessianVectorProduct, crossEntropyLoss } from './hessian.js';
export type { HessianLoss, HvpOptions } from './hessian.js';
export { useBackend, currentBackend, ensureGradients, registerFastGradients, DEFAULT_BACKEND_ORDER } from './backend.js';
export type { BackendName, BackendSelection, UseBackendOptions, SkippedBackend } from './backend.js';
