/**
 * `npm run bench -- browser [--quick] [--steps N]`: per-step FP32 training time of plainCnn
 * (103,594 parameters, batch 32, 28×28×1) in headless chromium on webgpu, webgl, wasm and cpu, with
 * the WebGL renderer / WebGPU adapter string of each row. SwiftShader (the only GPU on this machine)
 * is a software rasteriser on the CPU: its rows are labelled `software` and say nothing about GPU
 * speed. Runs apps/web/test/step-time.ts (Vite build of the test page, playwright-core driving
 * /usr/bin/chromium) in a child process and records the rows it prints.
 *
 * `--quick` measures 3 steps per backend instead of 10 (after 2 warm-up steps each).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SuiteResult } from './run.js';

const repo = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');

export default async function browser(args: string[]): Promise<SuiteResult> {
  const script = path.join(repo, 'apps', 'web', 'test', 'step-time.ts');
  const child = spawn(process.execPath, ['--conditions=@tensorpress/source', '--import', 'tsx', script, ...args], {
    cwd: repo,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    out += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  const last = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !last.startsWith('{')) throw new Error(`apps/web/test/step-time.ts failed (exit ${code})`);
  const { rows, chromium } = JSON.parse(last) as { rows: Record<string, unknown>[]; chromium: string };
  const labelled = rows.map((r) => ({ ...r, kind: r['software'] === true ? 'software' : r['backend'] === 'webgl' || r['backend'] === 'webgpu' ? 'GPU' : 'CPU' }));
  return {
    rows: labelled,
    backend: `chromium ${chromium} (headless): webgpu, webgl, wasm, cpu`,
    notes: [
      'SwiftShader rows (kind: software) run the GPU APIs on the CPU: correctness, not GPU speed.',
      'wasm runs one thread: the test page is not cross-origin isolated (no SharedArrayBuffer).',
      ...(args.includes('--quick') ? ['--quick: 3 measured steps per backend.'] : []),
    ],
  };
}
