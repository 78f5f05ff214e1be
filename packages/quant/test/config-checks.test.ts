import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, GraphBuilder, arrayDataset, checkCompression, compress, createBuilders, parsePipelineConfig, useBackend, type Graph } from '@tensorpress/core-tensor';
import { dorefa, lsq, quantAlgorithms, quantization, quantizePostTraining } from '@tensorpress/quant';
import { errorOf, seededArray } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

function tinyGraph(): Graph {
  const b = new GraphBuilder({ seed: 1 });
  let h = b.input('input', [null, 4, 4, 1]);
  h = b.relu(b.batchNorm(b.conv(h, { filters: 2, kernel: 3, padding: 'same', name: 'c1' }), { name: 'bn1' }), 'r1');
  h = b.flatten(h, 'flat');
  b.output(b.dense(h, 2, { name: 'fc' }));
  return b.build();
}

/** The ConfigError a config gets when it is parsed, or else when its builders meet the tiny graph. */
function configError(compression: unknown[]): ConfigError {
  const e = errorOf(() => {
    const cfg = parsePipelineConfig({ compression }, quantAlgorithms);
    checkCompression(tinyGraph(), createBuilders(cfg, quantAlgorithms));
  });
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('quant stacking', () => {
  it('refuses two quantizers in one pipeline at parse time, naming the path of the second', () => {
    for (const [a, b] of [
      ['quantization', 'post_training_quantization'],
      ['quantization', 'dorefa'],
      ['pact', 'lsq'],
    ]) {
      const e = configError([{ algorithm: a }, { algorithm: b }]);
      expect(e.path).toBe('$.compression[1].algorithm');
      expect(e.message).toBe(`$.compression[1].algorithm: "${b}" cannot be stacked with "${a}" ($.compression[0]): both quantize weights; use one quantizer per pipeline`);
    }
  });

  it('compress() refuses two quantizer builders with a typed error, not a TypeError at strip', () => {
    const e = errorOf(() => compress(tinyGraph(), [quantization(), dorefa()]));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toMatch(/"dorefa" cannot be stacked with "quantization": both quantize weights/);
  });
});

describe('quant plan entries', () => {
  it('a plan entry naming no node: ConfigError at its path when the builder meets the graph, with the closest quantized node', () => {
    const e = configError([{ algorithm: 'quantization', params: { plan: [{ node: 'c1', weightBits: 4 }, { node: 'fx', weightBits: 4 }] } }]);
    expect(e.message).toBe('$.compression[0].params.plan[1].node: "fx" names no node of the graph; did you mean "fc"?');
    // Called directly, the builder's options are the document: the path starts at $.
    const direct = errorOf(() => compress(tinyGraph(), [lsq({ plan: [{ node: 'c9', activationBits: 4 }] })]));
    expect(direct).toBeInstanceOf(ConfigError);
    expect(direct.message).toBe('$.plan[0].node: "c9" names no node of the graph; did you mean "c1"?');
  });

  it('a plan entry naming a node the method does not quantize, or a regex matching none, is refused too', () => {
    expect(configError([{ algorithm: 'dorefa', params: { plan: [{ node: 'r1', weightBits: 4 }] } }]).message).toBe(
      '$.compression[0].params.plan[0].node: node "r1" (Relu) is not quantized by dorefa (no quantized weight or input, or out of scope)',
    );
    expect(configError([{ algorithm: 'pact', ignoredScopes: ['fc'], params: { plan: [{ node: 'fc', weightBits: 8 }] } }]).path).toBe('$.compression[0].params.plan[0].node');
    expect(configError([{ algorithm: 'quantization', params: { plan: [{ node: '{re}conv.*', weightBits: 4 }] } }]).message).toBe(
      '$.compression[0].params.plan[0].node: "{re}conv.*" matches no node that quantization quantizes',
    );
  });

  it('a bad regular expression or an entry that sets nothing is a parse-time ConfigError at the node', () => {
    const bad = configError([{ algorithm: 'quantization', params: { plan: [{ node: '{re}c((', weightBits: 4 }] } }]);
    expect(bad.message).toMatch(/^\$\.compression\[0\]\.params\.plan\[0\]\.node: invalid regular expression "c\(\(": /);
    expect(errorOf(() => quantization({ plan: [{ node: '{re}[', weightBits: 4 }] }))).toBeInstanceOf(ConfigError);
    expect(configError([{ algorithm: 'quantization', params: { plan: [{ node: 'c1' }] } }]).message).toMatch(/sets neither weightBits nor activationBits/);
  });

  it('a plan that matches is applied and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const ctrl = compress(tinyGraph(), [dorefa({ plan: [{ node: '{re}c\\d', weightBits: 8 }] })]);
    expect(ctrl.controllers[0]!.statistics().layers.find((l) => l.node === 'c1')!['bits']).toBe(8);
    ctrl.dispose();
    errorOf(() => compress(tinyGraph(), [dorefa({ plan: [{ node: 'nope', weightBits: 8 }] })]));
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('quant scopes and settings on the graph', () => {
  it('a scope naming no node: ConfigError at the scope entry with the closest name', () => {
    expect(configError([{ algorithm: 'tqt', ignoredScopes: ['fcc'] }]).message).toBe('$.compression[0].ignoredScopes[0]: "fcc" names no node of the graph; did you mean "fc"?');
    expect(errorOf(() => compress(tinyGraph(), [quantization({}, { targetScopes: ['C1'] })])).message).toBe(
      '$.targetScopes[0]: "C1" names no node of the graph; did you mean "c1"?',
    );
  });

  it('quantizePostTraining checks scope names on the graph it is given (a BN that folding removes is a real node)', async () => {
    const data = arrayDataset({ x: seededArray(4 * 16, 2), y: new Int32Array(4), exampleShape: [4, 4, 1], numClasses: 2 });
    const r = await quantizePostTraining(tinyGraph(), data, { samples: 4, ignoredScopes: ['bn1'] });
    expect(r.graph.nodes.some((n) => n.op === 'QuantizeLinear')).toBe(true);
    await expect(quantizePostTraining(tinyGraph(), data, { samples: 4, ignoredScopes: ['bn2'] })).rejects.toThrow(/"bn2" names no node of the graph; did you mean "bn1"\?/);
  });

  it('unknown keys and values in quant params get a suggestion', () => {
    expect(configError([{ algorithm: 'quantization', params: { weigths: { bits: 4 } } }]).message).toBe(
      '$.compression[0].params.weigths: unknown key "weigths"; did you mean "weights"?',
    );
    expect(configError([{ algorithm: 'lsq', params: { weights: { bitz: 4 } } }]).message).toBe('$.compression[0].params.weights.bitz: unknown key "bitz"; did you mean "bits"?');
    expect(configError([{ algorithm: 'quantization', params: { initializer: { range: { type: 'min_max', num_init_samples: 8 } } } }]).message).toMatch(
      /params\.initializer\.range\.num_init_samples: unknown key "num_init_samples"; did you mean "numInitSamples"\?$/,
    );
    expect(configError([{ algorithm: 'post_training_quantization', params: { calibration: 'minmx' } }]).message).toMatch(/did you mean "minmax"\?$/);
    expect(configError([{ algorithm: 'pact', params: { activations: { alphaInit: 'rang' } } }]).message).toMatch(/expected a number or "range", got "rang"; did you mean "range"\?$/);
  });
});
