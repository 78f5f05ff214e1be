import { readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT_CODES, OUTPUT_MARKER, type CompressReport } from '@tensorpress/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, tinyWorkspace } from './helpers.js';

let tmp: string;
let data: string;
let cache: string;

beforeAll(async () => {
  ({ tmp, data } = await tinyWorkspace('tensorpress-analyze-'));
  cache = path.join(tmp, 'cache');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const common = (): string[] => ['--model', 'builtin:mlp', '--data', data, '--fp32-epochs', '1', '--cache-dir', cache];

describe('tensorpress analyze', () => {
  it('filter_pruning: prints the table, writes analysis.json, the chart and a plan that compress --plan applies', async () => {
    const out = path.join(tmp, 'prune');
    const r = await cli(['analyze', ...common(), '--method', 'filter_pruning', '--levels', '0.25,0.5,0.75', '--samples', '48', '--flops-reduction', '0.3', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/filter_pruning: accuracy drop \(points\) with one layer compressed/);
    expect(r.stdout).toMatch(/fc1 +-?\d+\.\d\d +-?\d+\.\d\d +-?\d+\.\d\d/);
    expect((await readdir(out)).sort()).toEqual([OUTPUT_MARKER, 'analysis.json', 'plan.json', 'sensitivity.svg']);
    const analysis = JSON.parse(await readFile(path.join(out, 'analysis.json'), 'utf8')) as { rows: unknown[]; levels: number[]; pruningPlan: { estimatedFlopsReduction: number } };
    expect(analysis.levels).toEqual([0.25, 0.5, 0.75]);
    expect(analysis.rows).toHaveLength(2);
    expect(r.stdout).toMatch(/not prunable: fc3 \(.+\)/);
    expect(analysis.pruningPlan.estimatedFlopsReduction).toBeGreaterThanOrEqual(0.3);
    const plan = JSON.parse(await readFile(path.join(out, 'plan.json'), 'utf8')) as { kind: string; plan: { node: string; ratio: number }[] };
    expect(plan.kind).toBe('ratios');
    expect(plan.plan.length).toBeGreaterThan(0);

    const config = path.join(tmp, 'prune.json');
    await writeFile(config, JSON.stringify({ training: { epochs: 1, batchSize: 16 }, compression: [{ algorithm: 'filter_pruning', params: { criterion: 'l1' } }] }));
    const c = await cli(['compress', ...common(), '--config', config, '--plan', path.join(out, 'plan.json'), '--out', path.join(tmp, 'prune-out'), '--latency-runs', '0', '--json']);
    expect(c.stderr.split('\n').filter((l) => l.startsWith('tensorpress: error'))).toEqual([]);
    expect(c.code).toBe(0);
    const report = JSON.parse(c.stdout) as CompressReport;
    const params = report.pipeline.compression[0]!.params as { plan: unknown; flopsReduction: number };
    expect(params.plan).toEqual(plan.plan);
    expect(params.flopsReduction).toBe(0.3);
    expect(1 - report.compressed.flops / report.fp32.flops).toBeGreaterThanOrEqual(0.3 - 1e-9);
  });

  it('hawq: a bit plan within the budget that quant QAT takes from compress --plan', async () => {
    const out = path.join(tmp, 'hawq');
    const r = await cli(['analyze', ...common(), '--method', 'hawq', '--samples', '32', '--budget', 'averageBits=4', '--out', out, '--json']);
    expect(r.code).toBe(0);
    const res = JSON.parse(r.stdout) as { hawq: { chosen: { cost: number; budget: number } }; plan: { kind: string; plan: { node: string; weightBits: number }[] } };
    expect(res.hawq.chosen.cost).toBeLessThanOrEqual(res.hawq.chosen.budget);
    expect(res.plan.kind).toBe('bits');
    expect(res.plan.plan.map((e) => e.node)).toEqual(['fc1', 'fc2', 'fc3']);
    expect((await readdir(out)).sort()).toEqual([OUTPUT_MARKER, 'analysis.json', 'frontier.svg', 'plan.json']);

    const config = path.join(tmp, 'quant.json');
    await writeFile(config, JSON.stringify({ training: { epochs: 1, batchSize: 16 }, compression: [{ algorithm: 'quantization', params: { weights: { bits: 4 } } }] }));
    const c = await cli(['compress', ...common(), '--config', config, '--plan', path.join(out, 'plan.json'), '--out', path.join(tmp, 'hawq-out'), '--latency-runs', '0', '--json']);
    expect(c.stderr.split('\n').filter((l) => l.startsWith('tensorpress: error'))).toEqual([]);
    expect(c.code).toBe(0);
    const report = JSON.parse(c.stdout) as CompressReport;
    expect((report.pipeline.compression[0]!.params as { plan: unknown }).plan).toEqual(res.plan.plan);
  });

  it('bad input: unknown method, a plan with no entry to take it, a plan over a plan, an unreachable target', async () => {
    expect((await cli(['analyze', ...common(), '--method', 'nope', '--out', path.join(tmp, 'x')])).code).toBe(EXIT_CODES.usage);
    const planFile = path.join(tmp, 'hawq', 'plan.json');
    const pruneOnly = path.join(tmp, 'prune-only.json');
    await writeFile(pruneOnly, JSON.stringify({ compression: [{ algorithm: 'filter_pruning', params: { ratio: 0.5 } }] }));
    const a = await cli(['compress', ...common(), '--config', pruneOnly, '--plan', planFile, '--out', path.join(tmp, 'y')]);
    expect(a.code).toBe(EXIT_CODES.usage);
    expect(a.stderr).toMatch(/is a bits plan, but \$\.compression has no quantization \/ dorefa \/ pact \/ tqt \/ lsq \/ post_training_quantization entry/);
    const twice = path.join(tmp, 'twice.json');
    await writeFile(twice, JSON.stringify({ compression: [{ algorithm: 'quantization', params: { plan: [{ node: 'fc1', weightBits: 8 }] } }] }));
    const b = await cli(['compress', ...common(), '--config', twice, '--plan', planFile, '--out', path.join(tmp, 'z')]);
    expect(b.stderr).toMatch(/\$\.compression\[0\]\.params\.plan is already set/);
    const c = await cli(['analyze', ...common(), '--method', 'filter_pruning', '--levels', '0.1', '--flops-reduction', '0.9', '--out', path.join(tmp, 'w')]);
    expect(c.code).toBe(EXIT_CODES.usage);
    expect(c.stderr).toMatch(/TARGET|cannot be reached/);
  });
});
