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

  it('activates wasm in Node from the installed package folder', async () => {
    const sel = await useBackend('wasm');
    expect(sel).toMatchObject({ name: 'wasm', threads: 1 });
    expect([...sel.fastGradients].sort()).toEqual(
      [
        'BatchMatMul',
        'Conv2DBackpropFilter',
        'Conv2DBackpropInput',
        'DepthwiseConv2dNativeBackpropFilter',
        'DepthwiseConv2dNativeBackpropInput',
        'MaxPoolGrad',
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
