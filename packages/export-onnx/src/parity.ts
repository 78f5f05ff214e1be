import * as tf from '@tensorflow/tfjs-core';
import { Executor, TensorpressError, nodeBuiltin, type Feeds, type Graph } from '@tensorpress/core-tensor';
import { toIntegerOps } from './integer-ops.js';
import { loadOrt, type Ort } from './internal/ort.js';
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
  /**
   * Examples per run on both sides (the first axis of every input): the results are summed over
   * the batches, so large inputs fit in memory. Default: all at once.
   */
  batchSize?: number;
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** onnxruntime graph optimisation level (`'disabled'` runs the file's ops as written). Default `'all'`. */
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /**
   * How the in-process graph computes a quantized graph. `'integer'` runs it as onnxruntime's
   * optimised session does (`toIntegerOps`: QLinearConv and QGemm with int32 accumulation and
   * onnxruntime's requantisation, QLinearAdd, QLinearGlobalAveragePool); `'float'` runs every Q/DQ
   * pair as written, as a session does that does not fuse QDQ groups (`optimization` `'disabled'`
   * or `'basic'`). Default: `'integer'` at `'extended'` and `'all'`, `'float'` below.
   * A float graph runs the same either way.
   */
  arithmetic?: 'integer' | 'float';
  /**
   * The onnxruntime module to run the file with. Default: `onnxruntime-node`, loaded on first
   * use. In a browser pass onnxruntime-web's module (`import * as ort from 'onnxruntime-web'`,
   * same API; its wasm backend runs intra-op threads only where the page is cross-origin isolated).
   */
  runtime?: Ort;
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
  const ort = options.runtime ?? (await loadOrt());
  const bytes =
    typeof onnxFileOrBytes === 'string'
      ? new Uint8Array(await nodeBuiltin('node:fs/promises', 'checkParity on a path', 'checkParity on the bytes').readFile(onnxFileOrBytes))
      : onnxFileOrBytes;
  const feeds: Record<string, tf.Tensor> = inputs instanceof tf.Tensor ? { [graph.inputs[0]!.name]: inputs } : { ...inputs };
  const level = options.optimization ?? 'all';
  const integer = (options.arithmetic ?? (level === 'disabled' || level === 'basic' ? 'float' : 'integer')) === 'integer';
  const ex = new Executor(integer ? toIntegerOps(graph).graph : graph);
  let session: Awaited<ReturnType<typeof ort.InferenceSession.create>> | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: options.threads ?? 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: level,
    });
    for (const info of graph.inputs) {
      if (!feeds[info.name]) throw new TensorpressError('INPUT_INVALID', `no input given for "${info.name}"`, { input: info.name });
    }
    const examples = feeds[graph.inputs[0]!.name]!.shape[0] ?? 1;
    const batch = Math.max(1, Math.min(options.batchSize ?? examples, examples));
    // Per output, summed over the batches: [max |a − b|, Σ |a − b|, values beyond one step, NaNs,
    // rows whose arg-max agrees (rank-2 outputs)], and the number of values and rows.
    const acc = graph.outputs.map(() => ({ stats: [0, 0, 0, 0, 0], count: 0, rows: 0 }));
    const outputSteps = graph.outputs.map((name, i) => {
      const given = options.outputStep;
      return typeof given === 'number' ? given : given?.[i] ?? stepOf(graph, name);
    });
    for (let start = 0; start < examples; start += batch) {
      const size = Math.min(batch, examples - start);
      const part = (t: tf.Tensor): tf.Tensor => (batch >= examples ? t : tf.slice(t, start, size));
      const ortFeeds: Record<string, InstanceType<typeof ort.Tensor>> = {};
      const chunk: Record<string, tf.Tensor> = {};
      graph.inputs.forEach((info, i) => {
        const t = (chunk[info.name] = part(feeds[info.name]!));
        const data = tf.tidy(() => (t.rank === 4 && !options.nhwcInput ? tf.transpose(t, [...NHWC_TO_NCHW]) : tf.clone(t)));
        ortFeeds[session!.inputNames[i] ?? info.name] = new ort.Tensor('float32', data.dataSync() as Float32Array, data.shape);
        data.dispose();
      });
      const ortOut = await session.run(ortFeeds);
      const ours = ex.run(chunk);
      try {
        graph.outputs.forEach((name, i) => {
          const mine = ours[i]!;
          const theirs = ortOut[session!.outputNames[i]!]!.data as Float32Array;
          if (theirs.length !== mine.size) {
            throw new TensorpressError('SHAPE_MISMATCH', `output ${i} ("${name}") has ${mine.size} values in tensorpress but ${theirs.length} in onnxruntime`, { output: name });
          }
          const step = outputSteps[i]!;
          // Compared as tensors in the file's layout: |a − b|, its max and sum, the count beyond one
          // step (a half-ulp slack keeps an exact one-step difference from counting) and, for
          // logits, whether the arg-max of each row agrees (first maximum on both sides).
          const stats = tf.tidy(() => {
            const a = mine.rank === 4 ? tf.transpose(mine, [...NHWC_TO_NCHW]) : mine;
            const b = tf.tensor(theirs, a.shape);
            const d = tf.abs(tf.sub(a, b));
            const parts = [
              tf.max(d),
              tf.sum(d),
              step === null ? tf.scalar(0) : tf.sum(tf.cast(tf.greater(d, step * (1 + 1e-5)), 'float32')),
              tf.sum(tf.cast(tf.isNaN(d), 'float32')),
              a.rank === 2 ? tf.sum(tf.cast(tf.equal(tf.argMax(a, 1), tf.argMax(b, 1)), 'float32')) : tf.scalar(0),
            ];
            return tf.stack(parts.map((t) => tf.reshape(t, [])));
          });
          // Read outside tidy (large reads inside it are slow on wasm).
          const v = Array.from(stats.dataSync());
          stats.dispose();
          const o = acc[i]!;
          o.stats = [Math.max(o.stats[0]!, v[0]!), o.stats[1]! + v[1]!, o.stats[2]! + v[2]!, o.stats[3]! + v[3]!, o.stats[4]! + v[4]!];
          o.count += mine.size;
          o.rows += mine.rank === 2 ? mine.shape[0]! : 0;
        });
      } finally {
        tf.dispose(ours);
        if (batch < examples) tf.dispose(Object.values(chunk));
      }
    }
    const outputs: OutputParity[] = graph.outputs.map((name, i) => {
      const { stats, count, rows } = acc[i]!;
      const [max, sum, beyond, nans, agree] = stats as [number, number, number, number, number];
      return {
        name,
        count,
        // NaN anywhere is as far apart as it gets
        maxAbsDiff: nans > 0 || Number.isNaN(max) ? Infinity : max,
        meanAbsDiff: count ? sum / count : 0,
        step: outputSteps[i]!,
        beyondStep: outputSteps[i] === null ? null : beyond,
        top1Agreement: graph.info(name).shape.length === 2 ? (rows > 0 ? agree / rows : 1) : null,
      };
    });
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
    ex.dispose();
    await session?.release();
  }
}
