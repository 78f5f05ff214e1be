import * as tf from '@tensorflow/tfjs-core';
import {
  GraphBuilder,
  PRIORITY,
  arrayDataset,
  compress,
  createRng,
  defineController,
  fit,
  useBackend,
  type BackendName,
  type CompressionBuilder,
  type CompressionController,
  type Dataset,
  type EpochStats,
  type FitCheckpoint,
  type FitOptions,
  type Graph,
  type Json,
  type OptimizerConfig,
} from '@tensorpress/core-tensor';
import { rejectionOf } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';

/** A CNN with BN (running statistics are non-trainable state) and dropout (the executor's random stream). */
function smallCnn(filters = 4): Graph {
  const b = new GraphBuilder({ seed: 11 });
  let h = b.input('input', [null, 6, 6, 1]);
  h = b.conv(h, { filters, kernel: 3, padding: 'same', name: 'conv1' });
  h = b.relu(b.batchNorm(h, { name: 'bn1' }), 'relu1');
  h = b.dropout(b.flatten(h), 0.25);
  b.output(b.dense(h, 3, { name: 'fc' }));
  return b.build();
}

/** 44 examples: 6 batches of 8 per epoch, the last one of 4. */
function images(n = 44): Dataset {
  const rng = createRng(5);
  const x = new Float32Array(n * 36);
  const y = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = i % 3;
    for (let k = 0; k < 36; k++) x[i * 36 + k] = rng.normal() + (k % 3 === y[i] ? 1 : 0);
  }
  return arrayDataset({ x, y, exampleShape: [6, 6, 1], numClasses: 3 });
}

/**
 * Pruning-like: a magnitude mask on conv1's weight, recomputed from the weights every 4 steps and
 * at every epoch end. Its mask and step counter live only in the controller's state, so a resume
 * that lost them would train different weights.
 */
function maskBuilder(): CompressionBuilder {
  let t = 0;
  let shape: number[] = [];
  let mask: Float32Array = new Float32Array(0);
  let maskT: tf.Tensor | undefined;
  const setMask = (m: Float32Array): void => {
    mask = m;
    maskT?.dispose();
    maskT = tf.tensor(m, shape);
  };
  return {
    algorithm: 'test_mask',
    priority: PRIORITY.pruning,
    register(graph, layout) {
      shape = [...graph.param('conv1.weight')!.shape];
      setMask(new Float32Array(graph.param('conv1.weight')!.data.length).fill(1));
      layout.addHook({ type: 'weight', node: 'conv1', input: 1 }, (w) => tf.mul(w, maskT!), {
        algorithm: 'test_mask',
        priority: PRIORITY.pruning,
        id: 'conv1.mask',
      });
    },
    build(model) {
      const remask = (): void => {
        const w = model.executor.variables().get('conv1.weight')!.dataSync();
        const cut = Array.from(w, Math.abs).sort((a, b) => a - b)[Math.floor(w.length / 4)]!;
        setMask(Float32Array.from(w, (v) => (Math.abs(v) >= cut ? 1 : 0)));
      };
      return defineController('test_mask', {
        scheduler: {
          epoch: 0,
          stepInEpoch: 0,
          step: () => {
            if (++t % 4 === 0) remask();
          },
          epochStep: remask,
        },
        state: () => ({ t, mask: Array.from(mask) }),
        loadState: (s: Json) => {
          const st = s as { t: number; mask: number[] };
          t = st.t;
          setMask(Float32Array.from(st.mask));
        },
        dispose: () => maskT?.dispose(),
      });
    },
  };
}

/** QAT-like: a learned clip α after relu1 (a controller variable the optimizer trains), with an L2 term. */
function clipBuilder(): CompressionBuilder {
  let alpha: tf.Variable | undefined;
  return {
    algorithm: 'test_clip',
    priority: PRIORITY.quantization,
    register(_graph, layout) {
      alpha = tf.tidy(() => tf.variable(tf.scalar(1.5), true));
      layout.addHook({ type: 'post', node: 'relu1', output: 0 }, (x) => tf.sub(x, tf.relu(tf.sub(x, alpha!))), {
        algorithm: 'test_clip',
        priority: PRIORITY.quantization,
        id: 'relu1.clip',
      });
    },
    build: () =>
      defineController('test_clip', {
        loss: () => tf.mul(tf.square(alpha!), 1e-3) as tf.Scalar,
        trainableVariables: () => [alpha!],
        dispose: () => alpha!.dispose(),
      }),
  };
}

interface Outcome {
  readonly weights: Map<string, Float32Array>;
  readonly alpha: Float32Array;
  readonly history: readonly EpochStats[];
}

type Optim = OptimizerConfig | (() => tf.Optimizer);

