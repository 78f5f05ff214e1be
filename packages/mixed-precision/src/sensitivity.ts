import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, Executor, softmaxCrossEntropy, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { weightLayers, type WeightLayer } from './layers.js';
import { binarizeWeight, filterMask, quantizeWeight, sparsifyWeight } from './weight-transforms.js';

/**
 * How one layer is compressed at one level, for the what-if run: the parameter values to use
 * instead of the graph's (weight, and bias or following BatchNormalization parameters when the
 * method removes whole filters). Runs inside `tf.tidy`; the returned tensors are disposed by it.
 */
export interface LayerCompressor {
  readonly name: string;
  /** Checks one level, returning an error message or undefined. */
  checkLevel?(level: number): string | undefined;
  /** Why the method does not apply to a layer (it is then reported in `skipped`), or undefined. */
  skip?(graph: Graph, layer: WeightLayer): string | undefined;
  apply(graph: Graph, layer: WeightLayer, weight: tf.Tensor, level: number, value: (param: string) => tf.Tensor): Map<string, tf.Tensor>;
  /**
   * Layers compressed together (a pruning group: producers whose channels are coupled through an
   * Add). Default: each member as `apply` does it alone.
   */
  applyGroup?(graph: Graph, layers: readonly WeightLayer[], level: number, value: (param: string) => tf.Tensor): Map<string, tf.Tensor>;
}

/** Zeroes the filters a 0/1 mask drops: the weights, the bias and the γ/β of the BatchNormalization that follows. */
function zeroFilters(graph: Graph, layer: WeightLayer, mask: tf.Tensor1D, value: (param: string) => tf.Tensor, out: Map<string, tf.Tensor>): void {
  out.set(layer.weight, tf.mul(value(layer.weight), mask));
  if (layer.bias) out.set(layer.bias, tf.mul(value(layer.bias), mask));
  const bn = followingBatchNorm(graph, layer.node);
  if (bn) for (const p of graph.requireNode(bn).inputs.slice(1, 3)) out.set(p, tf.mul(value(p), mask));
}

/** The BatchNormalization right after a layer (its only consumer), when there is one. */
function followingBatchNorm(graph: Graph, node: string): string | undefined {
  const out = graph.requireNode(node).outputs[0]!;
  const cons = graph.consumers(out);
  return cons.length === 1 && cons[0]!.node.op === 'BatchNormalization' ? cons[0]!.node.name : undefined;
}

/** True when a node's output reaches a graph output through ops that keep channels in place. */
function feedsOutput(graph: Graph, node: string): boolean {
  let value = graph.requireNode(node).outputs[0]!;
  for (;;) {
    if (graph.outputs.includes(value)) return true;
    const cons = graph.consumers(value);
    if (cons.length !== 1 || !['Relu', 'Softmax', 'Identity', 'Flatten', 'Reshape', 'BatchNormalization'].includes(cons[0]!.node.op)) return false;
    value = cons[0]!.node.outputs[0]!;
  }
}

