import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/tensorpress.mjs');
const root = path.resolve(path.dirname(bin), '../../..');

describe('bin/tensorpress.mjs', () => {
  it('runs the sources in the repository with no build: --help, and the exit code of an error', () => {
    const help = spawnSync(process.execPath, [bin, '--help'], { encoding: 'utf8', cwd: root });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tensorpress /);
    expect(help.stdout).toMatch(/compress \[options\]/);
    const missing = spawnSync(process.execPath, [bin, 'eval', '--model', 'no-such-model.json'], { encoding: 'utf8', cwd: root });
    expect(missing.status).toBe(3);
    expect(missing.stderr).toMatch(/^tensorpress: error: model file no-such-model\.json does not exist/);
  });
});
