// pack-smoke job "binary": binary installed alone with core-tensor: binarize, train, strip, run.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as binary from '@tensorpress/binary';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'compress', 'fit', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/binary': [binary, ['binarization', 'binaryAlgorithms', 'packedBytes', 'reestimateBatchNorm']],
});

await core.useBackend('cpu');
const fp32 = models.referenceModels.plainCnn({ seed: 1 });
const data = randomImages(core, 64);
const ctrl = core.compress(fp32, [binary.binarization({ weights: { method: 'xnor' }, activations: { method: 'binary' } })]);
await core.fit(ctrl.model.executor, data, { epochs: 1, batchSize: 32, controller: ctrl, progress: false });
const stripped = ctrl.strip();
ctrl.dispose();
const packed = binary.packedBytes(stripped);
console.log(`smoke: plainCnn XNOR W1A1: ${packed.layers.length} binary layers, ${packed.storedBytes} -> ${packed.packed1Bytes} bytes packed at 1 bit`);
expect(packed.layers.length === 3 && packed.layers.every((l) => l.binary), 'conv2, conv3 and fc1 were not binarized');
expect(stripped.nodes.some((n) => n.op === 'Sign'), 'no Sign in the stripped graph');
const r = await core.evaluate(stripped, data, { batchSize: 32 });
expect(Number.isFinite(r.loss), 'the stripped graph does not run');
