import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, type Executor, type InitContext } from '@tensorpress/core-tensor';
import { createCollector, type CalibrationMethod, type RangeInitMethod } from '../calibration.js';
import type { ActivationStats } from './quantizer.js';

/** Collects range statistics of activation values by running the float model (hooks bypassed). */
export async function collectActivationStats(
  executor: Executor,
  ctx: Pick<InitContext, 'data' | 'samples' | 'batchSize'>,
  values: readonly string[],
  method: RangeInitMethod | CalibrationMethod,
  options: { bits?: number; symmetric?: boolean; percentile?: number; lowerPercentile?: number; klFloorPercentile?: number } = {},
): Promise<Map<string, ActivationStats>> {
  const collectors = new Map(
    values.map((v) => [
      v,
      createCollector(method, {
        name: v,
        bits: options.bits ?? 8,
        symmetric: options.symmetric ?? false,
        ...(options.percentile !== undefined ? { percentile: options.percentile } : {}),
        ...(options.lowerPercentile !== undefined ? { lowerPercentile: options.lowerPercentile } : {}),
        ...(options.klFloorPercentile !== undefined ? { klFloorPercentile: options.klFloorPercentile } : {}),
      }),
    ]),
  );
  const absSum = new Map(values.map((v) => [v, 0]));
  const count = new Map(values.map((v) => [v, 0]));
  const features = new Map<string, number>();
  let seen = 0;
  for (const batch of ctx.data.batches(ctx.batchSize)) {
    const take = Math.min(batch.x.shape[0]!, ctx.samples - seen);
    const x = take < batch.x.shape[0]! ? tf.slice(batch.x, 0, take) : batch.x;
    const outs = executor.run(x, { outputs: values, bypassHooks: true, training: false });
    try {
      values.forEach((v, i) => {
        const t = outs[i]!;
        collectors.get(v)!.observe(t);
        const s = tf.tidy(() => tf.sum(tf.abs(t)));
        absSum.set(v, absSum.get(v)! + s.dataSync()[0]!);
        s.dispose();
        count.set(v, count.get(v)! + t.size);
        features.set(v, t.size / Math.max(1, t.shape[0] ?? 1));
      });
    } finally {
      // A requested value may be the graph input itself: free the batch only after reading every output.
      tf.dispose([...new Set([...outs, x, batch.x, batch.y])]);
    }
    seen += take;
    if (seen >= ctx.samples) break;
    await Promise.resolve();
  }
  if (seen === 0) throw new TensorpressError('DATA_INVALID', 'range initialisation got no samples: the dataset is empty');
  const out = new Map<string, ActivationStats>();
  for (const v of values) {
    const r = collectors.get(v)!.range();
    out.set(v, { min: r.min, max: r.max, meanAbs: absSum.get(v)! / Math.max(1, count.get(v)!), featuresPerExample: features.get(v) ?? 1 });
  }
  return out;
}

/** Merges the statistics of values sharing one quantizer (unified scales): the union of ranges. */
export function mergeStats(list: readonly ActivationStats[]): ActivationStats {
  return {
    min: Math.min(...list.map((s) => s.min)),
    max: Math.max(...list.map((s) => s.max)),
    meanAbs: list.reduce((a, s) => a + s.meanAbs, 0) / list.length,
    featuresPerExample: Math.max(...list.map((s) => s.featuresPerExample)),
  };
}
