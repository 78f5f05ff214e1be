import { execFile } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { DEFAULT_BACKEND_ORDER, currentBackend, ensureGradients, useBackend } from '@tensorpress/core-tensor';
import type { BackendName } from '@tensorpress/core-tensor';
import { TensorpressError } from '@tensorpress/core-tensor';

async function canImport(pkg: string): Promise<boolean> {
  try {
    await import(/* @vite-ignore */ pkg);
    return true;
  } catch {
    return false;
  }
}

async function rejection(p: Promise<unknown>): Promise<TensorpressError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TensorpressError);
    return e as TensorpressError;
  }
  return expect.fail('expected a rejection');
}

describe('useBackend', () => {
  it('registers nothing on import', () => {
    // This file imported the module above; loading it must not have touched tfjs' registries.
    expect(tf.findBackendFactory('wasm') ?? undefined).toBeUndefined();
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBeUndefined();
    expect(currentBackend()).toBeNull();
  });

  it('activates cpu with gradients and the fast filter-gradient kernels', async () => {
    const sel = await useBackend('cpu');
    expect(sel.name).toBe('cpu');
    expect(sel.fallbackFrom).toBeUndefined();
    expect(sel.fastGradients).toContain('Conv2DBackpropFilter');
    expect(tf.getBackend()).toBe('cpu');
    expect(currentBackend()).toBe('cpu');
    expect(tf.getGradient('Conv2D')).toBeDefined();
  });

  it('activates wasm in Node from the installed package folder, multi-threaded', async () => {
    const sel = await useBackend('wasm');
    // Default: min(2, CPUs) XNNPACK threads through the worker_threads shim.
    expect(sel).toMatchObject({ name: 'wasm', threads: Math.min(2, os.availableParallelism()) });
    // The shim's temporary patches are gone.
    expect(os.cpus().length).toBe(os.availableParallelism());
    expect(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')).toBe(false);
    expect([...sel.fastGradients].sort()).toEqual(
      [
        'BatchMatMul',
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'Identity',
        'MaxPoolGrad',
        'Mean',
        'OneHot',
        'Sum',
        'Tile',
      ].sort(),
    );
    expect(currentBackend()).toBe('wasm');
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => tf.grad((x: tf.Tensor) => tf.sum(tf.conv2d(x as tf.Tensor4D, tf.ones([3, 3, 1, 2]), 1, 'same')))(tf.ones([1, 4, 4, 1])));
    // Corner pixels of a 'same' 3x3 conv with all-ones filters reach 4 outputs per channel.
    expect(Array.from(y.dataSync()).slice(0, 2)).toEqual([8, 12]);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is idempotent', async () => {
    const a = await useBackend('wasm');
    const kernel = tf.getKernel('Conv2DBackpropFilter', 'wasm');
    const b = await useBackend('wasm');
    expect(b).toEqual(a);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).toBe(kernel);
  });

  it('switches back and forth', async () => {
    expect((await useBackend('cpu')).name).toBe('cpu');
    expect((await useBackend('wasm')).name).toBe('wasm');
    expect((await useBackend(['cpu', 'wasm'])).name).toBe('cpu');
  });

  it('falls back along a list and says why', async () => {
    const sel = await useBackend(['webgl', 'webgpu', 'cpu']);
    expect(sel.name).toBe('cpu');
    expect(sel.fallbackFrom?.map((s) => s.name)).toEqual(['webgl', 'webgpu']);
    expect(sel.fallbackFrom?.[0]?.reason).toMatch(/WebGL/);
    expect(sel.fallbackFrom?.[1]?.reason).toMatch(/navigator\.gpu/);
  });

  it('picks the best available backend by default', async () => {
    const hasNode = (await canImport('@tensorflow/tfjs-node-gpu')) || (await canImport('@tensorflow/tfjs-node'));
    const sel = await useBackend();
    if (hasNode) {
      expect(sel.name).toBe('tensorflow');
    } else {
      expect(sel.name).toBe('wasm');
      expect(sel.fallbackFrom?.map((s) => s.name)).toEqual(['tensorflow', 'webgpu', 'webgl']);
      expect(sel.fallbackFrom?.[0]?.reason).toMatch(/install @tensorflow\/tfjs-node/);
    }
    expect(DEFAULT_BACKEND_ORDER).toEqual(['tensorflow', 'webgpu', 'webgl', 'wasm', 'cpu']);
  });

  it('names what to install when a required backend is missing', async () => {
    if ((await canImport('@tensorflow/tfjs-node')) || (await canImport('@tensorflow/tfjs-node-gpu'))) {
      expect((await useBackend('tensorflow')).name).toBe('tensorflow');
    } else {
      const e = await rejection(useBackend('tensorflow'));
      expect(e.code).toBe('BACKEND_UNAVAILABLE');
      expect(e.message).toMatch(/install @tensorflow\/tfjs-node/);
    }
    const webgl = await rejection(useBackend('webgl'));
    expect(webgl.code).toBe('BACKEND_UNAVAILABLE');
    expect(webgl.message).toMatch(/@tensorflow\/tfjs-backend-webgl/);
    // A failed request leaves the active backend as it was.
    expect(currentBackend()).not.toBeNull();
  });

  it('rejects unknown names and empty lists', async () => {
    const unknown = await rejection(useBackend('gpu' as BackendName));
    expect(unknown.code).toBe('BACKEND_UNAVAILABLE');
    expect(unknown.message).toMatch(/unknown backend 'gpu'/);
    expect((await rejection(useBackend([]))).code).toBe('BACKEND_UNAVAILABLE');
  });

  it('can leave tfjs kernels untouched', async () => {
    const sel = await useBackend('cpu', { fastGradients: false });
    expect(sel.fastGradients).toEqual([]);
  });
});

