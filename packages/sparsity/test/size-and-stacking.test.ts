import { TensorpressError, compress, createGraph, parsePipelineConfig, useBackend, type Graph } from '@tensorpress/core-tensor';
import { magnitudeSparsity, nmSparsity, sparseSize, sparsityAlgorithms } from '@tensorpress/sparsity';
import { errorOf, expectAlgorithmList } from '@tensorpress/test-utils';
import * as sparsity from '@tensorpress/sparsity';
import { beforeAll, describe, expect, it } from 'vitest';
import { smallGraph } from './fixtures.js';

beforeAll(async () => {
  await useBackend('cpu');
});

describe('sparseSize', () => {
  it('dense bytes vs ⌈n/8⌉ + non-zeros·width per tensor, the cheaper of the two', () => {
    const g: Graph = createGraph({
      inputs: [{ name: 'x', shape: [null, 16], dtype: 'float32' }],
      outputs: ['y'],
      nodes: [{ name: 'fc', op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: {} }],
      params: [
        // 16×4 = 64 values, 48 zeros: dense 256 bytes, sparse 8 + 16·4 = 72.
        { name: 'w', shape: [16, 4], dtype: 'float32', data: Float32Array.from({ length: 64 }, (_, i) => (i % 4 === 0 ? 1 + i : 0)), trainable: true },
        // 4 values, none zero: dense 16 < 1 + 16.
        { name: 'b', shape: [4], dtype: 'float32', data: Float32Array.of(1, 2, 3, 4), trainable: true },
      ],
    });
    expect(sparseSize(g)).toEqual({ denseBytes: 256 + 16, bitmaskBytes: 72 + 16, zeros: 48, values: 68 });
  });
});

describe('sparsityAlgorithms', () => {
  it('holds every definition of the package, with unique names and valid schemas', () => {
    expectAlgorithmList(sparsity, 'sparsityAlgorithms', '@tensorpress/sparsity');
    expect(sparsityAlgorithms.map((d) => d.algorithm)).toEqual(['magnitude_sparsity', 'nm_sparsity', 'l0_sparsity', 'rb_sparsity']);
  });

  it('one sparsifier per pipeline', () => {
    const e = errorOf(() => compress(smallGraph(), [magnitudeSparsity(), nmSparsity()]));
    expect(e).toBeInstanceOf(TensorpressError);
    expect(e.message).toMatch(/cannot be stacked with .*both mask weights; use one sparsifier per pipeline/);
    const c = errorOf(() =>
      parsePipelineConfig({ compression: [{ algorithm: 'l0_sparsity' }, { algorithm: 'magnitude_sparsity' }] }, sparsityAlgorithms),
    );
    expect(c.message).toMatch(/^\$\.compression\[1\]/);
  });
});
