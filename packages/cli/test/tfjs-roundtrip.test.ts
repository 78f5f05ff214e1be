import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import { Graph, compress, foldAllBatchNorms, runGraph, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { loadMnist } from '@tensorpress/datasets';
import { WEIGHT_FORMATS, tfjsArtifacts, toTfjsModel, type TfjsModelFiles, type WeightQuantization } from '@tensorpress/export-tfjs';
import { filterPruning } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import { beforeAll, describe, expect, it } from 'vitest';

// Pruning and quantization may not import each other, and export-tfjs imports neither: the stacked
// pipeline's tfjs round trip is tested here, where the CLI stacks them (as stacked-strip.test.ts).

let L: typeof tfl;
let digits: tf.Tensor;
let calibration: Awaited<ReturnType<typeof loadMnist>>['train'];
const DIGITS = 256;

beforeAll(async () => {
  await useBackend('cpu');
  L = await import('@tensorflow/tfjs-layers');
  const mnist = await loadMnist();
  calibration = mnist.train.subset(Array.from({ length: 256 }, (_, i) => i));
  const b = mnist.test.batches(DIGITS).next().value!;
  b.y.dispose();
  digits = b.x;
});

/** Half the format's step at each weight: float16 spacing is 2^-10 of the binade (2^-24 below 2^-14); uint8/uint16 the tensor's scale. */
function halfStep(w: Float32Array, q: WeightQuantization | undefined): Float32Array {
  if (q === undefined) return new Float32Array(w.length);
  if (q.dtype === 'float16') return w.map((v) => 2 ** (Math.max(Math.floor(Math.log2(Math.abs(v))), -14) - 11));
  return new Float32Array(w.length).fill(q.scale / 2);
}

/**
 * The stripped graph with every weight as the format stores it: tfjs-core's own decoding of the
 * shards (`tf.io.decodeWeights`) put in place of each weight (a float parameter, or the output of
 * a weight DequantizeLinear). Also returns the largest |stored − exact| over half the format's step,
 * which the format guarantees to be at most 1/2·step (plus float32 rounding of `q · scale + min`).
 */
function withStoredWeights(graph: Graph, files: TfjsModelFiles): { graph: Graph; worstHalfSteps: number } {
  const specs = files.modelJson.weightsManifest[0]!.weights;
  const decoded = tf.io.decodeWeights(tfjsArtifacts(files.modelJson, files.shards.map((s) => s.data)).weightData, specs as tf.io.WeightsManifestEntry[]);
  const replace = new Map<string, Float32Array>();
  let worstHalfSteps = 0;
  for (const spec of specs) {
    const stored = decoded[spec.name]!.dataSync() as Float32Array;
    const cut = spec.name.lastIndexOf('/');
    const node = graph.node(spec.name.slice(0, cut));
    if (!node) {
      // The fake-quant layers' statistics: zeros, stored exactly in every format.
      expect(stored.every((v) => v === 0), spec.name).toBe(true);
      continue;
    }
    const value = node.inputs[spec.name.slice(cut + 1) === 'bias' ? 2 : 1]!;
    const exact = graph.param(value)?.data ?? tf.tidy(() => runGraph(graph, digits, { outputs: [value] })[0]!.dataSync());
    const half = halfStep(exact as Float32Array, spec.quantization);
    exact.forEach((w, i) => {
      const err = Math.abs(stored[i]! - w) - 2 ** -23 * Math.abs(w);
      worstHalfSteps = Math.max(worstHalfSteps, half[i]! > 0 ? err / (2 * half[i]!) : err > 0 ? Infinity : 0);
    });
    replace.set(value, stored);
  }
  tf.dispose(Object.values(decoded));
  const params = graph.params.map((p) => (replace.has(p.name) ? { ...p, data: replace.get(p.name)! } : p));
  const folded = graph.nodes.filter((n) => n.op === 'DequantizeLinear' && replace.has(n.outputs[0]!));
  for (const n of folded) params.push({ name: n.outputs[0]!, shape: [...graph.param(n.inputs[0]!)!.shape], dtype: 'float32', data: replace.get(n.outputs[0]!)!, trainable: false });
  return { graph: new Graph({ inputs: graph.inputs, outputs: graph.outputs, nodes: graph.nodes.filter((n) => !folded.includes(n)), params }), worstHalfSteps };
}

/** The logits tfjs-layers computes from the model.json and shards. */
async function tfjsLogits(files: TfjsModelFiles): Promise<tf.Tensor> {
  const model = await L.loadLayersModel(tf.io.fromMemory(tfjsArtifacts(JSON.stringify(files.modelJson), files.shards.map((s) => s.data))));
  const logits = model.predict(digits) as tf.Tensor;
  model.dispose();
  return logits;
}

function stats(got: tf.Tensor, want: tf.Tensor): { maxAbsDiff: number; within1e4: number; top1: number } {
  return tf.tidy(() => {
    const diff = tf.abs(tf.sub(got, want));
    return {
      maxAbsDiff: tf.max(diff).dataSync()[0]!,
      within1e4: tf.mean(tf.cast(tf.lessEqual(diff, 1e-4), 'float32')).dataSync()[0]!,
      top1: tf.mean(tf.cast(tf.equal(tf.argMax(got, 1), tf.argMax(want, 1)), 'float32')).dataSync()[0]!,
    };
  });
}

describe('export-tfjs round trip of stripped reference models (MNIST test digits, tf.loadLayersModel)', () => {
  for (const name of ['plainCnn', 'residualCnn'] as const) {
    it(`${name}: pruned (BN folded), and pruned + INT8, in every weight format`, async () => {
      const g = referenceModels[name]({ seed: 0 });
      const prune = (): ReturnType<typeof filterPruning> => filterPruning({ criterion: 'fpgm', ratio: 0.3, pruneFirstConv: true, pruneDownsampleConvs: true });
      const pruned = compress(g, [prune()]);
      await pruned.initialize(calibration, { samples: 256 });
      const stacked = compress(g, [prune(), quantization({ quantizeBias: false })]);
      await stacked.initialize(calibration, { samples: 256 });
      const graphs = { pruned: foldAllBatchNorms(pruned.strip()).graph, quantized: stacked.strip() };
      pruned.dispose();
      stacked.dispose();
      expect(graphs.pruned.nodes.some((n) => n.op === 'BatchNormalization')).toBe(false);
      expect(graphs.quantized.params.some((p) => p.dtype === 'int8')).toBe(true);
      const before = tf.memory().numTensors;
      for (const [kind, graph] of Object.entries(graphs)) {
        const [exact] = runGraph(graph, digits);
        const bytes: Record<string, number> = {};
        for (const format of WEIGHT_FORMATS) {
          const label = `${name} ${kind} ${format}`;
          const files = toTfjsModel(graph, { weights: format });
          bytes[format] = files.shards.reduce((n, f) => n + f.data.byteLength, 0);
          const stored = withStoredWeights(graph, files);
          // The format's tolerance on each weight: half a step (float32: exact).
          expect(stored.worstHalfSteps, label).toBeLessThanOrEqual(format === 'float32' ? 0 : 0.5);
          const [want] = runGraph(stored.graph, digits);
          const got = await tfjsLogits(files);
          const peak = tf.tidy(() => tf.max(tf.abs(want!)).dataSync()[0]!);
          const f32 = 1e-4 * Math.max(1, peak);
          const s = stats(got, want!);
          if (kind === 'pruned') {
            // A float graph: float32's tolerance against the graph holding the stored weights.
            expect(s.maxAbsDiff, label).toBeLessThanOrEqual(f32);
          } else {
            // A quantized graph: an activation within float32 rounding of a rounding tie may land one
            // step away (the convolutions sum in another order), so DESIGN §5's rule: one output step
            // (the logits' range / 255), and nearly all logits within float32's tolerance (measured:
            // 98.8% to 100% over these 2,560 logits).
            const outputStep = tf.tidy(() => tf.sub(tf.max(want!), tf.min(want!)).dataSync()[0]! / 255);
            expect(s.maxAbsDiff, label).toBeLessThanOrEqual(outputStep);
            expect(s.within1e4, label).toBeGreaterThanOrEqual(0.98);
          }
          expect(s.top1, label).toBeGreaterThanOrEqual(0.99);
          // Against the unrounded graph only the format's rounding differs: top-1 floors (bench/export.ts records the logit differences).
          expect(stats(got, exact!).top1, `${label} against the exact weights`).toBeGreaterThanOrEqual(format === 'uint8' ? 0.95 : 0.98);
          tf.dispose([want!, got]);
        }
        expect(bytes['float16']).toBe(bytes['float32']! / 2);
        expect(bytes['uint16']).toBe(bytes['float32']! / 2);
        expect(bytes['uint8']).toBe(bytes['float32']! / 4);
        exact!.dispose();
      }
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});
