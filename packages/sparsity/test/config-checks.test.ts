import { ConfigError, createBuilders, parsePipelineConfig } from '@tensorpress/core-tensor';
import { magnitudeSparsity, nmSparsity, sparsityAlgorithms } from '@tensorpress/sparsity';
import { errorOf } from '@tensorpress/test-utils';
import { describe, expect, it } from 'vitest';

function configError(fn: () => unknown): ConfigError {
  const e = errorOf(fn);
  expect(e).toBeInstanceOf(ConfigError);
  return e as ConfigError;
}

describe('magnitudeSparsity options', () => {
  it('a level outside [0, 1): ConfigError at $.level', () => {
    expect(configError(() => magnitudeSparsity({ level: 1 })).path).toBe('$.level');
    expect(configError(() => magnitudeSparsity({ level: -0.1 })).path).toBe('$.level');
  });

  it('a schedule whose epochs go backwards: ConfigError naming the epoch', () => {
    const e = configError(() => magnitudeSparsity({ schedule: { type: 'multistep', milestones: [3, 2], levels: [0.2, 0.5, 0.7] } }));
    expect(e.path).toBe('$.schedule.milestones[1]');
    expect(e.message).toMatch(/epoch 2 does not come after 3/);
    expect(configError(() => magnitudeSparsity({ schedule: { type: 'polynomial', beginEpoch: 4, targetEpoch: 2 } })).path).toBe('$.schedule.targetEpoch');
    expect(configError(() => magnitudeSparsity({ schedule: { type: 'polynomial', perStep: true } })).path).toBe('$.schedule.stepsPerEpoch');
  });

  it('a level inside a schedule is checked too', () => {
    expect(configError(() => magnitudeSparsity({ schedule: { type: 'multistep', milestones: [1], levels: [0.5, 1.5] } })).path).toBe('$.schedule.levels[1]');
  });

  it('in a pipeline config the path starts at the entry', () => {
    const e = configError(() => parsePipelineConfig({ compression: [{ algorithm: 'magnitude_sparsity', params: { level: 1.2 } }] }, sparsityAlgorithms));
    expect(e.path).toBe('$.compression[0].params.level');
    const ok = parsePipelineConfig({ compression: [{ algorithm: 'nm_sparsity', params: { n: 2, m: 4 } }] }, sparsityAlgorithms);
    expect(createBuilders(ok, sparsityAlgorithms)[0]!.algorithm).toBe('nm_sparsity');
  });
});

describe('nmSparsity options', () => {
  it('n >= m: ConfigError at $.n', () => {
    expect(configError(() => nmSparsity({ n: 4, m: 4 })).path).toBe('$.n');
    expect(configError(() => nmSparsity({ n: 5, m: 4 })).path).toBe('$.n');
    expect(configError(() => nmSparsity({ m: 1 })).path).toBe('$.m');
  });
});
