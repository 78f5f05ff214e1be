import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/** Runs `npm run fuzz -- config` the way a user does (fuzz/ is a repo script, outside every package). */
function fuzz(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@tensorpress/source', '--import', 'tsx', 'fuzz/main.ts', 'config', ...args], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

interface Report {
  row: Record<string, unknown> & { typedByCode: Record<string, number> };
  bad: unknown[];
  leaky: unknown[];
  incidents: unknown[];
}

describe('config fuzz (a seeded slice of `npm run fuzz -- config`)', () => {
  it('300 mutations of the example configs: no crash, hang, untyped or pathless error, ignored key or leak', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tensorpress-fuzz-'));
    try {
      const out = path.join(dir, 'fuzz.json');
      // Another target's row is kept when the config row is written.
      await writeFile(out, JSON.stringify({ bench: 'fuzz', rows: [{ target: 'onnx', mutations: 1 }, { target: 'config', mutations: 0 }] }));
      const r = await fuzz(['300', '--seed', '7', '--out', out, '--json']);
      const report = JSON.parse(r.stdout.split('\n').find((l) => l.startsWith('{"row"'))!) as Report;
      expect({ bad: report.bad, leaky: report.leaky, incidents: report.incidents }).toEqual({ bad: [], leaky: [], incidents: [] });
      expect(r.code).toBe(0);
      const row = report.row;
      expect(row).toMatchObject({ target: 'config', seed: 7, mutations: 300, untypedErrors: 0, pathlessErrors: 0, crashes: 0, hangs: 0, ignoredKeys: 0, leaks: 0 });
      expect(row['accepted']).toBeGreaterThan(20);
      expect((row['accepted'] as number) + (row['typedErrors'] as number)).toBe(300);
      expect(row.typedByCode['CONFIG_INVALID']).toBeGreaterThan(150);
      expect(row['keyPathsMisspelt']).toBeGreaterThan(40);
      const written = JSON.parse(await readFile(out, 'utf8')) as { bench: string; rows: { target: string }[] };
      expect(written.bench).toBe('fuzz');
      expect(written.rows.map((x) => x.target)).toEqual(['onnx', 'config']);
      expect(written.rows[1]).toEqual(row);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
