import * as tf from '@tensorflow/tfjs-core';
import {
  CountingScheduler,
  GraphError,
  PRIORITY,
  TensorpressError,
  createRng,
  defineController,
  entryPaths,
  parseWithSchema,
  type AlgorithmDefinition,
  type AlgorithmStatistics,
  type CompressedModel,
  type CompressionBuilder,
  type CompressionScheduler,
  type EntryLocation,
  type Graph,
  type Json,
  type LayerStatistics,
  type ParamData,
  type Rng,
  type Scopes,
} from '@tensorpress/core-tensor';
import { z } from 'zod';
import { evalGate, nonZeroProbability, sampleGate, type HardConcreteParams } from './hard-concrete.js';
import { SPARSIFIER_STACKING, refusePruner } from './internal/mask-builder.js';
import { sparsityTotals } from './internal/stats.js';
import { weightTargets, type Skip, type WeightTarget } from './internal/targets.js';
import { SparsityScheduler, levelSchema, scheduleSchema } from './schedule.js';

const L0 = 'l0_sparsity';
const RB = 'rb_sparsity';
const VERSION = 1;
/** Uniform noise is drawn from [EPS, 1 − EPS] so log u and log(1 − u) stay finite. */
const EPS = 1e-6;
/** Variable names are unique per process (tfjs refuses a name twice); the serial keeps them apart. */
let serial = 0;

const gateFields = {
  /** Temperature β. */
  beta: z.number().gt(0).default(2 / 3),
  /** Stretch γ < 0. */
  gamma: z.number().lt(0).default(-0.1),
  /** Stretch ζ > 1. */
  zeta: z.number().gt(1).default(1.1),
  /** Starting log α of every gate (3: the deterministic gate is 1, a sample is 0 with probability ≈ 1%). */
  initLogAlpha: z.number().default(3),
  /**
   * log α = gateScale·θ with θ the trained variable: under Adam θ moves about one learning rate per
   * step, so a larger scale lets gates open and close faster than the weights move. Default 1.
   */
  gateScale: z.number().gt(0).default(1),
  /** Seed of the gate noise (training samples are reproducible). */
  seed: z.number().int().default(0),
  /**
   * Optimiser steps after which the gates freeze (NNCF RB's freeze epoch, counted in steps): from
   * then on every weight is multiplied by its deterministic gate, log α stops training, the penalty
   * is 0, and the weights fine-tune under the fixed gates. Unset: the gates train to the end.
   */
  freezeStep: z.number().int().positive().optional(),
};

/** The zod schema of {@link L0SparsityParams}. */
export const l0SparsitySchema = z
  .object({
    ...gateFields,
    /** Weight λ of the penalty λ·mean_j P(z_j ≠ 0) (the expected L0 norm per gated weight). */
    lambda: z.number().nonnegative().default(1),
  })
  .strict();

/** The zod schema of {@link RbSparsityParams}. */
export const rbSparsitySchema = z
  .object({
    ...gateFields,
    /** Target sparsity in [0, 1): the penalty pulls the expected density towards 1 − level. */
    level: levelSchema.default(0.5),
    /** How the target level rises (NNCF's RB: polynomial or exponential over a few epochs). */
    schedule: scheduleSchema.default({ type: 'constant' }),
    /** The density gap that costs `weight` (NNCF: 0.05): penalty = weight·((density − target)/tolerance)². */
    tolerance: z.number().gt(0).default(0.05),
    weight: z.number().nonnegative().default(1),
  })
  .strict();

/** Validated parameters of L0 sparsity (defaults applied). */
export type L0SparsityParams = z.output<typeof l0SparsitySchema>;
/** What {@link l0Sparsity} accepts. */
export interface L0SparsityOptions extends z.input<typeof l0SparsitySchema>, Scopes {}
/** Validated parameters of RB sparsity (defaults applied). */
export type RbSparsityParams = z.output<typeof rbSparsitySchema>;
/** What {@link rbSparsity} accepts. */
export interface RbSparsityOptions extends z.input<typeof rbSparsitySchema>, Scopes {}

type Params = ({ kind: 'l0' } & L0SparsityParams) | ({ kind: 'rb' } & RbSparsityParams);

