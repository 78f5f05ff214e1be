import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  PRIORITY,
  TensorpressError,
  checkScopeNames,
  defineController,
  entryPaths,
  parseWithSchema,
  scopeFilter,
  type AlgorithmController,
  type AlgorithmDefinition,
  type CompressionBuilder,
  type EntryLocation,
  type Graph,
  type InitContext,
  type Json,
  type LayerStatistics,
  type LrScheduleFn,
  type Scopes,
  type StackingRule,
  type StripContext,
} from '@tensorpress/core-tensor';
import { ActivationBinarizer } from './activation.js';
import { methodBits, weightParts, type WeightMethod } from './binarizers.js';
import { BINARY_WEIGHT_OPS, placeBinarizers, type BinaryPlacement } from './placement.js';
import { binarizationSchema, type BinarizationInput, type BinarizationParams } from './schema.js';
import { StagedScheduler, stagedLearningRate } from './schedule.js';
import { checkScalingMap, scalingMap } from './scaling-map.js';
import { buildBinaryGraph, int8Codes, type BinaryGraphPlan, type ScalingMapSite } from './strip.js';

const ALGORITHM = 'binarization';
const VERSION = 1;

/**
 * One binarizer per pipeline, like one quantizer: each turns the float weights into integer codes.
 * Listed after any pruner or sparsifier (DESIGN §3: pruning 100 < sparsity 200 < binarization 250).
 */
export const BINARIZER_STACKING: StackingRule = Object.freeze({ group: 'binarizer', groupAction: 'binarize weights', after: Object.freeze(['pruner', 'sparsifier']) });

/** Options of {@link binarization}: the parameters plus scopes. */
export interface BinarizationOptions extends BinarizationInput, Scopes {}

/** The binarization controller: the core contract plus the staged schedule's learning rate. */
export interface BinarizationController extends AlgorithmController {
  /** The learning rate of the staged schedule over `totalEpochs` for `fit`'s `lrSchedule` (constant without a staged schedule). */
  learningRate(totalEpochs: number): LrScheduleFn;
}

class WeightSite {
  previous: tf.Variable | undefined;
  constructor(
    readonly node: string,
    readonly op: string,
    readonly shape: readonly number[],
    readonly method: WeightMethod,
    private readonly params: BinarizationParams,
  ) {}
  private options(): Parameters<typeof weightParts>[2] {
    const w = this.params.weights;
    return { center: w.center, ste: w.ste, ternaryThreshold: w.ternaryThreshold, ternaryGap: w.ternaryGap, ...(this.previous ? { previous: this.previous } : {}) };
  }
  apply(x: tf.Tensor, training: boolean): tf.Tensor {
    const gap = this.params.weights.ternaryGap > 0 && (this.method === 'twn' || this.method === 'ternary');
    return tf.tidy(() => {
      const { codes, scale } = weightParts(x, this.method, this.options());
      if (gap && training) {
        const c = tf.clone(codes);
        if (this.previous) this.previous.assign(c);
        else this.previous = tf.variable(c, false);
      }
      return tf.mul(codes, scale);
    });
  }
  /** Codes and scales of the current weight, as the forward pass computes them in eval mode. */
  parts(w: tf.Tensor): { codes: Int8Array; scale: Float32Array } {
    const [c, s] = tf.tidy(() => {
      const p = weightParts(w, this.method, this.options());
      return [p.codes, p.scale];
    });
    const out = { codes: int8Codes(c!), scale: Float32Array.from(s!.dataSync()) };
    tf.dispose([c!, s!]);
    return out;
  }
}

interface ActivationSite {
  readonly value: string;
  readonly consumers: string[];
  readonly binarizer: ActivationBinarizer;
}

