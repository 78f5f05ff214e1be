import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { referenceModels } from '@tensorpress/models';
import { toOnnx } from '@tensorpress/export-onnx';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers.js';

let dir: string;
let file: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'tp-inspect-'));
  const g = referenceModels.mlp({ seed: 0, width: 0.1 });
  const w = g.params.find((p) => p.shape.length === 2)!;
  (w.data as Float32Array)[3] = Number.NaN;
  file = path.join(dir, 'nan.onnx');
  await writeFile(file, toOnnx(g));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('tensorpress inspect', () => {
  it('prints the warnings of an ONNX file that reads (a NaN weight, named)', async () => {
    const r = await cli(['inspect', file]);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/warning: initializer "[^"]+" holds 1 NaN and 0 infinite value\(s\) of \d+/);
    const j = await cli(['inspect', file, '--json']);
    expect(j.code).toBe(0);
    const out = JSON.parse(j.stdout) as { warnings: string[] };
    expect(out.warnings).toHaveLength(1);
    expect(out.warnings[0]).toMatch(/^initializer "[^"]+" holds 1 NaN/);
  });
});