interface Runtime {
  /** θ per target parameter (log α = gateScale·θ). */
  readonly theta: Map<string, tf.Variable>;
  rng: Rng;
  /** The deterministic gates once frozen (see `freezeStep`), by parameter. */
  frozen: Map<string, tf.Tensor> | undefined;
}

/** A counting scheduler that calls `after` after every step. */
class CallbackScheduler extends CountingScheduler {
  constructor(private readonly after: () => void) {
    super();
  }

  override step(): void {
    super.step();
    this.after();
  }
}

class L0Controller {
  readonly scheduler: CompressionScheduler;
  private readonly hc: HardConcreteParams;
  private level = 0;
  /** Optimiser steps since the start (what `freezeStep` counts). */
  private steps = 0;

  constructor(
    readonly algorithm: string,
    readonly params: Params,
    readonly model: CompressedModel,
    readonly targets: readonly WeightTarget[],
    readonly skipped: readonly Skip[],
    readonly rt: Runtime,
  ) {
    this.hc = { beta: params.beta, gamma: params.gamma, zeta: params.zeta };
    const after = (): void => this.afterStep();
    if (params.kind === 'rb') {
      const s = new SparsityScheduler(params.schedule, params.level, (l) => (this.level = l), after);
      s.start();
      this.scheduler = s;
    } else this.scheduler = new CallbackScheduler(after);
  }

  private afterStep(): void {
    this.steps++;
    if (this.params.freezeStep !== undefined && this.steps >= this.params.freezeStep) this.freeze();
  }

  /** Fixes every gate at its deterministic value (once): log α gets no gradient from then on. */
  private freeze(): void {
    if (this.rt.frozen) return;
    this.rt.frozen = new Map(this.targets.map((t) => [t.param, this.gate(t.param)]));
  }

  get frozen(): boolean {
    return this.rt.frozen !== undefined;
  }

  logAlpha(param: string): tf.Tensor {
    return tf.mul(this.rt.theta.get(param)!, this.params.gateScale);
  }

  /** Mean P(z ≠ 0) over every gated weight (a differentiable scalar). */
  private expectedDensity(): tf.Scalar {
    const total = this.targets.reduce((a, t) => a + t.size, 0);
    const sums = this.targets.map((t) => tf.sum(nonZeroProbability(this.logAlpha(t.param), this.hc)));
    return tf.div(tf.addN(sums), total);
  }

  loss(): tf.Scalar {
    // Frozen gates: nothing left to regularise (and no gradient reaches log α).
    if (this.frozen) return tf.scalar(0);
    return tf.tidy(() => {
      const density = this.expectedDensity();
      if (this.params.kind === 'l0') return tf.mul(density, this.params.lambda);
      const gap = tf.div(tf.sub(density, 1 - this.level), this.params.tolerance);
      return tf.mul(tf.square(gap), this.params.weight);
    });
  }

  /** The deterministic gate of a weight. */
  gate(param: string): tf.Tensor {
    return tf.tidy(() => evalGate(this.logAlpha(param), this.hc));
  }

  statistics(): AlgorithmStatistics {
    const zeros = new Map<string, number>();
    const layers: LayerStatistics[] = this.targets.map((t) => {
      const [z, p] = tf.tidy(() => {
        const g = this.gate(t.param);
        return [tf.sum(tf.cast(tf.equal(g, 0), 'float32')), tf.mean(nonZeroProbability(this.logAlpha(t.param), this.hc))];
      });
      const nz = Math.round(z!.dataSync()[0]!);
      const density = p!.dataSync()[0]!;
      tf.dispose([z!, p!]);
      zeros.set(t.param, nz);
      return { node: t.node, op: t.op, weight: t.param, weights: t.size, zeros: nz, sparsity: nz / t.size, expectedDensity: density };
    });
    const d = tf.tidy(() => this.expectedDensity());
    const density = d.dataSync()[0]!;
    d.dispose();
    return {
      algorithm: this.algorithm,
      layers,
      total: {
        ...sparsityTotals(this.model.graph, this.targets, zeros),
        expectedDensity: density,
        ...(this.params.kind === 'rb' ? { level: this.level, targetLevel: this.params.level } : { lambda: this.params.lambda }),
        epoch: this.scheduler.epoch,
        steps: this.steps,
        frozen: this.frozen,
      },
      skipped: this.skipped,
    };
  }