function createBuilder(params: BinarizationParams, scopes: Scopes, location?: EntryLocation): CompressionBuilder {
  const paths = entryPaths(location);
  const inScope = scopeFilter(scopes, paths.entry);
  const wm = params.weights.method;
  const am = params.activations.method;
  if (wm === 'none' && am === 'none') {
    throw new ConfigError(`${paths.params}.weights.method`, 'binarization: both weights.method and activations.method are "none", so nothing would be binarized');
  }
  let placement: BinaryPlacement | undefined;
  let weights: WeightSite[] = [];
  let activations: ActivationSite[] = [];
  let scaled: ScalingMapSite[] = [];
  let scheduler = new StagedScheduler(params.schedule);
  const observing = { on: false };
  return {
    algorithm: ALGORITHM,
    priority: PRIORITY.binarization,
    stacking: BINARIZER_STACKING,
    register(graph, layout) {
      // A new register owns new sites (an earlier build's controller keeps its own).
      weights = [];
      activations = [];
      checkScopeNames(scopes, graph.nodes.map((n) => n.name), paths.entry);
      placement = placeBinarizers(graph, { inScope, scopes, fullPrecision: params.fullPrecision, paths });
      if (placement.nodes.length === 0) {
        throw new ConfigError(paths.entry, `binarization: no layer to binarize: ${placement.skipped.map((s) => `"${s.node}": ${s.reason}`).join('; ') || 'the graph has no Conv, Gemm or MatMul in scope'}`);
      }
      scheduler = new StagedScheduler(params.schedule);
      const sched = scheduler;
      const opts = { algorithm: ALGORITHM, priority: PRIORITY.binarization };
      weights = [];
      activations = [];
      scaled = [];
      if (wm !== 'none') {
        for (const n of placement.nodes) {
          const site = new WeightSite(n.name, n.op, graph.param(n.inputs[1]!)!.shape, wm, params);
          weights.push(site);
          layout.addHook({ type: 'weight', node: n.name, input: 1 }, (x, ctx) => (sched.stage.weights ? site.apply(x, ctx.training) : x), { ...opts, id: `w:${n.name}` });
        }
      }
      if (am !== 'none') {
        const byValue = new Map<string, ActivationSite>();
        for (const n of placement.nodes) {
          const v = n.inputs[0]!;
          let site = byValue.get(v);
          if (!site) {
            const channels = graph.info(v).shape.at(-1) ?? 1;
            site = { value: v, consumers: [], binarizer: new ActivationBinarizer(`a:${v}`, channels, { method: am, ste: params.activations.ste, learned: params.activations.learned }) };
            byValue.set(v, site);
          }
          site.consumers.push(n.name);
          const s = site;
          if (params.activations.scalingMap) {
            checkScalingMap(n, `${paths.params}.activations.scalingMap`);
            const kernel = graph.param(n.inputs[1]!)!.shape.slice(0, 2);
            const node = n;
            let k: tf.Tensor | undefined;
            scaled.push({ node: n.name, kernel });
            // K is computed from the real-valued input before it is binarized, and multiplies the output.
            layout.addHook({ type: 'pre', node: n.name, input: 0 }, (x) => {
              k = !observing.on && sched.stage.activations ? scalingMap(x, node, kernel) : undefined;
              return x;
            }, { ...opts, id: `k-in:${n.name}` });
            layout.addHook({ type: 'post', node: n.name, output: 0 }, (y) => {
              if (!k) return y;
              const out = tf.mul(y, k);
              k = undefined;
              return out;
            }, { ...opts, id: `k-out:${n.name}` });
          }
          layout.addHook(
            { type: 'pre', node: n.name, input: 0 },
            (x) => {
              if (observing.on) {
                if (s.consumers[0] === n.name) s.binarizer.observe(x);
                return x;
              }
              if (!sched.stage.activations) return x;
              if (!s.binarizer.initialized) {
                throw new TensorpressError(
                  'STATE_INVALID',
                  `binarization: activation "${v}" has no scale and threshold yet: call controller.initialize(data) (fit does it for you) before running the model`,
                  { value: v },
                );
              }
              return s.binarizer.apply(x);
            },
            { ...opts, id: `a:${n.name}` },
          );
        }
        activations = [...byValue.values()];
      }
      if (params.bnMomentum !== undefined) {
        for (const n of graph.nodes) {
          if (n.op !== 'BatchNormalization' || !inScope(n.name)) continue;
          layout.add({ kind: 'replace-node', ...opts, node: n.name, replacement: { nodes: [{ ...n, attrs: { ...n.attrs, momentum: params.bnMomentum } }] } });
        }
      }
    },
    build(model) {
      return binarizationController(params, model.executor, placement!, weights, activations, scaled, scheduler, observing);
    },
    abandon() {
      for (const a of activations) a.binarizer.dispose();
      for (const w of weights) w.previous?.dispose();
      weights = [];
      activations = [];
    },
  };
}

