import { TensorpressError } from '@tensorpress/core-tensor';
import { loadOrt } from './internal/ort.js';

/** Options of {@link ortLatency}. */
export interface LatencyOptions {
  /** Batch size (the file's first input dimension). Default 1. */
  batch?: number;
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** Timed runs. Default 20. */
  runs?: number;
  /** Untimed runs first. Default 3. */
  warmup?: number;
}

/** What {@link ortLatency} measured. */
export interface LatencyResult {
  medianMs: number;
  minMs: number;
  p90Ms: number;
  samples: number[];
  /** Per-example median, `medianMs / batch`. */
  perExampleMs: number;
}

/**
 * Median wall time of one onnxruntime-node inference of an ONNX model on a random float input
 * (graph optimisations on, sequential execution), for benchmarks.
 */
export async function ortLatency(onnxBytes: Uint8Array, options: LatencyOptions = {}): Promise<LatencyResult> {
  const ort = await loadOrt();
  const batch = options.batch ?? 1;
  const runs = options.runs ?? 20;
  const warmup = options.warmup ?? 3;
  if (!Number.isInteger(batch) || batch < 1 || !Number.isInteger(runs) || runs < 1 || !Number.isInteger(warmup) || warmup < 0) {
    throw new TensorpressError('CONFIG_INVALID', 'batch and runs must be positive integers, warmup a non-negative one', { path: '$' });
  }
  const session = await ort.InferenceSession.create(onnxBytes, {
    intraOpNumThreads: options.threads ?? 1,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    graphOptimizationLevel: 'all',
  });
  try {
    const meta = session.inputMetadata[0];
    const dims = meta && 'shape' in meta && meta.isTensor ? meta.shape : [];
    const shape = dims.map((d, i) => (i === 0 ? batch : typeof d === 'number' ? d : 1));
    const n = shape.reduce((p, d) => p * d, 1);
    const data = new Float32Array(n);
    let s = 12345;
    for (let i = 0; i < n; i++) {
      s = (s * 1103515245 + 12345) >>> 0;
      data[i] = s / 2 ** 32 - 0.5;
    }
    const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, shape) };
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    const samples: number[] = [];
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await session.run(feeds);
      samples.push(performance.now() - t0);
    }
    const sorted = [...samples].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    const medianMs = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
    return { medianMs, minMs: sorted[0]!, p90Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.9))]!, samples, perExampleMs: medianMs / batch };
  } finally {
    await session.release();
  }
}
