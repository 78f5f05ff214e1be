import * as tf from '@tensorflow/tfjs-core';

/** The stretch and temperature of a hard-concrete distribution (Louizos et al. 2018). */
export interface HardConcreteParams {
  /** Temperature β (paper: 2/3). */
  readonly beta: number;
  /** Lower end of the stretched interval, γ < 0 (paper: −0.1). */
  readonly gamma: number;
  /** Upper end of the stretched interval, ζ > 1 (paper: 1.1). */
  readonly zeta: number;
}

/** The paper's values: β = 2/3, γ = −0.1, ζ = 1.1. */
export const HARD_CONCRETE: HardConcreteParams = Object.freeze({ beta: 2 / 3, gamma: -0.1, zeta: 1.1 });

/**
 * A training-time gate: s = σ((log u − log(1 − u) + log α)/β), z = min(1, max(0, s(ζ − γ) + γ)),
 * for uniform noise u in (0, 1). Differentiable in log α (the reparameterisation trick).
 */
export function sampleGate(logAlpha: tf.Tensor, u: tf.Tensor, hc: HardConcreteParams = HARD_CONCRETE): tf.Tensor {
  return tf.tidy(() => {
    const noise = tf.sub(tf.log(u), tf.log1p(tf.neg(u)));
    const s = tf.sigmoid(tf.div(tf.add(noise, logAlpha), hc.beta));
    return tf.clipByValue(tf.add(tf.mul(s, hc.zeta - hc.gamma), hc.gamma), 0, 1);
  });
}

/** The deterministic gate used at eval and by strip: z = min(1, max(0, σ(log α)(ζ − γ) + γ)). */
export function evalGate(logAlpha: tf.Tensor, hc: HardConcreteParams = HARD_CONCRETE): tf.Tensor {
  return tf.tidy(() => tf.clipByValue(tf.add(tf.mul(tf.sigmoid(logAlpha), hc.zeta - hc.gamma), hc.gamma), 0, 1));
}

/** P(z ≠ 0) = σ(log α − β·log(−γ/ζ)): each gate's term of the expected L0 norm. */
export function nonZeroProbability(logAlpha: tf.Tensor, hc: HardConcreteParams = HARD_CONCRETE): tf.Tensor {
  return tf.tidy(() => tf.sigmoid(tf.sub(logAlpha, hc.beta * Math.log(-hc.gamma / hc.zeta))));
}