/**
 * A deep copy of a checkpoint, sharing no buffer with the run that took it (its file format, and a
 * resume through those bytes, are tested in packages/cli: checkpoint-file and resume-fit).
 */
const detached = (c: FitCheckpoint): FitCheckpoint => structuredClone(c);

/** Runs the pipeline; `interrupt` may stop it and hand back the checkpoint to resume from. */
async function train(
  optimizer: Optim,
  extra: (ctrl: CompressionController) => Partial<FitOptions> = () => ({}),
): Promise<{ outcome?: Outcome; error?: unknown }> {
  const ctrl = compress(smallCnn(), [maskBuilder(), clipBuilder()], { seed: 3 });
  const opt = typeof optimizer === 'function' ? optimizer() : optimizer;
  try {
    const { history } = await fit(ctrl.model.executor, images(), {
      epochs: 3,
      batchSize: 8,
      seed: 7,
      optimizer: opt,
      lrSchedule: 'cosine',
      controller: ctrl,
      progress: false,
      ...extra(ctrl),
    });
    const weights = new Map([...ctrl.model.executor.variables()].map(([k, v]) => [k, v.dataSync().slice() as Float32Array]));
    return { outcome: { weights, alpha: ctrl.trainableVariables()[0]!.dataSync().slice() as Float32Array, history } };
  } catch (error) {
    return { error };
  } finally {
    ctrl.dispose();
    if (typeof optimizer === 'function') (opt as tf.Optimizer).dispose();
  }
}

function expectIdentical(a: Outcome, b: Outcome): void {
  expect([...b.weights.keys()]).toEqual([...a.weights.keys()]);
  for (const [name, w] of a.weights) {
    // Bit-identical: compare the raw bytes, not the numbers with a tolerance.
    expect(Buffer.from(b.weights.get(name)!.buffer).equals(Buffer.from(w.buffer)), name).toBe(true);
  }
  expect(Array.from(b.alpha)).toEqual(Array.from(a.alpha));
  expect(b.history.map((h) => [h.loss, h.accuracy, h.learningRate])).toEqual(a.history.map((h) => [h.loss, h.accuracy, h.learningRate]));
}

const OPTIMIZERS: [string, Optim][] = [
  ['adam (fit default, packed)', { type: 'adam', learningRate: 0.01 }],
  ['sgd with weight decay', { type: 'sgd', learningRate: 0.05, weightDecay: 1e-3 }],
  ['momentum', { type: 'momentum', learningRate: 0.02, momentum: 0.9 }],
  ["tf.train.adam passed in", () => tf.train.adam(0.01)],
];

