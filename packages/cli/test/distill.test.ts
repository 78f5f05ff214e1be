import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT_CODES, type CompressReport } from '@tensorpress/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tinyWorkspace } from './helpers.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  ({ tmp, data } = await tinyWorkspace('tensorpress-distill-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function configFile(name: string, compression: unknown): Promise<string> {
  const file = path.join(tmp, name);
  await writeFile(file, JSON.stringify({ compression }));
  return file;
}

const args = (config: string, out: string): string[] => [
  'compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out, '--fp32-epochs', '1', '--latency-runs', '0',
  '--cache-dir', path.join(tmp, 'cache'), '--json',
];

describe('tensorpress compress with knowledge_distillation', () => {
  it('loads the teacher the config names with the model loaders and distils from it while quantizing', async () => {
    const config = await configFile('kd.json', [{ algorithm: 'quantization' }, { algorithm: 'knowledge_distillation', params: { teacher: 'builtin:mlp', alpha: 0.5 } }]);
    const r = await cli(args(config, path.join(tmp, 'out-kd')));
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain('teacher: builtin:mlp');
    const report = JSON.parse(r.stdout) as CompressReport;
    const kd = report.algorithms.find((a) => a.algorithm === 'knowledge_distillation')!;
    expect(kd.total).toMatchObject({ teacher: 'named', alpha: 0.5, temperature: 4 });
    expect(report.parity.passed).toBe(true);
  });

  it('distils from the FP32 original when no teacher is named', async () => {
    const config = await configFile('kd-default.json', [{ algorithm: 'knowledge_distillation' }]);
    const r = await cli(args(config, path.join(tmp, 'out-default')));
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CompressReport;
    expect(report.algorithms[0]!.total['teacher']).toBe('original');
  });

  it('a hint node that does not exist fails before training, naming the JSON path and the node', async () => {
    const config = await configFile('kd-bad.json', [{ algorithm: 'knowledge_distillation', params: { hints: [{ student: 'fc9' }] } }]);
    const r = await cli(args(config, path.join(tmp, 'never')));
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/\$\.compression\[0\]\.params\.hints\[0\]\.student: the student has no node "fc9"/);
  });
});