/** The built-in methods; levels: quantization bits, pruning ratios, sparsity levels, binarization 1 (binary) or 2 (ternary). */
export const SENSITIVITY_METHODS: Readonly<Record<'quantization' | 'filter_pruning' | 'sparsity' | 'binarization', LayerCompressor>> = {
  quantization: {
    name: 'quantization',
    checkLevel: (b) => (Number.isInteger(b) && b >= 2 && b <= 8 ? undefined : `quantization levels are weight bit widths, integers from 2 to 8; got ${b}`),
    apply: (_g, layer, w, bits) => new Map([[layer.weight, quantizeWeight(w, bits)]]),
  },
  filter_pruning: {
    name: 'filter_pruning',
    checkLevel: (r) => (r >= 0 && r < 1 ? undefined : `filter_pruning levels are ratios in [0, 1); got ${r}`),
    skip: (graph, layer) => (feedsOutput(graph, layer.node) ? 'its filters are model outputs (removing one changes the output shape)' : undefined),
    // The pruned filters' outputs become exactly zero downstream, as after a physical cut: the
    // weights and bias of those filters, and the γ and β of the BatchNormalization that follows.
    apply: (graph, layer, w, ratio, value) => {
      const out = new Map<string, tf.Tensor>();
      zeroFilters(graph, layer, filterMask(w, ratio), value, out);
      return out;
    },
    // Coupled producers lose the same channels: ranked by the sum of each member's L1 norms, each
    // divided by its root mean square (what filter_pruning does for a group).
    applyGroup: (graph, layers, ratio, value) => {
      const scores = tf.addN(
        layers.map((l) => {
          const w = value(l.weight);
          const l1 = tf.sum(tf.abs(tf.reshape(w, [-1, w.shape[w.rank - 1]!])), 0);
          return tf.div(l1, tf.maximum(tf.sqrt(tf.mean(tf.square(l1))), 1e-12));
        }),
      );
      const mask = filterMask(tf.reshape(scores, [1, -1]), ratio);
      const out = new Map<string, tf.Tensor>();
      for (const l of layers) zeroFilters(graph, l, mask, value, out);
      return out;
    },
  },
  sparsity: {
    name: 'sparsity',
    checkLevel: (s) => (s >= 0 && s < 1 ? undefined : `sparsity levels are in [0, 1); got ${s}`),
    apply: (_g, layer, w, level) => new Map([[layer.weight, sparsifyWeight(w, level)]]),
  },
  binarization: {
    name: 'binarization',
    checkLevel: (l) => (l === 1 || l === 2 ? undefined : `binarization levels are 1 (binary, XNOR α·sign) or 2 (ternary, TWN); got ${l}`),
    apply: (_g, layer, w, level) => new Map([[layer.weight, binarizeWeight(w, level === 1 ? 'binary' : 'ternary')]]),
  },
};

/** Options of {@link sensitivity}. */
export interface SensitivityOptions {
  /** Examples of `data` used (the first ones; a held-out subset). Default 1000. */
  samples?: number;
  batchSize?: number;
  /** `accuracy` (default: drop in points ×0.01, i.e. fraction) or `loss` (increase in cross-entropy). */
  metric?: 'accuracy' | 'loss';
  /** Layers to analyse (node names); default every weight layer. */
  layers?: readonly string[];
  /**
   * Units compressed together, each a list of layer names (pruning groups, e.g. from
   * `pruningGroups(graph).groups.map((g) => g.producers)` of @tensorpress/pruning): one row per
   * unit, named by its first layer. Replaces `layers`.
   */
  groups?: readonly (readonly string[])[];
}

/** One row: a layer and its metric at each level. */
export interface SensitivityRow {
  readonly node: string;
  readonly op: string;
  readonly params: number;
  readonly macs: number;
  /** The layers of a group row (the first is `node`); absent for a single layer. */
  readonly members?: readonly string[];
  /** By level: the metric with only this layer compressed, and the drop from the baseline (positive = worse). */
  readonly levels: readonly { level: number; value: number; drop: number }[];
}

/** A layer the method does not apply to, and why. */
export interface SkippedLayer {
  readonly node: string;
  readonly reason: string;
}

/** Result of {@link sensitivity}. */
export interface SensitivityResult {
  readonly method: string;
  readonly metric: 'accuracy' | 'loss';
  readonly baseline: number;
  readonly samples: number;
  readonly levels: readonly number[];
  readonly rows: readonly SensitivityRow[];
  /** Layers left out because the method does not apply to them (never silently). */
  readonly skipped: readonly SkippedLayer[];
}

/**
 * Per-layer sensitivity: the metric on a held-out subset when only one layer is compressed at one
 * level, with no fine-tuning, for every (layer, level). One forward pass per pair; the compressed
 * values are substituted into the run (the graph is never modified).
 */