  state(): Json {
    const sched = this.scheduler instanceof SparsityScheduler ? this.scheduler.state() : { epoch: this.scheduler.epoch, stepInEpoch: this.scheduler.stepInEpoch };
    return { version: VERSION, rng: this.rt.rng.state(), level: this.level, steps: this.steps, scheduler: sched };
  }

  loadState(state: Json): void {
    const s = state as { rng?: unknown; level?: unknown; steps?: unknown; scheduler?: unknown } | null;
    if (!s || typeof s !== 'object' || typeof s.rng !== 'number' || typeof s.scheduler !== 'object' || s.scheduler === null) {
      throw new TensorpressError('STATE_INVALID', `${this.algorithm} state: expected { rng, level, scheduler }`);
    }
    this.rt.rng = createRng({ state: s.rng });
    const sched = s.scheduler as Record<string, unknown>;
    if (this.scheduler instanceof SparsityScheduler) this.scheduler.loadState(sched);
    else {
      const c = this.scheduler as CountingScheduler;
      c.epoch = Number(sched['epoch'] ?? 0);
      c.stepInEpoch = Number(sched['stepInEpoch'] ?? 0);
    }
    if (typeof s.level === 'number') this.level = s.level;
    this.steps = typeof s.steps === 'number' ? s.steps : 0;
    // θ is restored with the trainable variables; the frozen gates follow from it.
    if (this.rt.frozen) tf.dispose([...this.rt.frozen.values()]);
    this.rt.frozen = undefined;
    if (this.params.freezeStep !== undefined && this.steps >= this.params.freezeStep) this.freeze();
  }

  /** Every gated weight multiplied by its deterministic gate: exact zeros where the gate is closed. */
  strip(graph: Graph): Graph {
    const updates = new Map<string, { data: ParamData }>();
    for (const t of this.targets) {
      const p = graph.param(t.param);
      if (!p) throw new GraphError('GRAPH_INVALID', `${this.algorithm} strip: the weight "${t.param}" of "${t.node}" is gone from the graph`, { node: t.node });
      if (p.data.length !== t.size) {
        throw new TensorpressError(
          'TRANSFORM_INVALID',
          `${this.algorithm} strip: "${t.param}" changed shape in an earlier strip (filter pruning); L0 gates cannot follow removed channels: leave "${t.node}" out with ignoredScopes or use magnitude_sparsity`,
          { node: t.node },
        );
      }
      const g = this.gate(t.param);
      const z = g.dataSync();
      g.dispose();
      updates.set(t.param, { data: Float32Array.from(p.data as Float32Array, (v, i) => (z[i] === 0 ? 0 : v * z[i]!)) });
    }
    return graph.withParams(updates);
  }

  dispose(): void {
    for (const v of this.rt.theta.values()) v.dispose();
    this.rt.theta.clear();
    if (this.rt.frozen) tf.dispose([...this.rt.frozen.values()]);
    this.rt.frozen = undefined;
  }
}

