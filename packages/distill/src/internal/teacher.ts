import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, Executor, type Graph } from '@tensorpress/core-tensor';
import { stopGradient } from '../losses.js';

/**
 * A teacher: its own executor over a copy of its weights, always run in eval mode (BN running
 * statistics, no dropout, no hooks), its outputs cut from the gradient tape.
 */
export class Teacher {
  readonly executor: Executor;

  constructor(readonly graph: Graph) {
    this.executor = new Executor(graph);
    // Its weights are never trained: no optimizer may pick them up from a list of trainables.
    for (const v of this.executor.variables().values()) v.trainable = false;
  }

  /** The values `names` (graph outputs or node outputs) on `inputs`, as constants. */
  run(inputs: tf.Tensor, names: readonly string[]): tf.Tensor[] {
    return tf.tidy(() => this.executor.run(inputs, { training: false, outputs: names }).map((t) => stopGradient(t)));
  }

  dispose(): void {
    this.executor.dispose();
  }
}

/** A batch of `n` zeros of the graph's (single) input, for shape probes. */
export function probeInput(graph: Graph, n: number, path: string): tf.Tensor {
  const input = graph.inputs[0];
  if (!input || graph.inputs.length !== 1) {
    throw new ConfigError(path, `knowledge_distillation needs a graph with one input; this one has ${graph.inputs.length}`);
  }
  const shape = input.shape.map((d, i) => (i === 0 ? n : (d ?? 1)));
  return tf.zeros(shape);
}

const fmt = (s: readonly number[]): string => `[${s.join(', ')}]`;

/**
 * Checks on a probe batch that the teacher takes the student's input and gives logits of the
 * student's shape. A mismatch is a ConfigError at `path` naming both shapes.
 */
export function checkTeacherOutputs(student: Executor, teacher: Teacher, path: string): void {
  const x = probeInput(student.graph, 2, path);
  try {
    const tIn = teacher.graph.inputs[0];
    const sIn = student.graph.inputs[0]!;
    const same = tIn && tIn.shape.length === sIn.shape.length && tIn.shape.every((d, i) => i === 0 || d === null || sIn.shape[i] === null || d === sIn.shape[i]);
    if (!same || teacher.graph.inputs.length !== 1) {
      throw new ConfigError(
        path,
        `the teacher's input ${tIn ? `"${tIn.name}" ${fmt(tIn.shape.map((d) => d ?? -1))}` : '(none)'} does not take the student's input "${sIn.name}" ${fmt(sIn.shape.map((d) => d ?? -1))}`,
        { teacherInput: tIn?.name ?? null, studentInput: sIn.name },
      );
    }
    const sOut = student.graph.outputs[0]!;
    const tOut = teacher.graph.outputs[0]!;
    const [s] = student.run(x, { training: false, bypassHooks: true, outputs: [sOut] });
    const [t] = teacher.run(x, [tOut]);
    const ss = s!.shape;
    const ts = t!.shape;
    tf.dispose([s!, t!]);
    if (ss.length !== ts.length || ss.some((d, i) => d !== ts[i])) {
      throw new ConfigError(
        path,
        `the teacher's output "${tOut}" has shape ${fmt(ts)} on a batch of 2 but the student's output "${sOut}" has ${fmt(ss)}; ` +
          'distillation compares them class by class, so both must give the same number of logits',
        { teacherOutput: tOut, studentOutput: sOut, teacherShape: ts, studentShape: ss },
      );
    }
  } finally {
    x.dispose();
  }
}
