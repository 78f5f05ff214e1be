// pack-smoke job "sparsity": sparsity installed alone with core-tensor: 75% magnitude sparsity, train, strip, run.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as sparsity from '@tensorpress/sparsity';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'compress', 'fit', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/sparsity': [sparsity, ['magnitudeSparsity', 'nmSparsity', 'l0Sparsity', 'rbSparsity', 'sparsityAlgorithms', 'sparseSize']],
});

await core.useBackend('cpu');
const fp32 = models.referenceModels.plainCnn({ seed: 1 });
const data = randomImages(core, 64);
const ctrl = core.compress(fp32, [sparsity.magnitudeSparsity({ level: 0.75, schedule: { type: 'polynomial', initialLevel: 0.5, targetEpoch: 1 } })]);
await core.fit(ctrl.model.executor, data, { epochs: 1, batchSize: 32, controller: ctrl, progress: false });
const stats = ctrl.statistics().algorithms[0];
const sparse = ctrl.strip();
ctrl.dispose();
const size = sparsity.sparseSize(sparse);
console.log(`smoke: plainCnn weight sparsity ${stats.total.sparsity.toFixed(3)}, bitmask+nonzeros ${size.bitmaskBytes} of ${size.denseBytes} bytes`);
expect(Math.abs(stats.total.sparsity - 0.75) < 0.01, 'the weights are not 75% sparse');
expect(size.bitmaskBytes < 0.5 * size.denseBytes, 'the sparse size is not below half the dense size');
const r = await core.evaluate(sparse, data, { batchSize: 32 });
expect(Number.isFinite(r.loss), 'the sparse graph does not run');
