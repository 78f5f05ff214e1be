/**
 * What a training checkpoint of {@link fit} holds: a copy of everything the next step depends on,
 * in plain typed arrays (no tfjs memory). fit hands one to `checkpoint.save` and continues from one
 * given as `resumeFrom`. Its file format (`encodeCheckpoint` / `decodeCheckpoint`,
 * `writeCheckpoint` / `readCheckpoint`) is in `@tensorpress/cli`, the package that writes it.
 */
import type { Json } from './compression-types.js';
import type { EpochStats } from './train.js';

/** A tensor's values in a checkpoint: a copy, holding no tfjs memory. */
export interface CheckpointTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array | Int32Array;
}

/** A tensor with its name (a parameter name, or an optimizer slot such as `m/0`). */
export interface NamedCheckpointTensor extends CheckpointTensor {
  readonly name: string;
}

/** The optimizer's state in a checkpoint. */
export interface OptimizerCheckpoint {
  /**
   * How it was taken: `adam`, `sgd` and `momentum` exactly from the optimizer's fields (fit's own
   * optimizers, or tfjs' Adam, SGD and Momentum passed in); `weights` through the optimizer's
   * `getWeights()`, which is as exact as that optimizer's `setWeights()`.
   */
  readonly kind: 'adam' | 'sgd' | 'momentum' | 'weights';
  /** tfjs class name: `PackedAdam` (fit's Adam), `Adam`, `SGD`, `Momentum`, ... */
  readonly className: string;
  /** Optimisation steps the optimizer has taken. */
  readonly iterations: number;
  /** fit's Adam: positions in the trained variables packed into one vector, in packing order. */
  readonly packed: readonly number[];
  /** Adam: `accBeta1`, `accBeta2`, `m/i`, `v/i`; Momentum: `a/i`; `weights`: what getWeights returned. */
  readonly slots: readonly NamedCheckpointTensor[];
}

/** What identifies a run: a checkpoint resumes only a run with the same fingerprint. */
export interface FitFingerprint {
  readonly epochs: number;
  readonly batchSize: number;
  readonly seed: number;
  readonly dropRemainder: boolean;
  readonly dataSize: number;
  readonly stepsPerEpoch: number;
  readonly optimizer: { readonly type: string; readonly learningRate: number; readonly momentum: number | null; readonly weightDecay: number };
  /** `constant`, `cosine`, `step` or `function`. */
  readonly lrSchedule: string;
  /** `none`, `stateless` (no state()/loadState()) or `stateful`. */
  readonly controller: 'none' | 'stateless' | 'stateful';
  /** Every float parameter of the executor, in order. */
  readonly parameters: readonly { readonly name: string; readonly shape: readonly number[] }[];
  /** The trained variables in the order the optimizer sees them: an executor parameter's name, or null for a controller's variable. */
  readonly trained: readonly { readonly parameter: string | null; readonly shape: readonly number[] }[];
  /** The caller's own fields ({@link FitOptions.fingerprint}): a model hash, a config ... */
  readonly extra: Readonly<Record<string, Json>>;
}

/** A snapshot of a {@link fit} run between two steps, from which `resumeFrom` continues exactly. */
export interface FitCheckpoint {
  /** The epoch in progress (0-based). */
  readonly epoch: number;
  /** Steps done in that epoch (up to steps per epoch: then only the epoch's end is left). */
  readonly step: number;
  /** Steps done since the run started. */
  readonly globalStep: number;
  /** Metrics of the finished epochs. */
  readonly history: readonly EpochStats[];
  /** The epoch in progress so far: the float32 loss sum (loss × examples), correct predictions, examples, last rate and wall time. */
  readonly epochProgress: { readonly lossSum: number; readonly correct: number; readonly examples: number; readonly learningRate: number; readonly ms: number };
  /** The learning rate last set on the optimizer. */
  readonly learningRate: number;
  /** The executor's random stream (dropout). */
  readonly rngState: number;
  /** Every float parameter of the executor (weights, BN running statistics), by name. */
  readonly parameters: readonly NamedCheckpointTensor[];
  /** The controller's trained variables (learned scales ...), in the order of the trained list. */
  readonly controllerVariables: readonly CheckpointTensor[];
  /** The controller's `state()`, or null when it has none. */
  readonly controllerState: Json | null;
  readonly optimizer: OptimizerCheckpoint;
  readonly fingerprint: FitFingerprint;
}

