import {
  ConfigError,
  CountingScheduler,
  createBuilders,
  parsePipelineConfig,
  scopeFilter,
  type AlgorithmDefinition,
} from '@tensorpress/core-tensor';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';

const pruneSchema = z
  .object({
    ratio: z.number().min(0).lt(1).default(0.5),
    criterion: z.enum(['l1', 'l2', 'fpgm']).default('l1'),
    schedule: z.object({ steps: z.number().int().positive() }).strict().optional(),
  })
  .strict();

const definition: AlgorithmDefinition<z.infer<typeof pruneSchema>> = {
  algorithm: 'test_pruning',
  version: 2,
  packageName: '@tensorpress/test',
  description: 'test',
  schema: pruneSchema,
  create: (config) => ({
    algorithm: config.algorithm,
    priority: 100,
    register: () => undefined,
    build: () => ({
      algorithm: config.algorithm,
      scheduler: new CountingScheduler(),
      loss: () => {
        throw new Error('unused');
      },
      trainableVariables: () => [],
      statistics: () => ({ algorithm: config.algorithm, layers: [], total: { ratio: config.params.ratio }, skipped: [] }),
      state: () => null,
      loadState: () => undefined,
      strip: (g) => g,
      dispose: () => undefined,
    }),
  }),
};

function pathOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ConfigError) return e.message;
    throw e;
  }
  return 'no error';
}

describe('parsePipelineConfig', () => {
  it('applies defaults and accepts a single object or a list', () => {
    const one = parsePipelineConfig({ compression: { algorithm: 'test_pruning' } }, [definition]);
    expect(one.compression[0]).toEqual({ algorithm: 'test_pruning', version: 2, params: { ratio: 0.5, criterion: 'l1' }, ignoredScopes: [], targetScopes: [] });
    const list = parsePipelineConfig(
      JSON.stringify({ compression: [{ algorithm: 'test_pruning', params: { ratio: 0.3 }, ignoredScopes: ['{re}conv.*'] }] }),
      [definition],
    );
    expect(list.compression[0]!.params).toEqual({ ratio: 0.3, criterion: 'l1' });
    const builders = createBuilders(list, [definition]);
    expect(builders[0]!.algorithm).toBe('test_pruning');
  });

  it('names the JSON path of a bad value inside an algorithm’s params', () => {
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning' }, { algorithm: 'test_pruning', params: { ratio: 1.5 } }] }, [definition]))).toMatch(
      /^\$\.compression\[1\]\.params\.ratio: /,
    );
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning', params: { schedule: { steps: -1 } } }] }, [definition]))).toMatch(
      /^\$\.compression\[0\]\.params\.schedule\.steps: /,
    );
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning', params: { criterion: 'l7' } }] }, [definition]))).toMatch(
      /^\$\.compression\[0\]\.params\.criterion: /,
    );
  });

  it('names unknown keys, wrong types, malformed JSON and bad regexes', () => {
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning', params: { ratoi: 0.2 } }] }, [definition]))).toMatch(
      /^\$\.compression\[0\]\.params\.ratoi: unknown key "ratoi"/,
    );
    expect(pathOf(() => parsePipelineConfig({ compresion: [] }, [definition]))).toMatch(/^\$\.compresion: unknown key "compresion"/);
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 7 }] }, [definition]))).toMatch(/^\$\.compression(\[0\]\.algorithm)?: /);
    expect(pathOf(() => parsePipelineConfig('{"compression": [', [definition]))).toMatch(/^\$: not valid JSON/);
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning', targetScopes: ['{re}(('] }] }, [definition]))).toMatch(
      /^\$\.compression\[0\]\.targetScopes\[0\]: invalid regular expression/,
    );
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'test_pruning', version: 3 }] }, [definition]))).toMatch(
      /^\$\.compression\[0\]\.version: version 3 .* newer/,
    );
  });

  it('says which package to install for an algorithm named in the caller hints, and never guesses one', () => {
    const hints = { quantization: '@tensorpress/quant' };
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'quantization' }] }, [definition], { hints }))).toBe(
      '$.compression[0].algorithm: unknown algorithm "quantization"; it is provided by @tensorpress/quant: run `npm i @tensorpress/quant`',
    );
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'nope' }] }, [definition], { hints }))).toMatch(/known algorithms: test_pruning/);
    // Core knows no package: without hints, an algorithm of an uninstalled package lists what is known.
    expect(pathOf(() => parsePipelineConfig({ compression: [{ algorithm: 'quantization' }] }, [definition]))).toMatch(/known algorithms: test_pruning$/);
  });
});

describe('scopeFilter', () => {
  it('matches exact names and {re} regular expressions, ignored over target', () => {
    const f = scopeFilter({ ignoredScopes: ['conv1', '{re}.*shortcut.*'], targetScopes: ['{re}conv.*', 'fc'] });
    expect(['conv1', 'conv2', 'block1.shortcut.conv', 'fc', 'bn1'].filter(f)).toEqual(['conv2', 'fc']);
    expect(scopeFilter({})('anything')).toBe(true);
  });
});
