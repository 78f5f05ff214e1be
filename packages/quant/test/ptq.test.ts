import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, GraphBuilder, arrayDataset, runGraph, useBackend, type Dataset, type Graph, type ParamData } from '@tensorpress/core-tensor';
import { quantizePostTraining } from '@tensorpress/quant';
import { expectParamsUntouched, randomizeBnStats, rejectionOf, runOutput, seededArray, seededTensor, snapshotParams, sqnrDb } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

const IN = [6, 6, 2];
const N = 16;

/** input → c1 3×3 → bn1 → relu → c2 3×3 stride 2 → bn2 → relu → flatten → fc → logits. */
function tinyGraph(seed = 3): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, ...IN]);
  h = b.relu(b.batchNorm(b.conv(h, { filters: 4, kernel: 3, padding: 'same', bias: false, name: 'c1' }), { name: 'bn1' }), 'r1');
  h = b.relu(b.batchNorm(b.conv(h, { filters: 4, kernel: 3, strides: 2, padding: 'same', bias: false, name: 'c2' }), { name: 'bn2' }), 'r2');
  h = b.flatten(h, 'flat');
  h = b.dense(h, 3, { name: 'fc' });
  b.output(h);
  return randomizeBnStats(b.build(), 5);
}

function tinyData(seed = 1, shape: readonly number[] = IN, n = N): Dataset {
  const per = shape.reduce((a, b) => a * b, 1);
  return arrayDataset({ x: seededArray(n * per, seed, -1, 1), y: new Int32Array(n), exampleShape: shape, numClasses: 3 });
}

/** Sets every BN's running statistics to the population statistics of its input on `x` (eval mode, in order). */
function calibratedBn(graph: Graph, x: tf.Tensor): Graph {
  let g = graph;
  for (const n of graph.nodes.filter((m) => m.op === 'BatchNormalization')) {
    const [v] = runGraph(g, x, { outputs: [n.inputs[0]!] });
    const { mean, variance } = tf.moments(v!, [0, 1, 2]);
    g = g.withParams(
      new Map<string, { data: ParamData }>([
        [n.inputs[3]!, { data: Float32Array.from(mean.dataSync()) }],
        [n.inputs[4]!, { data: Float32Array.from(variance.dataSync()) }],
      ]),
    );
    tf.dispose([v!, mean, variance]);
  }
  return g;
}

