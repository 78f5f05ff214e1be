// pack-smoke job "mixed-precision": mixed-precision installed alone with core-tensor: HAWQ-v2 plan and a sensitivity table.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as mp from '@tensorpress/mixed-precision';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/mixed-precision': [mp, ['hawqV2', 'hessianTraces', 'sensitivity', 'pruningPlan', 'sensitivityChart', 'frontierChart']],
});

await core.useBackend('cpu');
const graph = models.referenceModels.plainCnn({ seed: 1 });
const data = randomImages(core, 32);
const layers = mp.weightLayers(graph);
const uniform4 = layers.reduce((a, l) => a + l.macs * 4 * 8, 0);
const r = mp.hawqV2(graph, data, { budget: { type: 'bops', value: uniform4 }, hutchinson: { samples: 32, minIterations: 2, maxIterations: 2 } });
console.log(`smoke: HAWQ-v2 plan ${r.plan.map((e) => `${e.node}:${e.weightBits}`).join(' ')}`);
expect(r.plan.length === layers.length && r.chosen.cost <= uniform4, 'the plan does not fit the budget');
const s = mp.sensitivity(graph, data, 'filter_pruning', [0.5], { samples: 32 });
expect(s.rows.length + s.skipped.length === layers.length && s.rows.length > 0 && mp.sensitivityChart(s).startsWith('<svg'), 'no sensitivity table');
