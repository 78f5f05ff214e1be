import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, Executor, createRng, type Dataset, type Graph } from '@tensorpress/core-tensor';
import { crossEntropyLoss, type HessianLoss } from './hessian.js';
import { weightLayers, type WeightLayer } from './layers.js';

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
  /** `gauss-newton` (default) or `finite-difference`: see {@link hessianTraces}. */
  method?: 'gauss-newton' | 'finite-difference';
  /** Relative finite-difference step. Default 1e-3 (gauss-newton, forward passes) or 1e-4 (finite-difference, gradients). */
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
  readonly method: 'gauss-newton' | 'finite-difference';
  /** Problems worth a look, each with its numbers (never silent). */
  readonly warnings: readonly string[];
}

/**
 * HAWQ-v2's average Hessian trace per layer by Hutchinson's estimator: Tr(H_ii) = E[vᵀH_ii v] over
 * Rademacher v, averaged over the calibration batches, stopping when the running mean of the total
 * trace changes by less than `tolerance` (relative).
 *
 * `gauss-newton` (default): vᵀH_ii v = Σₙ uₙᵀ H_ℓ uₙ with uₙ = J_i v the change of the logits
 * along v (a central difference of forward passes) and H_ℓ = diag(p) − ppᵀ the Hessian of softmax
 * cross-entropy in the logits. For networks that are piecewise linear in each layer's weights (ReLU,
 * max pooling, BN in eval mode, residual adds) this is exactly the diagonal block autograd's
 * double back-propagation gives (HAWQ's reference), since the term with ∇²f vanishes; elsewhere it
 * is the Gauss-Newton approximation. Forward differences see ReLU kinks only as O(ε) errors.
 *
 * `finite-difference`: one joint draw over all layers (PyHessian's E[v_iᵀ(Hv)_i] = Tr(H_ii)) with H·v
 * the central difference of exact gradients. Exact for smooth losses, but in ReLU networks every
 * kink the step crosses adds a jump that does not vanish with ε (the gradient is discontinuous), a
 * bias of either sign; kept for smooth models and custom losses.
 */
