import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  compress,
  createBuilders,
  ensureGradients,
  fit,
  parsePipelineConfig,
  runGraph,
  softmaxCrossEntropy,
  useBackend,
  type AlgorithmController,
  type CompressionController,
} from '@tensorpress/core-tensor';
import { distillAlgorithms, distillationLoss, knowledgeDistillation, type DistillationBuilder } from '@tensorpress/distill';
import { errorOf, expectClose, expectNoLeak } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { firstBatch, randomData, smallCnn, student, teacher } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
  await ensureGradients();
});

/** CE (what fit adds) + the controller's loss, on one train-mode run of the student. */
function fitObjective(ctrl: CompressionController, x: tf.Tensor, y: tf.Tensor1D): number {
  return tf.tidy(() => {
    const outputs = ctrl.model.executor.run(x, { training: true, updateStats: false });
    const total = tf.add(softmaxCrossEntropy(outputs[0]!, y), ctrl.loss({ inputs: x, labels: y, outputs, executor: ctrl.model.executor }));
    return total.dataSync()[0]!;
  });
}

function configError(fn: () => unknown): ConfigError {
  const e = errorOf(fn);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('knowledgeDistillation (offline)', () => {
  it('with the CE fit adds, gives (1 − α)·CE + α·T²·KL against the eval-mode teacher', () => {
    const t = teacher();
    const ctrl = compress(student(), [knowledgeDistillation({ teacher: t, alpha: 0.7, temperature: 3 })]);
    const { x, y } = firstBatch(randomData(8), 8);
    const got = fitObjective(ctrl, x, y);
    const want = tf.tidy(() => {
      const s = ctrl.model.executor.run(x, { training: true, updateStats: false })[0]!;
      const te = runGraph(t, x)[0]!; // eval mode: BN running statistics
      return distillationLoss(s, te, y, { alpha: 0.7, temperature: 3 }).dataSync()[0]!;
    });
    expectClose([got], [want]);
    expect(ctrl.statistics().algorithms[0]!.total).toMatchObject({ teacher: 'named', alpha: 0.7, temperature: 3, loss: 'kl' });
    tf.dispose([x, y]);
    ctrl.dispose();
  });

  it('distils from the FP32 original by default: a student equal to it has a zero distillation term', () => {
    const g = student();
    const ctrl = compress(g, [knowledgeDistillation({ alpha: 0.5 })]);
    expect(ctrl.statistics().algorithms[0]!.total['teacher']).toBe('original');
    const { x, y } = firstBatch(randomData(6), 6);
    // The student's eval outputs are the original's: D = 0, so the controller's loss is −α·CE.
    const v = tf.tidy(() => {
      const outputs = runGraph(g, x);
      return [ctrl.loss({ inputs: x, labels: y, outputs, executor: ctrl.model.executor }).dataSync()[0]!, softmaxCrossEntropy(outputs[0]!, y).dataSync()[0]!];
    });
    expectClose([v[0]!], [-0.5 * v[1]!], { atol: 1e-5 });
    tf.dispose([x, y]);
    ctrl.dispose();
  });

  it('never trains or updates the teacher: after fit, its outputs are still the eval-mode original', async () => {
    const t = teacher();
    const ctrl = compress(student(), [knowledgeDistillation({ teacher: t, alpha: 1, temperature: 2 })]);
    await fit(ctrl.model.executor, randomData(32), { epochs: 2, batchSize: 8, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 0.05 } });
    const { x, y } = firstBatch(randomData(8, 9), 8);
    // Feeding the teacher's own eval outputs as the student's: α = 1 leaves D − CE, and D must be 0.
    const [loss, ce] = tf.tidy(() => {
      const outputs = runGraph(t, x);
      return [ctrl.loss({ inputs: x, labels: y, outputs, executor: ctrl.model.executor }).dataSync()[0]!, softmaxCrossEntropy(outputs[0]!, y).dataSync()[0]!];
    });
    expectClose([loss!], [-ce!], { atol: 1e-5 });
    expect(ctrl.trainableVariables()).toEqual([]);
    tf.dispose([x, y]);
    ctrl.dispose();
  });

  it('trains the student towards the teacher and frees every tensor it made', async () => {
    const t = teacher();
    const data = randomData(48);
    const { x } = firstBatch(data, 48);
    const gap = (g: ReturnType<typeof student>): number =>
      tf.tidy(() => tf.mean(tf.squaredDifference(runGraph(g, x)[0]!, runGraph(t, x)[0]!)).dataSync()[0]!);
    const s0 = student();
    await expectNoLeak(async () => {
      const ctrl = compress(s0, [knowledgeDistillation({ teacher: t, alpha: 1, loss: 'mse', hints: [{ student: 'relu1', teacher: 'trelu1' }] })]);
      const { graph } = await fit(ctrl.model.executor, data, { epochs: 15, batchSize: 16, controller: ctrl, progress: false, optimizer: { type: 'adam', learningRate: 0.03 } });
      expect(gap(graph)).toBeLessThan(0.5 * gap(s0));
      ctrl.dispose();
    });
    x.dispose();
  });
});

