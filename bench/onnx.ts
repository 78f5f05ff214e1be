/**
 * `npm run bench -- onnx [--quick]`: onnxruntime-node latency of the reference models exported by
 * @tensorpress/export-onnx as FP32, INT8 QDQ and INT8 QOperator, at batch 1 and 256 with 1 and 2
 * intra-op threads, plus file sizes. INT8 and FP32 of one setting are timed side by side in the same
 * run (alternating rounds) and reported as a ratio (`speedup` = FP32 ms / INT8 ms).
 *
 * The INT8 graphs come from @tensorpress/quant's `quantizePostTraining` (see `int8Graph`).
 */
import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, useBackend, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { referenceModels, type ReferenceModelName } from '@tensorpress/models';
import { loadMnist } from '@tensorpress/datasets';
import { checkParity, fromOnnx, ortLatency, toOnnx } from '@tensorpress/export-onnx';
import { quantizePostTraining } from '@tensorpress/quant';
import { median, round } from './common.js';
import type { SuiteResult } from './run.js';

interface Variant {
  model: ReferenceModelName;
  /** Example shape, channels last. */
  input: [number, number, number];
  /** Channel multiplier of the reference model (default 1). */
  width?: number;
}

const VARIANTS: Variant[] = [
  { model: 'plainCnn', input: [28, 28, 1] },
  { model: 'residualCnn', input: [28, 28, 1] },
  { model: 'mobileNetCnn', input: [28, 28, 1] },
  { model: 'mlp', input: [28, 28, 1] },
  // Larger maps and wider layers give the integer kernels more work per call: where INT8 pays off.
  { model: 'residualCnn', input: [64, 64, 3] },
  { model: 'residualCnn', input: [64, 64, 3], width: 4 },
  // At width 1 the MobileNet CNN's depthwise layers have 9 weights per channel, so per-channel
  // scales and int32 biases weigh as much as the codes; width 4 shows the ratio at a realistic width.
  { model: 'mobileNetCnn', input: [28, 28, 1], width: 4 },
];

/**
 * The INT8 graph of a float graph: @tensorpress/quant's min-max post-training quantization with
 * 7-bit weight codes in int8 storage (onnxruntime's `reduce_range`: its x86 u8s8 kernels without
 * VNNI saturate int16 pair sums with full 8-bit weights), per-channel weights, uint8 activations,
 * and Add inputs with their own quantizers (`unifiedScales: 'concat'`: onnxruntime's QLinearAdd
 * rescales, and a ReLU output feeding a residual Add stays unsigned, so every conv fuses with its
 * ReLU and the whole network runs as QLinearConv/QLinearAdd/NhwcMaxPool/QLinearGlobalAveragePool).
 */
async function int8Graph(float: Graph, calib: Dataset): Promise<Graph> {
  return (await quantizePostTraining(float, calib, { calibration: 'minmax', samples: calib.size, weights: { bits: 7 }, unifiedScales: 'concat' })).graph;
}

/**
 * Where an INT8 QDQ file's bytes go, from its graph read back: int8 weight codes, int32 biases,
 * the float32 scales of the weights and of the biases (per channel), and the rest (graph structure,
 * scalar activation scales and zero points). `payloadRatio` is what every INT8 form onnxruntime
 * runs must hold (codes, int32 biases, weight scales; QOperator needs no bias scales) over the FP32
 * file: no layout of the same quantization gets below it.
 */
function int8FileParts(bytes: Uint8Array, fp32Bytes: number): Record<'codeBytes' | 'biasBytes' | 'weightScaleBytes' | 'biasScaleBytes' | 'restBytes' | 'payloadRatio', number> {
  const g = fromOnnx(bytes);
  const size = (name: string | undefined): number => (name && g.param(name) ? g.param(name)!.data.byteLength : 0);
  let codeBytes = 0;
  let biasBytes = 0;
  let weightScaleBytes = 0;
  let biasScaleBytes = 0;
  for (const n of g.nodes) {
    const codes = n.op === 'DequantizeLinear' ? g.param(n.inputs[0]!) : undefined;
    if (!codes) continue;
    if (codes.dtype === 'int32') {
      biasBytes += codes.data.byteLength;
      biasScaleBytes += size(n.inputs[1]);
    } else {
      codeBytes += codes.data.byteLength + size(n.inputs[2]);
      weightScaleBytes += size(n.inputs[1]);
    }
  }
  const restBytes = bytes.length - codeBytes - biasBytes - weightScaleBytes - biasScaleBytes;
  return { codeBytes, biasBytes, weightScaleBytes, biasScaleBytes, restBytes, payloadRatio: round((codeBytes + biasBytes + weightScaleBytes) / fp32Bytes, 3) };
}