export function sensitivity(
  graph: Graph,
  data: Dataset,
  method: keyof typeof SENSITIVITY_METHODS | LayerCompressor,
  levels: readonly number[],
  options: SensitivityOptions = {},
): SensitivityResult {
  const m = typeof method === 'string' ? SENSITIVITY_METHODS[method] : method;
  if (!m) {
    throw new ConfigError('$.method', `unknown method "${String(method)}" (${Object.keys(SENSITIVITY_METHODS).join(', ')}, or a LayerCompressor)`);
  }
  if (levels.length === 0) throw new ConfigError('$.levels', 'give at least one level');
  levels.forEach((l, i) => {
    const bad = m.checkLevel?.(l);
    if (bad) throw new ConfigError(`$.levels[${i}]`, bad);
  });
  const metric = options.metric ?? 'accuracy';
  const samples = Math.min(options.samples ?? 1000, data.size);
  if (samples < 1) throw new ConfigError('$.samples', 'the held-out data is empty');
  const all = weightLayers(graph);
  const find = (n: string, path: string): WeightLayer => {
    const l = all.find((x) => x.node === n);
    if (!l) throw new ConfigError(path, `"${n}" is not a layer with a float weight (${all.map((x) => x.node).join(', ')})`);
    return l;
  };
  const named: WeightLayer[][] = options.groups
    ? options.groups.map((g, i) => {
        if (g.length === 0) throw new ConfigError(`$.groups[${i}]`, 'a group names no layer');
        return g.map((n, j) => find(n, `$.groups[${i}][${j}]`));
      })
    : (options.layers ?? all.map((l) => l.node)).map((n, i) => [find(n, `$.layers[${i}]`)]);
  const skipped: SkippedLayer[] = [];
  const units = named.filter((u) => {
    const reason = u.map((l) => m.skip?.(graph, l)).find((r) => r !== undefined);
    if (reason) skipped.push({ node: u[0]!.node, reason });
    return reason === undefined;
  });
  if (units.length === 0) throw new ConfigError('$.layers', `${m.name} applies to none of the layers: ${skipped.map((x) => `"${x.node}": ${x.reason}`).join('; ')}`);
  const executor = new Executor(graph);
  const batches = [...data.subset(Array.from({ length: samples }, (_, i) => i)).batches(options.batchSize ?? 250)];
  const score = (overrides?: ReadonlyMap<string, tf.Tensor>): number => {
    const t = tf.tidy(() => {
      let acc: tf.Scalar = tf.scalar(0);
      for (const b of batches) {
        const logits = executor.run(b.x, overrides ? { paramOverrides: overrides } : {})[0]!;
        const v =
          metric === 'accuracy'
            ? tf.sum(tf.cast(tf.equal(tf.argMax(logits, -1), tf.cast(b.y, 'int32')), 'float32'))
            : tf.mul(softmaxCrossEntropy(logits, b.y), b.y.shape[0]);
        acc = tf.add(acc, v);
      }
      return tf.div(acc, samples);
    });
    const v = t.dataSync()[0]!;
    t.dispose();
    return v;
  };
  try {
    const baseline = score();
    const value = (p: string): tf.Tensor => executor.paramValue(p);
    const compressed = (unit: readonly WeightLayer[], level: number): Map<string, tf.Tensor> => {
      if (unit.length > 1 && m.applyGroup) return m.applyGroup(graph, unit, level, value);
      const out = new Map<string, tf.Tensor>();
      for (const l of unit) for (const [k, v] of m.apply(graph, l, value(l.weight), level, value)) out.set(k, v);
      return out;
    };
    const rows = units.map((unit) => ({
      node: unit[0]!.node,
      op: unit[0]!.op,
      params: unit.reduce((a, l) => a + l.params, 0),
      macs: unit.reduce((a, l) => a + l.macs, 0),
      ...(unit.length > 1 ? { members: unit.map((l) => l.node) } : {}),
      levels: levels.map((level) => {
        const overrides = new Map(tf.tidy(() => [...compressed(unit, level).entries()]));
        try {
          const value = score(overrides);
          return { level, value, drop: metric === 'accuracy' ? baseline - value : value - baseline };
        } finally {
          for (const t of overrides.values()) t.dispose();
        }
      }),
    }));
    return { method: m.name, metric, baseline, samples, levels: [...levels], rows, skipped };
  } finally {
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
    executor.dispose();
  }
}
