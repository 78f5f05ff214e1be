import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, Executor, createRng, crossEntropyLoss, type Dataset, type Graph, type HessianLoss } from '@tensorpress/core-tensor';
import { weightLayers } from './layers.js';

/** Options of {@link hessianTraces}. */
export interface HutchinsonOptions {
  /** Calibration examples taken from the start of `data` (HAWQ: a small subset). Default 256. */
  samples?: number;
  /** Batch size of the Hessian-vector products. Default 64. */
  batchSize?: number;
  /** Stop when the relative change of the running mean of the total trace falls below this. Default 1e-3. */
  tolerance?: number;
  /** Default 10: the standard error needs a few draws even when the mean settles at once. */
  minIterations?: number;
  /** Default 200. */
  maxIterations?: number;
  /** Seed of the Rademacher draws. Default 0. */
  seed?: number;
  /** Layers to estimate (node names); default every weight layer of {@link weightLayers}. */
  layers?: readonly string[];
  /** Default cross-entropy of the first output. */
  loss?: HessianLoss;
  /** Relative finite-difference step (see core's `hessianVectorProduct`). Default 1e-4. */
  epsilon?: number;
}

/** The average Hessian trace of one layer's weight. */
export interface LayerTrace {
  readonly node: string;
  readonly weight: string;
  readonly params: number;
  /** Tr(H_ii) / n_i: the mean of the diagonal, HAWQ-v2's Tr̄. */
  readonly trace: number;
  /** Standard error of `trace` over the Rademacher draws. */
  readonly stdError: number;
}

/** Result of {@link hessianTraces}. */
export interface HutchinsonResult {
  readonly layers: readonly LayerTrace[];
  readonly iterations: number;
  readonly converged: boolean;
  /** Relative change of the total trace at the last iteration. */
  readonly relativeChange: number;
  readonly samples: number;
  /** Problems worth a look, each with its numbers (never silent). */
  readonly warnings: readonly string[];
}

/**
 * HAWQ-v2's average Hessian trace per layer by Hutchinson's estimator: Tr(H) = E[vᵀHv] over
 * Rademacher v. One draw covers every layer at once (v is drawn for all weights jointly, as
 * PyHessian does: E[v_iᵀ(Hv)_i] = Tr(H_ii) since the blocks of v are independent), and H·v is the
 * central difference of exact gradients, averaged over the calibration batches. The loop stops
 * when the running mean of the total trace changes by less than `tolerance` (relative).
 */
export function hessianTraces(graph: Graph, data: Dataset, options: HutchinsonOptions = {}): HutchinsonResult {
  const samples = Math.min(options.samples ?? 256, data.size);
  const batchSize = Math.min(options.batchSize ?? 64, samples);
  const tolerance = options.tolerance ?? 1e-3;
  const minIt = options.minIterations ?? 10;
  const maxIt = options.maxIterations ?? 200;
  const eps0 = options.epsilon ?? 1e-4;
  if (!(tolerance > 0)) throw new ConfigError('$.tolerance', `must be > 0, got ${tolerance}`);
  if (!(Number.isInteger(maxIt) && maxIt >= 1 && minIt >= 1 && minIt <= maxIt)) {
    throw new ConfigError('$.maxIterations', `need 1 <= minIterations (${minIt}) <= maxIterations (${maxIt})`);
  }
  if (samples < 1) throw new ConfigError('$.samples', 'the calibration data is empty');
  const all = weightLayers(graph);
  const wanted = options.layers ?? all.map((l) => l.node);
  const layers = wanted.map((n, i) => {
    const l = all.find((x) => x.node === n);
    if (!l) throw new ConfigError(`$.layers[${i}]`, `"${n}" is not a layer with a float weight (${all.map((x) => x.node).join(', ')})`);
    return l;
  });
  const lossFn = options.loss ?? crossEntropyLoss;
  const executor = new Executor(graph);
  const rng = createRng(options.seed ?? 0);
  const weights = layers.map((l) => executor.variables().get(l.weight)!);
  const wNorm = tf.tidy(() => Math.sqrt(weights.reduce((a, w) => a + (tf.sum(tf.square(w)).dataSync()[0] ?? 0), 0)));
  const vNorm = Math.sqrt(layers.reduce((a, l) => a + l.params, 0));
  const eps = (eps0 * Math.max(wNorm, 1)) / vNorm;
  const batches = [...data.subset(Array.from({ length: samples }, (_, i) => i)).batches(batchSize)];
  const draws: number[][] = layers.map(() => []);
  const warnings: string[] = [];
  let prev = Number.NaN;
  let change = Number.POSITIVE_INFINITY;
  let iterations = 0;
  try {
    const gradAt = (batch: (typeof batches)[number], ws: tf.Tensor[]): tf.Tensor[] =>
      tf.grads((...u: tf.Tensor[]) =>
        lossFn(executor.run(batch.x, { updateStats: false, paramOverrides: new Map(layers.map((l, i) => [l.weight, u[i]!])) }), batch.y),
      )(ws);
    while (iterations < maxIt) {
      const vs = layers.map((l) => {
        const d = new Float32Array(l.params);
        for (let i = 0; i < d.length; i++) d[i] = rng.next() < 0.5 ? -1 : 1;
        return tf.tensor(d, [...l.shape]);
      });
      const dots = tf.tidy(() => {
        let acc: tf.Tensor[] = layers.map(() => tf.scalar(0));
        for (const batch of batches) {
          const gp = gradAt(batch, weights.map((w, i) => tf.add(w, tf.mul(vs[i]!, eps))));
          const gm = gradAt(batch, weights.map((w, i) => tf.sub(w, tf.mul(vs[i]!, eps))));
          const share = batch.y.shape[0] / samples;
          acc = acc.map((a, i) => tf.add(a, tf.mul(tf.sum(tf.mul(vs[i]!, tf.sub(gp[i]!, gm[i]!))), share / (2 * eps))));
        }
        return tf.stack(acc);
      });
      const d = dots.dataSync();
      dots.dispose();
      for (const v of vs) v.dispose();
      layers.forEach((l, i) => draws[i]!.push(d[i]! / l.params));
      iterations++;
      const total = draws.reduce((a, s, i) => a + (mean(s) * layers[i]!.params), 0);
      change = Math.abs(total - prev) / (Math.abs(prev) + 1e-6);
      prev = total;
      if (iterations >= minIt && change < tolerance) break;
    }
  } finally {
    for (const b of batches) {
      b.x.dispose();
      b.y.dispose();
    }
    executor.dispose();
  }
  const converged = change < tolerance;
  if (!converged) {
    warnings.push(
      `the trace did not settle to tolerance ${tolerance} in ${iterations} iterations on ${samples} examples (last relative change ${change.toExponential(2)}): ` +
        'raise maxIterations or samples, or accept the standard errors reported',
    );
  }
  const result = layers.map((l, i) => {
    const s = draws[i]!;
    const m = mean(s);
    const se = s.length > 1 ? Math.sqrt(s.reduce((a, v) => a + (v - m) ** 2, 0) / (s.length - 1) / s.length) : Number.NaN;
    if (!(m > 0)) warnings.push(`layer "${l.node}": estimated trace ${m.toExponential(3)} ± ${se.toExponential(2)} is not positive (a flat or non-convex region; its sensitivity is treated as 0)`);
    return { node: l.node, weight: l.weight, params: l.params, trace: m, stdError: se };
  });
  return { layers: result, iterations, converged, relativeChange: change, samples, warnings };
}

function mean(s: readonly number[]): number {
  return s.length === 0 ? Number.NaN : s.reduce((a, v) => a + v, 0) / s.length;
}