async function calibration(input: [number, number, number]): Promise<Dataset> {
  if (input.join() === '28,28,1') {
    const { train } = await loadMnist({ seed: 0 });
    return train.subset(Array.from({ length: 256 }, (_, i) => i));
  }
  // No dataset of this shape: seeded uniform noise in the MNIST pixel range stands in.
  const n = 64;
  const x = await tf.tidy(() => tf.randomUniform([n, ...input], 0, 1, 'float32', 0)).data();
  return arrayDataset({ x: x as Float32Array, y: new Int32Array(n), exampleShape: input, numClasses: 10 });
}

/**
 * onnxruntime against the in-process INT8 graph (`checkParity`, integer arithmetic) on the 2,000
 * MNIST test digits, 100 per run (wasm memory): top-1 agreement, logits beyond one output step
 * (the logit range on the calibration images / 255, as a uint8 output quantizer would have), and
 * the largest difference in steps.
 */
async function parity(float: Graph, q: Graph, bytes: Uint8Array, calib: Dataset): Promise<Record<string, number | string>> {
  const ex = new Executor(float);
  const { x: cx, y: cy } = calib.batches(calib.size).next().value!;
  const range = tf.tidy(() => {
    const logits = ex.run(cx)[0]!;
    return tf.stack([tf.min(logits), tf.max(logits)]);
  });
  ex.dispose();
  const [lo, hi] = Array.from(range.dataSync()) as [number, number];
  tf.dispose([range, cx, cy]);
  const step = (hi - lo) / 255;
  const { test } = await loadMnist({ seed: 0 });
  const { x, y } = test.batches(test.size).next().value!;
  try {
    const r = await checkParity(q, bytes, x, { outputStep: step, batchSize: 100 });
    const sig = (v: number): number => Number(v.toPrecision(3));
    return {
      examples: test.size,
      top1Agreement: round(r.top1Agreement!, 4),
      beyondStep: r.beyondStep!,
      maxDiffSteps: round(r.maxAbsDiff / step, 4),
      maxAbsDiff: sig(r.maxAbsDiff),
      outputStep: sig(step),
    };
  } catch (e) {
    return { error: (e as Error).message.split('\n')[0]!.slice(0, 300) };
  } finally {
    tf.dispose([x, y]);
  }
}