describe('quantizePostTraining', () => {
  for (const calibration of ['minmax', 'moving_average_minmax', 'percentile', 'kl', 'mse'] as const) {
    it(`${calibration}: 8-bit static result agrees with the float graph (SQNR > 25 dB); input untouched`, async () => {
      const g = tinyGraph();
      const snap = snapshotParams(g);
      // measured on the calibration examples themselves (the floor is about calibration, not generalisation)
      const x = tf.tensor(seededArray(N * 72, 1, -1, 1), [N, ...IN]);
      const r = await quantizePostTraining(g, tinyData(), { calibration, samples: N, batchSize: N });
      const yf = runOutput(g, x);
      const yq = runOutput(r.graph, x);
      expect(sqnrDb(yf, yq)).toBeGreaterThan(25);
      expect(r.graph.nodes.some((n) => n.op === 'BatchNormalization')).toBe(false);
      for (const node of ['c1', 'c2', 'fc']) expect(r.graph.param(`${node}.w_q`)!.dtype).toBe('int8');
      expect(r.graph.nodes.filter((n) => n.op === 'QuantizeLinear').length).toBeGreaterThanOrEqual(3);
      expect(r.statistics.algorithm).toBe('post_training_quantization');
      expect(r.statistics.layers.filter((l) => l['kind'] === 'weight').map((l) => l.node)).toEqual(['c1', 'c2', 'fc']);
      expectParamsUntouched(g, snap);
      x.dispose();
    });
  }

  it('4-bit weights are coarser than 8-bit ones (the bits setting reaches the quantizers)', async () => {
    const g = tinyGraph();
    const x = seededTensor([8, ...IN], 7);
    const r8 = await quantizePostTraining(g, tinyData(), { samples: N });
    const r4 = await quantizePostTraining(g, tinyData(), { samples: N, weights: { bits: 4 } });
    const yf = runOutput(g, x);
    expect(sqnrDb(yf, runOutput(r8.graph, x))).toBeGreaterThan(sqnrDb(yf, runOutput(r4.graph, x)));
    for (const c of r4.graph.param('c2.w_q')!.data) expect(Math.abs(c)).toBeLessThanOrEqual(7);
    x.dispose();
  });

  it('takes a bits plan per layer (e.g. HAWQ-v2\'s): planned layers get their bits, the others the default', async () => {
    const g = tinyGraph();
    const r = await quantizePostTraining(g, tinyData(), { samples: N, plan: [{ node: 'c2', weightBits: 3 }, { node: 'fc', weightBits: 5 }] });
    const maxCode = (name: string): number => Math.max(...Array.from(r.graph.param(name)!.data, (c) => Math.abs(c)));
    expect(maxCode('c2.w_q')).toBe(3);
    expect(maxCode('fc.w_q')).toBe(15);
    expect(maxCode('c1.w_q')).toBe(127);
    const e = await rejectionOf(quantizePostTraining(g, tinyData(), { samples: N, plan: [{ node: 'c2', weightBits: 9 }] }));
    expect(e.message).toMatch(/plan.*weightBits must be an integer from 2 to 8, got 9/);
  });

  it('dynamic mode puts DynamicQuantizeLinear before the Gemm and no static activation Q/DQ', async () => {
    const g = tinyGraph();
    const x = seededTensor([8, ...IN], 7);
    const r = await quantizePostTraining(g, tinyData(), { mode: 'dynamic', samples: N });
    const dql = r.graph.nodes.filter((n) => n.op === 'DynamicQuantizeLinear');
    expect(dql.length).toBe(1);
    const fcIn = r.graph.requireNode('fc').inputs[0]!;
    const dq = r.graph.producer(fcIn)!.node;
    expect(dq.op).toBe('DequantizeLinear');
    expect(dq.inputs).toEqual(dql[0]!.outputs);
    expect(r.graph.nodes.some((n) => n.op === 'QuantizeLinear')).toBe(false);
    expect(r.graph.param('fc.w_q')!.dtype).toBe('int8');
    expect(sqnrDb(runOutput(g, x), runOutput(r.graph, x))).toBeGreaterThan(25);
    x.dispose();
  });

  it('bnAdaptation keeps already-calibrated BN statistics (BNs at different resolutions)', async () => {
    // c2 has stride 2: bn2 sees a quarter of bn1's positions. With the BN statistics already equal
    // to the data's, AdaBN with 8-bit weights must leave the result close to plain PTQ.
    const data = tinyData(3);
    const [batch] = [...data.batches(N)];
    const g = calibratedBn(tinyGraph(), batch!.x);
    tf.dispose([batch!.x, batch!.y]);
    const snap = snapshotParams(g);
    const x = seededTensor([8, ...IN], 7);
    const plain = await quantizePostTraining(g, data, { samples: N, batchSize: N });
    const adapted = await quantizePostTraining(g, data, { samples: N, batchSize: N, bnAdaptation: true });
    const yf = runOutput(g, x);
    expect(sqnrDb(yf, runOutput(plain.graph, x))).toBeGreaterThan(25);
    expect(sqnrDb(yf, runOutput(adapted.graph, x))).toBeGreaterThan(25);
    expectParamsUntouched(g, snap);
    x.dispose();
  });

  it('biasCorrection runs and leaves the input graph untouched', async () => {
    const g = tinyGraph();
    const snap = snapshotParams(g);
    const x = seededTensor([8, ...IN], 7);
    const r = await quantizePostTraining(g, tinyData(), { samples: N, biasCorrection: true });
    expect(sqnrDb(runOutput(g, x), runOutput(r.graph, x))).toBeGreaterThan(25);
    expectParamsUntouched(g, snap);
    x.dispose();
  });

  it('ignoredScopes leave a layer in float and list it as skipped', async () => {
    const g = tinyGraph();
    const r = await quantizePostTraining(g, tinyData(), { samples: N, ignoredScopes: ['fc'] });
    expect(r.graph.param('fc.w_q')).toBeUndefined();
    expect(r.statistics.skipped.map((s) => s.node)).toEqual(['fc']);
  });

  it('calibration data of the wrong shape: INPUT_INVALID naming the input', async () => {
    const e = await rejectionOf(quantizePostTraining(tinyGraph(), tinyData(1, [5, 5, 2]), { samples: N }));
    expect(e.code).toBe('INPUT_INVALID');
    expect(e.message).toContain('"input"');
    expect(e.message).toContain('[5, 5, 2]');
    expect(e.details['input']).toBe('input');
  });

  it('NaN in the calibration data: QUANT_NONFINITE naming the value', async () => {
    const x = seededArray(N * 72, 1, -1, 1);
    x[100] = NaN;
    const data = arrayDataset({ x, y: new Int32Array(N), exampleShape: IN, numClasses: 3 });
    const before = tf.memory().numTensors;
    const e = await rejectionOf(quantizePostTraining(tinyGraph(), data, { samples: N }));
    expect(e.code).toBe('QUANT_NONFINITE');
    expect(e.message).toContain('"input"');
    expect(e.details['name']).toBe('input');
    // the failed run frees what it made
    expect(tf.memory().numTensors).toBe(before);
  });

  it('bad options: ConfigError with the JSON path of the setting', async () => {
    const g = tinyGraph();
    for (const [opts, path] of [
      [{ weights: { bits: 9 } }, '$.weights.bits'],
      [{ activations: { bits: 1 } }, '$.activations.bits'],
      [{ calibration: 'median' }, '$.calibration'],
      [{ samples: 0 }, '$.samples'],
    ] as const) {
      const e = await rejectionOf(quantizePostTraining(g, tinyData(), opts as never));
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).path).toBe(path);
    }
  });
});
