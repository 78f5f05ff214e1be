import type { Graph, Json } from '@tensorpress/core-tensor';
import type { WeightTarget } from './targets.js';

/** Totals shared by every sparsity algorithm's statistics. */
export function sparsityTotals(graph: Graph, targets: readonly WeightTarget[], zeros: ReadonlyMap<string, number>): Record<string, Json> {
  const weights = targets.reduce((a, t) => a + t.size, 0);
  const z = targets.reduce((a, t) => a + (zeros.get(t.param) ?? 0), 0);
  const params = graph.params.filter((p) => p.dtype === 'float32').reduce((a, p) => a + p.data.length, 0);
  return {
    layers: targets.length,
    weights,
    zeros: z,
    /** Over the sparsified weights. */
    sparsity: weights === 0 ? 0 : z / weights,
    /** Over every float parameter of the model (biases, BN, layers left dense included). */
    modelSparsity: params === 0 ? 0 : z / params,
  };
}
