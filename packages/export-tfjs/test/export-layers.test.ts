import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { GraphBuilder, runGraph, TensorpressError, type Graph } from '@tensorpress/core-tensor';
import { expectClose, seededTensor } from '@tensorpress/test-utils';
import { exportLayersArtifacts, importLayersModel } from '@tensorpress/export-tfjs';

let L: typeof tfl;

beforeAll(async () => {
  await tf.setBackend('cpu');
  L = await import('@tensorflow/tfjs-layers');
});

function randomize(model: tfl.LayersModel, seed: number): void {
  const ws = model.weights.map((w, i) =>
    w.originalName.endsWith('moving_variance')
      ? tf.randomUniform(w.shape as number[], 0.5, 2, 'float32', seed + i)
      : tf.randomNormal(w.shape as number[], 0, 0.5, 'float32', seed + i),
  );
  model.setWeights(ws);
  tf.dispose(ws);
}

/** Loads the exported artifacts with tfjs-layers and compares its predictions with `reference`. */
async function expectLoadsAndAgrees(graph: Graph, reference: (x: tf.Tensor) => tf.Tensor[], seed: number): Promise<tfl.LayersModel> {
  const artifacts = exportLayersArtifacts(graph);
  const loaded = await L.loadLayersModel(tf.io.fromMemory(artifacts));
  const shape = graph.inputs[0]!.shape.map((d) => d ?? 3) as number[];
  const x = seededTensor(shape, seed, -2, 2);
  const want = reference(x);
  const got = loaded.predict(x);
  const gots = Array.isArray(got) ? got : [got];
  expect(gots.length).toBe(want.length);
  gots.forEach((t, i) => {
    expect(t.shape).toEqual(want[i]!.shape);
    expectClose(t, want[i]!, { atol: 1e-4, rtol: 1e-3, label: `output ${i}` });
  });
  tf.dispose([x, ...want, ...gots]);
  return loaded;
}

