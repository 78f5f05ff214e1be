import * as tf from '@tensorflow/tfjs-core';
import { TensorpressError, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { Teacher } from './internal/teacher.js';

/**
 * A fixed teacher's outputs (its first graph output, eval mode) on every example of a dataset,
 * computed once. {@link TeacherOutputs.lookup} finds a batch's rows by their exact bits, so a
 * controller given these outputs (`knowledgeDistillation({ teacher, teacherOutputs })`) distils
 * from the same numbers the teacher would compute, without running it every step.
 */
export interface TeacherOutputs {
  /** The graph the outputs were computed from: the builder refuses another teacher. */
  readonly teacher: Graph;
  /** Examples held. */
  readonly size: number;
  /** Values per example of the output (the number of classes for logits). */
  readonly width: number;
  /**
   * The outputs `[N, width]` for a batch `[N, ...exampleShape]` whose every row is bit-for-bit
   * one of the dataset's examples, or undefined when one row is not (then run the teacher).
   */
  lookup(x: tf.Tensor): tf.Tensor2D | undefined;
}

/** Options of {@link precomputeTeacherOutputs}. */
export interface PrecomputeTeacherOptions {
  /** Batch size of the teacher's runs. Default 256. */
  batchSize?: number;
}

/** FNV-1a over a row's 32-bit words. */
function hashRow(words: Uint32Array, from: number, to: number): number {
  let h = 0x811c9dc5;
  for (let i = from; i < to; i++) {
    const w = words[i]!;
    h = Math.imul(h ^ (w & 0xff), 0x01000193);
    h = Math.imul(h ^ ((w >>> 8) & 0xff), 0x01000193);
    h = Math.imul(h ^ ((w >>> 16) & 0xff), 0x01000193);
    h = Math.imul(h ^ (w >>> 24), 0x01000193);
  }
  return h >>> 0;
}

/**
 * Runs `teacher` once in eval mode (BN running statistics, no dropout, no hooks) over every example
 * of `data` (in order, no augmentation) and keeps its first output per example together with a
 * copy of the example's bits, so that a lookup is exact: a row matches only an identical example.
 * Memory: `size × (prod(exampleShape) + width)` floats.
 */
export async function precomputeTeacherOutputs(data: Dataset, teacher: Graph, options: PrecomputeTeacherOptions = {}): Promise<TeacherOutputs> {
  const batchSize = options.batchSize ?? 256;
  if (!Number.isInteger(batchSize) || batchSize <= 0) {
    throw new TensorpressError('INPUT_INVALID', `precomputeTeacherOutputs: batchSize must be a positive integer, got ${batchSize}`, { batchSize });
  }
  const per = data.exampleShape.reduce((a, b) => a * b, 1);
  const rows = new Float32Array(data.size * per);
  let outputs: Float32Array | undefined;
  let width = 0;
  const runner = new Teacher(teacher);
  const name = teacher.outputs[0]!;
  try {
    let at = 0;
    for (const b of data.batches(batchSize)) {
      const n = b.y.shape[0];
      const [t] = runner.run(b.x, [name]);
      try {
        if (t!.rank !== 2) {
          throw new TensorpressError('INPUT_INVALID', `precomputeTeacherOutputs: the teacher's output "${name}" has shape [${t!.shape.join(', ')}], not [N, classes]`);
        }
        if (!outputs) {
          width = t!.shape[1]!;
          outputs = new Float32Array(data.size * width);
        }
        outputs.set(await t!.data(), at * width);
        rows.set(await b.x.data(), at * per);
      } finally {
        tf.dispose([t!, b.x, b.y]);
      }
      at += n;
    }
  } finally {
    runner.dispose();
  }
  const words = new Uint32Array(rows.buffer);
  /** Hash → the first example with it; `next[i]` chains the later ones. */
  const first = new Map<number, number>();
  const next = new Int32Array(data.size).fill(-1);
  const last = new Map<number, number>();
  for (let i = 0; i < data.size; i++) {
    const h = hashRow(words, i * per, (i + 1) * per);
    const tail = last.get(h);
    if (tail === undefined) first.set(h, i);
    else next[tail] = i;
    last.set(h, i);
  }
  const held = outputs ?? new Float32Array(0);
  return {
    teacher,
    size: data.size,
    width,
    lookup(x: tf.Tensor): tf.Tensor2D | undefined {
      const n = x.shape[0] ?? 0;
      if (x.size !== n * per || n === 0) return undefined;
      const xs = x.dataSync() as Float32Array;
      const xw = new Uint32Array(xs.buffer, xs.byteOffset, xs.length);
      const out = new Float32Array(n * width);
      for (let r = 0; r < n; r++) {
        let i = first.get(hashRow(xw, r * per, (r + 1) * per)) ?? -1;
        while (i >= 0 && !sameRow(words, i * per, xw, r * per, per)) i = next[i]!;
        if (i < 0) return undefined;
        out.set(held.subarray(i * width, (i + 1) * width), r * width);
      }
      return tf.tensor2d(out, [n, width]);
    },
  };
}

function sameRow(a: Uint32Array, ai: number, b: Uint32Array, bi: number, n: number): boolean {
  for (let k = 0; k < n; k++) if (a[ai + k] !== b[bi + k]) return false;
  return true;
}
