/**
 * What the importer reads from tfjs, duck-typed: a live `tf.LayersModel` or its saved artifacts.
 * Nothing here imports @tensorflow/tfjs-layers, so the package works with any copy of it (or none).
 */

/** A tensor as tfjs hands it out (only what the importer reads). */
export interface LayersTensorLike {
  readonly shape: readonly number[];
  readonly dtype: string;
  dataSync(): unknown;
}

/** A variable of a live tfjs-layers model (`LayerVariable`). */
export interface LayerVariableLike {
  readonly name: string;
  /** The scoped name without the process-wide uniquifying suffix; the name saved artifacts use. */
  readonly originalName?: string;
  readonly shape: readonly (number | null)[];
  readonly dtype: string;
  read?(): LayersTensorLike;
}

/** The part of a live `tf.LayersModel` that `importLayersModel` uses. */
export interface LayersModelLike {
  toJSON(unused?: unknown, returnString?: boolean): unknown;
  readonly weights: readonly LayerVariableLike[];
  getWeights?(): readonly LayersTensorLike[];
}

/** One entry of `weightSpecs` in tfjs model artifacts. */
export interface WeightSpecLike {
  readonly name: string;
  readonly shape: readonly number[];
  readonly dtype: string;
  readonly quantization?: unknown;
}

/** Model artifacts as `model.save(...)` hands them to an IOHandler (or a parsed model.json plus its weights). */
export interface ModelArtifactsLike {
  /** The Keras topology: `{ class_name, config, keras_version }`, a model.json's `{ model_config, ... }`, or its JSON text. */
  readonly modelTopology?: unknown;
  readonly weightSpecs?: readonly WeightSpecLike[];
  /** Concatenated weight bytes in `weightSpecs` order (tfjs writes typed arrays in platform order, little-endian). */
  readonly weightData?: ArrayBuffer | readonly ArrayBuffer[] | ArrayBufferView;
}
