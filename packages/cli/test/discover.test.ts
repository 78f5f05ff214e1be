import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePipelineConfig } from '@tensorpress/core-tensor';
import { KNOWN_TECHNIQUES, discoverAlgorithms, isAlgorithmDefinition } from '@tensorpress/cli';
import { readPipelineConfig } from '../src/internal/config-file.js';
import { describe, expect, it } from 'vitest';

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../examples');

describe('discoverAlgorithms', () => {
  it('finds the algorithms of the installed technique packages and reports the others as not installed', async () => {
    const { definitions, packages } = await discoverAlgorithms();
    const names = definitions.map((d) => d.algorithm).sort();
    expect(names).toEqual(['binarization', 'dorefa', 'filter_pruning', 'inq', 'int8_training', 'knowledge_distillation', 'l0_sparsity', 'lsq', 'magnitude_sparsity', 'nm_sparsity', 'pact', 'post_training_quantization', 'quantization', 'rb_sparsity', 'tqt']);
    expect(packages.find((p) => p.name === '@tensorpress/pruning')).toEqual({ name: '@tensorpress/pruning', installed: true, algorithms: ['filter_pruning'] });
    const missing = await discoverAlgorithms(['@tensorpress/not-a-package']);
    expect(missing.packages).toEqual([{ name: '@tensorpress/not-a-package', installed: false, algorithms: [] }]);
  });

  it('KNOWN_TECHNIQUES names exactly what each package declares in its algorithm list', async () => {
    for (const [name, algorithms] of Object.entries(KNOWN_TECHNIQUES)) {
      const mod = (await import(name)) as Record<string, unknown>;
      const lists = Object.entries(mod).filter(([k, v]) => k.endsWith('Algorithms') && Array.isArray(v));
      expect(lists, name).toHaveLength(1);
      const declared = lists[0]![1] as unknown[];
      expect(declared.every(isAlgorithmDefinition), name).toBe(true);
      expect(declared.map((d) => (d as { algorithm: string }).algorithm).sort(), name).toEqual([...algorithms].sort());
    }
  });

  it('a config naming an algorithm of a known package that is not installed says what to install', async () => {
    const { definitions } = await discoverAlgorithms(['@tensorpress/quant']);
    const dir = await mkdtemp(path.join(tmpdir(), 'tp-discover-'));
    try {
      const file = path.join(dir, 'c.json');
      await writeFile(file, JSON.stringify({ compression: [{ algorithm: 'filter_pruning' }] }));
      await expect(readPipelineConfig(file, definitions)).rejects.toThrow(
        /c\.json: \$\.compression\[0\]\.algorithm: unknown algorithm "filter_pruning"; it is provided by @tensorpress\/pruning: run `npm i @tensorpress\/pruning`/,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
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
