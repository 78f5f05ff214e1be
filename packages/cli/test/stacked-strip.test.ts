import * as tf from '@tensorflow/tfjs-core';
import { Executor, arrayDataset, compress, graphStatistics, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { filterPruning } from '@tensorpress/pruning';
import { quantization } from '@tensorpress/quant';
import { maxAbsDiff } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

// Pruning and quantization live in two packages that may not import each other; the CLI stacks
// them, so the stacked strip (pruning cuts channels, then per-channel quantizer scales follow the
// survivors through StripContext) is tested here.
describe('compress (filter_pruning + quantization)', () => {
  for (const name of ['plainCnn', 'residualCnn', 'mobileNetCnn', 'mlp'] as const) {
    it(`${name}: the stripped graph (channels cut, int8 + Q/DQ) computes what the masked fake-quant model does`, async () => {
      const g = referenceModels[name]({ seed: 0 });
      const shape = g.inputs[0]!.shape.slice(1) as number[];
      const per = shape.reduce((a, b) => a * b, 1);
      const n = 16;
      const x = Float32Array.from({ length: n * per }, (_, i) => ((i * 7919) % 97) / 97);
      const data = arrayDataset({ x, y: new Int32Array(n), exampleShape: shape, numClasses: 10 });
      const before = tf.memory().numTensors;
      const ctrl = compress(g, [
        filterPruning({ criterion: 'fpgm', ratio: 0.3, pruneFirstConv: true, pruneDownsampleConvs: true }),
        quantization({ quantizeBias: false }),
      ]);
      await ctrl.initialize(data, { samples: n });
      const xb = tf.tensor(x.slice(0, 4 * per), [4, ...shape]);
      const [yq] = ctrl.model.executor.run(xb);
      const stripped = ctrl.strip();
      const ex = new Executor(stripped);
      const [ys] = ex.run(xb);
      const peak = tf.tidy(() => tf.max(tf.abs(yq!)).dataSync()[0]!);
      expect(maxAbsDiff(ys!, yq!)).toBeLessThanOrEqual(1e-5 * Math.max(1, peak));
      expect(graphStatistics(stripped).total.params).toBeLessThan(graphStatistics(g).total.params);
      expect(stripped.params.some((p) => p.dtype === 'int8')).toBe(true);
      tf.dispose([xb, yq!, ys!]);
      ex.dispose();
      ctrl.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  }
});
