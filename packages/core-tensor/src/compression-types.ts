import type * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from './data.js';
import type { Executor } from './executor.js';
import type { Graph } from './graph.js';

/** JSON-compatible values (controller state, statistics). */
export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** What a compression loss may look at: the current batch and the model's outputs on it. */
export interface LossContext {
  /** The batch inputs. */
  readonly inputs: tf.Tensor;
  /** Integer class labels of the batch. */
  readonly labels: tf.Tensor1D;
  /** The compressed model's outputs on `inputs` (train mode), differentiable. */
  readonly outputs: readonly tf.Tensor[];
  /** The model being trained. */
  readonly executor: Executor;
}

/** Training-time schedule of an algorithm (sparsity level, pruning rate, bit freezing ...). */
export interface CompressionScheduler {
  /** Called after every optimisation step. */
  step(): void;
  /** Called at the end of every epoch. */
  epochStep(): void;
  /** Current epoch and step counters. */
  readonly epoch: number;
  readonly stepInEpoch: number;
}

/** One row of statistics for one node. */
export interface LayerStatistics {
  readonly node: string;
  readonly op: string;
  /** Whatever the algorithm measures, e.g. `{ sparsity: 0.5 }` or `{ weightBits: 8 }`. */
  readonly [key: string]: Json;
}

/** Statistics of one algorithm: per layer and totals, plus layers left out with the reason. */
export interface AlgorithmStatistics {
  readonly algorithm: string;
  readonly layers: readonly LayerStatistics[];
  readonly total: Readonly<Record<string, Json>>;
  /** Nodes the algorithm could not handle, and why (never skipped silently). */
  readonly skipped: readonly { node: string; reason: string }[];
}

/**
 * What stacked strips tell each other (compress() passes one context through every strip, in
 * priority order): pruning records the output channels it kept, so a later per-channel quantizer
 * keeps the matching scales.
 */
export interface StripContext {
  /** Node name → indices of its original output channels that remain after an earlier strip. */
  readonly keptChannels: Map<string, readonly number[]>;
}

/** What a data-driven initialisation (quantizer ranges, BN adaptation) may use. */
export interface InitContext {
  /** Samples to draw statistics from (the caller's training data, typically). */
  readonly data: Dataset;
  /** How many examples to use at most. */
  readonly samples: number;
  /** Batch size of the statistics passes. */
  readonly batchSize: number;
  /** The model being compressed. */
  readonly executor: Executor;
}

/** The controller of one algorithm (NNCF's CompressionAlgorithmController). */
export interface AlgorithmController {
  readonly algorithm: string;
  /**
   * Data-driven initialisation before training (NNCF's init args: quantizer range init). Optional:
   * algorithms that need none omit it. {@link CompressionController.initialize} calls it.
   */
  initialize?(ctx: InitContext): Promise<void>;
  readonly scheduler: CompressionScheduler;
  /** Compression loss term (scalar); zero when the algorithm adds none. Called inside the gradient closure. */
  loss(ctx: LossContext): tf.Scalar;
  /** Extra trainable tensors (PACT α, L0 logits, learned scales). */
  trainableVariables(): readonly tf.Variable[];
  /** Per-layer and total statistics. */
  statistics(): AlgorithmStatistics;
  /** Everything needed to resume (JSON). */
  state(): Json;
  /** Restores {@link state}; a resumed run gives the same result. */
  loadState(state: Json): void;
  /**
   * The deployable form: takes the graph as trained so far (hooks not applied, current weights) and
   * returns it with this algorithm's effect made permanent in core vocabulary (integer weights with
   * Q/DQ, removed channels, zeros, folded BN).
   */
  strip(graph: Graph, ctx?: StripContext): Graph;
  /** Frees the algorithm's tensors. */
  dispose(): void;
}
