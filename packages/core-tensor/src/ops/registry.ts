/**
 * The op registry: what the graph validates against and the executor runs. Core's own op families
 * fill it when this module loads (they are part of core's vocabulary); another package adds ops
 * only by an explicit {@link registerOp} call, never on import.
 */
import type * as tf from '@tensorflow/tfjs-core';
import { TensorpressError } from '../errors.js';
import type { Dim, DType, Graph, Node, TensorInfo } from '../graph.js';
import { CONV_OPS } from './conv.js';
import { ELEMENTWISE_OPS } from './elementwise.js';
import { NORM_OPS } from './norm.js';
import { POOL_OPS } from './pool.js';
import { QUANTIZE_OPS } from './quantize.js';
import { SHAPE_OPS } from './shape.js';

/** What an op's forward function may use besides its inputs. */
export interface ForwardContext {
  /** Train mode: BN uses batch statistics and updates running ones, Dropout drops. */
  readonly training: boolean;
  /** A fresh seed for a stochastic op (dropout), drawn from the run's seeded stream. */
  nextSeed(): number;
  /** Records a new value for a non-trainable parameter (BN running statistics); the executor owns it. */
  updateParam(name: string, value: tf.Tensor): void;
  /** The graph being run (for inferred dtypes and shapes). */
  readonly graph: Graph;
}

/** Shape info of an op's output (the name is filled in by the graph). */
export type OutInfo = { shape: readonly Dim[]; dtype: DType; name: string };

/** How one op is checked, shaped and run. */
export interface OpSpec {
  readonly op: string;
  /** Minimum and maximum number of inputs. */
  readonly arity: readonly [number, number];
  /** Input ports that carry weights (Conv: 1, 2; Gemm: 1, 2; BN: 1..4). */
  readonly weightInputs: readonly number[];
  /** Output shapes from input shapes; throws a GraphError on a mismatch. */
  infer(inputs: readonly (TensorInfo | undefined)[], node: Node, graph: Graph): OutInfo[];
  /** Runs the op with tfjs ops (differentiable where it makes sense). */
  forward(inputs: readonly (tf.Tensor | undefined)[], node: Node, ctx: ForwardContext): tf.Tensor[];
}

/** Core's ops, family by family, in the order they have always been registered. */
const registry = new Map<string, OpSpec>(
  [...ELEMENTWISE_OPS, ...CONV_OPS, ...NORM_OPS, ...POOL_OPS, ...SHAPE_OPS, ...QUANTIZE_OPS].map((spec) => [spec.op, spec]),
);

/** Looks up an op by its ONNX name. */
export function getOp(op: string): OpSpec | undefined {
  return registry.get(op);
}

/** Every registered op name. */
export function listOps(): string[] {
  return [...registry.keys()].sort();
}

/**
 * Adds an op to the registry, so graphs may hold it and the executor runs it: the way a package
 * above core (export-onnx's integer kernels) extends the vocabulary. Call it explicitly (from the
 * function that needs the op), never as a side effect of importing a module. Registering the
 * same spec object again is a no-op, so callers may register on every use; a different spec under
 * a taken name (core's own ops included) throws `OP_CONFLICT`, since two definitions of one op
 * would make a graph mean different things depending on which package loaded first.
 */
export function registerOp(spec: OpSpec): void {
  const existing = registry.get(spec.op);
  if (existing === spec) return;
  if (existing) {
    throw new TensorpressError(
      'OP_CONFLICT',
      `op "${spec.op}" is already registered with another definition: load one copy of the package that defines it, or give the new op another name`,
      { op: spec.op },
    );
  }
  registry.set(spec.op, spec);
}
