// pack-smoke job "quant": quant installed alone with core-tensor: post-training INT8 of a small graph.
import * as core from '@tensorpress/core-tensor';
import * as models from '@tensorpress/models';
import * as quant from '@tensorpress/quant';
import { checkExports, checkResolution, expect, randomImages } from './check.mjs';

checkResolution();
checkExports({
  '@tensorpress/core-tensor': [core, ['useBackend', 'arrayDataset', 'createRng', 'evaluate']],
  '@tensorpress/models': [models, ['referenceModels']],
  '@tensorpress/quant': [quant, ['quantizePostTraining', 'quantAlgorithms']],
});

await core.useBackend('cpu');
const fp32 = models.referenceModels.plainCnn({ seed: 1 });
const data = randomImages(core, 64);
const { graph } = await quant.quantizePostTraining(fp32, data, { samples: 64, calibration: 'minmax' });
const ops = graph.nodes.map((n) => n.op);
const int8 = graph.params.filter((p) => p.dtype === 'int8').length;
console.log(`smoke: PTQ of plainCnn: ${ops.filter((o) => o === 'QuantizeLinear').length} QuantizeLinear, ${int8} int8 weight tensors`);
expect(ops.includes('QuantizeLinear') && ops.includes('DequantizeLinear') && int8 >= 3, `expected an int8 Q/DQ graph, got ops ${ops.join(' ')}`);
const a = await core.evaluate(fp32, data, { batchSize: 32 });
const b = await core.evaluate(graph, data, { batchSize: 32 });
console.log(`smoke: loss FP32 ${a.loss.toFixed(4)}, INT8 ${b.loss.toFixed(4)}`);
expect(Number.isFinite(b.loss) && Math.abs(a.loss - b.loss) < 0.5, 'INT8 loss is far from FP32');
