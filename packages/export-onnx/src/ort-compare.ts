import { TensorpressError } from '@tensorpress/core-tensor';
import { loadOrt, type Ort } from './internal/ort.js';
import { fixedBatches, ortRefusal } from './ort-inputs.js';
import type { CalibrationBatch } from './ort-ptq.js';

/** Options of {@link ortCompare}. */
export interface OrtCompareOptions {
  /** onnxruntime intra-op threads. Default 1. */
  threads?: number;
  /** Stop after this many examples. Default: all. */
  samples?: number;
}

/** {@link ortCompare}'s result, over every output and batch. */
export interface OrtCompareReport {
  examples: number;
  /** Largest |candidate − reference|. */
  maxAbsDiff: number;
  meanAbsDiff: number;
  /** Largest |reference| (the scale `relMaxAbsDiff` is relative to). */
  maxAbsReference: number;
  /** maxAbsDiff / maxAbsReference. */
  relMaxAbsDiff: number;
  /**
   * Share of arg-max decisions that agree: per row of rank-2 and rank-3 outputs (over the last
   * axis), per pixel of rank-4 outputs (over axis 1, the classes of a segmentation map); null when
   * no output has rank ≥ 2.
   */
  top1Agreement: number | null;
}

type Session = Awaited<ReturnType<Ort['InferenceSession']['create']>>;

function argmaxAgreement(a: Float32Array, b: Float32Array, dims: readonly number[]): { agree: number; total: number } {
  if (dims.length < 2) return { agree: 0, total: 0 };
  const axis = dims.length === 4 ? 1 : dims.length - 1;
  const classes = dims[axis]!;
  const inner = dims.slice(axis + 1).reduce((p, d) => p * d, 1);
  const outer = dims.slice(0, axis).reduce((p, d) => p * d, 1);
  let agree = 0;
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let ba = 0;
      let bb = 0;
      for (let c = 1; c < classes; c++) {
        const k = (o * classes + c) * inner + i;
        if (a[k]! > a[(o * classes + ba) * inner + i]!) ba = c;
        if (b[k]! > b[(o * classes + bb) * inner + i]!) bb = c;
      }
      if (ba === bb) agree++;
    }
  }
  return { agree, total: outer * inner };
}

/**
 * Runs two ONNX models (a reference, usually FP32, and a candidate, usually its QDQ version) in
 * onnxruntime-node on the same batches and compares every float output: max and mean |diff|, the
 * relative max |diff|, and top-1 agreement.
 */
export async function ortCompare(
  reference: Uint8Array,
  candidate: Uint8Array,
  batches: AsyncIterable<CalibrationBatch> | Iterable<CalibrationBatch>,
  options: OrtCompareOptions = {},
): Promise<OrtCompareReport> {
  const ort = await loadOrt();
  const opts = { intraOpNumThreads: options.threads ?? 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' as const };
  const open = async (b: Uint8Array, what: string): Promise<Session> => {
    try {
      return await ort.InferenceSession.create(b, opts);
    } catch (e) {
      throw ortRefusal(e, what);
    }
  };
  const ref = await open(reference, 'the reference model');
  let cand: Session | undefined;
  try {
    cand = await open(candidate, 'the candidate model');
    let examples = 0;
    let max = 0;
    let sum = 0;
    let count = 0;
    let refMax = 0;
    let agree = 0;
    let decisions = 0;
    const limit = options.samples ?? Infinity;
    const meta0 = ref.inputMetadata[0];
    const dims0 = meta0 && 'shape' in meta0 && meta0.isTensor ? meta0.shape : [];
    const fixed = typeof dims0[0] === 'number' && dims0[0] > 0 ? dims0[0] : null;
    const per0 = dims0.slice(1).every((d) => typeof d === 'number') ? (dims0.slice(1) as number[]).reduce((p, d) => p * d, 1) : 0;
    for await (const batch of fixedBatches(batches, fixed, per0)) {
      if (examples >= limit) break;
      const feeds: Record<string, InstanceType<Ort['Tensor']>> = {};
      let n: number;
      if (batch instanceof Float32Array) {
        const meta = ref.inputMetadata[0];
        const dims = meta && 'shape' in meta && meta.isTensor ? meta.shape : [];
        const rest = dims.slice(1).map((d) => (typeof d === 'number' ? d : NaN));
        const first = typeof dims[0] === 'number' && dims[0] > 0 ? dims[0] : null;
        const per = rest.reduce((p, d) => p * d, 1);
        if (!Number.isInteger(per) || per <= 0 || batch.length % per !== 0) {
          throw new TensorpressError('DATA_INVALID', `${batch.length} values are not whole examples of input "${ref.inputNames[0]}" [N, ${dims.slice(1).join(', ')}]`, { input: ref.inputNames[0] });
        }
        n = first ?? Math.min(batch.length / per, limit - examples);
        feeds[ref.inputNames[0]!] = new ort.Tensor('float32', batch.subarray(0, n * per), [n, ...rest]);
      } else {
        n = 0;
        for (const [k, v] of Object.entries(batch)) {
          feeds[k] = new ort.Tensor((v.type ?? 'float32') as 'float32', v.data as Float32Array, [...v.dims]);
          n ||= v.dims[0] ?? 1;
        }
      }
      const [a, b] = [await ref.run(feeds), await cand.run(feeds)];
      for (const name of ref.outputNames) {
        const x = a[name]!;
        const y = b[name];
        if (x.type !== 'float32') continue;
        if (!y || y.data.length !== x.data.length) {
          throw new TensorpressError('SHAPE_MISMATCH', `output "${name}" has ${x.data.length} values in the reference and ${y?.data.length ?? 0} in the candidate`, { output: name });
        }
        const xd = x.data as Float32Array;
        const yd = y.data as Float32Array;
        for (let i = 0; i < xd.length; i++) {
          const d = Math.abs(xd[i]! - yd[i]!);
          if (!(d <= max)) max = Number.isNaN(d) ? Infinity : d;
          sum += Number.isNaN(d) ? Infinity : d;
          const r = Math.abs(xd[i]!);
          if (r > refMax) refMax = r;
        }
        count += xd.length;
        const t = argmaxAgreement(xd, yd, x.dims);
        agree += t.agree;
        decisions += t.total;
      }
      examples += n;
    }
    return {
      examples,
      maxAbsDiff: max,
      meanAbsDiff: count ? sum / count : 0,
      maxAbsReference: refMax,
      relMaxAbsDiff: refMax > 0 ? max / refMax : max,
      top1Agreement: decisions ? agree / decisions : null,
    };
  } finally {
    await ref.release();
    await cand?.release();
  }
}