function createBuilder(algorithm: string, params: Params, scopes: Scopes, location?: EntryLocation): CompressionBuilder {
  const paths = entryPaths(location);
  let found: { targets: WeightTarget[]; skipped: Skip[] } | undefined;
  let rt: Runtime = { theta: new Map(), rng: createRng(params.seed), frozen: undefined };
  let ctrl: L0Controller | undefined;
  return {
    algorithm,
    priority: PRIORITY.sparsity,
    stacking: SPARSIFIER_STACKING,
    register(graph, layout) {
      rt = { theta: new Map(), rng: createRng(params.seed), frozen: undefined };
      ctrl = undefined;
      found = weightTargets(graph, scopes, paths.entry);
      const local = rt;
      const hc = { beta: params.beta, gamma: params.gamma, zeta: params.zeta };
      for (const t of found.targets) {
        layout.addHook(
          { type: 'weight', node: t.node, input: 1 },
          (x, hook) => {
            const fixed = local.frozen?.get(t.param);
            if (fixed) return tf.mul(x, fixed);
            const theta = local.theta.get(t.param);
            if (!theta) return x;
            const logAlpha = tf.mul(theta, params.gateScale);
            if (!hook.training) return tf.mul(x, evalGate(logAlpha, hc));
            const u = tf.randomUniform(t.shape as number[], EPS, 1 - EPS, 'float32', local.rng.seed());
            return tf.mul(x, sampleGate(logAlpha, u, hc));
          },
          { algorithm, priority: PRIORITY.sparsity, id: t.param },
        );
      }
    },
    build(model) {
      const f = found!;
      refusePruner(
        model,
        algorithm,
        paths.entry,
        'L0 gates are per weight of the unpruned layers and cannot follow the channels filter pruning removes; use magnitude_sparsity with filter pruning, or strip the pruned model first',
      );
      try {
        for (const t of f.targets) {
          const init = tf.fill(t.shape as number[], params.initLogAlpha / params.gateScale);
          rt.theta.set(t.param, tf.variable(init, true, `tp_sparsity/${algorithm}/${t.param}/theta/${serial++}`));
          init.dispose();
        }
        ctrl = new L0Controller(algorithm, params, model, f.targets, f.skipped, rt);
      } catch (e) {
        for (const v of rt.theta.values()) v.dispose();
        rt.theta.clear();
        throw e;
      }
      const c = ctrl;
      return defineController(algorithm, {
        scheduler: c.scheduler,
        loss: () => c.loss(),
        trainableVariables: () => [...rt.theta.values()],
        statistics: () => c.statistics(),
        state: () => c.state(),
        loadState: (s) => c.loadState(s),
        strip: (g) => c.strip(g),
        dispose: () => c.dispose(),
      });
    },
  };
}

function split<T extends Scopes>(options: T): { scopes: Scopes; rest: Omit<T, 'ignoredScopes' | 'targetScopes'> } {
  const { ignoredScopes, targetScopes, ...rest } = options;
  return { scopes: { ignoredScopes: ignoredScopes ?? [], targetScopes: targetScopes ?? [] }, rest };
}

/**
 * L0 regularisation with hard-concrete gates (Louizos et al.): every weight is multiplied by a
 * gate sampled from a hard-concrete distribution with a trained log α; the compression loss is
 * λ·mean P(gate ≠ 0). At eval (and in `strip()`) the gate is deterministic, and exactly 0 where
 * σ(log α)(ζ − γ) + γ ≤ 0.
 */
export function l0Sparsity(options: L0SparsityOptions = {}): CompressionBuilder {
  const { scopes, rest } = split(options);
  return createBuilder(L0, { kind: 'l0', ...parseWithSchema(l0SparsitySchema, rest) }, scopes);
}

/**
 * RB sparsity: the same hard-concrete gates, with the penalty weight·((density − (1 − level))/tolerance)²
 * pulling the expected density towards a target level that follows a schedule (NNCF's RB loss).
 */
export function rbSparsity(options: RbSparsityOptions = {}): CompressionBuilder {
  const { scopes, rest } = split(options);
  return createBuilder(RB, { kind: 'rb', ...parseWithSchema(rbSparsitySchema, rest) }, scopes);
}

/** The `l0_sparsity` algorithm for pipeline configs. */
export const l0SparsityDefinition: AlgorithmDefinition<L0SparsityParams> = {
  algorithm: L0,
  version: VERSION,
  packageName: '@tensorpress/sparsity',
  description: 'L0 regularisation with hard-concrete gates (expected-L0 penalty, deterministic gates at eval)',
  schema: l0SparsitySchema as unknown as z.ZodType<L0SparsityParams>,
  stacking: SPARSIFIER_STACKING,
  create: (config, location) => createBuilder(L0, { kind: 'l0', ...config.params }, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};

/** The `rb_sparsity` algorithm for pipeline configs. */
export const rbSparsityDefinition: AlgorithmDefinition<RbSparsityParams> = {
  algorithm: RB,
  version: VERSION,
  packageName: '@tensorpress/sparsity',
  description: 'Hard-concrete gates with a penalty towards a scheduled target density (RB sparsity)',
  schema: rbSparsitySchema as unknown as z.ZodType<RbSparsityParams>,
  stacking: SPARSIFIER_STACKING,
  create: (config, location) => createBuilder(RB, { kind: 'rb', ...config.params }, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};
