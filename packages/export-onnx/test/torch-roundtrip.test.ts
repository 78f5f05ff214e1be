import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '@tensorpress/core-tensor';
import { OnnxError, checkParity, fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { errorOf } from '@tensorpress/test-utils';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OModel } from '../src/internal/ir.js';
import { checkUniqueNames } from '../src/internal/unique-names.js';
import { quantizeForTest } from './helpers/qdq-graph.js';

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures');
const meta = JSON.parse(readFileSync(path.join(dir, 'fixtures.json'), 'utf8')) as {
  input: { file: string; shape: number[] };
  models: Record<string, { file: string; output: string; outputShape: number[] }>;
};

function input(): tf.Tensor {
  const b = readFileSync(path.join(dir, meta.input.file));
  const nchw = tf.tensor(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)), meta.input.shape);
  const x = tf.transpose(nchw, [0, 2, 3, 1]);
  nchw.dispose();
  return x;
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('torch fixtures written back', () => {
  it.each(Object.keys(meta.models))('%s: read, written back (FP32) and run in onnxruntime', async (name) => {
    const g = fromOnnx(new Uint8Array(readFileSync(path.join(dir, meta.models[name]!.file))));
    const x = input();
    const bytes = toOnnx(g);
    const report = await checkParity(g, bytes, x);
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    if (meta.models[name]!.outputShape.length === 2) expect(report.top1Agreement).toBe(1);
    // Compact names and a later opset write the same computation.
    for (const options of [{ compactNames: true }, { opset: 17 }, { opset: 21 }]) {
      expect((await checkParity(g, toOnnx(g, options), x)).maxAbsDiff).toBeLessThan(1e-4);
    }
    // What was written reads back into the same computation.
    const again = await checkParity(fromOnnx(bytes), bytes, x);
    expect(again.maxAbsDiff).toBeLessThan(1e-4);
    x.dispose();
  });

  it.each(Object.keys(meta.models))('%s: quantized (QDQ) and written back, runs in onnxruntime', async (name) => {
    const g = fromOnnx(new Uint8Array(readFileSync(path.join(dir, meta.models[name]!.file))));
    const x = input();
    const { graph, outputStep } = quantizeForTest(g, x);
    const report = await checkParity(graph, toOnnx(graph), x, { optimization: 'disabled' });
    // Float arithmetic on both sides: the same dequantized computation, up to rounding at the quantizers.
    expect(report.maxAbsDiff).toBeLessThan(2 * outputStep + 1e-4);
    x.dispose();
  });
});

describe('checkUniqueNames', () => {
  const base = (): OModel => ({
    opset: 13,
    producer: 't',
    inputs: [{ name: 'x', elemType: 1, dims: [1] }],
    outputs: [{ name: 'y', elemType: 1, dims: [1] }],
    nodes: [{ name: 'a', opType: 'Relu', inputs: ['x'], outputs: ['y'], attrs: {} }],
    initializers: new Map(),
  });
  it('accepts a model whose names are all different', () => {
    expect(() => checkUniqueNames(base())).not.toThrow();
  });
  it('names a value defined twice and a node name used twice', () => {
    const m = base();
    m.nodes.push({ name: 'b', opType: 'Relu', inputs: ['x'], outputs: ['y'], attrs: {} });
    const e = errorOf(() => checkUniqueNames(m));
    expect(e).toBeInstanceOf(OnnxError);
    expect(e.message).toMatch(/defines "y" twice \(an output of node "a" \(Relu\), then an output of node "b"/);
    const n = base();
    n.nodes.push({ name: 'a', opType: 'Relu', inputs: ['x'], outputs: ['z'], attrs: {} });
    expect(errorOf(() => checkUniqueNames(n)).message).toMatch(/two nodes named "a"/);
    const k = base();
    k.initializers.set('x', { name: 'x', dims: [], dataType: 1, raw: new Uint8Array(4) });
    expect(errorOf(() => checkUniqueNames(k)).message).toMatch(/defines "x" twice \(a graph input, then an initializer\)/);
  });
});
