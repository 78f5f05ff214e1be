/**
 * Adam with the small variables updated as one packed vector. tfjs' Adam runs about fourteen ops
 * per variable per step; a CNN has dozens of small variables (biases, BN γ/β, quantizer scales,
 * PACT α) whose updates are pure op overhead, and compression adds more of them. Here every
 * variable of at most {@link PACK_LIMIT} elements is flattened into one vector per step: one
 * concat of the gradients and of the values, the same fourteen ops once, one split back. Large
 * variables keep a per-variable update (their arithmetic dominates, not the op count).
 *
 * The arithmetic is tfjs' AdamOptimizer's, op for op (β products kept as float32 scalars), so the
 * weights match `tf.train.adam` on the same backend.
 */
import * as tf from '@tensorflow/tfjs-core';

/** Variables up to this many elements are packed. */
export const PACK_LIMIT = 1 << 16;

interface Slot {
  readonly variable: tf.Variable;
  readonly size: number;
}

export class PackedAdamOptimizer extends tf.Optimizer {
  static get className(): string {
    return 'PackedAdam';
  }

  readonly beta1 = 0.9;
  readonly beta2 = 0.999;
  readonly epsilon: number;
  private readonly accBeta1: tf.Variable;
  private readonly accBeta2: tf.Variable;
  /** Names in the packed order, fixed at the first step. */
  private packed: Slot[] | undefined;
  private packedKey = '';
  private moments: { m: tf.Variable; v: tf.Variable } | undefined;
  private readonly single = new Map<string, { m: tf.Variable; v: tf.Variable }>();

  constructor(public learningRate: number) {
    super();
    this.epsilon = tf.backend().epsilon();
    [this.accBeta1, this.accBeta2] = tf.tidy(() => [tf.scalar(this.beta1).variable(false), tf.scalar(this.beta2).variable(false)]);
  }

  override applyGradients(variableGradients: tf.NamedTensorMap | { name: string; tensor: tf.Tensor }[]): void {
    const list = Array.isArray(variableGradients)
      ? variableGradients.map((g) => [g.name, g.tensor] as const)
      : Object.entries(variableGradients).map(([name, t]) => [name, t] as const);
    const small: [tf.Variable, tf.Tensor | undefined][] = [];
    const large: [tf.Variable, tf.Tensor][] = [];
    for (const [name, grad] of list) {
      const variable = tf.engine().registeredVariables[name];
      if (variable === undefined) throw new Error(`PackedAdam: no variable named '${name}'`);
      if (variable.size <= PACK_LIMIT) small.push([variable, grad ?? undefined]);
      else if (grad != null) large.push([variable, grad]);
    }
    tf.tidy(() => {
      const oneMinusAccBeta1 = tf.sub(1, this.accBeta1);
      const oneMinusAccBeta2 = tf.sub(1, this.accBeta2);
      // One update: tfjs' Adam arithmetic on (value, gradient, m, v); returns the new value.
      const update = (value: tf.Tensor, gradient: tf.Tensor, m: tf.Variable, v: tf.Variable): tf.Tensor => {
        const newM = tf.add(tf.mul(m, this.beta1), tf.mul(gradient, 1 - this.beta1));
        const newV = tf.add(tf.mul(v, this.beta2), tf.mul(tf.square(gradient), 1 - this.beta2));
        const mHat = tf.div(newM, oneMinusAccBeta1);
        const vHat = tf.div(newV, oneMinusAccBeta2);
        m.assign(newM);
        v.assign(newV);
        return tf.add(tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), this.epsilon)), -this.learningRate), value);
      };
      if (small.length > 0) {
        const slots = this.slotsFor(small.map(([variable]) => variable));
        const byVar = new Map(small);
        // A variable without a gradient this step (not connected to the loss) gets zeros.
        const flat = (f: (s: Slot) => tf.Tensor): tf.Tensor => (slots.length === 1 ? f(slots[0]!) : tf.concat(slots.map(f)));
        const g = flat((s) => tf.reshape(byVar.get(s.variable) ?? tf.zeros(s.variable.shape), [s.size]));
        const w = flat((s) => tf.reshape(s.variable, [s.size]));
        this.moments ??= tf.tidy(() => ({ m: tf.zeros([w.size]).variable(false), v: tf.zeros([w.size]).variable(false) }));
        const next = update(w, g, this.moments.m, this.moments.v);
        const parts = slots.length === 1 ? [next] : tf.split(next, slots.map((s) => s.size));
        slots.forEach((s, i) => s.variable.assign(tf.reshape(parts[i]!, s.variable.shape)));
      }
      for (const [variable, grad] of large) {
        let state = this.single.get(variable.name);
        if (state === undefined) {
          state = tf.tidy(() => ({ m: tf.zerosLike(variable).variable(false), v: tf.zerosLike(variable).variable(false) }));
          this.single.set(variable.name, state);
        }
        variable.assign(update(variable, grad, state.m, state.v));
      }
      this.accBeta1.assign(tf.mul(this.accBeta1, this.beta1));
      this.accBeta2.assign(tf.mul(this.accBeta2, this.beta2));
    });
    this.incrementIterations();
  }

  /** The packed order: fixed by the first step; a different set of variables later is an error. */
  private slotsFor(vars: tf.Variable[]): Slot[] {
    const key = vars.map((v) => v.name).join('\n');
    if (this.packed === undefined) {
      this.packed = vars.map((variable) => ({ variable, size: variable.size }));
      this.packedKey = key;
    } else if (key !== this.packedKey) {
      throw new Error('PackedAdam: the set of small variables changed between steps; create a new optimizer');
    }
    return this.packed;
  }

  override dispose(): void {
    this.accBeta1.dispose();
    this.accBeta2.dispose();
    if (this.moments) tf.dispose([this.moments.m, this.moments.v]);
    for (const s of this.single.values()) tf.dispose([s.m, s.v]);
    this.single.clear();
    this.moments = undefined;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { learningRate: this.learningRate, beta1: this.beta1, beta2: this.beta2, epsilon: this.epsilon };
  }
}
