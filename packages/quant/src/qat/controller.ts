import * as tf from '@tensorflow/tfjs-core';
import {
  ConfigError,
  PRIORITY,
  TensorpressError,
  checkScopeNames,
  defineController,
  didYouMean,
  nodePattern,
  type AlgorithmController,
  type CompressionBuilder,
  type Executor,
  type Graph,
  type InitContext,
  type Json,
  type LayerStatistics,
  type StripContext,
} from '@tensorpress/core-tensor';
import { placeQuantizers, type ActivationPlacement, type Placement, type WeightPlacement } from '../placement.js';
import { checkBits, quantizeToCodes } from '../quant-params.js';
import {
  buildQuantizedGraph,
  type ActivationQuantization,
  type DynamicQuantization,
  type QuantizedGraphPlan,
  type WeightQuantization,
} from '../strip.js';
import type { ActivationSite, Quantizer, WeightSite } from './quantizer.js';
import { QUANTIZER_STACKING } from './definition.js';
import { collectActivationStats, mergeStats } from './range-init.js';
import type { BitsPlanEntry, QatSettings } from './settings.js';

/** What a method contributes: how to make its quantizers. */
export interface QatMethod {
  readonly algorithm: string;
  /** Calibrated, not trained (post-training quantization): no trainable variables are handed to the optimizer. */
  readonly frozen?: boolean;
  readonly settings: QatSettings;
  weight(site: WeightSite): Quantizer;
  activation(site: ActivationSite): Quantizer;
}

interface WeightEntry {
  readonly place: WeightPlacement;
  readonly q: Quantizer;
}
interface ActivationEntry {
  readonly place: ActivationPlacement;
  readonly q: Quantizer;
}

interface PlanMatcher {
  /** The last plan entry matching a node (later entries override earlier ones). */
  (node: string): BitsPlanEntry | undefined;
  /** Throws a ConfigError at the first entry that matches none of `quantized` (the nodes this method quantizes). */
  checkCoverage(graph: Graph, quantized: ReadonlySet<string>, algorithm: string): void;
}

function planMatcher(plan: readonly BitsPlanEntry[], paramsPath: string): PlanMatcher {
  const pathOf = (i: number): string => `${paramsPath}.plan[${i}].node`;
  const compiled = plan.map((e, i) => ({ e, matches: nodePattern(e.node, pathOf(i)) }));
  const match = (node: string): BitsPlanEntry | undefined => {
    let hit: BitsPlanEntry | undefined;
    for (const { e, matches } of compiled) if (matches(node)) hit = e;
    return hit;
  };
  return Object.assign(match, {
    checkCoverage(graph: Graph, quantized: ReadonlySet<string>, algorithm: string): void {
      compiled.forEach(({ e, matches }, i) => {
        if ([...quantized].some(matches)) return;
        // An entry that touches nothing would leave the user's bit widths silently unused.
        const node = graph.node(e.node);
        const message = e.node.startsWith('{re}')
          ? `"${e.node}" matches no node that ${algorithm} quantizes`
          : node
            ? `node "${e.node}" (${node.op}) is not quantized by ${algorithm} (no quantized weight or input, or out of scope)`
            : `"${e.node}" names no node of the graph${didYouMean(e.node, quantized)}`;
        throw new ConfigError(pathOf(i), message, { node: e.node });
      });
    },
  });
}

/**
 * The compression builder shared by every QAT method: places quantizers (placement.ts), registers
 * fake-quant hooks at quantization priority, initialises activation ranges from data, reports
 * statistics and strips to integer weights with Q/DQ.
 */
