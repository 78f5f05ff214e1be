import { readFile } from 'node:fs/promises';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, TensorpressError, type Feeds, type Graph } from '@tensorpress/core-tensor';
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
  const session = await ort.InferenceSession.create(bytes, {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: options.optimization ?? 'all',
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
    const ex = new Executor(graph);
    let ours: tf.Tensor[];
    try {
      ours = ex.run(feeds);
    } finally {
      ex.dispose();
    }
    const outputs: OutputParity[] = graph.outputs.map((name, i) => {
      const mine = ours[i]!;
      const theirs = ortOut[session.outputNames[i]!]!;
      const a = tf.tidy(() => (mine.rank === 4 ? tf.transpose(mine, [...NHWC_TO_NCHW]) : tf.clone(mine)));
      const av = a.dataSync() as Float32Array;
      const shape = a.shape;
      a.dispose();
      const bv = theirs.data as Float32Array;
      if (bv.length !== av.length) {
        throw new TensorpressError('SHAPE_MISMATCH', `output ${i} ("${name}") has ${av.length} values in tensorpress but ${bv.length} in onnxruntime`, { output: name });
      }
      const given = options.outputStep;
      const step = typeof given === 'number' ? given : given?.[i] ?? stepOf(graph, name);
      let max = 0;
      let sum = 0;
      let beyond = 0;
      for (let k = 0; k < av.length; k++) {
        const d = Math.abs(av[k]! - bv[k]!);
        if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
        sum += d;
        // A half-ulp slack keeps an exact one-step difference from counting as beyond.
        if (step !== null && d > step * (1 + 1e-5)) beyond++;
      }
      let top1: number | null = null;
      if (shape.length === 2) {
        const [rows, cols] = shape as [number, number];
        let agree = 0;
        for (let r = 0; r < rows; r++) {
          let ia = 0;
          let ib = 0;
          for (let c = 1; c < cols; c++) {
            if (av[r * cols + c]! > av[r * cols + ia]!) ia = c;
            if (bv[r * cols + c]! > bv[r * cols + ib]!) ib = c;
          }
          if (ia === ib) agree++;
        }
        top1 = rows > 0 ? agree / rows : 1;
      }
      return { name, count: av.length, maxAbsDiff: max, meanAbsDiff: av.length ? sum / av.length : 0, step, beyondStep: step === null ? null : beyond, top1Agreement: top1 };
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
