import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '@tensorpress/cli';

/** Big-endian IDX file: magic (0, 0, 0x08 = ubyte, rank), dims, data. */
function idx(dims: readonly number[], data: Uint8Array): Uint8Array {
  const head = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  head.setUint8(2, 0x08);
  head.setUint8(3, dims.length);
  dims.forEach((d, i) => head.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(head.byteLength + data.length);
  out.set(new Uint8Array(head.buffer), 0);
  out.set(data, head.byteLength);
  return out;
}

/**
 * A tiny learnable IDX dataset (Fashion-MNIST file names): 28×28 images of 4 classes, class k lighting
 * quadrant k, plus deterministic noise.
 */
export async function writeTinyIdx(dir: string, train = 96, test = 48): Promise<void> {
  await mkdir(dir, { recursive: true });
  const side = 28;
  const make = (n: number, offset: number): { x: Uint8Array; y: Uint8Array } => {
    const x = new Uint8Array(n * side * side);
    const y = new Uint8Array(n);
    let s = 12345 + offset;
    const rnd = (): number => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < n; i++) {
      const k = (i + offset) % 4;
      y[i] = k;
      for (let r = 0; r < side; r++) {
        for (let c = 0; c < side; c++) {
          const q = (r < side / 2 ? 0 : 2) + (c < side / 2 ? 0 : 1);
          x[i * side * side + r * side + c] = Math.min(255, (q === k ? 170 : 20) + Math.floor(rnd() * 60));
        }
      }
    }
    return { x, y };
  };
  const tr = make(train, 0);
  const te = make(test, 1);
  await writeFile(path.join(dir, 'train-images-idx3-ubyte'), idx([train, side, side], tr.x));
  await writeFile(path.join(dir, 'train-labels-idx1-ubyte'), idx([train], tr.y));
  await writeFile(path.join(dir, 't10k-images-idx3-ubyte'), idx([test, side, side], te.x));
  await writeFile(path.join(dir, 't10k-labels-idx1-ubyte'), idx([test], te.y));
}

/** The stacked pipeline on a tiny budget: filter pruning (FPGM, half the units) + INT8 QAT with 7-bit weights. */
export const TINY_CONFIG = {
  training: { epochs: 1, batchSize: 16, learningRate: 0.001, optimizer: 'adam' },
  compression: [
    { algorithm: 'filter_pruning', params: { criterion: 'fpgm', ratio: 0.5 } },
    { algorithm: 'quantization', params: { overflowFix: 'enable' } },
  ],
};

/** runCli with captured stdout and stderr. */
export async function cli(args: readonly string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => void (stdout += s), stderr: (s) => void (stderr += s), ...(signal ? { signal } : {}) });
  return { code, stdout, stderr };
}

/** What a spawned `tensorpress` printed, and how it ended. */
export interface BinRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

/**
 * The real executable, run from source the way the workspace's `npm run tensorpress` does, with
 * trained builtin models cached in `cacheDir`. `onStdout` sees the output so far; `onTick` runs
 * every 5 ms while the process lives (both may signal it).
 */
export function spawnBin(
  args: readonly string[],
  cacheDir: string,
  hooks: { onStdout?: (text: string, child: ChildProcess) => void; onTick?: (child: ChildProcess) => void } = {},
): Promise<BinRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--conditions=@tensorpress/source', '--import', 'tsx', 'packages/cli/src/bin.ts', ...args], {
      cwd: repo,
      env: { ...process.env, TENSORPRESS_CACHE: cacheDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      hooks.onStdout?.(stdout, child);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = hooks.onTick ? setInterval(() => hooks.onTick!(child), 5) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** A new temp folder holding the tiny IDX dataset (`data`) and {@link TINY_CONFIG} (`config`). */
export async function tinyWorkspace(prefix: string): Promise<{ tmp: string; data: string; config: string }> {
  const tmp = await mkdtemp(path.join(os.tmpdir(), prefix));
  const data = path.join(tmp, 'data');
  await writeTinyIdx(data);
  const config = path.join(tmp, 'pipeline.json');
  await writeFile(config, JSON.stringify(TINY_CONFIG));
  return { tmp, data, config };
}
