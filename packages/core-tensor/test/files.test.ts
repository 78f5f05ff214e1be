import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TensorpressError, removeStaleTempFiles, writeFileAtomic } from '@tensorpress/core-tensor';

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

describe('removeStaleTempFiles', () => {
  it("removes the temp files of processes that are gone, keeps live ones' and everything else", async () => {
    const d = path.join(dir, 'stale');
    mkdirSync(d);
    // A process that has exited: its pid is dead (the kernel does not hand it out again at once).
    const gone = spawnSync(process.execPath, ['-e', '']).pid!;
    const names = {
      stale: `.model.onnx.${gone}-m3x1k2-ab12cd34.tmp`,
      staleMarker: `.tensorpress-output.${gone}-m3x1k2-0f.tmp`,
      mine: `.model.onnx.${process.pid}-m3x1k2-ab12cd34.tmp`,
      parent: `.report.json.${process.ppid}-m3x1k2-ab12cd34.tmp`,
      user: '.notes.tmp',
      other: 'model.onnx',
    };
    for (const n of Object.values(names)) writeFileSync(path.join(d, n), 'x');
    const removed = await removeStaleTempFiles(d);
    expect(removed.map((f) => path.basename(f)).sort()).toEqual([names.stale, names.staleMarker].sort());
    expect(readdirSync(d).sort()).toEqual([names.mine, names.parent, names.user, names.other].sort());
    expect(await removeStaleTempFiles(path.join(dir, 'no-such-folder'))).toEqual([]);
  });
});
