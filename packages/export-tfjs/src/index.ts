/**
 * @tensorpress/export-tfjs: tensorpress graphs to and from tfjs-layers. Imports Sequential and
 * functional models (live or saved), writes a model.json + weight shards that `tf.loadLayersModel`
 * loads (weights as float32, float16, or uint8/uint16 affine), and reads every weight format tfjs
 * writes straight from model.json and its shards.
 */
export { importLayersModel } from './import-layers.js';
export type { ImportLayersOptions } from './import-layers.js';
export type { LayersModelLike, ModelArtifactsLike, WeightSpecLike, LayerVariableLike, LayersTensorLike } from './layers-model-like.js';
export { exportLayersArtifacts } from './export-layers.js';
export type { LayersArtifacts, LayersWeightSpec, ExportLayersOptions } from './export-layers.js';
export { toTfjsModel, artifactsToFiles, tfjsArtifacts, fromTfjsModel, parseModelJson, DEFAULT_SHARD_BYTES } from './model-json.js';
export type { TfjsModelFiles, TfjsModelOptions, TfjsArtifacts, LayersModelJson, WeightsManifestGroup, ShardBytes } from './model-json.js';
export { writeTfjsModel, readTfjsArtifacts, readTfjsModel, DEFAULT_TFJS_READ_LIMITS } from './node-io.js';
export type { WriteTfjsModelOptions, WrittenTfjsModel, TfjsReadLimits } from './node-io.js';
export { WEIGHT_FORMATS } from './internal/weight-codec.js';
export type { WeightFormat, WeightQuantization } from './internal/weight-codec.js';
