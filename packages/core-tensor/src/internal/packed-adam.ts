/**
 * Adam with the small variables updated as one packed vector. tfjs' Adam runs about fourteen ops
 * per variable per step; a CNN has dozens of small variables (biases, BN γ/β, quantizer scales,
 * PACT α) whose updates are pure op overhead, and compression adds more of them. Here every
 * variable of at most {@link PACK_LIMIT} elements is flattened into one packed variable per step
 * (one concat of the values, one of the gradients), tfjs' own Adam updates it with the large
 * variables, and one split writes the values back. The arithmetic is tfjs' AdamOptimizer's, so
 * the weights match `tf.train.adam` on the same backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedCheckpointTensor } from '../checkpoint.js';
import { TensorpressError } from '../errors.js';
import { adamSlots, loadAdamSlots } from './optimizer-slots.js';

/** Variables up to this many elements are packed. */
export const PACK_LIMIT = 1 << 16;

let packedIds = 0;

export class PackedAdamOptimizer extends tf.Optimizer {
  static get className(): string {
    return 'PackedAdam';
  }

  private readonly inner: tf.AdamOptimizer;
  /** The variables in the order fixed by the first step: packed ones, then the large ones. */
  private layout: { key: string; small: tf.Variable[]; large: tf.Variable[]; packed: tf.Variable | undefined } | undefined;

  constructor(learningRate: number) {
    super();
    this.inner = tf.train.adam(learningRate);
  }

  /** The rate tfjs' Adam reads every step (fit's schedule sets it). */
  get learningRate(): number {
    return (this.inner as unknown as { learningRate: number }).learningRate;
  }

  set learningRate(lr: number) {
    (this.inner as unknown as { learningRate: number }).learningRate = lr;
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const grads = new Map<string, tf.Tensor | undefined>(
      Array.isArray(variableGradients) ? variableGradients.map((g) => [g.name, g.tensor ?? undefined]) : Object.entries(variableGradients),
    );
    const layout = this.layoutFor([...grads.keys()]);
    tf.tidy(() => {
      // tfjs' Adam keeps its moments by position: always the same list, a missing gradient as null.
      const named = layout.large.map((v) => ({ name: v.name, tensor: grads.get(v.name) ?? (null as unknown as tf.Tensor) }));
      if (layout.packed) {
        const flat = (f: (v: tf.Variable) => tf.Tensor): tf.Tensor => tf.concat(layout.small.map((v) => tf.reshape(f(v), [v.size])));
        layout.packed.assign(flat((v) => v));
        // A variable without a gradient this step (not connected to the loss) gets zeros.
        named.unshift({ name: layout.packed.name, tensor: flat((v) => grads.get(v.name) ?? tf.zerosLike(v)) });
      }
      this.inner.applyGradients(named);
      if (layout.packed) {
        const parts = tf.split(layout.packed, layout.small.map((v) => v.size));
        layout.small.forEach((v, i) => v.assign(tf.reshape(parts[i]!, v.shape)));
      }
    });
    this.incrementIterations();
  }

  /** The layout: fixed by the first step; a different set of variables later is an error. */
  private layoutFor(names: string[]): NonNullable<PackedAdamOptimizer['layout']> {
    const key = names.join('\n');
    if (this.layout) {
      if (key !== this.layout.key) throw new Error('PackedAdam: the set of variables changed between steps; create a new optimizer');
      return this.layout;
    }
    const vars = names.map((name) => {
      const v = tf.engine().registeredVariables[name];
      if (v === undefined) throw new Error(`PackedAdam: no variable named '${name}'`);
      return v;
    });
    const small = vars.filter((v) => v.size <= PACK_LIMIT);
    const size = small.reduce((a, v) => a + v.size, 0);
    const packed = small.length > 0 ? tf.tidy(() => tf.zeros([size]).variable(false, `PackedAdam/${packedIds++}`)) : undefined;
    this.layout = { key, small, large: vars.filter((v) => v.size > PACK_LIMIT), packed };
    return this.layout;
  }

  /**
   * The exact state for a checkpoint: `packed` lists the positions (in `vars`, the list fit passes
   * to every step) of the variables packed into one vector, in packing order; `slots` is the inner
   * Adam's (moment 0 is the packed vector's when there is one, then the large variables').
   */
  async saveState(vars: readonly tf.Variable[]): Promise<{ packed: number[]; slots: NamedCheckpointTensor[] }> {
    const packed = (this.layout?.small ?? []).map((v) => vars.indexOf(v));
    return { packed, slots: await adamSlots(this.inner) };
  }

  /** Restores {@link saveState} for the same list of variables (in a fresh process: new variables, same positions). */
  loadState(vars: readonly tf.Variable[], state: { packed: readonly number[]; slots: readonly NamedCheckpointTensor[]; iterations: number }): void {
    const hasMoments = state.slots.some((s) => s.name.startsWith('m/'));
    const layout = hasMoments ? this.layoutFor(vars.map((v) => v.name)) : undefined;
    const packed = (layout?.small ?? []).map((v) => vars.indexOf(v));
    if (packed.length !== state.packed.length || packed.some((p, i) => p !== state.packed[i])) {
      throw new TensorpressError(
        'CHECKPOINT_MISMATCH',
        `resumeFrom: the checkpoint's Adam packed the variables at positions [${state.packed.join(', ')}], this run packs [${packed.join(', ')}]`,
      );
    }
    const inner = layout ? [...(layout.packed ? [layout.packed] : []), ...layout.large] : [];
    loadAdamSlots(this.inner, state.slots, inner.map((v) => v.shape), inner.map((v) => v.name));
    this.iterations_ = state.iterations;
  }

  override dispose(): void {
    this.inner.dispose();
    this.layout?.packed?.dispose();
    this.layout = undefined;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate };
  }
}
