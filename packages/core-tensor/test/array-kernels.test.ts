import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { hasArrayKernel, registerArrayKernel, useBackend, type ArrayKernelSpec } from '@tensorpress/core-tensor';

// y = a·x + b elementwise and the sum of x, as one kernel with two outputs.
const spec: ArrayKernelSpec = {
  kernelName: 'TestAffineAndSum',
  inputs: ['x', 'b'],
  outputs: (shapes) => [
    { shape: [...shapes[0]!], dtype: 'float32' },
    { shape: [], dtype: 'float32' },
  ],
  compute([x, b], [y, total], _shapes, attrs) {
    const a = attrs['a'] as number;
    let s = 0;
    for (let i = 0; i < x!.length; i++) {
      y![i] = a * x![i]! + b![0]!;
      s += x![i]!;
    }
    total![0] = s;
  },
};

afterAll(async () => {
  await useBackend('cpu');
});

describe('registerArrayKernel', () => {
  it('registers on wasm and cpu, idempotently; a name taken by another kernel is refused', async () => {
    await useBackend('cpu');
    registerArrayKernel(spec);
    registerArrayKernel(spec);
    expect(tf.getKernel('TestAffineAndSum', 'cpu')).toBeDefined();
    expect(tf.getKernel('TestAffineAndSum', 'wasm')).toBeDefined();
    expect(() => registerArrayKernel({ ...spec, kernelName: 'Add' })).toThrow(/already registered/);
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`runs on ${backend} with two outputs, large inputs included, and leaks nothing`, async () => {
      await useBackend(backend);
      registerArrayKernel(spec);
      expect(hasArrayKernel('TestAffineAndSum')).toBe(true);
      for (const n of [5, 300_000]) {
        const x = tf.range(0, n, 1, 'float32');
        const b = tf.tensor1d([0.5]);
        const dataIds = tf.engine().backend.numDataIds();
        const before = tf.memory().numTensors;
        const [y, total] = tf.engine().runKernel('TestAffineAndSum', { x, b }, { a: 2 }) as tf.Tensor[];
        const ys = y!.dataSync();
        expect(ys[0]).toBe(0.5);
        expect(ys[n - 1]).toBe(2 * (n - 1) + 0.5);
        const exact = (n * (n - 1)) / 2;
        expect(Math.abs(total!.dataSync()[0]! - exact) / exact).toBeLessThan(1e-6); // float32 output
        expect(y!.shape).toEqual([n]);
        tf.dispose([y!, total!]);
        expect(tf.memory().numTensors).toBe(before);
        expect(tf.engine().backend.numDataIds()).toBe(dataIds);
        tf.dispose([x, b]);
      }
    });
  }
});
