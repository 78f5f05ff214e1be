import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { Executor, loadGraph, saveGraph, useBackend } from '@tensorpress/core-tensor';
import { checkParity, fromOnnx } from '@tensorpress/export-onnx';
import { errorOf, maxAbsDiff } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';

const { onnx } = onnxProto;

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const meta = JSON.parse(readFileSync(path.join(dir, 'fixtures.json'), 'utf8')) as {
  input: { file: string; shape: number[] };
  models: Record<string, { file: string; output: string; outputShape: number[]; opset: number }>;
};

function f32(file: string): Float32Array {
  const b = readFileSync(path.join(dir, file));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('fromOnnx (PyTorch exports, opsets 9 to 17)', () => {
  it.each(Object.keys(meta.models))('%s matches onnxruntime and PyTorch within 1e-4', async (name) => {
    const m = meta.models[name]!;
    const bytes = new Uint8Array(readFileSync(path.join(dir, m.file)));
    const g = fromOnnx(bytes);
    const nchw = tf.tensor(f32(meta.input.file), meta.input.shape);
    const x = tf.transpose(nchw, [0, 2, 3, 1]);
    nchw.dispose();
    const before = tf.memory().numTensors;
    const report = await checkParity(g, bytes, x);
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    if (m.outputShape.length === 2) expect(report.top1Agreement).toBe(1);
    const ex = new Executor(g);
    const out = ex.run(x)[0]!;
    ex.dispose();
    // A map output is NHWC in tensorpress, NCHW in PyTorch.
    const y = out.rank === 4 ? tf.transpose(out, [0, 3, 1, 2]) : out;
    expect(y.shape).toEqual(m.outputShape);
    const want = f32(m.output);
    expect(maxAbsDiff(y, want)).toBeLessThan(1e-4 * Math.max(1, ...Array.from(want, Math.abs)));
    if (y !== out) out.dispose();
    y.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it.each(Object.keys(meta.models))('%s: every trainable parameter gets a finite gradient (train mode)', (name) => {
    const g = fromOnnx(new Uint8Array(readFileSync(path.join(dir, meta.models[name]!.file))));
    const ex = new Executor(g);
    const x = tf.tidy(() => tf.transpose(tf.tensor(f32(meta.input.file), meta.input.shape), [0, 2, 3, 1]));
    const vars = ex.trainableVariables();
    const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(ex.run(x, { training: true })[0]!)) as tf.Scalar, vars);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    const names = Object.keys(grads);
    expect(names.length).toBe(vars.length);
    let nonzero = 0;
    for (const k of names) {
      const d = grads[k]!.dataSync();
      expect(d.every(Number.isFinite)).toBe(true);
      if (d.some((v) => v !== 0)) nonzero++;
    }
    expect(nonzero).toBeGreaterThan(0.9 * names.length);
    tf.dispose([value, ...Object.values(grads), x]);
    ex.dispose();
  });

  it('an imported graph with export-onnx ops (ViT, U-Net, LR-ASPP) survives saveGraph/loadGraph', () => {
    const x = tf.tidy(() => tf.transpose(tf.tensor(f32(meta.input.file), meta.input.shape), [0, 2, 3, 1]));
    for (const name of ['vit-tiny-op17', 'unet-tiny', 'lraspp-tiny', 'googlenet-tiny']) {
      const g = fromOnnx(new Uint8Array(readFileSync(path.join(dir, meta.models[name]!.file))));
      const saved = saveGraph(g);
      const back = loadGraph(saved.json, saved.weights);
      const [a, b] = [new Executor(g), new Executor(back)];
      const [ya, yb] = [a.run(x)[0]!, b.run(x)[0]!];
      expect(maxAbsDiff(ya, yb.dataSync() as Float32Array)).toBe(0);
      tf.dispose([ya, yb]);
      a.dispose();
      b.dispose();
    }
    x.dispose();
  });

  it('lists every unsupported node at once', () => {
    const bytes = new Uint8Array(readFileSync(path.join(dir, 'resnet-tiny.onnx')));
    const m = onnx.ModelProto.decode(bytes);
    let k = 0;
    for (const n of m.graph!.node!) if (n.opType === 'Relu' && k++ < 3) n.opType = 'Hardmax';
    const e = errorOf(() => fromOnnx(onnx.ModelProto.encode(m).finish()));
    expect(e.code).toBe('ONNX_UNSUPPORTED');
    expect((e.details['nodes'] as unknown[]).length).toBe(3);
    expect(e.message).toMatch(/3 node\(s\)/);
  });
});
