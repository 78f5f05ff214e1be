import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, TensorpressError, toIntegerOps, type Feeds, type Graph } from '@tensorpress/core-tensor';
import { loadOrt } from './internal/ort.js';
import { NHWC_TO_NCHW } from './layout.js';

/** Options of {@link checkParity}. */
export interface ParityOptions {
  /** Tolerance of `withinTolerance`. Default 1e-4 (DESIGN §5, FP32). */
  atol?: number;
  /**
   * One quantization step of each output (by output index, or one number for all), used to count
   * `beyondStep`. Default: the scale of the DequantizeLinear that produces the output, if any.
   */
  outputStep?: number | readonly number[];
  /** The file's graph input is NHWC (written with `nhwcInput`). Default false. */
  nhwcInput?: boolean;
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** onnxruntime graph optimisation level (`'disabled'` runs the file's ops as written). Default `'all'`. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * How the in-process graph computes a quantized graph. `'integer'` runs it as onnxruntime's
   * optimised session does (`toIntegerOps`: QLinearConv with int32 accumulation and onnxruntime's
   * requantisation, QLinearGlobalAveragePool); `'float'` runs every Q/DQ pair as written, as a
   * session does that does not fuse QDQ groups (`optimization` `'disabled'` or `'basic'`). Default:
   * `'integer'` at `'extended'` and `'all'`, `'float'` below.
   * A graph without quantized convolutions runs the same either way.
   */
  arithmetic?: 'integer' | 'float';
}

/** What {@link checkParity} found for one output. */
export interface OutputParity {
  /** Core output name. */
  name: string;
  /** Number of compared values. */
  count: number;
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** The step used for `beyondStep`, or null when none is known. */
  step: number | null;
  /** Values differing by more than one step (null when no step is known). */
  beyondStep: number | null;
  /** Share of rows (first axis) whose arg-max agrees, for rank-2 outputs; null otherwise. */
  top1Agreement: number | null;
}

/** The result of {@link checkParity}. */
export interface ParityReport {
  outputs: OutputParity[];
  /** Largest difference over every output. */
  maxAbsDiff: number;
  /** True when `maxAbsDiff <= atol`. */
  withinTolerance: boolean;
  /** Lowest top-1 agreement over rank-2 outputs (null when there are none). */
  top1Agreement: number | null;
  /** Sum of `beyondStep` over the outputs with a known step (null when none has one). */
  beyondStep: number | null;
}

function stepOf(graph: Graph, output: string): number | null {
  const p = graph.producer(output);
  if (!p || p.node.op !== 'DequantizeLinear') return null;
  const s = graph.param(p.node.inputs[1]!);
  return s && s.data.length === 1 ? s.data[0]! : null;
}

/**
 * Runs an ONNX file in onnxruntime-node and the in-process graph on the same inputs (core layout:
 * NHWC for images; they are transposed for the file) and compares every output: max/mean
 * absolute difference, values beyond one output quantization step, and top-1 agreement.
 */
export async function checkParity(
  graph: Graph,
  onnxFileOrBytes: string | Uint8Array,
  inputs: Feeds,
  options: ParityOptions = {},
): Promise<ParityReport> {
  const ort = await loadOrt();
  const bytes = typeof onnxFileOrBytes === 'string' ? new Uint8Array(await readFile(onnxFileOrBytes)) : onnxFileOrBytes;
  const feeds: Record<string, tf.Tensor> = inputs instanceof tf.Tensor ? { [graph.inputs[0]!.name]: inputs } : { ...inputs };
  const level = options.optimization ?? 'all';
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: level,
  });
  try {
    const ortFeeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
    graph.inputs.forEach((info, i) => {
      const t = feeds[info.name];
      if (!t) throw new TensorpressError('INPUT_INVALID', `no input given for "${info.name}"`, { input: info.name });
      const fileName = session.inputNames[i] ?? info.name;
      const data = tf.tidy(() => (t.rank === 4 && !options.nhwcInput ? tf.transpose(t, [...NHWC_TO_NCHW]) : tf.clone(t)));
      const shape = data.shape;
      ortFeeds[fileName] = new ort.Tensor('float32', data.dataSync() as Float32Array, shape);
      data.dispose();
    });
    const ortOut = await session.run(ortFeeds);
    const integer = (options.arithmetic ?? (level === 'disabled' || level === 'basic' ? 'float' : 'integer')) === 'integer';
    const ex = new Executor(integer ? toIntegerOps(graph).graph : graph);
    let ours: tf.Tensor[];
    try {
      ours = ex.run(feeds);
    } finally {
      ex.dispose();
    }
    const outputs: OutputParity[] = graph.outputs.map((name, i) => {
      const mine = ours[i]!;
      const theirs = ortOut[session.outputNames[i]!]!;
      const count = mine.size;
      if ((theirs.data as Float32Array).length !== count) {
        throw new TensorpressError('SHAPE_MISMATCH', `output ${i} ("${name}") has ${count} values in tensorpress but ${(theirs.data as Float32Array).length} in onnxruntime`, { output: name });
      }
      const given = options.outputStep;
      const step = typeof given === 'number' ? given : given?.[i] ?? stepOf(graph, name);
      // Compared as tensors in the file's layout: |a − b|, its max and mean, the count beyond one
      // step (a half-ulp slack keeps an exact one-step difference from counting) and, for logits,
      // whether the arg-max of each row agrees (first maximum on both sides).
      const stats = tf.tidy(() => {
        const a = mine.rank === 4 ? tf.transpose(mine, [...NHWC_TO_NCHW]) : mine;
        const b = tf.tensor(theirs.data as Float32Array, a.shape);
        const d = tf.abs(tf.sub(a, b));
        const parts = [
          tf.max(d),
          tf.mean(d),
          step === null ? tf.scalar(0) : tf.sum(tf.cast(tf.greater(d, step * (1 + 1e-5)), 'float32')),
          tf.sum(tf.cast(tf.isNaN(d), 'float32')),
        ];
        if (a.rank === 2 && a.shape[0]! > 0) parts.push(tf.mean(tf.cast(tf.equal(tf.argMax(a, 1), tf.argMax(b, 1)), 'float32')));
        return tf.stack(parts.map((t) => tf.reshape(t, [])));
      });
      // Read outside tidy (large reads inside it are slow on wasm).
      const [max, mean, beyond, nans, top1] = Array.from(stats.dataSync());
      stats.dispose();
      return {
        name,
        count,
        // NaN anywhere is as far apart as it gets
        maxAbsDiff: nans! > 0 || Number.isNaN(max!) ? Infinity : max!,
        meanAbsDiff: count ? mean! : 0,
        step,
        beyondStep: step === null ? null : beyond!,
        top1Agreement: mine.rank === 2 ? (top1 ?? 1) : null,
      };
    });
    for (const t of ours) t.dispose();
    const maxAbsDiff = Math.max(0, ...outputs.map((o) => o.maxAbsDiff));
    const tops = outputs.map((o) => o.top1Agreement).filter((v): v is number => v !== null);
    const steps = outputs.map((o) => o.beyondStep).filter((v): v is number => v !== null);
    return {
      outputs,
      maxAbsDiff,
      withinTolerance: maxAbsDiff <= (options.atol ?? 1e-4),
      top1Agreement: tops.length ? Math.min(...tops) : null,
      beyondStep: steps.length ? steps.reduce((p, q) => p + q, 0) : null,
    };
  } finally {
    await session.release();
  }
}
