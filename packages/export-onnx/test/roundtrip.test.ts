import * as tf from '@tensorflow/tfjs-core';
import { Executor, GraphBuilder, useBackend, type Graph } from '@tensorpress/core-tensor';
import { referenceModels } from '@tensorpress/models';
import { checkParity, fromOnnx, toOnnx } from '@tensorpress/export-onnx';
import { maxAbsDiff, seededTensor } from '@tensorpress/test-utils';
import onnxProto from 'onnx-proto';
import { beforeAll, describe, expect, it } from 'vitest';

const { onnx } = onnxProto;

const MODELS = ['plainCnn', 'residualCnn', 'mobileNetCnn', 'mlp'] as const;

function run(g: Graph, x: tf.Tensor): tf.Tensor {
  const ex = new Executor(g);
  try {
    return ex.run(x)[0]!;
  } finally {
    ex.dispose();
  }
}

beforeAll(async () => {
  await useBackend('cpu');
});

describe('toOnnx', () => {
  it.each(MODELS)('%s runs in onnxruntime within 1e-4 of the graph', async (name) => {
    const g = referenceModels[name]({ seed: 3 });
    const x = seededTensor([4, 28, 28, 1], 7);
    const before = tf.memory().numTensors;
    const report = await checkParity(g, toOnnx(g), x);
    expect(tf.memory().numTensors).toBe(before);
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    expect(report.withinTolerance).toBe(true);
    expect(report.top1Agreement).toBe(1);
    x.dispose();
  });

  it('writes NCHW with no Transpose inside and Conv weights as [cout, cin, kh, kw]', () => {
    const g = referenceModels.plainCnn({ seed: 0 });
    const m = onnx.ModelProto.decode(toOnnx(g));
    expect(m.graph!.node!.filter((n) => n.opType === 'Transpose')).toHaveLength(0);
    expect(m.graph!.input![0]!.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue ?? 0))).toEqual([0, 1, 28, 28]);
    const conv = m.graph!.node!.find((n) => n.opType === 'Conv')!;
    const w = m.graph!.initializer!.find((t) => t.name === conv.input![1])!;
    expect(w.dims!.map(Number)).toEqual([32, 1, 3, 3]);
    expect(Number(m.opsetImport![0]!.version)).toBe(13);
  });

  it('adds exactly one leading Transpose with nhwcInput', async () => {
    const g = referenceModels.residualCnn({ seed: 1 });
    const bytes = toOnnx(g, { nhwcInput: true, opset: 17 });
    const m = onnx.ModelProto.decode(bytes);
    const t = m.graph!.node!.filter((n) => n.opType === 'Transpose');
    expect(t).toHaveLength(1);
    expect(t[0]!.input![0]).toBe('input');
    const x = seededTensor([2, 28, 28, 1], 3);
    const report = await checkParity(g, bytes, x, { nhwcInput: true });
    expect(report.maxAbsDiff).toBeLessThan(1e-4);
    x.dispose();
  });
});

/**
 * plainCnn as pruning's strip leaves it with 40 of conv3's 64 filters kept: conv3, bn3 and fc1's
 * input rows (through Flatten) are smaller. Built directly, since export-onnx never imports a
 * technique (a pruned graph is plain smaller shapes; pruning's own tests cover the cut itself).
 */
function prunedPlainCnn(seed: number): Graph {
  const b = new GraphBuilder({ seed });
  let h = b.input('input', [null, 28, 28, 1]);
  const block = (x: string, i: number, filters: number): string => {
    const c = b.conv(x, { filters, kernel: 3, padding: 'same', bias: false, name: `conv${i}` });
    return b.maxPool(b.relu(b.batchNorm(c, { name: `bn${i}` }), `relu${i}`), 2, { name: `pool${i}` });
  };
  h = block(block(block(h, 1, 32), 2, 32), 3, 40);
  h = b.relu(b.dense(b.flatten(h, 'flatten'), 128, { name: 'fc1', init: 'he' }), 'relu4');
  b.output(b.dense(h, 10, { name: 'fc2' }));
  return b.build();
}

describe('toOnnx (pruned)', () => {
  it('keeps the smaller shapes of a graph whose channels were physically removed', async () => {
    const g = referenceModels.plainCnn({ seed: 4 });
    const pruned = prunedPlainCnn(4);
    const bytes = toOnnx(pruned);
    const m = onnx.ModelProto.decode(bytes);
    const conv3 = m.graph!.node!.find((n) => n.name === 'conv3')!;
    expect(m.graph!.initializer!.find((t) => t.name === conv3.input![1])!.dims!.map(Number)).toEqual([40, 32, 3, 3]);
    expect(bytes.length).toBeLessThan(toOnnx(g).length);
    const x = seededTensor([2, 28, 28, 1], 5);
    expect((await checkParity(pruned, bytes, x)).maxAbsDiff).toBeLessThan(1e-4);
    expect(fromOnnx(bytes).info('conv3').shape).toEqual(pruned.info('conv3').shape);
    x.dispose();
  });
});

describe('fromOnnx', () => {
  it.each(MODELS)('%s round-trips core → ONNX → core with the same nodes and outputs', (name) => {
    const g = referenceModels[name]({ seed: 5 });
    const back = fromOnnx(toOnnx(g));
    expect(back.nodes.map((n) => n.op)).toEqual(g.nodes.map((n) => n.op));
    expect(back.inputs[0]!.shape).toEqual(g.inputs[0]!.shape);
    const x = seededTensor([3, 28, 28, 1], 11);
    const before = tf.memory().numTensors;
    const a = run(g, x);
    const b = run(back, x);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    a.dispose();
    b.dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});
