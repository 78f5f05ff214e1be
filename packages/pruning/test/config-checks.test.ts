import * as tf from '@tensorflow/tfjs-core';
import { ConfigError, checkCompression, createBuilders, parsePipelineConfig, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { filterPruning, pruningAlgorithms } from '@tensorpress/pruning';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import { tinyGraph } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

/** The error a one-entry filter_pruning config gets when its builder meets `graph` (the CLI's dry apply). */
function dryApplyError(graph: Graph, entry: Record<string, unknown>): ConfigError {
  const cfg = parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', ...entry }] }, pruningAlgorithms);
  const before = tf.memory().numTensors;
  const e = errorOf(() => checkCompression(graph, createBuilders(cfg, pruningAlgorithms)));
  expect(tf.memory().numTensors).toBe(before);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('filter_pruning on the graph, before training', () => {
  it('nothing prunable: NOTHING_PRUNABLE with the entry’s path', () => {
    const e = dryApplyError(tinyGraph(), { params: { ratio: 0.5 } });
    expect(e.code).toBe('NOTHING_PRUNABLE');
    expect(e.path).toBe('$.compression[0]');
    expect(e.message).toMatch(/^\$\.compression\[0\]: filter_pruning: nothing in the graph can be pruned: "conv" \(Conv\): producer "conv" is the first convolution/);
  });

  it('an unreachable FLOPs target: TARGET_UNREACHABLE at params.flopsReduction', () => {
    const e = dryApplyError(referenceModels.residualCnn(), { params: { flopsReduction: 0.9 } });
    expect(e.code).toBe('TARGET_UNREACHABLE');
    expect(e.message).toMatch(/^\$\.compression\[0\]\.params\.flopsReduction: filter_pruning: flopsReduction 0\.9 cannot be reached: .* removes \d+\.\d% of the FLOPs/);
    // Called directly, the options object is the document.
    expect(errorOf(() => checkCompression(referenceModels.residualCnn(), [filterPruning({ flopsReduction: 0.9 })])).message).toMatch(/^\$\.flopsReduction: /);
  });

  it('a scope naming no node: ConfigError at the scope with the closest node', () => {
    const e = dryApplyError(referenceModels.residualCnn(), { params: { ratio: 0.3 }, ignoredScopes: ['block2.dwn'] });
    expect(e.message).toBe('$.compression[0].ignoredScopes[0]: "block2.dwn" names no node of the graph; did you mean "block2.down"?');
  });

  it('flopsReduction >= 1 and an unknown key are refused when parsed', () => {
    expect(errorOf(() => parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', params: { flopsReduction: 1 } }] }, pruningAlgorithms)).message).toMatch(
      /^\$\.compression\[0\]\.params\.flopsReduction: Too small|^\$\.compression\[0\]\.params\.flopsReduction: Too big/,
    );
    expect(errorOf(() => parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', params: { flops_reduction: 0.5 } }] }, pruningAlgorithms)).message).toBe(
      '$.compression[0].params.flops_reduction: unknown key "flops_reduction"; did you mean "flopsReduction"?',
    );
    expect(errorOf(() => parsePipelineConfig({ compression: [{ algorithm: 'filter_pruning', params: { schedule: { initiallevel: 0.1 } } }] }, pruningAlgorithms)).message).toBe(
      '$.compression[0].params.schedule.initiallevel: unknown key "initiallevel"; did you mean "initialLevel"?',
    );
  });
});