function binarizationController(
  params: BinarizationParams,
  executor: InitContext['executor'],
  placement: BinaryPlacement,
  weights: readonly WeightSite[],
  activations: readonly ActivationSite[],
  scaled: readonly ScalingMapSite[],
  scheduler: StagedScheduler,
  observing: { on: boolean },
): BinarizationController {
  const initialize = async (ctx: InitContext): Promise<void> => {
    const todo = activations.filter((a) => !a.binarizer.initialized);
    if (todo.length === 0) return;
    observing.on = true;
    try {
      let seen = 0;
      for (const b of ctx.data.batches(ctx.batchSize)) {
        if (seen >= ctx.samples) {
          b.x.dispose();
          b.y.dispose();
          break;
        }
        seen += b.x.shape[0]!;
        const outs = executor.run(b.x);
        tf.dispose([...outs, b.x, b.y]);
      }
    } finally {
      observing.on = false;
    }
    for (const a of todo) a.binarizer.finishInit();
  };

  /**
   * The original channels of `value` that survive an earlier strip (pruning): the kept output
   * channels of the nearest node upstream that the strip context names, through channel-preserving
   * ops (ReLU, pooling, BN, Add).
   */
  const keptOf = (graph: Graph, value: string, channels: number, ctx?: StripContext): readonly number[] => {
    let v = value;
    for (let hops = 0; hops < graph.nodes.length; hops++) {
      const p = graph.producer(v);
      if (!p) break;
      const kept = ctx?.keptChannels.get(p.node.name);
      if (kept) return kept;
      if (BINARY_WEIGHT_OPS.has(p.node.op)) break;
      const next = p.node.inputs.find((i) => i !== '' && !graph.isParam(i));
      if (next === undefined) break;
      v = next;
    }
    throw new TensorpressError('STATE_INVALID', `binarization: activation "${value}" has ${channels} channels but its threshold more, and no earlier strip said which remain`, { value });
  };

  const stripPlan = (graph: Graph, ctx?: StripContext): BinaryGraphPlan => {
    const stage = scheduler.stage;
    return {
      weights: stage.weights
        ? weights.map((site) => {
            const node = graph.requireNode(site.node);
            const p = graph.param(node.inputs[1]!);
            if (!p) throw new TensorpressError('STATE_INVALID', `binarization: node "${site.node}" has no weight parameter to strip`, { node: site.node });
            const w = tf.tensor(p.data as Float32Array, [...p.shape]);
            try {
              return { node: site.node, ...site.parts(w) };
            } finally {
              w.dispose();
            }
          })
        : [],
      activations: stage.activations
        ? activations.map((a) => {
            if (!a.binarizer.initialized) throw new TensorpressError('STATE_INVALID', `binarization: strip() before the activation "${a.value}" was initialised`);
            let v = a.binarizer.values();
            const channels = graph.info(a.value).shape.at(-1) ?? 1;
            if (v && v.threshold.length !== channels) {
              const kept = keptOf(graph, a.value, channels, ctx);
              const t = v.threshold;
              v = { scale: v.scale, threshold: Float32Array.from(kept, (k) => t[k]!) };
            }
            return { id: a.value, value: a.value, consumers: [...a.consumers], method: a.binarizer.options.method, ...(v ? { learned: { scale: v.scale, threshold: v.threshold } } : {}) };
          })
        : [],
      scalingMaps: stage.activations ? scaled : [],
    };
  };

  const base = defineController(ALGORITHM, {
    initialize,
    scheduler,
    trainableVariables: () => activations.flatMap((a) => a.binarizer.variables()),
    statistics: () => {
      const layers: LayerStatistics[] = [
        ...weights.map((w) => {
          const n = w.shape.reduce((a, b) => a * b, 1);
          const bits = methodBits(w.method);
          const filters = w.method === 'bnn' || w.method === 'ternary' ? 0 : w.method === 'dorefa' ? 1 : w.shape.at(-1)!;
          const packed = Math.ceil((n * bits) / 8) + 4 * filters;
          return { node: w.node, op: w.op, kind: 'weight', method: w.method, weightBits: bits, fp32Bytes: 4 * n, packedBytes: packed, compression: (4 * n) / packed };
        }),
        ...activations.map((a) => ({ node: a.value, op: 'activation', kind: 'activation', method: a.binarizer.options.method, consumers: [...a.consumers], initialized: a.binarizer.initialized })),
      ];
      const stage = scheduler.stage;
      return {
        algorithm: ALGORITHM,
        layers,
        total: { binarizedWeights: weights.length, binarizedActivations: activations.length, weightsActive: stage.weights, activationsActive: stage.activations },
        skipped: placement.skipped.map((s) => ({ node: s.node, reason: s.reason })),
      };
    },
    state: () => ({
      epoch: scheduler.epoch,
      globalStep: scheduler.globalStep,
      activations: Object.fromEntries(activations.map((a) => [a.value, a.binarizer.state()])),
    }),
    loadState: (state: Json) => {
      const s = state as { epoch?: unknown; globalStep?: unknown; activations?: Record<string, Json> } | null;
      if (!s || typeof s !== 'object' || typeof s.epoch !== 'number' || typeof s.globalStep !== 'number') {
        throw new TensorpressError('STATE_INVALID', 'binarization: state must be { epoch, globalStep, activations }');
      }
      for (const a of activations) {
        const st = s.activations?.[a.value];
        if (st === undefined) throw new TensorpressError('STATE_INVALID', `binarization: the state has no entry for activation "${a.value}"`);
        a.binarizer.loadState(st);
      }
      scheduler.epoch = s.epoch;
      scheduler.globalStep = s.globalStep;
    },
    strip: (graph: Graph, ctx?: StripContext) => buildBinaryGraph(graph, stripPlan(graph, ctx)),
    dispose: () => {
      for (const a of activations) a.binarizer.dispose();
      for (const w of weights) w.previous?.dispose();
    },
  });
  return { ...base, learningRate: (totalEpochs: number) => stagedLearningRate(params.schedule, totalEpochs) };
}

