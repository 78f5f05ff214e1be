// pack-smoke job "distill": distill installed alone with core-tensor: a small student distils from
// a teacher (offline) and from its own FP32 original (the default teacher), then strips and runs.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as distill from '@tensorpress/distill';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'compress', 'fit', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/distill': [distill, ['knowledgeDistillation', 'distillAlgorithms', 'softTargetKl', 'pseudoLabel']],
});

await core.useBackend('cpu');
const teacher = models.referenceModels.plainCnn({ seed: 1 });
const student = models.referenceModels.plainCnn({ seed: 2, width: 0.25 });
const data = randomImages(core, 64);
const ctrl = core.compress(student, [distill.knowledgeDistillation({ teacher, temperature: 4, alpha: 0.9 })]);
const { history } = await core.fit(ctrl.model.executor, data, { epochs: 1, batchSize: 32, controller: ctrl, progress: false });
expect(Number.isFinite(history[0].loss), 'the distillation loss is not finite');
expect(ctrl.statistics().algorithms[0].total.teacher === 'named', 'the named teacher was not used');
const trained = ctrl.strip();
ctrl.dispose();
const self = core.compress(trained, [distill.knowledgeDistillation()]);
expect(self.statistics().algorithms[0].total.teacher === 'original', 'the default teacher is not the FP32 original');
self.dispose();
const r = await core.evaluate(trained, data, { batchSize: 32 });
console.log(`smoke: distilled student loss ${r.loss.toFixed(3)}`);
expect(Number.isFinite(r.loss), 'the distilled student does not run');