export function hessianTraces(graph: Graph, data: Dataset, options: HutchinsonOptions = {}): HutchinsonResult {
  const samples = Math.min(options.samples ?? 256, data.size);
  const batchSize = Math.min(options.batchSize ?? 64, samples);
  const tolerance = options.tolerance ?? 1e-3;
  const minIt = options.minIterations ?? 10;
  const maxIt = options.maxIterations ?? 200;
  const method = options.method ?? 'gauss-newton';
  const eps0 = options.epsilon ?? (method === 'gauss-newton' ? 1e-3 : 1e-4);
  if (!(tolerance > 0)) throw new ConfigError('$.tolerance', `must be > 0, got ${tolerance}`);
  if (!(Number.isInteger(maxIt) && maxIt >= 1 && minIt >= 1 && minIt <= maxIt)) {
    throw new ConfigError('$.maxIterations', `need 1 <= minIterations (${minIt}) <= maxIterations (${maxIt})`);
  }
  if (method !== 'gauss-newton' && method !== 'finite-difference') throw new ConfigError('$.method', `unknown method "${String(method)}" (gauss-newton, finite-difference)`);
  if (method === 'gauss-newton' && options.loss) throw new ConfigError('$.loss', 'a custom loss needs method "finite-difference" (gauss-newton uses the cross-entropy Hessian in the logits)');
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
  const norms = tf.tidy(() => weights.map((w) => Math.sqrt(tf.sum(tf.square(w)).dataSync()[0] ?? 0)));
  const batches = [...data.subset(Array.from({ length: samples }, (_, i) => i)).batches(batchSize)];
  const draws: number[][] = layers.map(() => []);
  const warnings: string[] = [];
  let prev = Number.NaN;
  let change = Number.POSITIVE_INFINITY;
  let iterations = 0;
  const rademacher = (l: WeightLayer): tf.Tensor => {
    const d = new Float32Array(l.params);
    for (let i = 0; i < d.length; i++) d[i] = rng.next() < 0.5 ? -1 : 1;
    return tf.tensor(d, [...l.shape]);
  };
  const run = (x: tf.Tensor, overrides: Map<string, tf.Tensor>): tf.Tensor => executor.run(x, { updateStats: false, paramOverrides: overrides })[0]!;
  // The softmax of the unperturbed model, once per batch (gauss-newton's H_ℓ).
  const probs = method === 'gauss-newton' ? batches.map((b) => tf.tidy(() => tf.softmax(executor.run(b.x, { updateStats: false })[0]!))) : [];
  // One draw: vᵢᵀH_ii vᵢ for every layer.
  const gaussNewton = (): Float32Array | Int32Array | Uint8Array => {
    const vs = layers.map(rademacher);
    const t = tf.tidy(() => {
      const acc = layers.map((l, i) => {
        const eps = (eps0 * Math.max(norms[i]!, 1)) / Math.sqrt(l.params);
        let sum: tf.Tensor = tf.scalar(0);
        for (const [bi, batch] of batches.entries()) {
          const p = probs[bi]!;
          const fp = run(batch.x, new Map([[l.weight, tf.add(weights[i]!, tf.mul(vs[i]!, eps))]]));
          const fm = run(batch.x, new Map([[l.weight, tf.sub(weights[i]!, tf.mul(vs[i]!, eps))]]));
          const u = tf.div(tf.sub(fp, fm), 2 * eps);
          // uᵀ(diag(p) − ppᵀ)u per example, summed; the loss is the batch mean, hence / samples.
          const quad = tf.sub(tf.sum(tf.mul(p, tf.square(u)), -1), tf.square(tf.sum(tf.mul(p, u), -1)));
          sum = tf.add(sum, tf.div(tf.sum(quad), samples));
        }
        return sum;
      });
      return tf.stack(acc);
    });
    for (const v of vs) v.dispose();
    const d = t.dataSync();
    t.dispose();
    return d;
  };
  const wNorm = Math.sqrt(norms.reduce((a, n) => a + n * n, 0));
  const vNorm = Math.sqrt(layers.reduce((a, l) => a + l.params, 0));
  const jointEps = (eps0 * Math.max(wNorm, 1)) / vNorm;
  const gradAt = (batch: (typeof batches)[number], ws: tf.Tensor[]): tf.Tensor[] =>
    tf.grads((...u: tf.Tensor[]) => lossFn([run(batch.x, new Map(layers.map((l, i) => [l.weight, u[i]!])))], batch.y))(ws);
  const finiteDifference = (): Float32Array | Int32Array | Uint8Array => {
    const vs = layers.map(rademacher);
    const t = tf.tidy(() => {
      let acc: tf.Tensor[] = layers.map(() => tf.scalar(0));
      for (const batch of batches) {
        const gp = gradAt(batch, weights.map((w, i) => tf.add(w, tf.mul(vs[i]!, jointEps))));
        const gm = gradAt(batch, weights.map((w, i) => tf.sub(w, tf.mul(vs[i]!, jointEps))));
        const share = batch.y.shape[0] / samples;
        acc = acc.map((a, i) => tf.add(a, tf.mul(tf.sum(tf.mul(vs[i]!, tf.sub(gp[i]!, gm[i]!))), share / (2 * jointEps))));
      }
      return tf.stack(acc);
    });
    for (const v of vs) v.dispose();
    const d = t.dataSync();
    t.dispose();
    return d;
  };
  try {
    while (iterations < maxIt) {
      const d = method === 'gauss-newton' ? gaussNewton() : finiteDifference();
      layers.forEach((l, i) => draws[i]!.push(d[i]! / l.params));
      iterations++;
      const total = draws.reduce((a, s, i) => a + mean(s) * layers[i]!.params, 0);
      change = Math.abs(total - prev) / (Math.abs(prev) + 1e-6);
      prev = total;
      if (iterations >= minIt && change < tolerance) break;
    }
  } finally {
    for (const p of probs) p.dispose();
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
  return { layers: result, iterations, converged, relativeChange: change, samples, method, warnings };
}

function mean(s: readonly number[]): number {
  return s.length === 0 ? Number.NaN : s.reduce((a, v) => a + v, 0) / s.length;
}
