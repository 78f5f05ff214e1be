import * as tf from '@tensorflow/tfjs-core';
import {
  Executor,
  defineController,
  GraphBuilder,
  PRIORITY,
  compress,
  useBackend,
  type CompressionBuilder,
  type CompressedModel,
  type Graph,
  type Json,
  type LossContext,
  type TransformationLayout,
} from '@tensorpress/core-tensor';
import { expectClose, expectNoLeak, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

function smallCnn(seed = 1): Graph {
  const b = new GraphBuilder({ seed });
  const x = b.input('input', [null, 8, 8, 2]);
  let h = b.conv(x, { filters: 4, kernel: 3, padding: 'same', name: 'conv1' });
  h = b.batchNorm(h, { name: 'bn1' });
  h = b.relu(h, 'relu1');
  h = b.globalAvgPool(h);
  h = b.flatten(h);
  h = b.dense(h, 3, { name: 'fc' });
  b.output(h);
  return b.build();
}

/** A minimal controller with everything defaulted; tests override what they exercise. */
const baseController = defineController;

/** A weight transform: a fixed 0/1 mask on conv1's weight, made permanent by strip(). */
function maskBuilder(mask: Float32Array): CompressionBuilder {
  let maskT: tf.Tensor | undefined;
  return {
    algorithm: 'test_mask',
    priority: PRIORITY.sparsity,
    register(graph: Graph, layout: TransformationLayout) {
      const w = graph.param('conv1.weight')!;
      maskT = tf.tensor(mask, [...w.shape]);
      layout.addHook({ type: 'weight', node: 'conv1', input: 1 }, (x) => tf.mul(x, maskT!), {
        algorithm: 'test_mask',
        priority: PRIORITY.sparsity,
        id: 'conv1.mask',
      });
    },
    build: () =>
      baseController('test_mask', {
        strip: (g) => {
          const w = g.param('conv1.weight')!;
          const data = (w.data as Float32Array).map((v, i) => v * mask[i]!);
          return g.withParams(new Map([['conv1.weight', { data }]]));
        },
        statistics: () => ({
          algorithm: 'test_mask',
          layers: [{ node: 'conv1', op: 'Conv', sparsity: mask.filter((m) => m === 0).length / mask.length }],
          total: {},
          skipped: [],
        }),
        dispose: () => maskT?.dispose(),
      }),
  };
}

/** An activation transform with an extra trainable parameter: PACT-style clip at a learned α. */
function pactBuilder(alpha0: number): CompressionBuilder & { alpha?: tf.Variable } {
  const self: CompressionBuilder & { alpha?: tf.Variable } = {
    algorithm: 'test_pact',
    priority: PRIORITY.quantization,
    register(_graph, layout) {
      self.alpha = tf.variable(tf.scalar(alpha0), true);
      // y = min(x, α) written as x - relu(x - α): dy/dα = 1 where x > α (PACT's gradient).
      layout.addHook({ type: 'post', node: 'relu1', output: 0 }, (x) => tf.sub(x, tf.relu(tf.sub(x, self.alpha!))), {
        algorithm: 'test_pact',
        priority: PRIORITY.quantization,
        id: 'relu1.pact',
      });
    },
    build: () =>
      baseController('test_pact', {
        trainableVariables: () => [self.alpha!],
        state: () => ({ alpha: self.alpha!.dataSync()[0]! }),
        loadState: (s: Json) => self.alpha!.assign(tf.scalar((s as { alpha: number }).alpha)),
        dispose: () => self.alpha!.dispose(),
      }),
  };
  return self;
}

/** A loss term over parameters: λ·Σ|γ| on BN scales (network slimming). */
function slimBuilder(lambda: number): CompressionBuilder {
  let model: CompressedModel | undefined;
  return {
    algorithm: 'test_slim',
    priority: PRIORITY.pruning,
    register: () => undefined,
    build: (m) => {
      model = m;
      return baseController('test_slim', {
        loss: () => tf.tidy(() => tf.mul(tf.sum(tf.abs(model!.executor.variables().get('bn1.gamma')!)), lambda) as tf.Scalar),
      });
    },
  };
}

/** Distillation: the loss compares the student's outputs with a teacher's on the same batch. */
function distillBuilder(teacher: Graph, temperature: number): CompressionBuilder {
  let teacherEx: Executor | undefined;
  return {
    algorithm: 'test_kd',
    priority: 400,
    register: () => undefined,
    build: () => {
      teacherEx = new Executor(teacher);
      return baseController('test_kd', {
        loss: (ctx: LossContext) =>
          tf.tidy(() => {
            const [t] = teacherEx!.run(ctx.inputs);
            const pt = tf.softmax(tf.div(t!, temperature));
            const logq = tf.logSoftmax(tf.div(ctx.outputs[0]!, temperature));
            return tf.mul(tf.neg(tf.mean(tf.sum(tf.mul(pt, logq), -1))), temperature * temperature) as tf.Scalar;
          }),
        dispose: () => teacherEx?.dispose(),
      });
    },
  };
}

describe('compress', () => {
  it('a failing build leaves no tensor: built controllers are disposed, registered builders abandon their state', async () => {
    const g = smallCnn();
    let abandoned = 0;
    let alpha: tf.Variable | undefined;
    const failing: CompressionBuilder = {
      algorithm: 'test_fail',
      priority: PRIORITY.pruning,
      register: () => undefined,
      build: () => {
        throw new Error('target unreachable');
      },
    };
    const abandoning: CompressionBuilder = {
      algorithm: 'test_state',
      priority: PRIORITY.quantization,
      register: () => {
        alpha = tf.tidy(() => tf.variable(tf.scalar(2), true));
      },
      build: () => {
        throw new Error('never built: the builder before it fails');
      },
      abandon: () => {
        abandoned++;
        alpha!.dispose();
      },
    };
    await expectNoLeak(() => {
      expect(() => compress(g, [failing, abandoning])).toThrow('target unreachable');
    });
    expect(abandoned).toBe(1);
  });

  it('applies a weight transform during runs and makes it permanent in strip()', async () => {
    const g = smallCnn();
    const n = g.param('conv1.weight')!.data.length;
    const mask = new Float32Array(n).map((_, i) => (i % 3 === 0 ? 0 : 1));
    await expectNoLeak(() => {
      const ctrl = compress(g, [maskBuilder(mask)]);
      const x = seededTensor([2, 8, 8, 2], 7);
      const [masked] = ctrl.model.executor.run(x);
      const stripped = ctrl.strip();
      const plainEx = new Executor(g);
      const [plain] = plainEx.run(x);
      plainEx.dispose();
      const strippedEx = new Executor(stripped);
      const [fromStrip] = strippedEx.run(x);
      expectClose(masked!, fromStrip!, { atol: 1e-6 });
      expect(Math.abs(masked!.dataSync()[0]! - plain!.dataSync()[0]!)).toBeGreaterThan(1e-6);
      expect(ctrl.statistics().algorithms[0]!.layers[0]!['sparsity']).toBeCloseTo(Math.ceil(n / 3) / n, 6);
      // The input graph is untouched.
      expect(g.param('conv1.weight')!.data[0]).not.toBe(0);
      tf.dispose([x, masked!, plain!, fromStrip!]);
      strippedEx.dispose();
      ctrl.dispose();
    }, 1);
  });

  it('runs an activation transform whose extra parameter receives PACT gradients', async () => {
    const g = smallCnn();
    const pact = pactBuilder(0.05);
    const ctrl = compress(g, [pact]);
    expect(ctrl.trainableVariables()).toContain(pact.alpha);
    const x = seededTensor([4, 8, 8, 2], 3);
    const { grads } = tf.variableGrads(() => tf.sum(ctrl.model.executor.run(x, { training: true })[0]!) as tf.Scalar, [pact.alpha!]);
    // With α tiny, most ReLU outputs exceed it: α must receive a non-zero gradient.
    expect(Math.abs(grads[pact.alpha!.name]!.dataSync()[0]!)).toBeGreaterThan(0);
    // State round trip restores α.
    const s = ctrl.state();
    pact.alpha!.assign(tf.scalar(9));
    ctrl.loadState(s);
    expect(pact.alpha!.dataSync()[0]).toBeCloseTo(0.05, 6);
    tf.dispose([x, grads[pact.alpha!.name]!]);
    ctrl.dispose();
  });

  it('adds a loss term over parameters (L1 on BN gamma) whose gradient is λ·sign(γ)', () => {
    const g = smallCnn();
    const lambda = 0.1;
    const ctrl = compress(g, [slimBuilder(lambda)]);
    const gamma = ctrl.model.executor.variables().get('bn1.gamma')!;
    gamma.assign(tf.tensor([0.5, -2, 1, -0.25]));
    const x = seededTensor([2, 8, 8, 2], 4);
    const labels = tf.tensor1d([0, 1], 'int32');
    const l = ctrl.loss({ inputs: x, labels, outputs: [], executor: ctrl.model.executor });
    expect(l.dataSync()[0]).toBeCloseTo(lambda * 3.75, 6);
    const { grads } = tf.variableGrads(() => ctrl.loss({ inputs: x, labels, outputs: [], executor: ctrl.model.executor }), [gamma]);
    expectClose(grads[gamma.name]!, [0.1, -0.1, 0.1, -0.1]);
    tf.dispose([x, labels, l, grads[gamma.name]!]);
    ctrl.dispose();
  });

  it("puts a teacher's outputs in the loss (distillation): zero gradient when student equals teacher", () => {
    const g = smallCnn(1);
    const ctrl = compress(g, [distillBuilder(g, 4)]);
    const x = seededTensor([3, 8, 8, 2], 5);
    const labels = tf.tensor1d([0, 1, 2], 'int32');
    const vars = ctrl.model.executor.trainableVariables();
    const { value, grads } = tf.variableGrads(() => {
      const outputs = ctrl.model.executor.run(x);
      return ctrl.loss({ inputs: x, labels, outputs, executor: ctrl.model.executor });
    }, vars);
    // KD loss at student == teacher is the teacher's entropy (>0) and stationary: gradient ~ 0.
    expect(value.dataSync()[0]).toBeGreaterThan(0);
    for (const v of vars) expect(Math.max(...Array.from(tf.abs(grads[v.name]!).dataSync()))).toBeLessThan(1e-4);
    // A different student gets a non-zero gradient.
    const ctrl2 = compress(smallCnn(2), [distillBuilder(g, 4)]);
    const vars2 = ctrl2.model.executor.trainableVariables();
    const r2 = tf.variableGrads(() => ctrl2.loss({ inputs: x, labels, outputs: ctrl2.model.executor.run(x), executor: ctrl2.model.executor }), vars2);
    const fc = vars2.find((v) => r2.grads[v.name] && v.shape.length === 2)!;
    expect(Math.max(...Array.from(tf.abs(r2.grads[fc.name]!).dataSync()))).toBeGreaterThan(1e-4);
    tf.dispose([x, labels, value, r2.value, ...Object.values(grads), ...Object.values(r2.grads)]);
    ctrl.dispose();
    ctrl2.dispose();
  });

  it('stacks algorithms: hooks at one point run in priority order, strip chains, loss sums, state round-trips', () => {
    const g = smallCnn();
    const order: string[] = [];
    const tag = (name: string, priority: number): CompressionBuilder => ({
      algorithm: name,
      priority,
      register(_graph, layout) {
        layout.addHook(
          { type: 'weight', node: 'fc', input: 1 },
          (x) => {
            order.push(name);
            return x;
          },
          { algorithm: name, priority, id: `${name}.fc` },
        );
      },
      build: () =>
        baseController(name, {
          loss: () => tf.scalar(priority),
          strip: (graph) => {
            order.push(`strip:${name}`);
            return graph;
          },
          state: () => ({ p: priority }),
        }),
    });
    const ctrl = compress(g, [tag('quant_like', PRIORITY.quantization), tag('prune_like', PRIORITY.pruning), tag('sparse_like', PRIORITY.sparsity)]);
    const x = seededTensor([1, 8, 8, 2], 1);
    tf.dispose(ctrl.model.executor.run(x));
    expect(order).toEqual(['prune_like', 'sparse_like', 'quant_like']);
    order.length = 0;
    ctrl.strip();
    expect(order).toEqual(['strip:prune_like', 'strip:sparse_like', 'strip:quant_like']);
    const labels = tf.tensor1d([0], 'int32');
    const l = ctrl.loss({ inputs: x, labels, outputs: [], executor: ctrl.model.executor });
    expect(l.dataSync()[0]).toBe(600);
    ctrl.scheduler.step();
    ctrl.scheduler.epochStep();
    const state = JSON.parse(JSON.stringify(ctrl.state())) as Json;
    expect((state as { algorithms: Record<string, Json> }).algorithms['prune_like']).toEqual({ p: 100 });
    ctrl.loadState(state);
    expect(ctrl.scheduler.epoch).toBe(1);
    expect(() => ctrl.loadState({ nonsense: true })).toThrow(/not a compression state/);
    tf.dispose([x, labels, l]);
    ctrl.dispose();
  });

  it('refuses the same algorithm twice', () => {
    expect(() => compress(smallCnn(), [slimBuilder(1), slimBuilder(2)])).toThrow(/appears twice/);
  });
});
