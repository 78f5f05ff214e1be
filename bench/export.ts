/**
 * `npm run bench -- export [--only plainCnn,mlp]`: the bytes of each tfjs weight format
 * (@tensorpress/export-tfjs) and what storing the weights that way costs. Each reference model is
 * trained in FP32 on MNIST (cached under bench/.cache), then filter-pruned (FPGM, 30% of the filters)
 * and, stacked, pruned + INT8 (@tensorpress/quant's QAT, quantizers calibrated on 1,024 training
 * digits), fine-tuned one epoch (Adam 1e-3), stripped (BN folded), and written as model.json +
 * shards with float32, float16, uint16 and uint8 weights. `tf.loadLayersModel` loads each, and its
 * logits on the 2,000 MNIST test digits are compared with the stripped graph run in-process on the
 * same backend.
 *
 * Rows: `bytes` (the weight shards), `sizeRatio` (over float32), `maxAbsDiff` (of the logits
 * against the in-process graph), `outputStep` (the in-process logits' range / 255), `top1Agreement` (with the in-process graph), `accuracy` (of the
 * tfjs model) and `graphAccuracy` (of the in-process graph).
 */
import * as tf from '@tensorflow/tfjs-core';
import { compress, fit, foldAllBatchNorms, runGraph, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels, type ReferenceModelName } from '@tensorpress/models';
import { loadMnist } from '@tensorpress/datasets';
import { WEIGHT_FORMATS, tfjsArtifacts, toTfjsModel } from '@tensorpress/export-tfjs';
import { filterPruning } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import { round, trainedBaseline } from './common.js';
import type { SuiteResult } from './run.js';

const MODELS: readonly ReferenceModelName[] = ['plainCnn', 'residualCnn', 'mobileNetCnn', 'mlp'];

/** Fraction of rows where the logits' argmax equals `labels` (class indices) or the other logits' argmax. */
function agreement(logits: tf.Tensor, other: tf.Tensor): number {
  return tf.tidy(() => {
    const want = other.rank === 1 ? tf.cast(other, 'int32') : tf.argMax(other, 1);
    return tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), want), 'float32')).dataSync()[0]!;
  });
}

/** Logits of all `inputs`, computed 250 digits at a time (whole-set activations overflow the wasm heap). */
function batched(inputs: tf.Tensor, predict: (x: tf.Tensor) => tf.Tensor): tf.Tensor {
  const parts: tf.Tensor[] = [];
  const n = inputs.shape[0]!;
  for (let i = 0; i < n; i += 250) {
    parts.push(tf.tidy(() => predict(tf.slice(inputs, i, Math.min(250, n - i)))));
  }
  const all = tf.concat(parts);
  tf.dispose(parts);
  return all;
}

export default async function run(args: string[]): Promise<SuiteResult> {
  const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.split(',') : undefined;
  const backend = await useBackend(['wasm', 'cpu']);
  const L = await import('@tensorflow/tfjs-layers');
  const { train, test } = await loadMnist();
  const batch = test.batches(test.size).next().value!;
  const labels = batch.y;
  const digits = batch.x;
  const rows: Record<string, unknown>[] = [];
  for (const model of MODELS.filter((m) => !only || only.includes(m))) {
    const { graph: fp32 } = await trainedBaseline(model, () => referenceModels[model]({ seed: 0 }), 'mnist', train);
    const prune = (): ReturnType<typeof filterPruning> => filterPruning({ criterion: 'fpgm', ratio: 0.3, pruneFirstConv: true, pruneDownsampleConvs: true });
    const variants: [string, Graph][] = [];
    for (const [variant, builders] of [
      ['pruned', [prune()]],
      ['pruned+int8', [prune(), quantization({ quantizeBias: false })]],
    ] as const) {
      const ctrl = compress(fp32, [...builders], { seed: 0 });
      // fit initializes the controller first (quantizer ranges from 1,024 training digits).
      await fit(ctrl.model.executor, train, {
        controller: ctrl,
        epochs: 1,
        batchSize: 64,
        optimizer: { type: 'adam', learningRate: 1e-3 },
        seed: 0,
        progress: false,
        log: (line) => console.log(`  ${model} ${variant} fine-tune: ${line}`),
      });
      variants.push([variant, foldAllBatchNorms(ctrl.strip()).graph]);
      ctrl.dispose();
    }
    for (const [variant, graph] of variants) {
      const want = batched(digits, (x) => runGraph(graph, x)[0]!);
      const graphAccuracy = agreement(want, labels);
      // DESIGN §5's unit for quantized outputs: the in-process logits' range over 255.
      const outputStep = tf.tidy(() => tf.sub(tf.max(want), tf.min(want)).dataSync()[0]! / 255);
      let float32Bytes = 0;
      for (const format of WEIGHT_FORMATS) {
        const files = toTfjsModel(graph, { weights: format });
        const bytes = files.shards.reduce((n, s) => n + s.data.byteLength, 0);
        if (format === 'float32') float32Bytes = bytes;
        const loaded = await L.loadLayersModel(tf.io.fromMemory(tfjsArtifacts(files.modelJson, files.shards.map((s) => s.data))));
        const got = batched(digits, (x) => loaded.predict(x) as tf.Tensor);
        const maxAbsDiff = tf.tidy(() => tf.max(tf.abs(tf.sub(got, want))).dataSync()[0]!);
        const row = {
          model,
          variant,
          format,
          backend: backend.name,
          bytes,
          modelJsonBytes: new TextEncoder().encode(JSON.stringify(files.modelJson)).byteLength,
          sizeRatio: round(bytes / float32Bytes, 3),
          maxAbsDiff: Number(maxAbsDiff.toPrecision(3)),
          outputStep: Number(outputStep.toPrecision(3)),
          top1Agreement: round(agreement(got, want), 4),
          accuracy: round(agreement(got, labels), 4),
          graphAccuracy: round(graphAccuracy, 4),
        };
        console.log(JSON.stringify(row));
        rows.push(row);
        got.dispose();
        loaded.dispose();
      }
      want.dispose();
    }
  }
  tf.dispose([digits, labels]);
  return {
    rows,
    backend: backend.name,
    notes: [
      'bytes: weight shards only (model.json adds modelJsonBytes); sizeRatio: bytes over the float32 row of the same model and variant',
      'maxAbsDiff and top1Agreement: tf.loadLayersModel logits against the stripped graph run in-process (runGraph), 2,000 MNIST test digits, same backend',
      'pruned+int8: weights dequantized from int8 into the format; activation Q/DQ pairs written as stock layers that divide, round half to even and clip',
    ],
  };
}
