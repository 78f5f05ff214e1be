import * as tf from '@tensorflow/tfjs-core';
import { GraphError, TensorpressError, type Executor, type Graph, type Json, type ParamData } from '@tensorpress/core-tensor';
import { fromBase64, toBase64 } from './base64.js';
import type { WeightTarget } from './targets.js';

/**
 * Binary masks (float 0/1 variables, one per target weight) of magnitude and N:M sparsity. The
 * weight hook multiplies by the mask, and {@link MaskSet.applyToWeights} writes the zeros into the
 * weights themselves after every optimiser step: a masked weight reads 0 whatever the optimiser's
 * momentum did to it, so it can never regrow, and the snapshot a strip starts from already has the
 * zeros (also after a stacked pruning strip changed the shapes).
 */
export class MaskSet {
  private readonly masks = new Map<string, tf.Variable>();

  constructor(
    readonly targets: readonly WeightTarget[],
    private readonly executor: Executor,
  ) {
    for (const t of targets) {
      const ones = tf.ones(t.shape as number[]);
      this.masks.set(t.param, tf.variable(ones, false, undefined, 'float32'));
      ones.dispose();
    }
  }

  /** The mask of a weight (undefined before build / after dispose). */
  get(param: string): tf.Variable | undefined {
    return this.masks.get(param);
  }

  /** Replaces a mask (0/1 values of the weight's shape). */
  set(param: string, mask: tf.Tensor): void {
    this.masks.get(param)!.assign(mask.dtype === 'float32' ? mask : tf.cast(mask, 'float32'));
  }

  /** Zeroes every masked weight in the executor's variables. */
  applyToWeights(): void {
    const vars = this.executor.variables();
    tf.tidy(() => {
      for (const t of this.targets) {
        const w = vars.get(t.param);
        if (w) w.assign(tf.mul(w, this.masks.get(t.param)!));
      }
    });
  }

  /** Zeros (masked positions) of each target, by parameter. */
  zeroCounts(): Map<string, number> {
    const out = new Map<string, number>();
    for (const t of this.targets) {
      const s = tf.tidy(() => tf.sum(this.masks.get(t.param)!));
      out.set(t.param, t.size - Math.round(s.dataSync()[0]!));
      s.dispose();
    }
    return out;
  }

  /** The masks as base64 bitmasks (bit i of byte i>>3, LSB first), by parameter. */
  encode(): Record<string, Json> {
    const out: Record<string, Json> = {};
    for (const t of this.targets) {
      const m = this.masks.get(t.param)!.dataSync();
      const bytes = new Uint8Array(Math.ceil(t.size / 8));
      for (let i = 0; i < t.size; i++) if (m[i]! !== 0) bytes[i >> 3]! |= 1 << (i & 7);
      out[t.param] = toBase64(bytes);
    }
    return out;
  }

  /** Restores {@link encode}d masks and applies them to the weights. */
  decode(state: unknown, where: string): void {
    if (!state || typeof state !== 'object') throw new TensorpressError('STATE_INVALID', `${where}: expected { <weight>: <base64 bitmask> }`);
    const rec = state as Record<string, unknown>;
    for (const t of this.targets) {
      const s = rec[t.param];
      const bytes = typeof s === 'string' ? fromBase64(s) : undefined;
      if (!bytes || bytes.length !== Math.ceil(t.size / 8)) {
        throw new TensorpressError('STATE_INVALID', `${where}["${t.param}"]: expected a base64 bitmask of ${t.size} bits`);
      }
      const m = new Float32Array(t.size);
      for (let i = 0; i < t.size; i++) m[i] = (bytes[i >> 3]! >> (i & 7)) & 1;
      tf.tidy(() => this.set(t.param, tf.tensor(m, t.shape as number[])));
    }
    this.applyToWeights();
  }

  /**
   * The graph with every masked weight zeroed (masks dropped). A weight whose shape an earlier strip
   * changed (filter pruning) already holds its zeros (see the class comment) and is kept as it is.
   */
  strip(graph: Graph): Graph {
    const updates = new Map<string, { data: ParamData }>();
    for (const t of this.targets) {
      const p = graph.param(t.param);
      if (!p) throw new GraphError('GRAPH_INVALID', `sparsity strip: the weight "${t.param}" of "${t.node}" is gone from the graph`, { node: t.node });
      if (p.data.length !== t.size) continue;
      const m = this.masks.get(t.param)!.dataSync();
      const d = Float32Array.from(p.data as Float32Array, (v, i) => (m[i] === 0 ? 0 : v));
      updates.set(t.param, { data: d });
    }
    return graph.withParams(updates);
  }

  dispose(): void {
    for (const m of this.masks.values()) m.dispose();
    this.masks.clear();
  }
}
