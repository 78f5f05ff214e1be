import * as tf from '@tensorflow/tfjs-core';

/**
 * Straight-through estimators of sign(x), for weights and activations separately:
 * - `ste`: the gradient passes unchanged;
 * - `saturate_ste`: the gradient passes where |x| ≤ 1 and is zero where |x| > 1 (BNN's hard tanh);
 * - `soft_ste`: the gradient is scaled by max(0, 1 − |x|) (a triangle around 0);
 * - `approx_sign`: Bi-Real Net's ApproxSign, the derivative of the piecewise polynomial
 *   2x + x·|x| on [−1, 1] (±1 outside): 2·max(0, 1 − |x|), a triangle of area 2 like sign's jump.
 */
export type SteVariant = 'ste' | 'saturate_ste' | 'soft_ste' | 'approx_sign';

/** The STE variants, in the order of {@link SteVariant}. */
export const STE_VARIANTS: readonly SteVariant[] = ['ste', 'saturate_ste', 'soft_ste', 'approx_sign'];

/** sign(x) with sign(0) = +1: the values {−1, +1} of every binarizer (BNN, XNOR-Net, micronet). */
export function signPlus(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.mul(tf.cast(tf.greaterEqual(x, 0), 'float32'), 2), 1));
}

/** The derivative each STE variant uses in place of sign′(x) (which is 0 almost everywhere). */
export function steDerivative(x: tf.Tensor, variant: SteVariant): tf.Tensor {
  return tf.tidy(() => {
    switch (variant) {
      case 'ste':
        return tf.onesLike(x);
      case 'saturate_ste':
        return tf.cast(tf.lessEqual(tf.abs(x), 1), 'float32');
      case 'soft_ste':
        return tf.relu(tf.sub(1, tf.abs(x)));
      case 'approx_sign':
        return tf.mul(tf.relu(tf.sub(1, tf.abs(x))), 2);
    }
  });
}

const steOps = new Map<SteVariant, (x: tf.Tensor) => tf.Tensor>();

/**
 * sign(x) (sign(0) = +1) forward; backward dy · g(x) with g the variant's derivative
 * ({@link steDerivative}). A `tf.customGrad`, one per variant.
 */
export function binarySte(x: tf.Tensor, variant: SteVariant = 'ste'): tf.Tensor {
  let op = steOps.get(variant);
  if (!op) {
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xi, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([xi]);
      return {
        value: signPlus(xi),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => (variant === 'ste' ? dy : tf.mul(dy, steDerivative(saved[0]!, variant))),
      };
    }) as (x: tf.Tensor) => tf.Tensor;
    steOps.set(variant, op);
  }
  return op(x);
}

/**
 * Ternary codes of x against a threshold Δ (broadcast against x): +1 where x > Δ, −1 where x < −Δ,
 * 0 between (micronet's sign(sign(x + Δ) + sign(x − Δ))). No gradient: see {@link ternarySte}.
 */
export function ternaryCodes(x: tf.Tensor, delta: tf.Tensor | number): tf.Tensor {
  return tf.tidy(() => tf.sub(tf.cast(tf.greater(x, delta), 'float32'), tf.cast(tf.less(x, tf.neg(delta)), 'float32')));
}

const ternaryOps = new Map<SteVariant, (x: tf.Tensor, delta: tf.Tensor) => tf.Tensor>();

/**
 * {@link ternaryCodes} forward; backward dy · g(x) for x (the variant's derivative, as in
 * {@link binarySte}) and nothing for Δ (a statistic of the weights, not a trained value).
 */
export function ternarySte(x: tf.Tensor, delta: tf.Tensor, variant: SteVariant = 'ste'): tf.Tensor {
  let op = ternaryOps.get(variant);
  if (!op) {
    op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
      const [xi, di, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
      save([xi, di]);
      return {
        value: ternaryCodes(xi, di),
        gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [
          variant === 'ste' ? dy : tf.mul(dy, steDerivative(saved[0]!, variant)),
          tf.zerosLike(saved[1]!),
        ],
      };
    }) as (x: tf.Tensor, delta: tf.Tensor) => tf.Tensor;
    ternaryOps.set(variant, op);
  }
  return op(x, delta);
}

/**
 * Runs `fn` as a constant for the gradient: its inputs get zero gradients (comparisons and masks
 * have no gradient in tfjs; computing them inside a customGrad keeps them off the tape).
 */
export function constantOf(fn: (...xs: tf.Tensor[]) => tf.Tensor, ...inputs: tf.Tensor[]): tf.Tensor {
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const xs = args.slice(0, -1) as tf.Tensor[];
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save(xs);
    return { value: fn(...xs), gradFunc: (_dy: tf.Tensor, saved: tf.Tensor[]) => saved.map((s) => tf.zerosLike(s)) };
  }) as (...t: tf.Tensor[]) => tf.Tensor;
  return op(...inputs);
}