describe.each(['cpu', 'wasm'] as BackendName[])('fit resume on %s', (backend) => {
  it.each(OPTIMIZERS)('%s: stopped by the signal mid-epoch or at an epoch end, and by a crash after a periodic checkpoint, resumes bit-identically', async (_name, optimizer) => {
    await useBackend(backend);
    const before = tf.memory().numTensors;
    const reference = (await train(optimizer)).outcome!;
    // 6 steps per epoch: global step 9 is mid-epoch 2, step 6 ends epoch 1 (only its end is left).
    for (const stopAt of [9, 6]) {
      const abort = new AbortController();
      let checkpoint: FitCheckpoint | undefined;
      const stopped = await train(optimizer, () => ({
        signal: abort.signal,
        checkpoint: { save: (c) => void (checkpoint = detached(c)) },
        callbacks: { onBatchEnd: (i) => void (i.globalStep === stopAt && abort.abort()) },
      }));
      expect((stopped.error as { code?: string }).code).toBe('ABORTED');
      const c = checkpoint!;
      expect([c.epoch, c.step, c.globalStep]).toEqual(stopAt === 9 ? [1, 3, 9] : [0, 6, 6]);
      const resumed = (await train(optimizer, () => ({ resumeFrom: checkpoint! }))).outcome!;
      expectIdentical(reference, resumed);
    }
    // A crash at global step 11: the last periodic checkpoint (every 4 steps) is from step 8.
    let latest: FitCheckpoint | undefined;
    const crashed = await train(optimizer, () => ({
      checkpoint: { everySteps: 4, save: (c) => void (latest = detached(c)) },
      callbacks: {
        onBatchEnd: (i) => {
          if (i.globalStep === 11) throw new Error('power cut');
        },
      },
    }));
    expect((crashed.error as Error).message).toBe('power cut');
    expect(latest!.globalStep).toBe(8);
    const resumed = (await train(optimizer, () => ({ resumeFrom: latest! }))).outcome!;
    expectIdentical(reference, resumed);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('fit resume (checks)', () => {
  it('refuses a checkpoint of another run, naming the field; takes none of it', async () => {
    await useBackend('cpu');
    let checkpoint: FitCheckpoint | undefined;
    const abort = new AbortController();
    await train({ type: 'adam', learningRate: 0.01 }, () => ({
      signal: abort.signal,
      checkpoint: { save: (c) => void (checkpoint = detached(c)) },
      callbacks: { onBatchEnd: (i) => void (i.globalStep === 2 && abort.abort()) },
    }));
    const cases: [Partial<FitOptions>, RegExp][] = [
      [{ batchSize: 4 }, /fingerprint\.batchSize is 8 in the checkpoint, 4 here/],
      [{ epochs: 4 }, /fingerprint\.epochs is 3 in the checkpoint, 4 here/],
      [{ seed: 8 }, /fingerprint\.seed/],
      [{ optimizer: { type: 'sgd', learningRate: 0.01 } }, /fingerprint\.optimizer\.learningRate|fingerprint\.optimizer\.type/],
      [{ lrSchedule: 'constant' }, /fingerprint\.lrSchedule is "cosine" in the checkpoint, "constant" here/],
      [{ fingerprint: { model: 'other' } }, /fingerprint\.extra\.model is nothing in the checkpoint, "other" here/],
    ];
    for (const [change, message] of cases) {
      const r = await train({ type: 'adam', learningRate: 0.01 }, () => ({ resumeFrom: checkpoint!, ...change }));
      const e = r.error as { code?: string; message: string; details: { field: string } };
      expect(e.code, JSON.stringify(change)).toBe('CHECKPOINT_MISMATCH');
      expect(e.message).toMatch(message);
      expect(e.details.field).toMatch(/^fingerprint\./);
    }
    // Another model: conv1 has 5 filters instead of 4.
    const other = compress(smallCnn(5), [maskBuilder(), clipBuilder()], { seed: 3 });
    const e = await rejectionOf(
      fit(other.model.executor, images(), { epochs: 3, batchSize: 8, seed: 7, optimizer: { type: 'adam', learningRate: 0.01 }, lrSchedule: 'cosine', controller: other, progress: false, resumeFrom: checkpoint! }),
    );
    other.dispose();
    expect(e.code).toBe('CHECKPOINT_MISMATCH');
    expect(e.message).toMatch(/fingerprint\.parameters\[0\]\.shape\[3\] \(of "conv1\.weight"\) is 4 in the checkpoint, 5 here/);
  });

  it('stops with LOSS_NOT_FINITE naming the epoch and steps when training diverges, and never saves non-finite weights', async () => {
    await useBackend('cpu');
    const saved: number[] = [];
    const r = await train({ type: 'sgd', learningRate: 1e30 }, () => ({
      checkpoint: {
        everySteps: 1,
        save: (c) => {
          for (const p of c.parameters) expect(p.data.every(Number.isFinite), p.name).toBe(true);
          saved.push(c.globalStep);
        },
      },
    }));
    const e = r.error as { code?: string; message: string; details: { globalStep: number; epoch: number } };
    expect(e.code).toBe('LOSS_NOT_FINITE');
    expect(e.message).toMatch(/^fit: the training loss became (NaN|Infinity) in epoch 1\/3, at step \d of 6 \(global step \d\); .*Lower the learning rate \([\d.]+e\+(29|30) at that point\)/);
    expect(e.details.epoch).toBe(0);
    // Step 1 still had a finite loss and finite (huge) weights; the checkpoint of the step that diverged was refused.
    expect(saved.length).toBeGreaterThan(0);
    expect(Math.max(...saved)).toBeLessThan(e.details.globalStep);
  });

  it('with no checkpoint, the loss is checked every 20 steps and at the end of an epoch', async () => {
    await useBackend('cpu');
    const atEpochEnd = (await train({ type: 'sgd', learningRate: 1e30 }, () => ({ epochs: 30 }))).error as { code?: string; message: string };
    expect(atEpochEnd.code).toBe('LOSS_NOT_FINITE');
    expect(atEpochEnd.message).toMatch(/in epoch 1\/30, at one of steps 1-6 of 6 \(global steps 1-6\)/);
    const every20 = (await train({ type: 'sgd', learningRate: 1e30 }, () => ({ batchSize: 1 }))).error as { code?: string; message: string };
    expect(every20.code).toBe('LOSS_NOT_FINITE');
    expect(every20.message).toMatch(/in epoch 1\/3, at one of steps 1-20 of 44 \(global steps 1-20\)/);
  });

  it('an aborted run with no checkpoint option throws ABORTED and frees everything', async () => {
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    const abort = new AbortController();
    abort.abort();
    const r = await train({ type: 'adam', learningRate: 0.01 }, () => ({ signal: abort.signal }));
    const e = r.error as { code?: string; message: string; details: Record<string, unknown> };
    expect(e.code).toBe('ABORTED');
    expect(e.message).toBe('fit: aborted at epoch 1/3, step 0/6 (global step 0)');
    expect(tf.memory().numTensors).toBe(before);
  });
});
