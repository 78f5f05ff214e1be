import * as tf from '@tensorflow/tfjs-core';

/**
 * Softmax cross-entropy of logits [N, C] against integer class labels [N], averaged (default) or
 * summed over the batch. The one loss fit, evaluate and the Hessian products share.
 */
export function softmaxCrossEntropy(logits: tf.Tensor, labels: tf.Tensor, reduction: 'mean' | 'sum' = 'mean'): tf.Scalar {
  return tf.tidy(() => {
    const classes = logits.shape[logits.rank - 1]!;
    const onehot = tf.oneHot(tf.cast(labels, 'int32') as tf.Tensor1D, classes, 1, 0, 'float32');
    return tf.losses.softmaxCrossEntropy(onehot, logits, undefined, 0, reduction === 'sum' ? tf.Reduction.SUM : tf.Reduction.MEAN) as tf.Scalar;
  });
}
