import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, GraphBuilder, arrayDataset, compress, createBuilders, parsePipelineConfig, useBackend, type Graph } from '@tensorpress/core-tensor';
import { dorefa, lsq, pact, quantAlgorithms, quantization, tqt } from '@tensorpress/quant';
import { errorOf, seededArray, seededTensor } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

function tinyGraph(): Graph {
  const b = new GraphBuilder({ seed: 1 });
  let h = b.input('input', [null, 4, 4, 1]);
  h = b.relu(b.conv(h, { filters: 2, kernel: 3, padding: 'same', name: 'c1' }), 'r1');
  h = b.flatten(h, 'flat');
  b.output(b.dense(h, 2, { name: 'fc' }));
  return b.build();
}

describe('quantization', () => {
  it('bits out of range: ConfigError with the JSON path', () => {
    for (const [make, path] of [
      [() => quantization({ weights: { bits: 9 } }), '$.weights.bits'],
      [() => quantization({ activations: { bits: 1 } }), '$.activations.bits'],
      [() => dorefa({ weights: { bits: 9 } }), '$.weights.bits'],
      [() => pact({ activations: { bits: 0 } }), '$.activations.bits'],
      [() => lsq({ weights: { bits: 2.5 } }), '$.weights.bits'],
      [() => tqt({ activations: { bits: 16 } }), '$.activations.bits'],
    ] as [() => unknown, string][]) {
      const e = errorOf(make);
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).path).toBe(path);
    }
  });

  it('a bad plan entry: error naming the node and the setting', () => {
    const e = errorOf(() => quantization({ plan: [{ node: 'x', weightBits: 1 }] }));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('"x"');
    expect(e.message).toContain('weightBits');
    const a = errorOf(() => lsq({ plan: [{ node: 'conv7', activationBits: 12 }] }));
    expect(a.message).toContain('conv7');
    expect(a.message).toContain('activationBits');
  });

  it('running or stripping before initialize: STATE_INVALID', () => {
    const ctrl = compress(tinyGraph(), [quantization()]);
    const x = seededTensor([1, 4, 4, 1], 1);
    const before = tf.memory().numTensors;
    const e = errorOf(() => ctrl.model.executor.run(x));
    expect(e.code).toBe('STATE_INVALID');
    expect(e.message).toContain('initialize');
    expect(tf.memory().numTensors).toBe(before);
    expect(errorOf(() => ctrl.strip()).code).toBe('STATE_INVALID');
    ctrl.dispose();
    x.dispose();
  });

  it('loadState refuses a state without an entry for a quantizer', async () => {
    const g = tinyGraph();
    const ctrl = compress(g, [quantization()]);
    await ctrl.initialize(arrayDataset({ x: seededArray(4 * 16, 2), y: new Int32Array(4), exampleShape: [4, 4, 1], numClasses: 2 }), { samples: 4 });
    const state = JSON.parse(JSON.stringify(ctrl.state())) as { algorithms: { quantization: Record<string, unknown> } };
    delete state.algorithms.quantization['c1.w'];
    const other = compress(g, [quantization()]);
    const e = errorOf(() => other.loadState(state as never));
    expect(e.code).toBe('STATE_INVALID');
    expect(e.message).toContain('c1.w');
    ctrl.dispose();
    other.dispose();
  });

  it('an empty dataset: DATA_INVALID', async () => {
    const ctrl = compress(tinyGraph(), [quantization()]);
    await expect(ctrl.initialize(arrayDataset({ x: new Float32Array(0), y: [], exampleShape: [4, 4, 1], numClasses: 2 }))).rejects.toMatchObject({ code: 'DATA_INVALID' });
    ctrl.dispose();
  });
});

describe('parsePipelineConfig', () => {
  it('parses every quant algorithm with its defaults and makes builders', () => {
    const names = ['quantization', 'dorefa', 'pact', 'tqt', 'lsq', 'post_training_quantization'];
    // One pipeline per algorithm: two quantizers may not share one (see 'stacking' below).
    const cfgs = names.map((algorithm) => parsePipelineConfig(JSON.stringify({ compression: [{ algorithm }] }), quantAlgorithms));
    expect(cfgs.map((c) => c.compression[0]!.algorithm)).toEqual(names);
    const params = Object.fromEntries(cfgs.map((c) => [c.compression[0]!.algorithm, c.compression[0]!.params as Record<string, unknown>]));
    expect(params['quantization']).toMatchObject({ preset: 'performance', weights: { bits: 8, mode: 'symmetric', perChannel: true }, activations: { bits: 8 }, gradient: 'clipped', plan: [] });
    expect(params['quantization']!['initializer']).toEqual({ range: { type: 'mean_min_max', numInitSamples: 256, minPercentile: 0.1, maxPercentile: 99.9 } });
    expect(params['dorefa']).toMatchObject({ weights: { bits: 4, scale: 'max', perChannel: true }, activations: { bits: 4 } });
    expect(params['pact']).toMatchObject({ activations: { bits: 4, alphaInit: 'range', alphaDecay: 2e-4 } });
    expect(params['tqt']).toMatchObject({ weights: { bits: 8, perChannel: false }, activations: { bits: 8 } });
    expect(params['lsq']).toMatchObject({ weights: { bits: 4, perChannel: false }, activations: { bits: 4 } });
    expect(params['post_training_quantization']).toMatchObject({ calibration: 'minmax', mode: 'static', samples: 256, weights: { bits: 8, perChannel: true } });
    for (const c of cfgs) expect(c.compression[0]!.version).toBe(1);
    const builders = cfgs.flatMap((c) => createBuilders(c, quantAlgorithms));
    expect(builders.map((b) => b.algorithm)).toEqual(names);
  });

  it('an invalid value names its JSON path', () => {
    const cases: [unknown, string][] = [
      [{ algorithm: 'quantization', params: { weights: { bits: 9 } } }, '$.compression[0].params.weights.bits'],
      [{ algorithm: 'quantization', params: { plan: [{ node: 'x', weightBits: 1 }] } }, '$.compression[0].params.plan[0].weightBits'],
      [{ algorithm: 'pact', params: { activations: { alphaInit: -1 } } }, '$.compression[0].params.activations.alphaInit'],
      [{ algorithm: 'lsq', params: { weights: { bitz: 4 } } }, '$.compression[0].params.weights.bitz'],
      [{ algorithm: 'post_training_quantization', params: { calibration: 'median' } }, '$.compression[0].params.calibration'],
    ];
    for (const [entry, path] of cases) {
      const e = errorOf(() => parsePipelineConfig({ compression: [entry] }, quantAlgorithms));
      expect(e).toBeInstanceOf(ConfigError);
      expect((e as ConfigError).path).toBe(path);
    }
  });

  it('the scopes of an entry reach placement (ignoredScopes → skipped)', async () => {
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'quantization', ignoredScopes: ['{re}f.*'] }] }, quantAlgorithms);
    const ctrl = compress(tinyGraph(), createBuilders(cfg, quantAlgorithms));
    await ctrl.initialize(arrayDataset({ x: seededArray(4 * 16, 2), y: new Int32Array(4), exampleShape: [4, 4, 1], numClasses: 2 }), { samples: 4 });
    expect(ctrl.controllers[0]!.statistics().skipped.map((s) => s.node)).toEqual(['fc']);
    ctrl.dispose();
  });
});