export function qatBuilder(method: QatMethod): CompressionBuilder {
  const s = method.settings;
  checkBits(s.weightBits, `${method.algorithm}: weights`);
  checkBits(s.activationBits, `${method.algorithm}: activations`);
  const planOf = planMatcher(s.plan, s.paths.params);
  for (const [i, e] of s.plan.entries()) {
    if (e.weightBits !== undefined) checkBits(e.weightBits, `${method.algorithm}: plan[${i}] (node "${e.node}") weightBits`);
    if (e.activationBits !== undefined) checkBits(e.activationBits, `${method.algorithm}: plan[${i}] (node "${e.node}") activationBits`);
  }
  let weights: WeightEntry[] = [];
  let activations: ActivationEntry[] = [];
  let placement: Placement | undefined;
  const id = (x: string): string => `${method.algorithm}:${x}`;
  return {
    algorithm: method.algorithm,
    priority: PRIORITY.quantization,
    stacking: QUANTIZER_STACKING,
    register(graph: Graph, layout) {
      // A new register owns new quantizers (an earlier build's controller keeps its own).
      weights = [];
      activations = [];
      checkScopeNames(s.scopes, graph.nodes.map((n) => n.name), s.paths.entry);
      placement = placeQuantizers(graph, {
        inScope: s.inScope,
        activations: s.quantizeActivations,
        quantizeInputs: s.quantizeInputs,
        ...(s.activationOps ? { activationOps: s.activationOps } : {}),
        ...(s.unifiedScales ? { unifiedScales: s.unifiedScales } : {}),
      });
      // Every check before the first quantizer is made: a config error leaves no tensor behind.
      for (const place of placement.weights) {
        if (s.perChannel && place.axis < 0) {
          throw new ConfigError(
            `${s.paths.params}.weights.perChannel`,
            `${method.algorithm}: node "${place.node}" (${place.op}) has no output-channel axis for per-channel weights (its weight ` +
              `"${place.param}" has shape [${graph.param(place.param)!.shape.join(', ')}]); set perChannel: false or add the node to ignoredScopes`,
            { node: place.node, setting: 'perChannel' },
          );
        }
      }
      planOf.checkCoverage(graph, new Set([...placement.weights.map((w) => w.node), ...placement.activations.flatMap((a) => a.consumers)]), method.algorithm);
      weights = placement.weights.map((place) => {
        const p = graph.param(place.param)!;
        const bits = planOf(place.node)?.weightBits ?? s.weightBits;
        const w = tf.tensor(p.data as Float32Array, [...p.shape]);
        try {
          const q = method.weight({ id: place.id, node: place.node, op: place.op, weight: w, bits, perChannel: s.perChannel && place.axis >= 0, axis: place.axis });
          return { place, q };
        } finally {
          w.dispose();
        }
      });
      activations = placement.activations.map((place) => {
        const bits = Math.max(...place.consumers.map((c) => planOf(c)?.activationBits ?? s.activationBits));
        return { place, q: method.activation({ id: place.id, values: place.values, bits }) };
      });
      const opts = { algorithm: method.algorithm, priority: PRIORITY.quantization };
      for (const { place, q } of weights) {
        layout.addHook({ type: 'weight', node: place.node, input: 1 }, (x, ctx) => q.apply(x, ctx.training), { ...opts, id: id(place.id) });
      }
      for (const { place, q } of activations) {
        place.points.forEach((point, i) => {
          layout.addHook(
            point,
            (x, ctx) => {
              if (!q.initialized) {
                throw new TensorpressError(
                  'STATE_INVALID',
                  `${method.algorithm}: activation quantizer "${place.id}" has no range yet: call controller.initialize(data) ` +
                    '(fit does it for you) before running the model',
                  { quantizer: place.id },
                );
              }
              return q.apply(x, ctx.training);
            },
            { ...opts, id: id(`${place.id}#${i}`) },
          );
        });
      }
    },
    build(model) {
      return qatController(method, model.executor, weights, activations, placement!);
    },
    abandon() {
      for (const { q } of [...weights, ...activations]) q.dispose();
      weights = [];
      activations = [];
    },
  };
}

