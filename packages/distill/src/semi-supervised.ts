import * as tf from '@tensorflow/tfjs-core';
import { Executor, TensorpressError, createRng, permutation, type Batch, type BatchOptions, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { Teacher } from './internal/teacher.js';

function checkBatchOptions(batchSize: number, options: BatchOptions): number {
  if (!Number.isInteger(batchSize) || batchSize <= 0) throw new TensorpressError('DATA_INVALID', `batchSize must be a positive integer, got ${batchSize}`);
  const skip = options.skip ?? 0;
  if (!Number.isInteger(skip) || skip < 0) throw new TensorpressError('DATA_INVALID', `skip must be an integer >= 0, got ${skip}`);
  return skip;
}

/** The examples at `indices` of `d` as one batch, in that order (no copy beyond the batch itself). */
function gather(d: Dataset, indices: Int32Array): Batch {
  const it = d.subset(indices).batches(indices.length);
  const first = it.next();
  it.return?.(undefined);
  if (first.done) throw new TensorpressError('DATA_INVALID', `a subset of ${indices.length} examples yielded no batch`);
  return first.value;
}

/**
 * Batches over index space [0, size): the same order rules as core's array datasets (a seeded
 * permutation when shuffled, `skip` leading batches left out, `dropRemainder`), each batch made
 * by `make` from its indices.
 */
function* indexBatches(size: number, batchSize: number, options: BatchOptions, make: (idx: Int32Array) => Batch): IterableIterator<Batch> {
  const skip = checkBatchOptions(batchSize, options);
  const order = options.shuffle ? permutation(size, createRng(options.seed ?? 0)) : null;
  for (let start = skip * batchSize; start < size; start += batchSize) {
    const n = Math.min(batchSize, size - start);
    if (n < batchSize && options.dropRemainder) return;
    const idx = new Int32Array(n);
    for (let k = 0; k < n; k++) idx[k] = order ? order[start + k]! : start + k;
    yield make(idx);
  }
}

/**
 * A view of `base` whose labels are `labels` (one per example of `base`): the pixel data stays
 * where it is and is gathered batch by batch.
 */
export function withLabels(base: Dataset, labels: Int32Array, numClasses = base.numClasses): Dataset {
  if (labels.length !== base.size) {
    throw new TensorpressError('DATA_INVALID', `withLabels: ${labels.length} labels for a dataset of ${base.size} examples`);
  }
  return {
    size: base.size,
    exampleShape: base.exampleShape,
    numClasses,
    batches: (batchSize, options = {}) =>
      indexBatches(base.size, batchSize, options, (idx) => {
        const b = gather(base, idx);
        b.y.dispose();
        const y = new Int32Array(idx.length);
        for (let k = 0; k < idx.length; k++) y[k] = labels[idx[k]!]!;
        return { x: b.x, y: tf.tensor1d(y, 'int32') };
      }),
    subset(sub) {
      const part = new Int32Array(sub.length);
      for (let i = 0; i < sub.length; i++) {
        const v = sub[i]!;
        if (!Number.isInteger(v) || v < 0 || v >= base.size) throw new TensorpressError('DATA_INVALID', `subset index ${v} is out of range [0, ${base.size})`);
        part[i] = labels[v]!;
      }
      return withLabels(base.subset(sub), part, numClasses);
    },
  };
}

/**
 * The examples of every part, one after the other, as one dataset that streams: a batch gathers its
 * rows from the parts it draws on (shuffling mixes the parts), and no part is copied.
 */
export function concatDatasets(parts: readonly Dataset[]): Dataset {
  const nonEmpty = parts.filter((p) => p.size > 0);
  const first = parts[0];
  if (!first) throw new TensorpressError('DATA_INVALID', 'concatDatasets: no datasets given');
  for (const p of parts) {
    if (p.exampleShape.length !== first.exampleShape.length || p.exampleShape.some((d, i) => d !== first.exampleShape[i])) {
      throw new TensorpressError('DATA_INVALID', `concatDatasets: example shapes differ: [${first.exampleShape.join(', ')}] and [${p.exampleShape.join(', ')}]`);
    }
  }
  const offsets: number[] = [];
  let size = 0;
  for (const p of nonEmpty) {
    offsets.push(size);
    size += p.size;
  }
  const numClasses = Math.max(...parts.map((p) => p.numClasses));
  const locate = (i: number): number => {
    let k = offsets.length - 1;
    while (offsets[k]! > i) k--;
    return k;
  };
  const make = (idx: Int32Array): Batch =>
    tf.tidy(() => {
      const byPart = nonEmpty.map(() => [] as number[]);
      for (const i of idx) byPart[locate(i)]!.push(i - offsets[locate(i)]!);
      const xs: tf.Tensor[] = [];
      const ys: tf.Tensor1D[] = [];
      byPart.forEach((rows, k) => {
        if (rows.length === 0) return;
        const b = gather(nonEmpty[k]!, Int32Array.from(rows));
        xs.push(b.x);
        ys.push(tf.cast(b.y, 'int32') as tf.Tensor1D);
      });
      return { x: xs.length === 1 ? xs[0]! : tf.concat(xs), y: ys.length === 1 ? ys[0]! : (tf.concat(ys) as tf.Tensor1D) };
    });
  return {
    size,
    exampleShape: first.exampleShape,
    numClasses,
    batches: (batchSize, options = {}) => indexBatches(size, batchSize, options, make),
    subset(sub) {
      const byPart = nonEmpty.map(() => [] as number[]);
      for (let j = 0; j < sub.length; j++) {
        const i = sub[j]!;
        if (!Number.isInteger(i) || i < 0 || i >= size) throw new TensorpressError('DATA_INVALID', `subset index ${i} is out of range [0, ${size})`);
        byPart[locate(i)]!.push(i - offsets[locate(i)]!);
      }
      // Order within a subset follows the parts; callers that care shuffle.
      const kept = byPart.map((rows, k) => nonEmpty[k]!.subset(rows)).filter((d) => d.size > 0);
      return concatDatasets(kept.length > 0 ? kept : [first.subset([])]);
    },
  };
}

/** Options of {@link pseudoLabel}. */
export interface PseudoLabelOptions {
  /** Keep a pool example only when the teacher's top class probability is at least this. In [0, 1). Default 0 (keep all). */
  threshold?: number;
  /** Batch size of the teacher's pass over the pool. Default 256. */
  batchSize?: number;
}

/** What {@link pseudoLabel} returns. */
export interface PseudoLabelResult {
  /** The kept pool examples with the teacher's top class as label (a view of the pool: nothing copied). */
  readonly dataset: Dataset;
  /** Indices (into the pool) of the kept examples. */
  readonly indices: Int32Array;
  /** The teacher's top class for every pool example (kept or not). */
  readonly labels: Int32Array;
  /** The teacher's top class probability for every pool example. */
  readonly confidence: Float32Array;
  /** Pool examples seen and kept. */
  readonly total: number;
  readonly kept: number;
}

/**
 * The teacher labels an unlabelled pool (its `y` is ignored): one eval-mode pass in batches keeps,
 * per example, the top class and its probability, and the examples at or above `threshold` form a
 * dataset labelled with the top class (hard labels). For soft labels, stack
 * `knowledgeDistillation({ teacher })` with the same teacher on the joined data: every batch, pool
 * examples included, is then pulled towards the teacher's whole distribution (weight α).
 */
export async function pseudoLabel(pool: Dataset, teacher: Graph | Executor, options: PseudoLabelOptions = {}): Promise<PseudoLabelResult> {
  const threshold = options.threshold ?? 0;
  if (!(threshold >= 0 && threshold < 1)) throw new TensorpressError('INPUT_INVALID', `pseudoLabel: threshold must be in [0, 1), got ${threshold}`, { threshold });
  const batchSize = options.batchSize ?? 256;
  const owned = teacher instanceof Executor ? undefined : new Teacher(teacher);
  const run = (x: tf.Tensor): tf.Tensor => (owned ? owned.run(x, [owned.graph.outputs[0]!])[0]! : (teacher as Executor).run(x, { training: false })[0]!);
  const labels = new Int32Array(pool.size);
  const confidence = new Float32Array(pool.size);
  let at = 0;
  try {
    for (const b of pool.batches(batchSize)) {
      const [top, arg] = tf.tidy(() => {
        const p = tf.softmax(run(b.x));
        return [tf.max(p, -1), tf.argMax(p, -1)];
      });
      const [c, a] = await Promise.all([top.data(), arg.data()]);
      tf.dispose([top, arg, b.x, b.y]);
      confidence.set(c as Float32Array, at);
      labels.set(a as Int32Array, at);
      at += c.length;
    }
  } finally {
    owned?.dispose();
  }
  const keep: number[] = [];
  for (let i = 0; i < pool.size; i++) if (confidence[i]! >= threshold) keep.push(i);
  const indices = Int32Array.from(keep);
  const keptLabels = Int32Array.from(keep, (i) => labels[i]!);
  const dataset = withLabels(pool.subset(indices), keptLabels);
  return { dataset, indices, labels, confidence, total: pool.size, kept: keep.length };
}

/**
 * Semi-supervised data: the labelled examples plus the pool examples the teacher labelled
 * confidently ({@link pseudoLabel}), joined into one streaming dataset ({@link concatDatasets}).
 */
export async function semiSupervisedData(
  labelled: Dataset,
  pool: Dataset,
  teacher: Graph | Executor,
  options: PseudoLabelOptions = {},
): Promise<PseudoLabelResult & { readonly joined: Dataset }> {
  const r = await pseudoLabel(pool, teacher, options);
  return { ...r, joined: concatDatasets([labelled, r.dataset]) };
}