describe('knowledgeDistillation hints', () => {
  it('learns a 1×1 adapter where the channel counts differ, and none where they agree', () => {
    const ctrl = compress(student(), [knowledgeDistillation({ teacher: teacher(), hints: [{ student: 'relu1', teacher: 'trelu1', weight: 0.5 }] })]);
    const vars = ctrl.trainableVariables();
    expect(vars.map((v) => v.shape)).toEqual([[3, 5]]);
    expect(ctrl.statistics().algorithms[0]!.layers).toEqual([{ node: 'relu1', op: 'Relu', teacherNode: 'trelu1', weight: 0.5, adapter: '3→5' }]);
    ctrl.dispose();
    const same = compress(student(), [knowledgeDistillation({ teacher: smallCnn({ filters: 3, prefix: 't', seed: 5 }), hints: [{ student: 'relu1', teacher: 'trelu1' }] })]);
    expect(same.trainableVariables()).toEqual([]);
    same.dispose();
  });

  it('adds weight·mean((S·W − T)²) of the train-mode student feature to the loss', () => {
    const t = teacher();
    const ctrl = compress(student(), [knowledgeDistillation({ teacher: t, alpha: 0, hints: [{ student: 'relu1', teacher: 'trelu1', weight: 2 }] })]);
    const { x, y } = firstBatch(randomData(4), 4);
    const [w] = ctrl.trainableVariables();
    const got = fitObjective(ctrl, x, y);
    const want = tf.tidy(() => {
      const [logits, feat] = ctrl.model.executor.run(x, { training: true, updateStats: false, outputs: ['fc', 'relu1'] });
      const tf_ = runGraph(t, x, { outputs: ['trelu1'] })[0]!;
      const s = tf.reshape(tf.matMul(tf.reshape(feat!, [-1, 3]), w!), [4, 4, 4, 5]);
      return tf.add(softmaxCrossEntropy(logits!, y), tf.mul(2, tf.mean(tf.squaredDifference(s, tf_)))).dataSync()[0]!;
    });
    expectClose([got], [want]);
    tf.dispose([x, y]);
    ctrl.dispose();
  });
});

