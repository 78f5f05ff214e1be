import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePipelineConfig } from '@tensorpress/core-tensor';
import { discoverAlgorithms } from '@tensorpress/cli';
import { describe, expect, it } from 'vitest';

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples');

describe('discoverAlgorithms', () => {
  it('finds the algorithms of the installed technique packages and reports the others as not installed', async () => {
    const { definitions, packages } = await discoverAlgorithms();
    const names = definitions.map((d) => d.algorithm).sort();
    expect(names).toEqual(['dorefa', 'filter_pruning', 'lsq', 'pact', 'post_training_quantization', 'quantization', 'tqt']);
    expect(packages.find((p) => p.name === '@tensorpress/pruning')).toEqual({ name: '@tensorpress/pruning', installed: true, algorithms: ['filter_pruning'] });
    expect(packages.find((p) => p.name === '@tensorpress/sparsity')?.installed).toBe(false);
  });

  it('every config in examples/ parses with the discovered definitions', async () => {
    const { definitions } = await discoverAlgorithms();
    const files = (await readdir(examples)).filter((f) => f.endsWith('.json'));
    expect(files).toContain('stacked.json');
    for (const f of files) {
      const config = parsePipelineConfig(await readFile(path.join(examples, f), 'utf8'), definitions);
      expect(config.compression.length, f).toBeGreaterThan(0);
    }
  });
});
