import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, softmaxCrossEntropy, type Executor } from '@tensorpress/core-tensor';

/** The loss a Hessian is taken of: model outputs and labels to a scalar. */
export type HessianLoss = (outputs: readonly tf.Tensor[], labels: tf.Tensor1D) => tf.Scalar;

/** Mean softmax cross-entropy of the first output (logits) against integer labels. */
export const crossEntropyLoss: HessianLoss = (outputs, labels) => softmaxCrossEntropy(outputs[0]!, labels);

/** Options of {@link hessianVectorProduct}. */
export interface HvpOptions {
  /** Default cross-entropy. */
  loss?: HessianLoss;
  /**
   * `finite-difference` (default): central difference of exact gradients,
   * (∇L(w+εv) − ∇L(w−εv)) / 2ε, exact for quadratic losses and valid for every op with a first
   * gradient. `exact`: double back-propagation, available only where tfjs registers second-order
   * gradients (not for Conv2D's filter gradient or max pooling).
   */
  method?: 'finite-difference' | 'exact';
  /**
   * Relative step for finite differences: ε = epsilon · max(‖w‖, 1) / ‖v‖. Default 1e-4: larger
   * steps make ReLU units cross their kink (a jump in the gradient that the a.e. Hessian does not
   * have); smaller ones drown in float32 rounding.
   */
  epsilon?: number;
  /** Run the model in train mode (BN batch statistics; running statistics are not updated). Default false. */
  training?: boolean;
}

/**
 * Hessian-vector product H·v of the loss on one batch with respect to one parameter, the
 * building block of HAWQ's Hutchinson trace estimate. Returns a tensor shaped like the parameter.
 * The model's variables are never changed: the parameter is substituted for the run.
 */
export function hessianVectorProduct(
  executor: Executor,
  batch: { x: tf.Tensor; y: tf.Tensor1D },
  paramName: string,
  v: tf.Tensor,
  options: HvpOptions = {},
): tf.Tensor {
  const w = executor.variables().get(paramName);
  if (!w) throw new TensorpressError('INPUT_INVALID', `"${paramName}" is not a float parameter of the graph`, { param: paramName });
  if (!tf.util.arraysEqual(w.shape, v.shape)) {
    throw new TensorpressError('INPUT_INVALID', `v has shape [${v.shape.join(', ')}] but "${paramName}" is [${w.shape.join(', ')}]`);
  }
  const lossFn = options.loss ?? crossEntropyLoss;
  const training = options.training ?? false;
  const lossAt = (u: tf.Tensor): tf.Scalar =>
    lossFn(executor.run(batch.x, { training, updateStats: false, paramOverrides: new Map([[paramName, u]]) }), batch.y);
  const gradAt = tf.grad(lossAt);
  if ((options.method ?? 'finite-difference') === 'exact') {
    return tf.tidy(() => tf.grad((u: tf.Tensor) => tf.sum(tf.mul(gradAt(u), v)) as tf.Scalar)(tf.clone(w)));
  }
  const norms = tf.tidy(() => tf.stack([tf.norm(w), tf.norm(v)]));
  const nd = norms.dataSync();
  norms.dispose();
  if (nd[1] === 0) return tf.zerosLike(w);
  const eps = ((options.epsilon ?? 1e-4) * Math.max(nd[0]!, 1)) / nd[1]!;
  return tf.tidy(() => {
    const gPlus = gradAt(tf.add(w, tf.mul(v, eps)));
    const gMinus = gradAt(tf.sub(w, tf.mul(v, eps)));
    return tf.div(tf.sub(gPlus, gMinus), 2 * eps);
  });
}
