import { compress, graphStatistics, useBackend, type LayerStatistics } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { filterPruning } from '@tensorpress/pruning';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

function kept(layers: readonly LayerStatistics[]): Record<string, number> {
  return Object.fromEntries(layers.map((l) => [l.node, l['keptFilters'] as number]));
}

describe('filter_pruning with a per-layer plan', () => {
  it('prunes each planned layer by its own ratio and leaves the others whole', () => {
    const ctrl = compress(referenceModels.plainCnn({ seed: 1 }), [filterPruning({ plan: [{ node: 'conv2', ratio: 0.5 }, { node: 'fc1', ratio: 0.25 }] })]);
    const k = kept(ctrl.statistics().algorithms[0]!.layers);
    expect(k).toMatchObject({ conv2: 16, conv3: 64, fc1: 96 });
    const stripped = ctrl.strip();
    expect(graphStatistics(stripped).nodes.find((n) => n.name === 'conv2')!.outputShape.at(-1)).toBe(16);
    ctrl.dispose();
  });

  it('scales the plan together to reach a FLOPs target', () => {
    const graph = referenceModels.plainCnn({ seed: 1 });
    const ctrl = compress(graph, [filterPruning({ plan: [{ node: 'conv2', ratio: 0.6 }, { node: 'conv3', ratio: 0.3 }], flopsReduction: 0.3 })]);
    const total = ctrl.statistics().algorithms[0]!.total;
    expect(total['flopsReduction'] as number).toBeGreaterThanOrEqual(0.3);
    const k = kept(ctrl.statistics().algorithms[0]!.layers);
    // conv2 is planned at twice conv3's ratio, and unplanned fc1 keeps all its filters.
    expect(32 - k['conv2']!).toBeGreaterThan(((64 - k['conv3']!) / 64) * 32);
    expect(k['fc1']).toBe(128);
    ctrl.dispose();
  });

  it('rejects a plan with ratio, with global ranking, or naming an unknown or unprunable layer', () => {
    expect(errorOf(() => filterPruning({ plan: [{ node: 'conv2', ratio: 0.5 }], ratio: 0.5 })).message).toMatch(/\$\.ratio: a plan sets the ratio/);
    expect(errorOf(() => filterPruning({ plan: [{ node: 'conv2', ratio: 0.5 }], ranking: 'global' })).message).toMatch(/\$\.ranking/);
    expect(errorOf(() => filterPruning({ plan: [{ node: 'conv2', ratio: 1 }] })).message).toMatch(/\$\.plan\[0\]\.ratio/);
    expect(errorOf(() => filterPruning({ plan: [{ node: 'conv2', ratio: 0.5 }, { node: 'conv2', ratio: 0.1 }] })).message).toMatch(/already planned at plan\[0\]/);
    const g = referenceModels.plainCnn({ seed: 1 });
    const e = errorOf(() => compress(g, [filterPruning({ plan: [{ node: 'convX', ratio: 0.5 }] })]));
    expect(e.message).toMatch(/\$\.plan\[0\]\.node.*"convX".*no Conv or Gemm/);
    expect(errorOf(() => compress(g, [filterPruning({ plan: [{ node: 'conv1', ratio: 0.5 }] })])).message).toMatch(/"conv1", but it is not prunable/);
  });
});
