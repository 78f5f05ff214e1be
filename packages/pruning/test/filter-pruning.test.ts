import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, arrayDataset, compress, createBuilders, fit, graphStatistics, numAttr, parsePipelineConfig, useBackend, type CompressionController, type Graph, type LayerStatistics } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { filterPruning, filterPruningDefinition, type FilterPruningOptions } from '@tensorpress/pruning';
import { errorOf, expectClose, expectNoLeak, randomizeBnStats, runOutput, seededArray, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { concatGraph, flattenGemmGraph, groupedGraph, tinyGraph } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

const ALL = { pruneFirstConv: true, pruneDownsampleConvs: true } as const;

/** The masked model's eval output on `x` (the executor with the pruning hooks). */
function maskedOutput(ctrl: CompressionController, x: tf.Tensor): Float32Array {
  const [y] = ctrl.model.executor.run(x);
  const d = y!.dataSync() as Float32Array;
  y!.dispose();
  return d;
}

function layers(ctrl: CompressionController): readonly LayerStatistics[] {
  return ctrl.statistics().algorithms[0]!.layers;
}

function inputFor(graph: Graph, n = 3): tf.Tensor {
  const shape = graph.inputs[0]!.shape.map((d) => d ?? n) as number[];
  return seededTensor(shape, 11);
}

describe('filterPruning', () => {
  const models: [string, () => Graph, FilterPruningOptions][] = [
    ['residualCnn', () => referenceModels.residualCnn({ seed: 1 }), { ...ALL, ratio: 0.5 }],
    ['mobileNetCnn', () => referenceModels.mobileNetCnn({ seed: 1 }), { ...ALL, ratio: 0.5, criterion: 'fpgm' }],
    ['plainCnn', () => referenceModels.plainCnn({ seed: 1 }), { ...ALL, ratio: 0.4, criterion: 'slim' }],
    ['mlp', () => referenceModels.mlp({ seed: 1 }), { ratio: 0.5, criterion: 'l2' }],
    ['concat + BN', concatGraph, { ...ALL, ratio: 0.5 }],
    ['Flatten→Gemm', flattenGemmGraph, { ...ALL, ratio: 0.5 }],
  ];
  for (const [name, make, options] of models) {
    it(`${name}: the masked model computes what the stripped (physically smaller) model computes`, async () => {
      const graph = randomizeBnStats(make());
      const x = inputFor(graph);
      await expectNoLeak(() => {
        const ctrl = compress(graph, [filterPruning(options)]);
        const masked = maskedOutput(ctrl, x);
        const stripped = ctrl.strip();
        expectClose(runOutput(stripped, x), masked, { atol: 1e-4, rtol: 1e-3 });
        const before = graphStatistics(graph).total;
        const after = graphStatistics(stripped).total;
        expect(after.params).toBeLessThan(before.params);
        expect(after.flops).toBeLessThan(before.flops);
        const total = ctrl.statistics().algorithms[0]!.total;
        expect(total['flopsAfter']).toBe(after.flops);
        expect(total['paramsAfter']).toBe(after.params);
        expect(total['flopsBefore']).toBe(before.flops);
        ctrl.dispose();
      });
      x.dispose();
    });
  }

  it('strip removes channels: smaller weight shapes, BN parameters and consumer inputs', () => {
    const graph = referenceModels.residualCnn({ seed: 1 });
    const ctrl = compress(graph, [filterPruning({ ...ALL, ratio: 0.5 })]);
    const s = ctrl.strip();
    expect(s.param('stem.conv.weight')!.shape).toEqual([3, 3, 1, 8]);
    expect(s.param('block1.conv2.weight')!.shape).toEqual([3, 3, 8, 8]);
    expect(s.param('stem.bn.gamma')!.shape).toEqual([8]);
    expect(s.param('block3.down.weight')!.shape).toEqual([1, 1, 16, 32]);
    expect(s.param('fc.weight')!.shape).toEqual([32, 10]);
    const rows = Object.fromEntries(layers(ctrl).map((l) => [l.node, l]));
    expect(rows['block2.down']).toMatchObject({ group: 'block2.conv2', prunable: true, keptFilters: 16, totalFilters: 32 });
    expect(rows['fc']).toMatchObject({ prunable: false, keptFilters: 10 });
    expect(String(rows['fc']!['reason'])).toMatch(/graph output/);
    expect(ctrl.statistics().algorithms[0]!.skipped.map((x) => x.node)).toEqual(['fc']);
    ctrl.dispose();
  });

  it('flopsReduction: searches the ratio that removes at least that share of FLOPs (core statistics)', () => {
    const graph = referenceModels.residualCnn({ seed: 1 });
    for (const criterion of ['l1', 'l2', 'fpgm', 'slim', 'opt_slim'] as const) {
      for (const ranking of ['layer', 'global'] as const) {
        const ctrl = compress(graph, [filterPruning({ ...ALL, criterion, ranking, flopsReduction: 0.5 })]);
        const t = ctrl.statistics().algorithms[0]!.total;
        const real = 1 - graphStatistics(ctrl.strip()).total.flops / graphStatistics(graph).total.flops;
        expect(real, `${criterion} ${ranking}`).toBeGreaterThanOrEqual(0.5);
        expect(real, `${criterion} ${ranking}`).toBeLessThan(0.6);
        expect(t['flopsReduction']).toBeCloseTo(real, 10);
        ctrl.dispose();
      }
    }
  });

  it('an unreachable FLOPs target is a typed error naming what blocks it', () => {
    const e = errorOf(() => compress(referenceModels.residualCnn(), [filterPruning({ flopsReduction: 0.5 })]));
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.message).toMatch(/removes \d+\.\d% of the FLOPs/);
    expect(e.message).toMatch(/first convolution/);
  });

  it('bad ratios are config errors naming the JSON path', () => {
    expect(errorOf(() => filterPruning({ ratio: 1 }))).toBeInstanceOf(ConfigError);
    expect(errorOf(() => filterPruning({ ratio: 1 })).message).toMatch(/^\$\.ratio: /);
    expect(errorOf(() => filterPruning({ ratio: -0.1 })).message).toMatch(/^\$\.ratio: /);
    expect(errorOf(() => filterPruning({ ratio: 0.3, flopsReduction: 0.3 })).message).toMatch(/^\$\.flopsReduction: give either/);
    expect(errorOf(() => filterPruning({ flopsReduction: 0 })).message).toMatch(/^\$\.flopsReduction: /);
  });

  it('a graph with nothing prunable is a typed error listing every node and why', () => {
    const e = errorOf(() => compress(tinyGraph(), [filterPruning({ ratio: 0.5 })]));
    expect(e.code).toBe('NOTHING_PRUNABLE');
    expect(e.message).toMatch(/"conv" \(Conv\): producer "conv" is the first convolution/);
    expect(e.message).toMatch(/"fc" \(Gemm\): .*graph output/);
    const slim = errorOf(() => compress(referenceModels.mlp(), [filterPruning({ criterion: 'slim' })]));
    expect(slim.code).toBe('NOTHING_PRUNABLE');
  });

  it('ratio 0 prunes nothing and says so in statistics', () => {
    const ctrl = compress(referenceModels.residualCnn(), [filterPruning({ ...ALL, ratio: 0 })]);
    const t = ctrl.statistics().algorithms[0]!.total;
    expect(t['prunedGroups']).toBe(0);
    expect(t['flopsReduction']).toBe(0);
    ctrl.dispose();
  });

  it('regular mode: every pruned layer keeps a multiple of N, and the stripped graph runs', () => {
    const graph = referenceModels.residualCnn({ seed: 2 });
    const ctrl = compress(graph, [filterPruning({ ...ALL, mode: 'regular', multipleOf: 8, flopsReduction: 0.4 })]);
    const pruned = layers(ctrl).filter((l) => l.prunable && l['keptFilters'] !== l['totalFilters']);
    expect(pruned.length).toBeGreaterThan(0);
    for (const l of pruned) expect(Number(l['keptFilters']) % 8, l.node).toBe(0);
    const x = inputFor(graph);
    expectClose(runOutput(ctrl.strip(), x), maskedOutput(ctrl, x), { atol: 1e-4, rtol: 1e-3 });
    x.dispose();
    ctrl.dispose();
  });

  it('regular mode reaches a FLOPs target closely: whole steps are given back while the target holds', () => {
    // One ratio for every layer jumps from −38% to −73% FLOPs on this model with N = 8; giving
    // steps back must land just past −50%, and every pruned layer still keeps a multiple of 8.
    for (const criterion of ['l1', 'fpgm'] as const) {
      const ctrl = compress(referenceModels.residualCnn({ seed: 0 }), [filterPruning({ ...ALL, criterion, mode: 'regular', multipleOf: 8, flopsReduction: 0.5 })]);
      const t = ctrl.statistics().algorithms[0]!.total;
      expect(Number(t['flopsReduction']), criterion).toBeGreaterThanOrEqual(0.5);
      expect(Number(t['flopsReduction']), criterion).toBeLessThan(0.53);
      for (const l of layers(ctrl).filter((r) => r.prunable && r['keptFilters'] !== r['totalFilters'])) expect(Number(l['keptFilters']) % 8, l.node).toBe(0);
      ctrl.dispose();
    }
  });

  it('group mode: a grouped conv keeps its group count and equal channels per group', () => {
    const graph = randomizeBnStats(groupedGraph());
    const ctrl = compress(graph, [filterPruning({ ...ALL, mode: 'group', ratio: 0.5, criterion: 'l2' })]);
    const s = ctrl.strip();
    const g = s.node('gconv')!;
    expect(numAttr(g, 'group', 1)).toBe(2);
    // stem keeps 2 of 4 per block (cin/group 4 → 2); gconv keeps 2 of 4 outputs per block.
    expect(s.param('gconv.weight')!.shape).toEqual([3, 3, 2, 4]);
    const rows = Object.fromEntries(layers(ctrl).map((l) => [l.node, l]));
    expect(rows['stem']!['keptFilters']).toBe(4);
    const x = inputFor(graph);
    expectClose(runOutput(s, x), maskedOutput(ctrl, x), { atol: 1e-4, rtol: 1e-3 });
    x.dispose();
    ctrl.dispose();
  });

  it('exponential schedule: masks follow the level each epoch and freeze; state restores them', () => {
    const graph = referenceModels.residualCnn({ seed: 3 });
    const options: FilterPruningOptions = { ...ALL, ratio: 0.5, schedule: { type: 'exponential', steps: 2 } };
    const ctrl = compress(graph, [filterPruning(options)]);
    const kept = (): number => Number(ctrl.statistics().algorithms[0]!.total['filtersKept']);
    const total = Number(ctrl.statistics().algorithms[0]!.total['filtersTotal']);
    expect(kept()).toBe(total);
    ctrl.scheduler.epochStep();
    const mid = kept();
    expect(mid).toBeLessThan(total);
    ctrl.scheduler.epochStep();
    expect(kept()).toBeLessThan(mid);
    expect(ctrl.statistics().algorithms[0]!.total['frozen']).toBe(true);
    const frozen = ctrl.state();
    const strippedShapes = ctrl.strip().params.map((p) => `${p.name}:${p.shape.join('x')}`);
    ctrl.scheduler.epochStep();
    expect(ctrl.strip().params.map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual(strippedShapes);

    const resumed = compress(graph, [filterPruning(options)]);
    resumed.loadState(JSON.parse(JSON.stringify(frozen)));
    expect(resumed.strip().params.map((p) => `${p.name}:${p.shape.join('x')}`)).toEqual(strippedShapes);
    expect(resumed.controllers[0]!.scheduler.epoch).toBe(2);
    expect(() => resumed.controllers[0]!.loadState({ keep: { 'stem.conv': [3, 1] } })).toThrow(/ascending/);
    ctrl.dispose();
    resumed.dispose();
  });

  it('Slim: an L1 penalty on γ is the compression loss until masks freeze, and fine-tuning runs with the masks', async () => {
    const graph = referenceModels.residualCnn({ seed: 4, inputShape: [12, 12, 1] });
    const ctrl = compress(graph, [filterPruning({ ...ALL, criterion: 'slim', ratio: 0.5, slimPenalty: 0.01, schedule: { type: 'baseline', initSteps: 1 } })]);
    const x = inputFor(graph, 2);
    const labels = tf.tensor1d([0, 1], 'int32');
    const ctx = { inputs: x, labels, outputs: [], executor: ctrl.model.executor };
    // Every BN of residualCnn follows a conv of a prunable group (with pruneFirstConv and pruneDownsampleConvs).
    let gammaSum = 0;
    for (const n of graph.nodes) {
      if (n.op === 'BatchNormalization') gammaSum += Array.from(graph.param(n.inputs[1]!)!.data).reduce((a, v) => a + Math.abs(v), 0);
    }
    const l = ctrl.loss(ctx);
    expect(l.dataSync()[0]).toBeCloseTo(0.01 * gammaSum, 3);
    l.dispose();
    expect(ctrl.statistics().algorithms[0]!.total['filtersKept']).toBe(ctrl.statistics().algorithms[0]!.total['filtersTotal']);
    const data = arrayDataset({ x: seededArray(8 * 144, 5, 0, 1), y: [0, 1, 2, 3, 4, 5, 6, 7], exampleShape: [12, 12, 1], numClasses: 10 });
    await fit(ctrl.model.executor, data, { epochs: 2, batchSize: 4, controller: ctrl, progress: false });
    const t = ctrl.statistics().algorithms[0]!.total;
    expect(t['frozen']).toBe(true);
    expect(Number(t['filtersKept'])).toBeLessThan(Number(t['filtersTotal']));
    const l2 = ctrl.loss(ctx);
    expect(l2.dataSync()[0]).toBe(0);
    l2.dispose();
    expectClose(runOutput(ctrl.strip(), x), maskedOutput(ctrl, x), { atol: 1e-4, rtol: 1e-3 });
    tf.dispose([x, labels]);
    ctrl.dispose();
  });
});

describe('filterPruningDefinition', () => {
  it('is the filter_pruning algorithm of pipeline configs', () => {
    const e = errorOf(() => parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', params: { ratio: 1.5 } }] }, [filterPruningDefinition]));
    expect(e.message).toMatch(/^\$\.compression\[0\]\.params\.ratio: /);
    const cfg = parsePipelineConfig(
      { compression: { algorithm: 'filter_pruning', params: { ratio: 0.5, pruneFirstConv: true }, ignoredScopes: ['{re}block[23]\\..*'] } },
      [filterPruningDefinition],
    );
    const ctrl = compress(referenceModels.residualCnn(), createBuilders(cfg, [filterPruningDefinition]));
    const rows = Object.fromEntries(layers(ctrl).map((l) => [l.node, l]));
    expect(rows['block1.conv1']!['keptFilters']).toBe(8);
    expect(String(rows['block3.conv1']!['reason'])).toMatch(/ignoredScopes/);
    ctrl.dispose();
  });
});
