import * as tf from '@tensorflow/tfjs-core';
import { afterAll, describe, expect, it } from 'vitest';
import { hasArrayKernel, heapModule, registerArrayKernel, type ArrayKernelSpec } from '@tensorpress/kernels';
import { useKernels } from './backends.js';

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
  await useKernels('cpu');
});

describe('registerArrayKernel', () => {
  it('registers on wasm and cpu, idempotently; a name taken by another kernel is refused', async () => {
    await useKernels('cpu');
    registerArrayKernel(spec);
    registerArrayKernel(spec);
    expect(tf.getKernel('TestAffineAndSum', 'cpu')).toBeDefined();
    expect(tf.getKernel('TestAffineAndSum', 'wasm')).toBeDefined();
    expect(() => registerArrayKernel({ ...spec, kernelName: 'Add' })).toThrow(/already registered/);
  });

  for (const backend of ['cpu', 'wasm'] as const) {
    it(`runs on ${backend} with two outputs, large inputs included, and leaks nothing`, async () => {
      await useKernels(backend);
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

// (module (import "env" "memory" (memory 0)) (func (export "store") (param i32 f32) local.get 0 local.get 1 f32.store)),
// and the same with `(memory 0 65536 shared)`, assembled with wabt.
const STORE = {
  unshared: 'AGFzbQEAAAABBgFgAn99AAIPAQNlbnYGbWVtb3J5AgAAAwIBAAcJAQVzdG9yZQAACgsBCQAgACABOAIACw==',
  shared: 'AGFzbQEAAAABBgFgAn99AAISAQNlbnYGbWVtb3J5AgMAgIAEAwIBAAcJAQVzdG9yZQAACgsBCQAgACABOAIACw==',
};

// y[i] = 10·i + 1, written by the heap module at the views' byte offsets where it can, else by JavaScript.
const storeSpec: ArrayKernelSpec = {
  kernelName: 'TestHeapStore',
  inputs: ['x'],
  outputs: (shapes) => [{ shape: [...shapes[0]!], dtype: 'float32' }],
  compute(_inputs, [y]) {
    const m = heapModule(STORE);
    const onHeap = m != null && y!.buffer === m.memory.buffer;
    for (let i = 0; i < y!.length; i++) {
      if (onHeap) (m.exports['store'] as (p: number, v: number) => void)(y!.byteOffset + 4 * i, 10 * i + 1);
      else y![i] = 10 * i + 1;
    }
    heapUsed.push(onHeap);
  },
};
const heapUsed: boolean[] = [];

describe('heapModule', () => {
  it("instantiates a module on the wasm backend's memory once; array kernels reach it through their views", async () => {
    registerArrayKernel(storeSpec);
    await useKernels('wasm');
    const m = heapModule(STORE);
    expect(typeof m?.exports['store']).toBe('function');
    expect(heapModule(STORE)).toBe(m);
    const x = tf.zeros([5]);
    const y = tf.engine().runKernel('TestHeapStore', { x }) as tf.Tensor;
    expect(Array.from(y.dataSync())).toEqual([1, 11, 21, 31, 41]);
    expect(heapUsed.pop()).toBe(true);
    tf.dispose([x, y]);
    // cpu tensors are not in that memory: the same kernel takes its JavaScript path
    await useKernels('cpu');
    const xc = tf.zeros([3]);
    const yc = tf.engine().runKernel('TestHeapStore', { x: xc }) as tf.Tensor;
    expect(Array.from(yc.dataSync())).toEqual([1, 11, 21]);
    expect(heapUsed.pop()).toBe(false);
    tf.dispose([xc, yc]);
  });
});
