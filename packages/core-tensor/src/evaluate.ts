import * as tf from '@tensorflow/tfjs-core';
import type { Dataset } from './data.js';
import { Executor } from './executor.js';
import type { Graph } from './graph.js';
import { softmaxCrossEntropy } from './losses.js';
import { createProgress, type Progress, type ProgressMode, type ProgressReporter } from './internal/progress.js';
import { checkInt, correctCount, fmt, int32Labels, logitsOf, yieldToEventLoop } from './internal/train-utils.js';

/** Options of {@link evaluate}. */
export interface EvaluateOptions {
  /** Default 256. */
  batchSize?: number;
  /** As in `FitOptions.progress` (one line for the pass). Default `true`. */
  progress?: ProgressMode | ProgressReporter;
  /** Receives the summary line. */
  log?: (line: string) => void;
}

/** Result of {@link evaluate}. */
export interface EvaluateResult {
  /** Fraction of examples whose arg-max logit is the label. */
  readonly accuracy: number;
  /** Mean softmax cross-entropy. */
  readonly loss: number;
  /** Examples seen. */
  readonly count: number;
}

/**
 * Accuracy and mean softmax cross-entropy of the first graph output (logits) against integer
 * labels, in eval mode (BN running statistics, no dropout; an executor's hooks apply). Counts are
 * accumulated on the device and read once at the end.
 */
export async function evaluate(target: Graph | Executor, data: Dataset, options: EvaluateOptions = {}): Promise<EvaluateResult> {
  const batchSize = checkInt('$.batchSize', options.batchSize ?? 256, 1);
  const owned = !(target instanceof Executor);
  const ex = target instanceof Executor ? target : new Executor(target);
  const progress: Progress = createProgress(options.progress ?? true, options.log);
  let lossSum: tf.Scalar = tf.scalar(0);
  let correct: tf.Scalar = tf.scalar(0, 'int32');
  try {
    logitsOf(ex, data, 'evaluate');
    const steps = Math.ceil(data.size / batchSize);
    await progress.start('evaluate', steps);
    let count = 0;
    let step = 0;
    for (const batch of data.batches(batchSize)) {
      try {
        const [nl, nc] = tf.tidy(() => {
          const labels = int32Labels(batch.y);
          const logits = ex.run(batch.x)[0]!;
          const l = softmaxCrossEntropy(logits, labels, 'sum');
          return [tf.add(lossSum, l), tf.add(correct, correctCount(logits, labels))];
        });
        tf.dispose([lossSum, correct]);
        lossSum = nl as tf.Scalar;
        correct = nc as tf.Scalar;
        count += batch.x.shape[0] ?? 0;
      } finally {
        tf.dispose([batch.x, batch.y]);
      }
      step++;
      if (progress.interactive) {
        progress.update(step);
        await yieldToEventLoop();
      }
    }
    const [l, c] = await Promise.all([lossSum.data(), correct.data()]);
    const result = { accuracy: c[0]! / count, loss: l[0]! / count, count };
    progress.end(`evaluate ${count} examples: loss ${fmt(result.loss)} acc ${fmt(result.accuracy)}`);
    return result;
  } finally {
    progress.end();
    tf.dispose([lossSum, correct]);
    if (owned) ex.dispose();
  }
}
