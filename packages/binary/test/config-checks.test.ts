import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, checkCompression, createBuilders, parsePipelineConfig, useBackend } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { binarization, binaryAlgorithms } from '@tensorpress/binary';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';

beforeAll(async () => {
  await useBackend('cpu');
});

/** The error a one-entry binarization config gets when parsed or applied to plainCnn (the CLI's dry apply). */
function configError(entry: Record<string, unknown>): ConfigError {
  const before = tf.memory().numTensors;
  const e = errorOf(() => {
    const cfg = parsePipelineConfig({ compression: [{ algorithm: 'binarization', ...entry }] }, binaryAlgorithms);
    checkCompression(referenceModels.plainCnn(), createBuilders(cfg, binaryAlgorithms));
  });
  expect(tf.memory().numTensors).toBe(before);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('binarization: bad input', () => {
  it('binarizing a layer that has no weights: ConfigError at the target scope, naming the node', () => {
    const e = configError({ targetScopes: ['conv2', 'relu2'] });
    expect(e.message).toBe(
      '$.compression[0].targetScopes[1]: node "relu2" (Relu) has no weights to binarize; binarization acts on Conv, Gemm and MatMul nodes with a weight parameter',
    );
    expect(e.details['node']).toBe('relu2');
  });

  it('the first layer named twice (fullPrecision.first and fullPrecision.nodes): ConfigError naming the node', () => {
    const e = configError({ params: { fullPrecision: { nodes: ['conv1'] } } });
    expect(e.message).toBe('$.compression[0].params.fullPrecision.nodes[0]: node "conv1" is named twice: it is already the first layer kept by fullPrecision.first');
    const last = configError({ params: { fullPrecision: { nodes: ['fc2'] } } });
    expect(last.message).toBe('$.compression[0].params.fullPrecision.nodes[0]: node "fc2" is named twice: it is already the last layer kept by fullPrecision.last');
  });

  it('a node listed twice in fullPrecision.nodes, or one without weights, or none', () => {
    expect(configError({ params: { fullPrecision: { nodes: ['conv2', 'conv2'] } } }).message).toBe(
      '$.compression[0].params.fullPrecision.nodes[1]: node "conv2" is named twice (also at nodes[0])',
    );
    expect(configError({ params: { fullPrecision: { nodes: ['pool1'] } } }).message).toBe(
      '$.compression[0].params.fullPrecision.nodes[0]: node "pool1" (MaxPool) has no weights, so there is nothing to keep in full precision',
    );
    expect(configError({ params: { fullPrecision: { nodes: ['cnv2'] } } }).message).toMatch(/^\$\.compression\[0\]\.params\.fullPrecision\.nodes\[0\]: "cnv2" names no node of the graph; did you mean "conv2"\?$/);
  });

  it('a stage order that is not monotonic: ConfigError at the stage that goes back', () => {
    expect(configError({ params: { schedule: { type: 'staged', activationsAt: 2, weightsAt: 1, decayAt: 3 } } }).message).toBe(
      '$.compression[0].params.schedule.weightsAt: stages must not go back: weightsAt (1) is before activationsAt (2)',
    );
    expect(configError({ params: { schedule: { type: 'staged', activationsAt: 0, weightsAt: 2, decayAt: 1 } } }).message).toBe(
      '$.compression[0].params.schedule.decayAt: stages must not go back: decayAt (1) is before weightsAt (2)',
    );
  });

  it('a ternary threshold factor outside (0, 1): ConfigError at weights.ternaryThreshold', () => {
    for (const t of [0, 1, -0.5, 1.5]) {
      expect(configError({ params: { weights: { method: 'twn', ternaryThreshold: t } } }).message).toBe(
        `$.compression[0].params.weights.ternaryThreshold: the ternary threshold factor θ must lie in (0, 1), got ${t}`,
      );
    }
    // Called directly, the options object is the document.
    expect(errorOf(() => binarization({ weights: { ternaryThreshold: 1 } })).message).toMatch(/^\$\.weights\.ternaryThreshold: /);
  });

  it('nothing to binarize and unknown keys', () => {
    expect(configError({ params: { weights: { method: 'none' }, activations: { method: 'none' } } }).message).toMatch(/^\$\.compression\[0\]\.params\.weights\.method: binarization: both/);
    expect(configError({ targetScopes: ['conv1'] }).message).toMatch(/^\$\.compression\[0\]: binarization: no layer to binarize: "conv1": first layer/);
    expect(configError({ params: { weights: { methd: 'xnor' } } }).message).toBe('$.compression[0].params.weights.methd: unknown key "methd"; did you mean "method"?');
  });
});