export default async function onnxBench(args: string[]): Promise<SuiteResult> {
  const quick = args.includes('--quick');
  await useBackend('wasm');
  const batches = quick ? [1, 8] : [1, 256];
  const threadsList = [1, 2];
  const rounds = quick ? 1 : 3;
  const rows: Record<string, unknown>[] = [];
  for (const v of quick ? VARIANTS.slice(0, 2) : VARIANTS) {
    const float = referenceModels[v.model]({ seed: 0, inputShape: v.input, width: v.width ?? 1 });
    const calib = await calibration(v.input);
    const q = await int8Graph(float, calib);
    // compactNames on every file (short names, no default attributes), so sizes compare like for like.
    const files = {
      fp32: toOnnx(float, { compactNames: true }),
      'int8-qdq': toOnnx(q, { compactNames: true }),
      'int8-qoperator': toOnnx(q, { format: 'qoperator', compactNames: true }),
    };
    const parts = int8FileParts(files['int8-qdq'], files.fp32.length);
    const payload = parts.codeBytes + parts.biasBytes + parts.weightScaleBytes;
    if (v.input.join() === '28,28,1') {
      for (const f of ['int8-qdq', 'int8-qoperator'] as const) {
        const p = await parity(float, q, files[f], calib);
        rows.push({ model: v.model, input: v.input.join('x'), width: v.width ?? 1, format: f, kind: 'parity', ...p });
        console.log(`${v.model} w${v.width ?? 1} ${f} parity: ${JSON.stringify(p)}`);
      }
    }
    rows.push({
      model: v.model,
      input: v.input.join('x'),
      width: v.width ?? 1,
      kind: 'size',
      fp32Bytes: files.fp32.length,
      qdqBytes: files['int8-qdq'].length,
      qoperatorBytes: files['int8-qoperator'].length,
      ...parts,
      // What the QOperator file holds besides that payload (nodes, names, activation scales), and
      // what a 0.27× FP32 budget leaves for it.
      qoperatorRestBytes: files['int8-qoperator'].length - payload,
      budgetLeftBytes: Math.floor(0.27 * files.fp32.length) - payload,
    });
    console.log(`${v.model} w${v.width ?? 1} int8-qdq file: ${JSON.stringify(parts)} of ${files['int8-qdq'].length} bytes; FP32 ${files.fp32.length}`);
    for (const batch of batches) {
      for (const threads of threadsList) {
        // Rounds alternate the three files so drift and other load hit them alike.
        const runs = Math.max(3, Math.round((batch === 1 ? 60 : 12) / rounds / (quick ? 4 : 1)));
        const samples: Record<keyof typeof files, number[]> = { fp32: [], 'int8-qdq': [], 'int8-qoperator': [] };
        // A file onnxruntime refuses to optimise is recorded with its error instead of a time.
        const failed = new Map<keyof typeof files, string>();
        for (let r = 0; r < rounds; r++) {
          for (const f of Object.keys(files) as (keyof typeof files)[]) {
            if (failed.has(f)) continue;
            try {
              samples[f].push(...(await ortLatency(files[f], { batch, threads, runs, warmup: 2 })).samples);
            } catch (e) {
              failed.set(f, (e as Error).message.split('\n')[0]!.slice(0, 300));
            }
          }
        }
        const fp32Ms = median(samples.fp32);
        for (const f of Object.keys(files) as (keyof typeof files)[]) {
          if (failed.has(f)) {
            rows.push({ model: v.model, input: v.input.join('x'), width: v.width ?? 1, format: f, batch, threads, bytes: files[f].length, sizeRatio: round(files[f].length / files.fp32.length, 3), error: failed.get(f) });
            console.log(`${v.model} ${f} batch ${batch} threads ${threads}: onnxruntime failed: ${failed.get(f)}`);
            continue;
          }
          const ms = median(samples[f]);
          rows.push({
            model: v.model,
            input: v.input.join('x'),
            width: v.width ?? 1,
            format: f,
            batch,
            threads,
            latencyMs: round(ms, 3),
            bytes: files[f].length,
            sizeRatio: round(files[f].length / files.fp32.length, 3),
            speedup: round(fp32Ms / ms, 2),
          });
          console.log(`${v.model} ${v.input.join('x')} w${v.width ?? 1} ${f} batch ${batch} threads ${threads}: ${ms.toFixed(3)} ms (×${(fp32Ms / ms).toFixed(2)} vs fp32)`);
        }
      }
    }
  }
  return {
    rows,
    backend: 'onnxruntime-node (CPU EP)',
    notes: [
      'latencyMs: median of one InferenceSession.run over all rounds, after warm-up; graph optimisation level "all", sequential execution, interOpNumThreads 1.',
      'speedup: FP32 median divided by this median, same model, batch and threads, measured in the same run.',
      "INT8: @tensorpress/quant quantizePostTraining (min-max, 7-bit per-channel weight codes, uint8 activations, int32 biases, unifiedScales 'concat'), calibrated on 256 MNIST training digits (noise for non-28x28 inputs).",
      'sizeRatio: file bytes divided by the FP32 file (BN unfolded) of the same model; every file written with compactNames.',
      'kind "size" rows: fp32Bytes, qdqBytes, qoperatorBytes: the three files; codeBytes, biasBytes, weightScaleBytes, biasScaleBytes, restBytes: the INT8 QDQ file read back: int8 weight codes (with any weight zero points), int32 biases, the float32 scales of weights and of biases, and the rest (graph structure, scalar activation scales and zero points).',
      'kind "parity" rows: checkParity (integer arithmetic) of each INT8 file on the 2,000 MNIST test digits; outputStep = logit range of the float model on the calibration images / 255; maxDiffSteps = maxAbsDiff / outputStep; beyondStep = logits more than one step apart.',
      'qoperatorRestBytes, budgetLeftBytes (size rows): the QOperator file minus the payload (codes, int32 biases, weight scales); floor(0.27 x fp32Bytes) minus the payload, the room a 0.27x target leaves for everything else.',
      'payloadRatio (size rows): (codeBytes + biasBytes + weightScaleBytes) / FP32 bytes: what every INT8 form onnxruntime runs must hold (QOperator drops only the bias scales), so no file of this quantization is smaller.',
      'width: channel multiplier of the reference model (4: 64/128/256 channels in the residual CNN, 4x the MobileNet CNN\'s channels).',
    ],
  };
}