describe('exportLayersArtifacts', () => {
  test('an imported CNN goes back to tfjs-layers and predicts the same', async () => {
    const m = L.sequential({
      layers: [
        L.layers.conv2d({ inputShape: [9, 9, 3], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1' }),
        L.layers.batchNormalization({ name: 'bn1' }),
        L.layers.maxPooling2d({ poolSize: 2, padding: 'same', name: 'pool1' }),
        L.layers.depthwiseConv2d({ kernelSize: 3, depthMultiplier: 2, activation: 'relu6', name: 'dw' }),
        L.layers.separableConv2d({ filters: 4, kernelSize: 2, padding: 'same', name: 'sep' }),
        L.layers.zeroPadding2d({ padding: [[1, 0], [0, 2]], name: 'pad' }),
        L.layers.averagePooling2d({ poolSize: 2, strides: 1, name: 'pool2' }),
        L.layers.flatten({ name: 'flat' }),
        L.layers.dense({ units: 8, activation: 'tanh', name: 'fc1' }),
        L.layers.leakyReLU({ alpha: 0.1, name: 'leaky' }),
        L.layers.dropout({ rate: 0.2, name: 'drop' }),
        L.layers.dense({ units: 3, activation: 'softmax', name: 'fc2' }),
      ],
    });
    randomize(m, 11);
    const g = importLayersModel(m);
    const before = tf.memory().numTensors;
    const loaded = await expectLoadsAndAgrees(g, (x) => [m.predict(x) as tf.Tensor], 12);
    expect(loaded.layers.map((l) => l.name)).toContain('conv1/activation');
    // Importing the export gives the same graph back.
    const again = importLayersModel(loaded);
    expect(again.nodes.map((n) => [n.name, n.op])).toEqual(g.nodes.map((n) => [n.name, n.op]));
    // Same weights in the same order (a SeparableConv2D comes back as DepthwiseConv2D + Conv2D, whose weights are named after those).
    expect(again.params.map((p) => p.data)).toEqual(g.params.map((p) => p.data));
    expect(again.param('sep/depthwise/depthwise_kernel')!.data).toEqual(g.param('sep/depthwise_kernel')!.data);
    loaded.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('a functional residual model with global pooling and a rank-3 dense', async () => {
    const x = L.input({ shape: [6, 6, 4], name: 'image' });
    const c1 = L.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c1' }).apply(x) as tfl.SymbolicTensor;
    const r = L.layers.add({ name: 'res' }).apply([x, c1]) as tfl.SymbolicTensor;
    const cat = L.layers.concatenate({ name: 'cat' }).apply([r, x]) as tfl.SymbolicTensor;
    const gap = L.layers.globalAveragePooling2d({ name: 'gap' }).apply(cat) as tfl.SymbolicTensor;
    const seq = L.layers.reshape({ targetShape: [2, 4], name: 'seq' }).apply(gap) as tfl.SymbolicTensor;
    const d = L.layers.dense({ units: 3, name: 'per_step' }).apply(seq) as tfl.SymbolicTensor;
    const m = L.model({ inputs: x, outputs: [d, r] });
    randomize(m, 21);
    const g = importLayersModel(m);
    const loaded = await expectLoadsAndAgrees(
      g,
      (t) => {
        const y = m.predict(t);
        return Array.isArray(y) ? y : [y];
      },
      22,
    );
    expect(loaded.layers.find((l) => l.name === 'per_step')!.getClassName()).toBe('Dense');
    loaded.dispose();
  });

  test('a GraphBuilder graph with explicit pads and a keepdims global pool', async () => {
    const b = new GraphBuilder({ seed: 5 });
    const x = b.input('x', [null, 8, 8, 3]);
    let h = b.conv(x, { filters: 4, kernel: 3, padding: [1, 0, 1, 2], name: 'conv' });
    h = b.batchNorm(h, { name: 'bn' });
    h = b.relu6(h, 'relu6');
    const d = b.depthwiseConv(h, { kernel: 3, padding: 'same', name: 'dw' });
    h = b.add(h, d, 'sum');
    h = b.maxPool(h, 2, { padding: 'same', name: 'pool' });
    const pooled = b.globalAvgPool(h, 'gap');
    const flat = b.flatten(pooled, 'flat');
    b.output(b.dense(flat, 5, { name: 'fc' }), pooled);
    const g = b.build();
    // Non-trivial BN statistics.
    const stats = new Map([
      ['bn.mean', { data: Float32Array.from([0.1, -0.2, 0.3, 0]) }],
      ['bn.var', { data: Float32Array.from([0.5, 2, 1, 1.5]) }],
    ]);
    const g2 = g.withParams(stats);
    const loaded = await expectLoadsAndAgrees(g2, (t) => runGraph(g2, t), 6);
    expect(loaded.layers.map((l) => l.name)).toEqual(expect.arrayContaining(['conv/pad', 'conv', 'gap', 'gap/keepdims']));
    loaded.dispose();
  });

  test('nodes without a tfjs-layers equivalent are listed at once', () => {
    const b = new GraphBuilder({ seed: 1 });
    const x = b.input('x', [null, 8, 8, 4]);
    let h = b.conv(x, { filters: 4, kernel: 3, group: 2, name: 'grouped' });
    h = b.relu(h, 'after_grouped');
    const s = b.node('HardSwish', [x], {}, { name: 'hswish' })[0]!;
    b.output(h, b.flatten(s, 'flat'));
    let err: unknown;
    try {
      exportLayersArtifacts(b.build());
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    const e = err as TensorpressError;
    expect(e.code).toBe('UNSUPPORTED_OP');
    expect(e.message).toMatch(/^2 nodes cannot be written as tfjs-layers/);
    expect(e.message).toContain('"grouped" (Conv): grouped convolution (group 2) has no tfjs-layers layer');
    expect(e.message).toContain('"hswish" (HardSwish): no tfjs-layers equivalent');
    expect(e.message).toMatch(/ONNX/);
    expect((e.details['nodes'] as { node: string }[]).map((p) => p.node)).toEqual(['grouped', 'hswish']);
  });
});
