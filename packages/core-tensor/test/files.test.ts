import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TensorpressError, writeFileAtomic } from '@tensorpress/core-tensor';

const dir = mkdtempSync(path.join(tmpdir(), 'tp-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeFileAtomic', () => {
  it('writes and replaces a file, leaving no temp file', async () => {
    const file = path.join(dir, 'a.bin');
    await writeFileAtomic(file, Uint8Array.of(1, 2, 3));
    expect([...readFileSync(file)]).toEqual([1, 2, 3]);
    await writeFileAtomic(file, 'text');
    expect(readFileSync(file, 'utf8')).toBe('text');
    expect(readdirSync(dir)).toEqual(['a.bin']);
  });

  it('a missing directory is an IO_ERROR naming the file, and nothing is left behind', async () => {
    const file = path.join(dir, 'missing', 'b.bin');
    const e = await writeFileAtomic(file, 'x').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(TensorpressError);
    expect((e as TensorpressError).code).toBe('IO_ERROR');
    expect((e as TensorpressError).message).toContain(file);
    expect(readdirSync(dir)).toEqual(['a.bin']);
  });
});
