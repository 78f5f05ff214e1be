import * as tf from '@tensorflow/tfjs-core';
import type {
  AlgorithmController,
  AlgorithmStatistics,
  CompressionScheduler,
  Json,
  LossContext,
} from './compression-types.js';
import type { Dataset } from './data.js';
import { TensorpressError } from './errors.js';
import { Executor } from './executor.js';
import type { Graph } from './graph.js';
import { stackingViolation, type StackingRule } from './stacking.js';
import { graphStatistics, type GraphStatistics } from './statistics.js';
import { TransformationLayout, applyLayout } from './transform.js';

/**
 * A configured algorithm, before it touches a model (NNCF's CompressionAlgorithmBuilder).
 * `compress` calls `register` on every builder with one shared layout, applies the merged layout
 * once, then calls `build` on each to get its controller.
 */
export interface CompressionBuilder {
  /** The algorithm's name, e.g. `quantization`, `filter_pruning`. */
  readonly algorithm: string;
  /** Order at shared points and in strip(): pruning 100 < sparsity 200 < quantization 300. */
  readonly priority: number;
  /** The stacking rule of its algorithm's definition (see `StackingRule`); `compress` refuses a pipeline that breaks one. */
  readonly stacking?: StackingRule;
  /** Phase 1: read the graph and add commands (hooks, structural changes) to the layout. */
  register(graph: Graph, layout: TransformationLayout): void;
  /** Phase 2: build the controller over the transformed model. */
  build(model: CompressedModel): AlgorithmController;
  /** Frees what `register` created (quantizer variables ...) when `compress` fails before this builder's `build`. */
  abandon?(): void;
}

/** The model being compressed: the transformed graph run by an executor with every hook in place. */
export interface CompressedModel {
  /** The graph after structural commands (hooks are not part of it). */
  readonly graph: Graph;
  /** Runs `graph` with the hooks; its variables are the model's weights. */
  readonly executor: Executor;
  /** The graph `compress` was given. */
  readonly original: Graph;
}

/** Statistics of a whole compression pipeline. */
export interface CompressionStatistics {
  readonly algorithms: readonly AlgorithmStatistics[];
  /** Params, FLOPs, BOPs, bytes of the original graph. */
  readonly original: GraphStatistics;
  /** The same of the stripped (deployable) graph. */
  readonly compressed: GraphStatistics;
}

/** The controller a training loop talks to: every stacked algorithm behind one object. */
export interface CompressionController {
  readonly model: CompressedModel;
  /** The individual controllers, in priority order. */
  readonly controllers: readonly AlgorithmController[];
  readonly scheduler: CompressionScheduler;
  /**
   * Runs every algorithm's data-driven initialisation (quantizer ranges ...) on up to `samples`
   * examples of `data` (default 1,024, batch 64). Call it once before training.
   */
  initialize(data: Dataset, options?: { samples?: number; batchSize?: number }): Promise<void>;
  /** Sum of every algorithm's compression loss (a scalar; zero when none adds one). */
  loss(ctx: LossContext): tf.Scalar;
  /** Every algorithm's extra trainable tensors. */
  trainableVariables(): readonly tf.Variable[];
  statistics(): CompressionStatistics;
  /** Controller state of every algorithm plus the schedule counters (weights are saved with the graph). */
  state(): Json;
  loadState(state: Json): void;
  /** The deployable graph: current weights, then each algorithm's strip in priority order. */
  strip(): Graph;
  /** Frees the executor and every algorithm's tensors. */
  dispose(): void;
}

/** Options of {@link compress}. */
export interface CompressOptions {
  /** Seed of the executor's stochastic ops. */
  seed?: number;
}

class CompositeScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;
  constructor(private readonly parts: readonly CompressionScheduler[]) {}
  step(): void {
    this.stepInEpoch++;
    for (const p of this.parts) p.step();
  }
  epochStep(): void {
    this.epoch++;
    this.stepInEpoch = 0;
    for (const p of this.parts) p.epochStep();
  }
}

const STATE_FORMAT = 'tensorpress.compression-state';

/**
 * Applies stacked algorithms to a graph: one merged transformation layout, one executor, one
 * controller. The input graph is never modified.
 */
