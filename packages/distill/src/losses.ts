import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, softmaxCrossEntropy } from '@tensorpress/core-tensor';

/** Which distance between the student's and the teacher's logits. */
export type DistillationLossKind = 'kl' | 'mse';

function checkPair(student: tf.Tensor, teacher: tf.Tensor, what: string): void {
  if (student.rank !== teacher.rank || student.shape.some((d, i) => d !== teacher.shape[i])) {
    throw new TensorpressError(
      'SHAPE_MISMATCH',
      `${what}: the student's tensor has shape [${student.shape.join(', ')}] but the teacher's [${teacher.shape.join(', ')}]`,
      { student: student.shape, teacher: teacher.shape },
    );
  }
}

function checkTemperature(temperature: number): void {
  if (!(Number.isFinite(temperature) && temperature > 0)) {
    throw new TensorpressError('INPUT_INVALID', `temperature must be a finite number > 0, got ${temperature}`, { temperature });
  }
}

/**
 * Hinton et al.'s soft-label loss: `T² · mean_n KL(softmax(t_n/T) ‖ softmax(s_n/T))` over logits
 * `[N, C]` (class axis last). The T² factor keeps the gradient's size independent of T: the
 * gradient with respect to the student's logits is `(T/N)·(softmax(s/T) − softmax(t/T))`. The
 * teacher's logits are treated as constants (no gradient reaches them).
 */
export function softTargetKl(student: tf.Tensor, teacher: tf.Tensor, temperature: number): tf.Scalar {
  checkPair(student, teacher, 'softTargetKl');
  checkTemperature(temperature);
  return tf.tidy(() => {
    const axis = student.rank - 1;
    const logPt = tf.logSoftmax(tf.div(stopGradient(teacher), temperature), axis);
    const logPs = tf.logSoftmax(tf.div(student, temperature), axis);
    const kl = tf.sum(tf.mul(tf.exp(logPt), tf.sub(logPt, logPs)), axis);
    return tf.mul(tf.mean(kl), temperature * temperature) as tf.Scalar;
  });
}

/**
 * Mean squared difference of the logits, averaged over every element (Ba & Caruana's logit
 * regression). Gradient with respect to the student's logits: `2(s − t)/size`.
 */
export function logitMse(student: tf.Tensor, teacher: tf.Tensor): tf.Scalar {
  checkPair(student, teacher, 'logitMse');
  return tf.tidy(() => tf.mean(tf.squaredDifference(student, stopGradient(teacher))) as tf.Scalar);
}

/** Options of {@link distillationLoss}. */
export interface DistillationLossOptions {
  /** Weight of the distillation term; the hard-label cross-entropy gets `1 − alpha`. In [0, 1]. */
  alpha: number;
  /** Softmax temperature of the `kl` loss (> 0). Unused by `mse`. */
  temperature: number;
  /** `kl` (default): {@link softTargetKl}; `mse`: {@link logitMse}. */
  loss?: DistillationLossKind;
}

/** The distillation term alone: {@link softTargetKl} or {@link logitMse}. */
export function distillationTerm(student: tf.Tensor, teacher: tf.Tensor, options: Omit<DistillationLossOptions, 'alpha'>): tf.Scalar {
  return (options.loss ?? 'kl') === 'kl' ? softTargetKl(student, teacher, options.temperature) : logitMse(student, teacher);
}

/**
 * The whole blended objective of a distilled student on a labelled batch:
 * `(1 − α) · CE(s, labels) + α · D(s, t)`, with `D` the soft-label KL (T²-scaled) or the logit MSE.
 */
export function distillationLoss(student: tf.Tensor, teacher: tf.Tensor, labels: tf.Tensor, options: DistillationLossOptions): tf.Scalar {
  const { alpha } = options;
  if (!(alpha >= 0 && alpha <= 1)) throw new TensorpressError('INPUT_INVALID', `alpha must be in [0, 1], got ${alpha}`, { alpha });
  return tf.tidy(() => {
    const ce = softmaxCrossEntropy(student, labels);
    const d = distillationTerm(student, teacher, options);
    return tf.add(tf.mul(ce, 1 - alpha), tf.mul(d, alpha)) as tf.Scalar;
  });
}

/**
 * FitNets' hint loss between a student feature map and a teacher feature map (channels last, same
 * leading dimensions): `mean((S·W − T)²)` where `W` `[Cs, Ct]` is the learned 1×1 adapter (a 1×1
 * convolution without bias), or `mean((S − T)²)` without one (then the channel counts must agree).
 */
export function hintLoss(studentFeature: tf.Tensor, teacherFeature: tf.Tensor, adapter?: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    let s = studentFeature;
    if (adapter) {
      const cs = s.shape[s.rank - 1]!;
      if (adapter.shape[0] !== cs) {
        throw new TensorpressError('SHAPE_MISMATCH', `hintLoss: the adapter maps ${adapter.shape[0]} channels but the student's feature has ${cs}`);
      }
      const flat = tf.reshape(s, [-1, cs]);
      s = tf.reshape(tf.matMul(flat, adapter), [...s.shape.slice(0, -1), adapter.shape[1]]);
    }
    checkPair(s, teacherFeature, adapter ? 'hintLoss (after the adapter)' : 'hintLoss');
    return tf.mean(tf.squaredDifference(s, stopGradient(teacherFeature))) as tf.Scalar;
  });
}

/**
 * The identity whose gradient is zero: what the teacher hands the student is a target, never a
 * path for gradients (the teacher's weights are not even in the tape's reach).
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  return STOP(x) as T;
}

const STOP = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const a = args[0] as tf.Tensor;
  return { value: tf.clone(a), gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.zerosLike(dy as tf.Tensor) };
});
