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
