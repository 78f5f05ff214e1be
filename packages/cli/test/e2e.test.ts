import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { EXIT_CODES, OUTPUT_MARKER, type CompressReport } from '@tensorpress/cli';
import { fromOnnx } from '@tensorpress/export-onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli, spawnBin, tinyWorkspace, type BinRun } from './helpers.js';

let tmp: string;
let data: string;
let config: string;

/** The real executable, run from source the way the workspace's `npm run tensorpress` does. */
function bin(args: readonly string[], onStdout?: (text: string, child: ChildProcess) => void): Promise<BinRun> {
  return spawnBin(args, path.join(tmp, 'cache'), onStdout ? { onStdout } : {});
}

beforeAll(async () => {
  ({ tmp, data, config } = await tinyWorkspace('tensorpress-cli-'));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('tensorpress compress (end to end)', () => {
  it('the bin compresses a tiny MLP with pruning + INT8 QAT: report, chart and an ONNX file that loads and passes parity', async () => {
    const out = path.join(tmp, 'out-bin');
    const r = await bin([
      'compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out,
      '--fp32-epochs', '2', '--latency-runs', '2',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/accuracy .*%/);
    expect(r.stdout).toContain('ORT latency');
    expect(r.stdout).toContain(path.join(out, 'model.onnx'));
    expect((await readdir(out)).sort()).toEqual([OUTPUT_MARKER, 'chart.svg', 'model.onnx', 'report.json', 'report.md']);
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as CompressReport;
    expect(report.parity.passed).toBe(true);
    expect(report.pipeline.compression.map((c) => c.algorithm)).toEqual(['filter_pruning', 'quantization']);
    expect(report.compressed.params).toBeLessThan(report.fp32.params);
    expect(report.compressed.flops).toBeLessThan(report.fp32.flops);
    expect(report.compressed.onnxBytes).toBeLessThan(report.fp32.onnxBytes / 4);
    expect(report.fp32.latencyMs).toBeGreaterThan(0);
    expect(report.algorithms.map((a) => a.algorithm)).toEqual(['filter_pruning', 'quantization']);
    const graph = fromOnnx(new Uint8Array(await readFile(path.join(out, 'model.onnx'))));
    expect(graph.nodes.some((n) => n.op === 'DequantizeLinear')).toBe(true);
    const md = await readFile(path.join(out, 'report.md'), 'utf8');
    expect(md).toContain('| accuracy |');
    expect(md).toContain('ONNX parity');
    const svg = await readFile(path.join(out, 'chart.svg'), 'utf8');
    expect(svg).toMatch(/^<svg /);
    expect(svg).toContain('FP32');
    expect(svg).toContain('compressed');
    // The trained builtin model was cached.
    expect((await readdir(path.join(tmp, 'cache'))).some((f) => f.startsWith('mlp-'))).toBe(true);
  });

  it('--json prints the report on stdout; --force writes into a non-empty folder and keeps the user\'s files', async () => {
    const out = path.join(tmp, 'out-force');
    await rm(out, { recursive: true, force: true });
    await writeFile(path.join(tmp, 'keep.txt'), 'x');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(out);
    await writeFile(path.join(out, 'notes.txt'), 'mine');
    const args = ['compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out, '--fp32-epochs', '2', '--latency-runs', '0', '--cache-dir', path.join(tmp, 'cache'), '--json'];
    const refused = await cli(args);
    expect(refused.code).toBe(EXIT_CODES.usage);
    expect(refused.stderr).toMatch(/^tensorpress: error: output folder .* is not empty; .*--force.*\n$/);
    expect(await readdir(out)).toEqual(['notes.txt']);
    const r = await cli([...args, '--force']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as CompressReport & { outDir: string };
    expect(report.parity.passed).toBe(true);
    expect(report.compressed.latencyMs).toBeNull();
    expect(await readFile(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
    expect(existsSync(path.join(out, 'model.onnx'))).toBe(true);
  });
});

describe('tensorpress (bad input)', () => {
  const base = (over: Record<string, string>): string[] => {
    const o: Record<string, string> = { '--model': 'builtin:mlp', '--data': data, '--config': config, '--out': path.join(tmp, 'never'), ...over };
    return ['compress', ...Object.entries(o).flat(), '--fp32-epochs', '1', '--latency-runs', '0', '--no-cache'];
  };
  const oneLineError = (stderr: string): void => {
    expect(stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(stderr).toMatch(/^tensorpress: error: /);
    expect(stderr).not.toMatch(/\bat .*\.ts:\d+/);
  };

  it.each([
    ['a missing model file', { '--model': 'nope/model.json' }, EXIT_CODES.input, /model file nope\/model\.json does not exist/],
    ['an unknown builtin model', { '--model': 'builtin:resnet999' }, EXIT_CODES.input, /unknown builtin model "resnet999"/],
    ['a model of an unknown format', { '--model': '__CONFIG_AS_TXT__' }, EXIT_CODES.input, /unknown format "\.txt"/],
    ['a model.json that is not JSON', { '--model': '__BAD_JSON__' }, EXIT_CODES.input, /not valid JSON/],
    ['a missing data folder', { '--data': 'no-such-folder' }, EXIT_CODES.input, /--data no-such-folder: expected mnist, fashion-mnist or a folder/],
    ['a data folder without IDX files', { '--data': '__EMPTY_DIR__' }, EXIT_CODES.input, /./],
    ['a missing config', { '--config': 'missing.json' }, EXIT_CODES.usage, /config file missing\.json does not exist/],
    ['a config that is not JSON', { '--config': '__BAD_JSON__' }, EXIT_CODES.usage, /\$: not valid JSON/],
    ['an unknown algorithm', { '--config': '__UNKNOWN_ALGO__' }, EXIT_CODES.usage, /\$\.compression\[0\]\.algorithm: unknown algorithm "warp_speed"; known algorithms: .*filter_pruning/],
    // A technique found by discovery validates its own parameters with the same paths.
    ['a bad level of a discovered technique', { '--config': '__SPARSITY__' }, EXIT_CODES.usage, /\$\.compression\[0\]\.params\.level/],
    ['a bad parameter', { '--config': '__BAD_PARAM__' }, EXIT_CODES.usage, /\$\.compression\[0\]\.params\.ratio/],
  ])('%s: one line, the documented exit code, nothing written', async (_what, over, code, message) => {
    const files: Record<string, () => Promise<string>> = {
      __CONFIG_AS_TXT__: async () => {
        const f = path.join(tmp, 'model.txt');
        await writeFile(f, 'hello');
        return f;
      },
      __BAD_JSON__: async () => {
        const f = path.join(tmp, 'bad.json');
        await writeFile(f, '{ "oops": ');
        return f;
      },
      __EMPTY_DIR__: async () => mkdtemp(path.join(tmp, 'empty-')),
      __UNKNOWN_ALGO__: async () => writeConfig('unknown.json', [{ algorithm: 'warp_speed' }]),
      __SPARSITY__: async () => writeConfig('sparsity.json', [{ algorithm: 'magnitude_sparsity', params: { level: 1.5 } }]),
      __BAD_PARAM__: async () => writeConfig('bad-param.json', [{ algorithm: 'filter_pruning', params: { ratio: 2 } }]),
    };
    const resolved = Object.fromEntries(await Promise.all(Object.entries(over).map(async ([k, v]) => [k, files[v] ? await files[v]() : v] as const)));
    const r = await cli(base(resolved));
    expect(r.code).toBe(code);
    oneLineError(r.stderr);
    expect(r.stderr).toMatch(message);
    expect(existsSync(path.join(tmp, 'never'))).toBe(false);
  });

  async function writeConfig(name: string, compression: unknown[]): Promise<string> {
    const f = path.join(tmp, name);
    await writeFile(f, JSON.stringify({ compression }));
    return f;
  }

  it('an unknown option or a missing required one: exit code 2', async () => {
    const r = await cli(['compress', '--model', 'builtin:mlp', '--config', config, '--out', path.join(tmp, 'never'), '--bogus']);
    expect(r.code).toBe(EXIT_CODES.usage);
    expect(r.stderr).toMatch(/^tensorpress: error: unknown option '--bogus'/);
    const m = await cli(['compress', '--model', 'builtin:mlp']);
    expect(m.code).toBe(EXIT_CODES.usage);
    expect(m.stderr).toMatch(/required option '--config <file>' not specified/);
  });

  it.each([[[]], [['compress']], [['eval']], [['export']], [['inspect']]])('--help %j: usage and the exit codes, exit code 0', async (cmd) => {
    const r = await cli([...cmd, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^Usage: tensorpress/);
    expect(r.stdout).toContain('130  interrupted');
  });

  it('an aborted signal stops training: exit code 130, nothing written', async () => {
    const controller = new AbortController();
    const out = path.join(tmp, 'out-abort');
    let status = '';
    const { runCli } = await import('@tensorpress/cli');
    // With --json the epoch lines are status lines on stderr.
    const code = await runCli(['compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out, '--fp32-epochs', '40', '--no-cache', '--json'], {
      stdout: () => undefined,
      stderr: (s) => {
        status += s;
        if (status.includes('epoch 2/40')) controller.abort();
      },
      signal: controller.signal,
    });
    expect(code).toBe(EXIT_CODES.interrupted);
    expect(existsSync(out)).toBe(false);
  });

  it('Ctrl-C on the bin: one line, exit code 130, no output folder and no temp file left', async () => {
    const out = path.join(tmp, 'out-sigint');
    let sent = false;
    const r = await bin(
      ['compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out, '--fp32-epochs', '200', '--no-cache'],
      (text, child) => {
        if (!sent && text.includes('epoch 2/200')) {
          sent = true;
          child.kill('SIGINT');
        }
      },
    );
    expect(sent).toBe(true);
    expect(r.code).toBe(EXIT_CODES.interrupted);
    expect(r.stderr).toBe('tensorpress: interrupted\n');
    expect(existsSync(out)).toBe(false);
    expect((await readdir(tmp)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
});