function qatController(
  method: QatMethod,
  executor: Executor,
  weights: readonly WeightEntry[],
  activations: readonly ActivationEntry[],
  placement: Placement,
): AlgorithmController {
  const s = method.settings;
  const all = (): Quantizer[] => [...weights.map((w) => w.q), ...activations.map((a) => a.q)];

  const initialize = async (ctx: InitContext): Promise<void> => {
    const todo = activations.filter((a) => !a.q.initialized);
    if (todo.length === 0) return;
    const values = todo.flatMap((a) => [...a.place.observed]);
    const stats = await collectActivationStats(executor, { ...ctx, samples: Math.min(ctx.samples, s.rangeInit.samples) }, values, s.rangeInit.type, {
      bits: s.activationBits,
      // Always the data's own sign: a symmetric quantizer of non-negative data is unsigned [0, t].
      symmetric: false,
      ...(s.rangeInit.maxPercentile !== undefined ? { percentile: s.rangeInit.maxPercentile } : {}),
      ...(s.rangeInit.minPercentile !== undefined ? { lowerPercentile: s.rangeInit.minPercentile } : {}),
      ...(s.rangeInit.klFloorPercentile !== undefined ? { klFloorPercentile: s.rangeInit.klFloorPercentile } : {}),
    });
    for (const a of todo) a.q.initActivation(mergeStats(a.place.observed.map((v) => stats.get(v)!)));
  };

  const stripPlan = (graph: Graph, ctx?: StripContext): QuantizedGraphPlan => {
    const ws = weights.map(({ place, q }): WeightQuantization => {
      const p = graph.param(graph.requireNode(place.node).inputs[1]!)!;
      const w = tf.tensor(p.data as Float32Array, [...p.shape]);
      let grid = q.grid(w);
      const channels = place.axis >= 0 ? p.shape[place.axis]! : 1;
      if (grid.scale.length > 1 && grid.scale.length !== channels) {
        // An earlier strip (pruning) removed output channels: keep the scales of the survivors.
        const kept = ctx?.keptChannels.get(place.node);
        if (!kept || kept.length !== channels) {
          w.dispose();
          throw new TensorpressError(
            'STATE_INVALID',
            `${method.algorithm}: node "${place.node}" has ${channels} output channels but its quantizer ${grid.scale.length}, and no earlier strip said which remain`,
            { node: place.node },
          );
        }
        const g = grid;
        grid = { ...g, scale: Float32Array.from(kept, (k) => g.scale[k]!), zeroPoint: Int32Array.from(kept, (k) => g.zeroPoint[k]!) };
      }
      // Per-channel grids are affine: codes come straight from the weight (what fake-quant computed).
      // Per-tensor ones may transform first (DoReFa's tanh): take the codes of the fake-quant output.
      const src = grid.scale.length > 1 ? w : tf.tidy(() => q.apply(w, false));
      const codesT = quantizeToCodes(src, grid.scale.length === 1 ? grid.scale[0]! : grid.scale, grid.zeroPoint.length === 1 ? grid.zeroPoint[0]! : grid.zeroPoint, grid.range, place.axis);
      const codes = Int32Array.from(codesT.dataSync());
      tf.dispose([...new Set([w, src, codesT])]);
      return { node: place.node, codes, scale: grid.scale, zeroPoint: grid.zeroPoint };
    });
    const dynamic: DynamicQuantization[] = [];
    for (const { place, q } of activations) {
      if (!q.dynamic) continue;
      const covered = new Set([...place.values, ...place.carriers]);
      for (const c of place.consumers) {
        graph.requireNode(c).inputs.forEach((v, input) => (covered.has(v) ? dynamic.push({ node: c, input }) : undefined));
      }
    }
    const as = activations.filter(({ q }) => !q.dynamic).map(({ place, q }): ActivationQuantization => {
      if (!q.initialized) throw new TensorpressError('STATE_INVALID', `${method.algorithm}: strip() before activation ranges were initialised (${place.id})`);
      const g = q.grid();
      return { id: place.id, values: place.values, carriers: place.carriers, scale: g.scale[0]!, zeroPoint: g.zeroPoint[0]!, signed: g.signed, range: g.range };
    });
    return { weights: ws, activations: as, dynamic, quantizeBias: s.quantizeBias ?? true };
  };

  return defineController(method.algorithm, {
    initialize,
    loss: () =>
      tf.tidy(() => {
        // Σ λ·v² as one stack, square, scale and sum (a few taped kernel calls, not a few per quantizer).
        const terms = all().flatMap((q) => (q.l2Decay ? [q.l2Decay()] : []));
        if (terms.length === 0) return tf.scalar(0);
        const decay = tf.tensor1d(terms.map((t) => t.decay));
        return tf.sum(tf.mul(decay, tf.square(tf.stack(terms.map((t) => t.variable))))) as tf.Scalar;
      }),
    trainableVariables: () => (method.frozen ? [] : all().flatMap((q) => q.variables())),
    statistics: () => {
      const layers: LayerStatistics[] = [
        ...weights.map(({ place, q }) => ({ node: place.node, op: place.op, quantizer: place.id, kind: 'weight', ...q.describe() })),
        ...activations.map(({ place, q }) => {
          const g = q.initialized && !q.dynamic ? q.grid() : undefined;
          return {
            node: place.values.join(','),
            op: 'activation',
            quantizer: place.id,
            kind: 'activation',
            consumers: [...place.consumers],
            initialized: q.initialized,
            ...(g ? { scale: g.scale[0]!, zeroPoint: g.zeroPoint[0]!, signed: g.signed } : {}),
            ...q.describe(),
          };
        }),
      ];
      const bitsOf = weights.map((w) => w.q.bits);
      return {
        algorithm: method.algorithm,
        layers,
        total: {
          weightQuantizers: weights.length,
          activationQuantizers: activations.length,
          meanWeightBits: bitsOf.length ? bitsOf.reduce((a, b) => a + b, 0) / bitsOf.length : 0,
        },
        skipped: placement.skipped.map((x) => ({ node: x.node, reason: x.reason })),
      };
    },
    state: () => Object.fromEntries(all().map((q) => [q.id, q.state()])) as Json,
    loadState: (state: Json) => {
      const st = state as Record<string, Json> | null;
      if (!st || typeof st !== 'object') throw new TensorpressError('STATE_INVALID', `${method.algorithm}: state must be an object`);
      for (const q of all()) {
        if (!(q.id in st)) throw new TensorpressError('STATE_INVALID', `${method.algorithm}: the state has no entry for quantizer "${q.id}"`);
        q.loadState(st[q.id]!);
      }
    },
    strip: (graph: Graph, ctx?: StripContext) => buildQuantizedGraph(graph, stripPlan(graph, ctx)),
    dispose: () => {
      for (const q of all()) q.dispose();
    },
  });
}