describe('knowledgeDistillation bad input', () => {
  it('a teacher whose output shape differs: ConfigError at the teacher naming both outputs', () => {
    const before = tf.memory().numTensors;
    const e = configError(() => compress(student(), [knowledgeDistillation({ teacher: teacher(5) })]));
    expect(e.path).toBe('$.teacher');
    expect(e.message).toMatch(/teacher's output "tfc" has shape \[2, 5\] .* student's output "fc" has \[2, 3\]/);
    expect(tf.memory().numTensors).toBe(before);
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'knowledge_distillation', params: { teacher: 't.onnx' } }] }, distillAlgorithms);
    const [b] = createBuilders(cfg, distillAlgorithms) as DistillationBuilder[];
    b!.setTeacher(teacher(5));
    expect(configError(() => compress(student(), [b!])).path).toBe('$.compression[0].params.teacher');
  });

  it('a hint node that does not exist: ConfigError at the hint naming the node', () => {
    const s = configError(() => compress(student(), [knowledgeDistillation({ teacher: teacher(), hints: [{ student: 'relu', teacher: 'trelu1' }] })]));
    expect(s.path).toBe('$.hints[0].student');
    expect(s.message).toMatch(/the student has no node "relu"; did you mean "relu1"\?/);
    const before = tf.memory().numTensors;
    const t = configError(() => compress(student(), [knowledgeDistillation({ teacher: teacher(), hints: [{ student: 'relu1', teacher: 'nope' }] })]));
    expect(t.path).toBe('$.hints[0].teacher');
    expect(t.details['node']).toBe('nope');
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a named teacher that was never loaded: ConfigError at params.teacher', () => {
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'knowledge_distillation', params: { teacher: 'builtin:residualCnn' } }] }, distillAlgorithms);
    const e = configError(() => compress(student(), createBuilders(cfg, distillAlgorithms)));
    expect(e.path).toBe('$.compression[0].params.teacher');
    expect(e.message).toMatch(/"builtin:residualCnn" is named but was not loaded/);
  });
});

describe('knowledgeDistillation (self)', () => {
  const teacherWeights = (c: AlgorithmController): Record<string, string> => (c.state() as { teacherWeights: Record<string, string> }).teacherWeights;
  const decode = (b64: string): Float32Array => new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer);

  it('snapshot: no loss before the chosen epoch, then the snapshot of that epoch teaches', () => {
    const g = student();
    const ctrl = compress(g, [knowledgeDistillation({ alpha: 0.5, selfDistillation: { mode: 'snapshot', epoch: 2 } })]);
    const { x, y } = firstBatch(randomData(6), 6);
    expect(fitObjective(ctrl, x, y)).toBeCloseTo(tf.tidy(() => softmaxCrossEntropy(ctrl.model.executor.run(x, { training: true, updateStats: false })[0]!, y).dataSync()[0]!), 5);
    ctrl.scheduler.epochStep();
    expect(ctrl.statistics().algorithms[0]!.total['active']).toBe(false);
    // Change the student, then finish epoch 2: the teacher is the changed student.
    const v = ctrl.model.executor.variables().get('fc.bias')!;
    v.assign(tf.tensor1d([1, -1, 0.5]));
    ctrl.scheduler.epochStep();
    expect(ctrl.statistics().algorithms[0]!.total['active']).toBe(true);
    const [loss, ce] = tf.tidy(() => {
      const outputs = ctrl.model.executor.run(x, { training: false });
      return [ctrl.loss({ inputs: x, labels: y, outputs, executor: ctrl.model.executor }).dataSync()[0]!, softmaxCrossEntropy(outputs[0]!, y).dataSync()[0]!];
    });
    expectClose([loss!], [-0.5 * ce!], { atol: 1e-5 });
    tf.dispose([x, y]);
    ctrl.dispose();
  });

  it('ema: after each step the teacher is decay·teacher + (1 − decay)·student; the state restores it', () => {
    const ctrl = compress(student(), [knowledgeDistillation({ selfDistillation: { mode: 'ema', decay: 0.75 } })]);
    const c = ctrl.controllers[0]!;
    const before = decode(teacherWeights(c)['fc.bias']!);
    ctrl.model.executor.variables().get('fc.bias')!.assign(tf.tensor1d([4, -4, 8]));
    ctrl.scheduler.step();
    const after = decode(teacherWeights(c)['fc.bias']!);
    expectClose(after, Array.from(before, (b, i) => 0.75 * b + 0.25 * [4, -4, 8][i]!));
    const again = compress(student(), [knowledgeDistillation({ selfDistillation: { mode: 'ema', decay: 0.75 } })]);
    again.loadState(ctrl.state());
    expect(teacherWeights(again.controllers[0]!)).toEqual(teacherWeights(c));
    ctrl.dispose();
    again.dispose();
  });
});