export function compress(graph: Graph, builders: readonly CompressionBuilder[], options: CompressOptions = {}): CompressionController {
  const ordered = checkStacking(builders);
  const layout = new TransformationLayout();
  // A failure anywhere before every controller exists leaves no tensor behind: built controllers
  // are disposed, registered builders that were not built yet abandon their state.
  const registered: CompressionBuilder[] = [];
  const controllers: AlgorithmController[] = [];
  let executor: Executor | undefined;
  let model: CompressedModel;
  try {
    for (const b of ordered) {
      registered.push(b);
      b.register(graph, layout);
    }
    const applied = applyLayout(graph, layout);
    executor = new Executor(applied.graph, { hooks: applied.hooks, seed: options.seed ?? 0 });
    model = { graph: applied.graph, executor, original: graph };
    for (const b of ordered) controllers.push(b.build(model));
  } catch (e) {
    for (const c of controllers) c.dispose();
    for (const b of registered.slice(controllers.length)) b.abandon?.();
    executor?.dispose();
    throw e;
  }
  const scheduler = new CompositeScheduler(controllers.map((c) => c.scheduler));

  const strip = (): Graph => {
    let g = executor.snapshot();
    const ctx = { keptChannels: new Map<string, readonly number[]>() };
    for (const c of controllers) g = c.strip(g, ctx);
    return g;
  };

  return {
    model,
    controllers,
    scheduler,
    loss(ctx: LossContext): tf.Scalar {
      return tf.tidy(() => {
        let total: tf.Scalar = tf.scalar(0);
        for (const c of controllers) total = tf.add(total, c.loss(ctx));
        return total;
      });
    },
    async initialize(data: Dataset, opts: { samples?: number; batchSize?: number } = {}): Promise<void> {
      const ctx = { data, samples: opts.samples ?? 1024, batchSize: opts.batchSize ?? 64, executor };
      for (const c of controllers) if (c.initialize) await c.initialize(ctx);
    },
    trainableVariables: () => controllers.flatMap((c) => [...c.trainableVariables()]),
    statistics: () => ({
      algorithms: controllers.map((c) => c.statistics()),
      original: graphStatistics(graph),
      compressed: graphStatistics(strip()),
    }),
    state: () => ({
      format: STATE_FORMAT,
      version: 1,
      epoch: scheduler.epoch,
      stepInEpoch: scheduler.stepInEpoch,
      rng: executor.rngState(),
      algorithms: Object.fromEntries(controllers.map((c) => [c.algorithm, c.state()])),
    }),
    loadState(state: Json): void {
      const s = state as Record<string, Json> | null;
      if (!s || typeof s !== 'object' || Array.isArray(s) || s['format'] !== STATE_FORMAT) {
        throw new TensorpressError('STATE_INVALID', `not a compression state: expected { format: "${STATE_FORMAT}", ... }`);
      }
      const algos = s['algorithms'] as Record<string, Json> | undefined;
      for (const c of controllers) {
        if (!algos || !(c.algorithm in algos)) {
          throw new TensorpressError('STATE_INVALID', `the state has no entry for algorithm "${c.algorithm}" (at $.algorithms.${c.algorithm})`);
        }
      }
      for (const c of controllers) c.loadState(algos![c.algorithm]!);
      scheduler.epoch = Number(s['epoch'] ?? 0);
      scheduler.stepInEpoch = Number(s['stepInEpoch'] ?? 0);
      if (typeof s['rng'] === 'number') executor.setRngState(s['rng']);
    },
    strip,
    dispose(): void {
      for (const c of controllers) c.dispose();
      executor.dispose();
    },
  };
}

/**
 * The builders in priority order, after checking their stacking rules: no algorithm twice, at
 * most one of an exclusive group, and priorities that honour every `after` (builders are a set
 * here, so list order is not checked; `parsePipelineConfig` checks a config's order).
 */
function checkStacking(builders: readonly CompressionBuilder[]): CompressionBuilder[] {
  const ordered = [...builders].sort((a, b) => a.priority - b.priority);
  const v = stackingViolation(ordered);
  if (!v) return ordered;
  if (v.kind === 'order') {
    const [a, b] = [ordered[v.index]!, ordered[v.other]!];
    throw new TensorpressError(
      'CONFIG_INVALID',
      `"${a.algorithm}" (priority ${a.priority}) must run after "${b.algorithm}" (priority ${b.priority}), but its priority is not higher; the package that provides "${a.algorithm}" declares inconsistent stacking`,
    );
  }
  throw new TensorpressError('CONFIG_INVALID', `one pipeline: ${v.message}`, { stacking: v.kind });
}

/**
 * Applies the builders to the graph and frees everything at once: a dry run that finds, before any
 * training, every error a pipeline can only show on the graph (a plan entry or scope naming no
 * node, nothing prunable, an unreachable FLOPs target). Builders from `createBuilders` name their
 * config entry's JSON path in those errors. Builders keep state from their last `register`, so
 * pass fresh ones to the real `compress`.
 */
export function checkCompression(graph: Graph, builders: readonly CompressionBuilder[]): void {
  compress(graph, builders).dispose();
}

/** A scheduler that only counts (for algorithms without a schedule). */
export class CountingScheduler implements CompressionScheduler {
  epoch = 0;
  stepInEpoch = 0;
  step(): void {
    this.stepInEpoch++;
  }
  epochStep(): void {
    this.epoch++;
    this.stepInEpoch = 0;
  }
}

/**
 * An algorithm controller with defaults for every part an algorithm does not need: no loss, no
 * extra variables, a counting scheduler, empty statistics, no state, strip = identity, nothing to
 * free. Techniques override what they implement.
 */
export function defineController(
  algorithm: string,
  parts: Partial<Omit<AlgorithmController, 'algorithm'>> = {},
): AlgorithmController {
  return {
    algorithm,
    scheduler: new CountingScheduler(),
    loss: () => tf.scalar(0),
    trainableVariables: () => [],
    statistics: () => ({ algorithm, layers: [], total: {}, skipped: [] }),
    state: () => ({}),
    loadState: () => undefined,
    strip: (g) => g,
    dispose: () => undefined,
    ...parts,
  };
}
