import * as tf from '@tensorflow/tfjs-core';
import { describe, expect, it } from 'vitest';
import { useKernels } from './backends.js';

describe('registerFastGradients (wasm fixes)', () => {
  it('repairs wasm OneHot with a float32 dtype (tfjs-backend-wasm 4.22 writes int32 bits)', async () => {
    await useKernels('wasm');
    const t = tf.oneHot(tf.tensor1d([1, 0], 'int32'), 3, 1, 0, 'float32');
    expect(t.dtype).toBe('float32');
    expect(Array.from(t.dataSync())).toEqual([0, 1, 0, 1, 0, 0]);
    t.dispose();
  });

  it("wasm's Identity (tf.clone, tensors saved for gradients) shares data instead of copying it", async () => {
    await useKernels('wasm');
    const backend = tf.backend() as unknown as { refCount(dataId: object): number; numDataIds(): number };
    const ids = backend.numDataIds();
    const x = tf.tensor([1, 2, 3, 4], [2, 2]);
    const y = tf.clone(x);
    expect(y.dataId).toBe(x.dataId);
    expect(backend.numDataIds()).toBe(ids + 1);
    // either may be disposed first; the other keeps its values
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3, 4]);
    y.dispose();
    expect(backend.numDataIds()).toBe(ids);
    // a variable initialised from a tensor, then assigned, leaves that tensor as it was
    const init = tf.tensor([5, 6]);
    const v = tf.variable(init);
    const next = tf.tensor([7, 8]);
    v.assign(next);
    expect(Array.from(init.dataSync())).toEqual([5, 6]);
    expect(Array.from(v.dataSync())).toEqual([7, 8]);
    // strings go to the backend's own kernel
    const str = tf.tensor(['a', 'b']);
    const strClone = tf.clone(str);
    expect(strClone.arraySync()).toEqual(['a', 'b']);
    tf.dispose([init, v, next, str, strClone]);
    expect(backend.numDataIds()).toBe(ids);
    // gradients through saved tensors are unchanged (Relu saves its input, Mul both inputs)
    const g = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), a)))(tf.tensor([-1, 2, 3]));
    expect(Array.from(g.dataSync())).toEqual([0, 4, 6]);
    g.dispose();
  });
});
