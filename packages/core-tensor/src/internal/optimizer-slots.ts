/**
 * Exact save and restore of tfjs optimizers' internal state. tfjs' `getWeights`/`setWeights` are not
 * exact for Adam (setWeights recomputes β^t with `pow` where training kept a running product), so the
 * state of tfjs' Adam, SGD and Momentum is read from and written to their fields directly. The
 * fields are private in tfjs' typings; these are the names tfjs-core 4.x uses.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NamedCheckpointTensor } from '../checkpoint.js';
import { TensorpressError } from '../errors.js';

interface Slot {
  originalName: string;
  variable: tf.Variable;
}

/** The fields of tfjs' AdamOptimizer that hold its state. */
interface AdamFields {
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: (Slot | undefined)[];
  accumulatedSecondMoment: (Slot | undefined)[];
}

/** The fields of tfjs' MomentumOptimizer that hold its state. */
interface MomentumFields {
  accumulations: (Slot | undefined)[];
}

/** A copy of a tensor's values (never a view of backend memory that a later op could reuse). */
export async function copyTensor(name: string, t: tf.Tensor): Promise<NamedCheckpointTensor> {
  const values = await t.data();
  const data = t.dtype === 'int32' || t.dtype === 'bool' ? Int32Array.from(values as ArrayLike<number>) : Float32Array.from(values as ArrayLike<number>);
  return { name, shape: [...t.shape], data };
}

function mismatch(message: string, details: Record<string, unknown> = {}): TensorpressError {
  return new TensorpressError('CHECKPOINT_MISMATCH', `resumeFrom: ${message}`, details);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** A new non-trainable variable holding a slot's values, checked against the shape it must have. */
function slotVariable(slot: NamedCheckpointTensor, shape: readonly number[], what: string): tf.Variable {
  if (!sameShape(slot.shape, shape)) {
    throw mismatch(`optimizer slot "${slot.name}" (${what}) has shape [${slot.shape.join(', ')}] in the checkpoint, [${shape.join(', ')}] here`, {
      slot: slot.name,
    });
  }
  return tf.tidy(() => tf.tensor(slot.data, [...slot.shape], 'float32').variable(false));
}

function disposeSlots(slots: readonly (Slot | undefined)[]): void {
  for (const s of slots) s?.variable.dispose();
}

/** The optimizer's step counter (tfjs keeps it in `iterations_`). */
export function setIterations(opt: tf.Optimizer, n: number): void {
  (opt as unknown as { iterations_: number }).iterations_ = n;
}

/** Adam's state: `accBeta1`, `accBeta2` (β^t as kept by training), then `m/i` and `v/i` per moment slot. */
export async function adamSlots(opt: tf.Optimizer): Promise<NamedCheckpointTensor[]> {
  const f = opt as unknown as AdamFields;
  const out = [await copyTensor('accBeta1', f.accBeta1), await copyTensor('accBeta2', f.accBeta2)];
  for (const [i, s] of f.accumulatedFirstMoment.entries()) if (s) out.push(await copyTensor(`m/${i}`, s.variable));
  for (const [i, s] of f.accumulatedSecondMoment.entries()) if (s) out.push(await copyTensor(`v/${i}`, s.variable));
  return out;
}

/**
 * Restores {@link adamSlots} into a tfjs Adam whose moment slot `i` must have `shapes[i]` (what
 * `applyGradients` would create for the i-th variable it is given). Slots absent from the
 * checkpoint (no step taken yet) stay absent: Adam creates them as zeros on its first step.
 */
export function loadAdamSlots(opt: tf.Optimizer, slots: readonly NamedCheckpointTensor[], shapes: readonly (readonly number[])[], names: readonly string[]): void {
  const f = opt as unknown as AdamFields;
  const byName = new Map(slots.map((s) => [s.name, s]));
  const b1 = byName.get('accBeta1');
  const b2 = byName.get('accBeta2');
  if (!b1 || !b2) throw mismatch('the Adam state has no accBeta1/accBeta2 slots');
  const moments = slots.filter((s) => s.name.startsWith('m/')).length;
  if (moments !== 0 && moments !== shapes.length) {
    throw mismatch(`the Adam state has ${moments} moment slots, this run's optimizer needs ${shapes.length}`);
  }
  const first: Slot[] = [];
  const second: Slot[] = [];
  try {
    for (let i = 0; i < moments; i++) {
      const m = byName.get(`m/${i}`);
      const v = byName.get(`v/${i}`);
      if (!m || !v) throw mismatch(`the Adam state lacks moment slot ${i}`);
      first.push({ originalName: `${names[i]}/m`, variable: slotVariable(m, shapes[i]!, `first moment ${i}`) });
      second.push({ originalName: `${names[i]}/v`, variable: slotVariable(v, shapes[i]!, `second moment ${i}`) });
    }
  } catch (e) {
    disposeSlots([...first, ...second]);
    throw e;
  }
  disposeSlots([...f.accumulatedFirstMoment, ...f.accumulatedSecondMoment]);
  f.accumulatedFirstMoment = first;
  f.accumulatedSecondMoment = second;
  tf.tidy(() => {
    // The running products themselves: recomputing β^t with pow would differ in the last bits.
    f.accBeta1.assign(tf.tensor(b1.data, [], 'float32'));
    f.accBeta2.assign(tf.tensor(b2.data, [], 'float32'));
  });
}

/** Momentum's state: one accumulation `a/i` per variable position. */
export async function momentumSlots(opt: tf.Optimizer): Promise<NamedCheckpointTensor[]> {
  const out: NamedCheckpointTensor[] = [];
  for (const [i, s] of (opt as unknown as MomentumFields).accumulations.entries()) if (s) out.push(await copyTensor(`a/${i}`, s.variable));
  return out;
}

/** Restores {@link momentumSlots}; slot `i` must have `shapes[i]`. */
export function loadMomentumSlots(opt: tf.Optimizer, slots: readonly NamedCheckpointTensor[], shapes: readonly (readonly number[])[], names: readonly string[]): void {
  const f = opt as unknown as MomentumFields;
  if (slots.length !== 0 && slots.length !== shapes.length) {
    throw mismatch(`the Momentum state has ${slots.length} accumulations, this run trains ${shapes.length} variables`);
  }
  const acc: Slot[] = [];
  try {
    slots.forEach((s, i) => {
      if (s.name !== `a/${i}`) throw mismatch(`the Momentum state's slot ${i} is "${s.name}", expected "a/${i}"`);
      acc.push({ originalName: `${names[i]}/momentum`, variable: slotVariable(s, shapes[i]!, `accumulation ${i}`) });
    });
  } catch (e) {
    disposeSlots(acc);
    throw e;
  }
  disposeSlots(f.accumulations);
  f.accumulations = acc;
}