/**
 * Binarization (BNN, XNOR-Net, DoReFa binary weights, TWN, ternary) as a builder for `compress`.
 * Options are validated at once: a ternary threshold outside (0, 1) is a `ConfigError` naming
 * `$.weights.ternaryThreshold`.
 */
export function binarization(options: BinarizationOptions = {}): CompressionBuilder {
  const { ignoredScopes, targetScopes, ...rest } = options;
  const params = parseWithSchema(binarizationSchema, rest);
  return createBuilder(params, { ignoredScopes: ignoredScopes ?? [], targetScopes: targetScopes ?? [] });
}

/** The `binarization` algorithm for pipeline configs (`parsePipelineConfig` / `createBuilders`). */
export const binarizationDefinition: AlgorithmDefinition<BinarizationParams> = {
  algorithm: ALGORITHM,
  version: VERSION,
  packageName: '@tensorpress/binary',
  description: 'Binary and ternary weights and activations (BNN, XNOR-Net, TWN) with a staged schedule and BN-threshold fusion',
  schema: binarizationSchema as unknown as AlgorithmDefinition<BinarizationParams>['schema'],
  stacking: BINARIZER_STACKING,
  create: (config, location) => createBuilder(config.params, { ignoredScopes: config.ignoredScopes, targetScopes: config.targetScopes }, location),
};
