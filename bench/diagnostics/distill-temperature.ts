/**
 * `node --conditions=@tensorpress/source --import tsx bench/diagnostics/distill-temperature.ts`:
 * why KD at T = 4, α = 0.9 loses to the student alone in the short `distill` bench runs while
 * T = 1, α = 0.5 gains. On 2,000 training images (a seeded draw) it prints the cached FP32 residual
 * CNN's accuracy and softened distributions, and, for each setting, the sizes of the two gradient
 * parts in the student's logits, (1 − α)·∂CE and α·∂(T²·KL), and their cosine: for a fresh
 * quarter-width student and for one whose logits rank the classes like the teacher's at a third of
 * its scale (teacher / 3). Prints only; writes no result.
 */
import * as tf from '@tensorflow/tfjs-core';
import { createRng, ensureGradients, permutation, runGraph, softmaxCrossEntropy, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadFashionMnist } from '@tensorpress/datasets';
import { softTargetKl } from '@tensorpress/distill';
import { trainedBaseline } from '../common.js';

await useBackend(['wasm', 'cpu']);
await ensureGradients();
const { train } = await loadFashionMnist();
const teacher = (await trainedBaseline('residualCnn', () => referenceModels.residualCnn({ seed: 0 }), 'fashion-mnist', train)).graph;
const it = train.subset(permutation(train.size, createRng(5)).subarray(0, 2000)).batches(2000);
const { x, y } = it.next().value as { x: tf.Tensor; y: tf.Tensor1D };
const one = (v: tf.Tensor): number => v.dataSync()[0]!;
tf.tidy(() => {
  const t = runGraph(teacher, x, { training: false })[0]!;
  const fresh = runGraph(referenceModels.plainCnn({ seed: 0, width: 0.25 }), x, { training: false })[0]!;
  console.log(`teacher accuracy on the 2,000 training images: ${(one(tf.mean(tf.cast(tf.equal(tf.argMax(t, -1), y), 'float32'))) * 100).toFixed(2)}%`);
  console.log(`teacher logits: mean per-row std ${one(tf.mean(tf.sqrt(tf.moments(t, -1).variance))).toFixed(2)}, mean max − min ${one(tf.mean(tf.sub(tf.max(t, -1), tf.min(t, -1)))).toFixed(2)}`);
  const onehot = tf.oneHot(y, 10);
  for (const temp of [1, 2, 4]) {
    const p = tf.softmax(tf.div(t, temp));
    const entropy = tf.neg(tf.sum(tf.mul(p, tf.log(tf.add(p, 1e-12))), -1));
    console.log(
      `T=${temp}: mean top probability ${one(tf.mean(tf.max(p, -1))).toFixed(3)}, mean p(true class) ${one(tf.mean(tf.sum(tf.mul(p, onehot), -1))).toFixed(3)}, ` +
        `entropy ${one(tf.mean(entropy)).toFixed(3)} nats (uniform ${Math.log(10).toFixed(3)})`,
    );
  }
  for (const [name, s] of [['fresh student', fresh], ['student = teacher / 3', tf.div(t, 3)]] as const) {
    for (const [temp, alpha] of [[4, 0.9], [1, 0.5]] as const) {
      const gce = tf.grad((z: tf.Tensor) => tf.mul(softmaxCrossEntropy(z, y), 1 - alpha))(s);
      const gkd = tf.grad((z: tf.Tensor) => tf.mul(softTargetKl(z, t, temp), alpha))(s);
      const cos = one(tf.div(tf.sum(tf.mul(gce, gkd)), tf.mul(tf.norm(gce), tf.norm(gkd))));
      console.log(
        `${name}, T=${temp} α=${alpha}: |(1−α)∂CE| ${one(tf.norm(gce)).toExponential(2)}, |α∂KD| ${one(tf.norm(gkd)).toExponential(2)}, cosine ${cos.toFixed(3)}`,
      );
    }
  }
});
tf.dispose([x, y]);
