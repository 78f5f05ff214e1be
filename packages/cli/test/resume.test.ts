import { spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { EXIT_CODES, OUTPUT_MARKER, outputState } from '@tensorpress/cli';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitOutputs } from '../src/output-dir.js';
import { TINY_CONFIG, cli, spawnBin, writeTinyIdx, type BinRun } from './helpers.js';

let tmp: string;
let data: string;
let config: string;

const bin = (args: readonly string[], onTick?: (child: ChildProcess) => void): Promise<BinRun> =>
  spawnBin(args, path.join(tmp, 'cache'), onTick ? { onTick } : {});

/** A pid that no process has: one that just exited. */
const deadPid = (): number => spawnSync(process.execPath, ['-e', '']).pid!;

const compressArgs = (out: string, extra: string[] = []): string[] => [
  'compress', '--model', 'builtin:mlp', '--data', data, '--config', config, '--out', out,
  '--fp32-epochs', '1', '--latency-runs', '0', '--backend', 'wasm', ...extra,
];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'tensorpress-resume-'));
  data = path.join(tmp, 'data');
  // 320 training images: 20 steps of 16 per epoch, 2 epochs of fine-tuning.
  await writeTinyIdx(data, 320, 48);
  config = path.join(tmp, 'pipeline.json');
  await writeFile(config, JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, epochs: 2 } }));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('tensorpress compress --checkpoint-dir / --resume', () => {
  it('Ctrl-C mid fine-tuning saves a checkpoint; --resume ends with a model.onnx identical to an uninterrupted run', async () => {
    const reference = await bin(compressArgs(path.join(tmp, 'ref')));
    expect(reference.stderr).toBe('');
    expect(reference.code).toBe(0);

    // Interrupted: SIGINT as soon as the first checkpoint (step 5 of 40) is on disk.
    const ckpt = path.join(tmp, 'ckpt');
    const file = path.join(ckpt, 'fine-tune.ckpt');
    const out = path.join(tmp, 'out');
    let sent = false;
    const stopped = await bin(compressArgs(out, ['--checkpoint-dir', ckpt, '--checkpoint-every', '5']), (child) => {
      if (!sent && existsSync(file)) {
        sent = true;
        child.kill('SIGINT');
      }
    });
    expect(sent).toBe(true);
    expect(stopped.code).toBe(EXIT_CODES.interrupted);
    expect(stopped.stderr).toMatch(/^tensorpress: interrupted at fine-tuning step (\d+); checkpoint saved to .*fine-tune\.ckpt: rerun with --resume to continue\n$/);
    const step = Number(/step (\d+);/.exec(stopped.stderr)![1]);
    expect(step).toBeGreaterThanOrEqual(5);
    expect(step).toBeLessThan(40);
    expect(existsSync(out)).toBe(false);
    expect(await readdir(ckpt)).toEqual(['fine-tune.ckpt']);
    await copyFile(file, path.join(tmp, 'saved.ckpt'));

    // What a SIGKILL during the final writes of an earlier run left in --out: an in-progress marker,
    // a half-written file's temp file, and in the checkpoint folder a torn checkpoint temp file.
    await mkdir(out);
    await writeFile(path.join(out, OUTPUT_MARKER), JSON.stringify({ tool: '@tensorpress/cli', state: 'in-progress', pid: deadPid() }));
    const staleOut = `.model.onnx.${deadPid()}-m1abc2-0a1b2c3d.tmp`;
    const staleCkpt = `.fine-tune.ckpt.${deadPid()}-m1abc2-0a1b2c3d.tmp`;
    await writeFile(path.join(out, staleOut), 'torn');
    await writeFile(path.join(ckpt, staleCkpt), 'torn');
    expect(await outputState(out)).toBe('in-progress');

    const resumed = await bin(compressArgs(out, ['--checkpoint-dir', ckpt, '--resume', '--force']));
    expect(resumed.stderr).toBe('');
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(new RegExp(`resuming from .*fine-tune\\.ckpt: epoch \\d/2, step \\d+ \\(global step ${step}\\)`));
    const a = await readFile(path.join(tmp, 'ref', 'model.onnx'));
    const b = await readFile(path.join(out, 'model.onnx'));
    expect(b.length).toBeGreaterThan(1000);
    expect(b.equals(a)).toBe(true);
    expect((await readdir(out)).sort()).toEqual([OUTPUT_MARKER, 'chart.svg', 'model.onnx', 'report.json', 'report.md']);
    expect(await outputState(out)).toBe('complete');
    // The run completed: its checkpoint is removed, and so are the stale temp files.
    expect(await readdir(ckpt)).toEqual([]);
  }, 180_000);

  describe('refusals (exit code 2 or 3, one line, nothing written)', () => {
    const saved = (): string => path.join(tmp, 'saved.ckpt');
    const withCheckpoint = async (name: string, bytes?: Uint8Array): Promise<string> => {
      const dir = path.join(tmp, name);
      await mkdir(dir, { recursive: true });
      if (bytes) await writeFile(path.join(dir, 'fine-tune.ckpt'), bytes);
      else await copyFile(saved(), path.join(dir, 'fine-tune.ckpt'));
      return dir;
    };
    const run = (out: string, extra: string[]): ReturnType<typeof cli> =>
      cli([...compressArgs(path.join(tmp, out), extra), '--cache-dir', path.join(tmp, 'cache')]);

    it('--resume without --checkpoint-dir, or with no checkpoint there; a checkpoint present without --resume', async () => {
      const none = await run('never-1', ['--resume']);
      expect(none.code).toBe(EXIT_CODES.usage);
      expect(none.stderr).toMatch(/^tensorpress: error: --resume needs --checkpoint-dir/);
      await mkdir(path.join(tmp, 'empty-ckpt'), { recursive: true });
      const empty = await run('never-1', ['--checkpoint-dir', path.join(tmp, 'empty-ckpt'), '--resume']);
      expect(empty.code).toBe(EXIT_CODES.usage);
      expect(empty.stderr).toMatch(/holds no checkpoint \(fine-tune\.ckpt\); run without --resume to start/);
      const present = await run('never-1', ['--checkpoint-dir', await withCheckpoint('present')]);
      expect(present.code).toBe(EXIT_CODES.usage);
      expect(present.stderr).toMatch(/holds the checkpoint of an interrupted run: pass --resume to continue it, or delete the file to start over/);
      const inside = await run('never-1', ['--checkpoint-dir', path.join(tmp, 'never-1', 'ckpt')]);
      expect(inside.code).toBe(EXIT_CODES.usage);
      expect(inside.stderr).toMatch(/must lie outside --out/);
      expect(existsSync(path.join(tmp, 'never-1'))).toBe(false);
    });

    it('a checkpoint of another run: another config, another model, other epochs (named); a damaged one (exit 3)', async () => {
      const other = path.join(tmp, 'other.json');
      await writeFile(other, JSON.stringify({ ...TINY_CONFIG, training: { ...TINY_CONFIG.training, epochs: 2 }, compression: [TINY_CONFIG.compression[1]] }));
      const dir = await withCheckpoint('mismatch');
      const cfg = await cli(['compress', '--model', 'builtin:mlp', '--data', data, '--config', other, '--out', path.join(tmp, 'never-2'), '--checkpoint-dir', dir, '--resume', '--cache-dir', path.join(tmp, 'cache')]);
      expect(cfg.code).toBe(EXIT_CODES.usage);
      expect(cfg.stderr).toMatch(/^tensorpress: error: --resume: .*fine-tune\.ckpt was taken with a different config file content, this run has another;/);
      const model = await cli(['compress', '--model', 'builtin:plainCnn', '--data', data, '--config', config, '--out', path.join(tmp, 'never-2'), '--checkpoint-dir', dir, '--resume']);
      expect(model.code).toBe(EXIT_CODES.usage);
      expect(model.stderr).toMatch(/was taken with model "builtin:mlp", this run has "builtin:plainCnn"/);
      const epochs = await run('never-2', ['--checkpoint-dir', dir, '--resume', '--epochs', '4']);
      expect(epochs.code).toBe(EXIT_CODES.usage);
      expect(epochs.stderr).toMatch(/fingerprint\.epochs is 2 in the checkpoint, 4 here/);
      const bytes = new Uint8Array(await readFile(saved()));
      const damaged = await withCheckpoint('damaged', bytes.subarray(0, bytes.length - 100));
      const bad = await run('never-2', ['--checkpoint-dir', damaged, '--resume']);
      expect(bad.code).toBe(EXIT_CODES.input);
      expect(bad.stderr).toMatch(/^tensorpress: error: .*fine-tune\.ckpt: checkpoint: truncated: \d+ bytes, the frame declares \d+/);
      for (const r of [cfg, model, epochs, bad]) expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
      expect(existsSync(path.join(tmp, 'never-2'))).toBe(false);
    }, 120_000);
  });
});

describe('commitOutputs', () => {
  it('writes the marker first as in-progress and completes it last; a failure midway removes what it created', async () => {
    const dir = path.join(tmp, 'commit');
    const states: (string | null)[] = [];
    await commitOutputs(dir, [{ name: 'a.txt', data: 'a' }, { name: 'b.txt', data: 'b' }], () => {
      // Called before each write: marker, a.txt, b.txt, the completed marker.
      void states.push(existsSync(path.join(dir, OUTPUT_MARKER)) ? 'marker' : null);
    });
    expect(states).toEqual([null, 'marker', 'marker', 'marker']);
    expect(await outputState(dir)).toBe('complete');
    const failing = path.join(tmp, 'commit-fail');
    let calls = 0;
    let seen: unknown;
    await expect(
      commitOutputs(failing, [{ name: 'a.txt', data: 'a' }, { name: 'b.txt', data: 'b' }], () => {
        if (++calls === 3) {
          seen = (JSON.parse(readFileSync(path.join(failing, OUTPUT_MARKER), 'utf8')) as { state: string }).state;
          throw new Error('stop');
        }
      }),
    ).rejects.toThrow('stop');
    expect(seen).toBe('in-progress');
    expect(existsSync(failing)).toBe(false);
  });
});
