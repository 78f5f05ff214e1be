// pack-smoke job "pruning": pruning installed alone with core-tensor: prune filters, strip, run.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as pruning from '@tensorpress/pruning';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'compress', 'fit', 'graphStatistics', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/pruning': [pruning, ['filterPruning', 'pruningAlgorithms']],
});

await core.useBackend('cpu');
const fp32 = models.referenceModels.residualCnn({ seed: 1 });
const data = randomImages(core, 64);
const ctrl = core.compress(fp32, [pruning.filterPruning({ criterion: 'fpgm', flopsReduction: 0.5, pruneFirstConv: true, pruneDownsampleConvs: true })]);
await core.fit(ctrl.model.executor, data, { epochs: 1, batchSize: 32, controller: ctrl, progress: false });
const pruned = ctrl.strip();
ctrl.dispose();
const before = core.graphStatistics(fp32).total;
const after = core.graphStatistics(pruned).total;
console.log(`smoke: residualCnn params ${before.params} -> ${after.params}, FLOPs ${before.flops} -> ${after.flops}`);
expect(after.flops <= 0.55 * before.flops && after.params < before.params, 'channels were not removed to -50% FLOPs');
const r = await core.evaluate(pruned, data, { batchSize: 32 });
expect(Number.isFinite(r.loss), 'the pruned graph does not run');
