import * as tf from '@tensorflow/tfjs-core';
import { Executor, useBackend, type Graph, type ParamData } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { OnnxError, checkParity, fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { maxAbsDiff, seededTensor } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';

const { onnx } = onnxProto;

beforeAll(async () => {
  await useBackend('cpu');
});

const WEIGHTS = ['conv1.weight', 'conv2.weight', 'conv3.weight', 'fc1.weight', 'fc2.weight'];

/** The reference plain CNN with every Conv/Gemm weight `share` zeros (every k-th value kept). */
function sparseCnn(share: number): Graph {
  const g = referenceModels.plainCnn({ seed: 2 });
  const updates = new Map<string, { data: ParamData }>();
  for (const n of g.nodes.filter((x) => x.op === 'Conv' || x.op === 'Gemm')) {
    const p = g.param(n.inputs[1]!)!;
    const keepEvery = Math.round(1 / (1 - share));
    updates.set(p.name, { data: Float32Array.from(p.data as Float32Array, (v, i) => (i % keepEvery === 0 ? v : 0)) });
  }
  return g.withParams(updates);
}

describe('toOnnx sparseInitializers', () => {
  it('writes mostly-zero weights as sparse initializers: smaller file, onnxruntime parity, read back exactly', async () => {
    const g = sparseCnn(0.9);
    const dense = toOnnx(g);
    const bytes = toOnnx(g, { sparseInitializers: true });
    const m = onnx.ModelProto.decode(bytes);
    // Conv and Gemm weights (90% zeros) go sparse, and so do the all-zero initial biases and BN shifts;
    // the BN scales and variances (all non-zero) stay dense.
    const sparse = m.graph!.sparseInitializer!.map((t) => t.values!.name);
    expect(sparse).toEqual(expect.arrayContaining(WEIGHTS));
    expect(m.graph!.initializer!.map((t) => t.name)).not.toEqual(expect.arrayContaining([WEIGHTS[0]]));
    expect(m.graph!.initializer!.length).toBeGreaterThan(0);
    expect(bytes.length).toBeLessThan(0.4 * dense.length);
    const x = seededTensor([4, 28, 28, 1], 5);
    const r = await checkParity(g, bytes, x);
    expect(r.maxAbsDiff).toBeLessThanOrEqual(1e-4);
    // Read back, the sparse file gives the graph the dense file gives, value for value.
    const back = fromOnnx(bytes);
    const viaDense = fromOnnx(dense);
    expect(back.params.map((p) => p.name)).toEqual(viaDense.params.map((p) => p.name));
    for (const p of viaDense.params) expect(Array.from(back.param(p.name)!.data), p.name).toEqual(Array.from(p.data));
    const ex = new Executor(back);
    const ref = new Executor(g);
    const [a] = ex.run(x);
    const [b] = ref.run(x);
    expect(maxAbsDiff(a!, b!)).toBe(0);
    tf.dispose([x, a!, b!]);
    ex.dispose();
    ref.dispose();
  });

  it('keeps a tensor dense where the sparse form would not be smaller (under two thirds zeros)', () => {
    const g = sparseCnn(0.5);
    const m = onnx.ModelProto.decode(toOnnx(g, { sparseInitializers: true }));
    const dense = m.graph!.initializer!.map((t) => t.name);
    expect(dense).toEqual(expect.arrayContaining(WEIGHTS));
  });

  it('a sparse index outside the tensor or out of order is ONNX_INVALID naming the field', () => {
    const m = onnx.ModelProto.decode(toOnnx(sparseCnn(0.9), { sparseInitializers: true }));
    const sp = m.graph!.sparseInitializer![0]!;
    const idx = new BigInt64Array(new Uint8Array(sp.indices!.rawData!).slice().buffer);
    idx[1] = 1n << 40n;
    sp.indices!.rawData = new Uint8Array(idx.buffer);
    const e = (() => {
      try {
        fromOnnx(onnx.ModelProto.encode(m).finish());
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(OnnxError);
    expect((e as OnnxError).message).toMatch(/GraphProto\.sparse_initializer\[0\]\.indices: index \d+ of entry 1 is outside \[0, \d+\)/);
    idx[1] = idx[0]!;
    sp.indices!.rawData = new Uint8Array(idx.buffer);
    expect(() => fromOnnx(onnx.ModelProto.encode(m).finish())).toThrow(/entry 1 \(\d+\) does not come after \d+: indices must ascend without repeats/);
  });
});
