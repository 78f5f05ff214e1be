import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PRIORITY, type CompressionBuilder } from '@tensorpress/core-tensor';
import { EXIT_CODES, discoverAlgorithms } from '@tensorpress/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, writeTinyIdx } from './helpers.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tensorpress-config-'));
  data = path.join(tmp, 'data');
  await writeTinyIdx(data);
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Runs `compress` on a builtin model with the config `compression` (cache in tmp, FP32 training on). */
async function compressWith(name: string, compression: unknown[], model = 'builtin:mlp'): Promise<{ code: number; stdout: string; stderr: string; file: string }> {
  const file = path.join(tmp, name);
  await writeFile(file, JSON.stringify({ training: { epochs: 1 }, compression }));
  const cache = path.join(tmp, 'cache');
  const r = await cli(['compress', '--model', model, '--data', data, '--config', file, '--out', path.join(tmp, 'never'), '--fp32-epochs', '1', '--latency-runs', '0', '--cache-dir', cache]);
  return { ...r, file };
}

describe('tensorpress compress: what the config decides fails before any training', () => {
  it.each([
    ['a plan entry naming no node', [{ algorithm: 'quantization', params: { plan: [{ node: 'fc01', weightBits: 4 }] } }], /\$\.compression\[0\]\.params\.plan\[0\]\.node: "fc01" names no node of the graph; did you mean "fc1"\?/],
    ['nothing prunable', [{ algorithm: 'filter_pruning', params: { criterion: 'slim' } }], /\$\.compression\[0\]: filter_pruning: nothing in the graph can be pruned/],
    ['an unreachable FLOPs target', [{ algorithm: 'filter_pruning', params: { flopsReduction: 0.999 } }], /\$\.compression\[0\]\.params\.flopsReduction: filter_pruning: flopsReduction 0\.999 cannot be reached/],
    ['a scope naming no node', [{ algorithm: 'quantization', ignoredScopes: ['fx'] }], /\$\.compression\[0\]\.ignoredScopes\[0\]: "fx" names no node of the graph/],
  ])('%s: exit code 2 naming the file and the JSON path, no FP32 training, nothing written', async (_what, compression, message) => {
    const r = await compressWith('dry.json', compression);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^tensorpress: error: /);
    expect(r.stderr).toContain(`${r.file}: $.compression[0]`);
    expect(r.stderr).toMatch(message);
    expect(r.stdout).not.toMatch(/training FP32/);
    expect(existsSync(path.join(tmp, 'cache')) ? await readdir(path.join(tmp, 'cache')) : []).toEqual([]);
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });

  it.each([
    ['a misspelt key', [{ algorithm: 'quantization', parms: { weights: { bits: 4 } } }], '$.compression[0].parms: unknown key "parms"; did you mean "params"?'],
    ['two quantizers', [{ algorithm: 'quantization' }, { algorithm: 'dorefa' }], '$.compression[1].algorithm: "dorefa" cannot be stacked with "quantization" ($.compression[0]): both quantize weights; use one quantizer per pipeline'],
    ['quantization before pruning', [{ algorithm: 'quantization' }, { algorithm: 'filter_pruning' }], '$.compression[0].algorithm: "quantization" must come after "filter_pruning" ($.compression[1])'],
    ['a misspelt algorithm', [{ algorithm: 'quantisation' }], '$.compression[0].algorithm: unknown algorithm "quantisation"; did you mean "quantization"?'],
  ])('%s: exit code 2 when the config is read', async (_what, compression, message) => {
    const r = await compressWith('parse.json', compression);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toContain(`${r.file}: ${message}`);
    expect(r.stdout).toBe('');
  });
});

describe('stacking rules of the installed packages', () => {
  it('every `after` of a definition agrees with the builders’ priorities (compress applies in priority order)', async () => {
    const { definitions } = await discoverAlgorithms();
    const builders = new Map<string, CompressionBuilder>(definitions.map((d) => [d.algorithm, d.create({ algorithm: d.algorithm, version: d.version, params: d.schema.parse({}), ignoredScopes: [], targetScopes: [] })]));
    let pairs = 0;
    const seen: string[] = [];
    for (const a of definitions) {
      for (const b of definitions) {
        const names = [b.algorithm, ...(b.stacking?.group ? [b.stacking.group] : [])];
        if (!a.stacking?.after?.some((n) => names.includes(n))) continue;
        pairs++;
        seen.push(`${a.algorithm}>${b.algorithm}`);
        expect(builders.get(a.algorithm)!.priority, `${a.algorithm} after ${b.algorithm}`).toBeGreaterThan(builders.get(b.algorithm)!.priority);
      }
    }
    // Every quantizer runs after filter_pruning and the sparsifiers; binarization after both too.
    for (const q of ['quantization', 'dorefa', 'pact', 'tqt', 'lsq', 'post_training_quantization', 'inq', 'int8_training']) {
      expect(seen).toContain(`${q}>filter_pruning`);
      expect(seen).toContain(`${q}>magnitude_sparsity`);
    }
    expect(seen).toContain('magnitude_sparsity>filter_pruning');
    expect(pairs).toBeGreaterThanOrEqual(19);
    expect(builders.get('filter_pruning')!.priority).toBe(PRIORITY.pruning);
  });
});