/** Runs a plain `node` process on the package sources; resolves with its stdout once it exits. */
function runNode(code: string, env: Record<string, string>): Promise<string> {
  const root = fileURLToPath(new URL('../../..', import.meta.url));
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--conditions=@tensorpress/source', '--import', 'tsx', '--input-type=module', '-e', code],
      { cwd: root, env: { ...process.env, ...env }, timeout: 120_000, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => (error != null ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)),
    );
  });
}

// Conv/pool/relu gradients of a small net; nothing keeps the process alive after the last line.
const GRADIENT_SCRIPT = `
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
const threads = process.env.THREADS === '' ? undefined : Number(process.env.THREADS);
const sel = await useBackend('wasm', { threads });
const x = tf.randomNormal([32, 12, 12, 1], 0, 1, 'float32', 1);
const w1 = tf.randomNormal([3, 3, 1, 16], 0, 0.3, 'float32', 2);
const w2 = tf.randomNormal([3, 3, 16, 32], 0, 0.1, 'float32', 3);
const f = (x, w1, w2) => tf.sum(tf.square(tf.conv2d(tf.maxPool(tf.relu(tf.conv2d(x, w1, 1, 'same')), 2, 2, 'valid'), w2, 1, 'same')));
const grads = tf.grads(f)([x, w1, w2]);
console.log(JSON.stringify({ threads: sel.threads, grads: grads.map((g) => Array.from(g.dataSync())) }));
`;

describe('useBackend (wasm threads)', () => {
  it('gives the same gradients on 1 and 2 threads, and plain node processes exit by themselves', async () => {
    const [multi, single] = await Promise.all(
      ['2', '1'].map(async (threads) => JSON.parse(await runNode(GRADIENT_SCRIPT, { THREADS: threads })) as { threads: number; grads: number[][] }),
    );
    expect(single!.threads).toBe(1);
    expect(multi!.threads).toBe(os.availableParallelism() >= 2 ? 2 : 1);
    expect(multi!.grads.map((g) => g.length)).toEqual([32 * 12 * 12, 3 * 3 * 16, 3 * 3 * 16 * 32]);
    multi!.grads.forEach((g, i) => {
      const want = single!.grads[i]!;
      g.forEach((v, j) => expect(Math.abs(v - want[j]!)).toBeLessThanOrEqual(1e-6 + 1e-3 * Math.abs(want[j]!)));
    });
  });

  it('falls back to the single-threaded build when worker threads fail to start', async () => {
    // Every worker thread dies on start: useBackend must still give a working wasm backend.
    const out = await runNode(
      `
import { createRequire } from 'node:module';
const wt = createRequire(import.meta.url)('worker_threads');
const Real = wt.Worker;
wt.Worker = class extends Real { constructor(code, options) { super('throw new Error("no threads here")', options); } };
const tf = await import('@tensorflow/tfjs-core');
const { useBackend } = await import('@tensorpress/core-tensor');
const sel = await useBackend('wasm', { threads: 2 });
const y = tf.sum(tf.conv2d(tf.ones([1, 4, 4, 1]), tf.ones([3, 3, 1, 2]), 1, 'same'));
console.log(JSON.stringify({ name: sel.name, threads: sel.threads, sum: y.dataSync()[0] }));
`,
      {},
    );
    // 'same' 3x3 all-ones on a 4x4 image: 4 corners x 4 + 8 edges x 6 + 4 inner x 9 = 100, per channel.
    expect(JSON.parse(out)).toEqual({ name: 'wasm', threads: 1, sum: 200 });
  });
});

describe('ensureGradients', () => {
  it('registers gradients once, dilated convolutions included', async () => {
    await ensureGradients();
    const conv = tf.getGradient('Conv2D');
    await ensureGradients();
    expect(tf.getGradient('Conv2D')).toBe(conv);
    await useBackend('cpu');
    const before = tf.memory().numTensors;
    const g = tf.tidy(() =>
      tf.grad((x: tf.Tensor) => tf.sum(tf.conv2d(x as tf.Tensor4D, tf.ones([2, 2, 1, 1]), 1, 'valid', 'NHWC', 2)))(tf.ones([1, 4, 4, 1])),
    );
    // Each output reads pixels (r, c), (r, c+2), (r+2, c), (r+2, c+2): every input pixel is read once.
    expect(Array.from(g.dataSync())).toEqual(new Array(16).fill(1));
    g.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
