import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import type * as tfl from '@tensorflow/tfjs-layers';
import { beforeAll, describe, expect, test } from 'vitest';
import { runGraph, TensorpressError, type Graph } from '@tensorpress/core-tensor';
import { expectClose, seededTensor } from '@tensorpress/test-utils';
import { importLayersModel, type LayersModelLike, type ModelArtifactsLike } from '@tensorpress/export-tfjs';

let L: typeof tfl;

beforeAll(async () => {
  await tf.setBackend('cpu');
  L = await import('@tensorflow/tfjs-layers');
});

/** Random weights everywhere (BN statistics included), so nothing hides behind zeros and ones. */
function randomize(model: tfl.LayersModel, seed: number): void {
  const ws = model.weights.map((w, i) => {
    const shape = w.shape as number[];
    return w.originalName.endsWith('moving_variance')
      ? tf.randomUniform(shape, 0.5, 2, 'float32', seed + i)
      : tf.randomNormal(shape, 0, 0.5, 'float32', seed + i);
  });
  model.setWeights(ws);
  tf.dispose(ws);
}

async function artifactsOf(model: tfl.LayersModel): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      captured = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  return captured!;
}

function inputShapes(model: tfl.LayersModel): number[][] {
  return model.inputs.map((t) => t.shape.map((d, i) => (i === 0 ? 2 : (d as number))));
}

/** model.predict against the imported graph in eval mode, from the live model and from its artifacts. */
async function expectSameOutputs(model: tfl.LayersModel, seed: number): Promise<Graph> {
  randomize(model, seed);
  const xs = inputShapes(model).map((s, i) => seededTensor(s, seed + 100 + i, -2, 2));
  const before = tf.memory().numTensors;
  const live = importLayersModel(model);
  const fromArtifacts = importLayersModel(await artifactsOf(model));
  expect(tf.memory().numTensors, 'import allocates no tensors').toBe(before);
  const feeds = xs.length === 1 ? xs[0]! : Object.fromEntries(live.inputs.map((inp, i) => [inp.name, xs[i]!]));
  const predicted = model.predict(xs.length === 1 ? xs[0]! : xs);
  const expected = Array.isArray(predicted) ? predicted : [predicted];
  for (const g of [live, fromArtifacts]) {
    const got = runGraph(g, feeds);
    expect(got.length).toBe(expected.length);
    got.forEach((t, i) => {
      expect(t.shape).toEqual(expected[i]!.shape);
      expectClose(t, expected[i]!, { atol: 1e-4, rtol: 1e-3, label: `output ${i}` });
    });
    tf.dispose(got);
  }
  tf.dispose([...expected, ...xs]);
  expect(tf.memory().numTensors).toBe(before - xs.length);
  return live;
}

describe('importLayersModel', () => {
  test('CNN: conv, BN, activations, pooling, flatten, dense, dropout', async () => {
    const m = L.sequential({
      layers: [
        L.layers.conv2d({ inputShape: [9, 9, 3], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1' }),
        L.layers.batchNormalization({ epsilon: 1e-3, momentum: 0.9, name: 'bn1' }),
        L.layers.activation({ activation: 'relu', name: 'act1' }),
        L.layers.maxPooling2d({ poolSize: 2, strides: 2, padding: 'same', name: 'pool1' }),
        L.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, useBias: false, name: 'conv2' }),
        L.layers.conv2d({ filters: 8, kernelSize: 2, dilationRate: 2, padding: 'same', activation: 'sigmoid', name: 'conv3' }),
        L.layers.averagePooling2d({ poolSize: 2, strides: 1, padding: 'same', name: 'pool2' }),
        L.layers.averagePooling2d({ poolSize: [2, 1], padding: 'valid', name: 'pool3' }),
        L.layers.flatten({ name: 'flat' }),
        L.layers.dense({ units: 16, activation: 'tanh', name: 'fc1' }),
        L.layers.dropout({ rate: 0.3, name: 'drop' }),
        L.layers.dense({ units: 5, activation: 'softmax', name: 'fc2' }),
      ],
    });
    const g = await expectSameOutputs(m, 1);
    expect(g.requireNode('conv1').op).toBe('Conv');
    expect(g.requireNode('conv1').attrs['auto_pad']).toBe('SAME_UPPER');
    expect(g.requireNode('conv1/activation').op).toBe('Relu');
    expect(g.requireNode('conv2').inputs).toHaveLength(2);
    expect(g.requireNode('bn1').attrs).toMatchObject({ epsilon: 1e-3, momentum: 0.9 });
    expect(g.requireNode('pool1').op).toBe('MaxPool');
    expect(g.requireNode('drop').attrs['ratio']).toBe(0.3);
    expect(g.requireNode('fc1').op).toBe('Gemm');
    expect(g.requireNode('fc2/activation').op).toBe('Softmax');
    expect(g.outputs).toEqual(['fc2/activation']);
    expect(g.inputs[0]).toMatchObject({ name: 'conv1_input', shape: [null, 9, 9, 3] });
    const trainable = Object.fromEntries(g.params.map((p) => [p.name, p.trainable]));
    expect(trainable).toMatchObject({
      'conv1/kernel': true,
      'bn1/gamma': true,
      'bn1/beta': true,
      'bn1/moving_mean': false,
      'bn1/moving_variance': false,
    });
    // The weights are bit-identical copies, not views of the model's storage.
    const k = m.getLayer('conv1').getWeights()[0]!.dataSync();
    expect(g.param('conv1/kernel')!.data).toEqual(k);
    expect(g.param('conv1/kernel')!.data.buffer).not.toBe(k.buffer);
  });

  test('functional residual model with Add, Concatenate, two inputs and two outputs', async () => {
    const x = L.input({ shape: [8, 8, 4], name: 'image' });
    const side = L.input({ shape: [4, 4, 8], name: 'side' });
    let h = L.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c1' }).apply(x) as tfl.SymbolicTensor;
    h = L.layers.batchNormalization({ name: 'bn1' }).apply(h) as tfl.SymbolicTensor;
    h = L.layers.reLU({ name: 'relu1' }).apply(h) as tfl.SymbolicTensor;
    h = L.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', name: 'c2' }).apply(h) as tfl.SymbolicTensor;
    const r1 = L.layers.add({ name: 'res1' }).apply([x, h]) as tfl.SymbolicTensor;
    const a1 = L.layers.activation({ activation: 'relu', name: 'a1' }).apply(r1) as tfl.SymbolicTensor;
    const main = L.layers.conv2d({ filters: 8, kernelSize: 3, strides: 2, padding: 'same', name: 'main' }).apply(a1) as tfl.SymbolicTensor;
    const short = L.layers.conv2d({ filters: 8, kernelSize: 1, strides: 2, name: 'shortcut' }).apply(a1) as tfl.SymbolicTensor;
    const r2 = L.layers.add({ name: 'res2' }).apply([main, short, side]) as tfl.SymbolicTensor;
    const cat = L.layers.concatenate({ axis: -1, name: 'cat' }).apply([r2, main]) as tfl.SymbolicTensor;
    const gap = L.layers.globalAveragePooling2d({ name: 'gap' }).apply(cat) as tfl.SymbolicTensor;
    const out = L.layers.dense({ units: 3, name: 'head' }).apply(gap) as tfl.SymbolicTensor;
    const m = L.model({ inputs: [x, side], outputs: [out, r2] });
    const g = await expectSameOutputs(m, 2);
    expect(g.inputs.map((i) => i.name)).toEqual(['image', 'side']);
    expect(g.outputs).toEqual(['head', 'res2']);
    expect(g.requireNode('res1').op).toBe('Add');
    // Three summands: a chain of two Adds, the last one named after the layer.
    expect(g.requireNode('res2').inputs[1]).toBe('side');
    expect(g.requireNode('res2/partial_1').op).toBe('Add');
    expect(g.requireNode('cat').op).toBe('Concat');
    expect(g.requireNode('gap').op).toBe('GlobalAveragePool');
    expect(g.requireNode('gap/flatten').op).toBe('Flatten');
  });

  test('depthwise and separable convolutions', async () => {
    const m = L.sequential({
      layers: [
        L.layers.depthwiseConv2d({ inputShape: [10, 10, 3], kernelSize: 3, depthMultiplier: 2, padding: 'same', activation: 'relu6', name: 'dw1' }),
        L.layers.separableConv2d({ filters: 5, kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', activation: 'sigmoid', name: 'sep' }),
        L.layers.depthwiseConv2d({ kernelSize: 3, dilationRate: 2, padding: 'same', useBias: false, name: 'dw2' }),
        L.layers.depthwiseConv2d({ kernelSize: [3, 2], strides: [2, 1], name: 'dw3' }),
        L.layers.separableConv2d({ filters: 4, kernelSize: 1, useBias: false, name: 'sep2' }),
        L.layers.globalMaxPooling2d({ name: 'gmp' }),
        L.layers.dense({ units: 4, name: 'fc' }),
      ],
    });
    const g = await expectSameOutputs(m, 3);
    expect(g.requireNode('dw1').attrs['group']).toBe(3);
    expect(g.param('dw1/depthwise_kernel')!.shape).toEqual([3, 3, 1, 6]);
    expect(g.requireNode('dw1/activation')).toMatchObject({ op: 'Clip', attrs: { min: 0, max: 6 } });
    expect(g.requireNode('sep/depthwise').attrs['group']).toBe(6);
    expect(g.requireNode('sep').attrs['kernel_shape']).toEqual([1, 1]);
    expect(g.param('sep/pointwise_kernel')!.shape).toEqual([1, 1, 12, 5]);
    expect(g.requireNode('gmp').op).toBe('GlobalMaxPool');
    // tfjs-layers ignores DepthwiseConv2D's dilation_rate, and so does a model it wrote; Keras applies it.
    expect(g.requireNode('dw2').attrs['dilations']).toBeUndefined();
    const art = await artifactsOf(m);
    const keras = importLayersModel({ ...art, modelTopology: { ...(art.modelTopology as object), keras_version: '2.15.0' } });
    expect(keras.requireNode('dw2').attrs['dilations']).toEqual([2, 2]);
  });

  test('zero padding, reshape, leaky relu, relu6, hard sigmoid, softmax layer, dense on rank 3', async () => {
    const m = L.sequential({
      layers: [
        L.layers.dense({ inputShape: [12], units: 32, name: 'fc1' }),
        L.layers.leakyReLU({ alpha: 0.2, name: 'leaky' }),
        L.layers.reshape({ targetShape: [4, 4, 2], name: 'to_image' }),
        L.layers.zeroPadding2d({ padding: [[1, 2], [0, 1]], name: 'pad' }),
        L.layers.conv2d({ filters: 3, kernelSize: 2, name: 'conv' }),
        L.layers.reLU({ maxValue: 6, name: 'relu6' }),
        L.layers.activation({ activation: 'hardSigmoid', name: 'hsig' }),
        L.layers.zeroPadding2d({ padding: 1, name: 'pad2' }),
        L.layers.reshape({ targetShape: [-1, 6], name: 'to_seq' }),
        L.layers.dense({ units: 4, activation: 'relu', name: 'per_step' }),
        // tfjs-layers infers no static size after a -1 reshape, so Flatten would refuse it here.
        L.layers.reshape({ targetShape: [96], name: 'flat' }),
        L.layers.dense({ units: 3, name: 'fc2' }),
        L.layers.softmax({ axis: -1, name: 'prob' }),
      ],
    });
    const g = await expectSameOutputs(m, 4);
    expect(g.requireNode('pad').attrs['pads']).toEqual([0, 1, 0, 0, 0, 2, 1, 0]);
    expect(g.requireNode('to_image').attrs['shape']).toEqual([-1, 4, 4, 2]);
    expect(g.requireNode('to_seq').attrs['shape']).toEqual([-1, 24, 6]);
    expect(g.requireNode('leaky').attrs['alpha']).toBeCloseTo(0.2);
    expect(g.requireNode('hsig').attrs).toEqual({ alpha: 0.2, beta: 0.5 });
    expect(g.requireNode('per_step').op).toBe('MatMul');
    expect(g.requireNode('per_step/bias_add').op).toBe('Add');
    expect(g.requireNode('prob')).toMatchObject({ op: 'Softmax', attrs: { axis: -1 } });
  });

  test('permute (last: tfjs-layers infers no output shape after it)', async () => {
    const m = L.sequential({
      layers: [L.layers.dense({ inputShape: [3, 5], units: 2, name: 'fc' }), L.layers.permute({ dims: [2, 1], name: 'swap' })],
    });
    const g = await expectSameOutputs(m, 7);
    expect(g.requireNode('swap')).toMatchObject({ op: 'Transpose', attrs: { perm: [0, 2, 1] } });
  });

  test('a shared layer called twice and frozen layers', async () => {
    const a = L.input({ shape: [6], name: 'a' });
    const b = L.input({ shape: [6], name: 'b' });
    const shared = L.layers.dense({ units: 4, activation: 'relu', name: 'shared' });
    const ya = shared.apply(a) as tfl.SymbolicTensor;
    const yb = shared.apply(b) as tfl.SymbolicTensor;
    const frozen = L.layers.dense({ units: 2, name: 'frozen', trainable: false });
    const out = frozen.apply(L.layers.concatenate({ name: 'cat' }).apply([ya, yb]) as tfl.SymbolicTensor) as tfl.SymbolicTensor;
    const m = L.model({ inputs: [a, b], outputs: out });
    const g = await expectSameOutputs(m, 5);
    expect(g.requireNode('shared').inputs.slice(1)).toEqual(['shared/kernel', 'shared/bias']);
    expect(g.requireNode('shared/call_1').inputs.slice(1)).toEqual(['shared/kernel', 'shared/bias']);
    expect(g.requireNode('shared/call_1/activation').op).toBe('Relu');
    expect(g.params.filter((p) => p.name.startsWith('shared/'))).toHaveLength(2);
    expect(g.param('frozen/kernel')!.trainable).toBe(false);
    expect(g.param('shared/kernel')!.trainable).toBe(true);
  });

  test('BN without scale and center, and a model.json-style topology', async () => {
    const m = L.sequential({
      layers: [
        L.layers.conv2d({ inputShape: [5, 5, 2], filters: 3, kernelSize: 3, name: 'c' }),
        L.layers.batchNormalization({ scale: false, center: false, epsilon: 0.01, name: 'bn' }),
        L.layers.flatten({ name: 'f' }),
      ],
    });
    const g = await expectSameOutputs(m, 6);
    expect(g.param('bn/gamma')).toMatchObject({ trainable: false, data: new Float32Array([1, 1, 1]) });
    expect(g.param('bn/beta')).toMatchObject({ trainable: false, data: new Float32Array([0, 0, 0]) });
    // A model.json wraps the model in model_config and may be JSON text.
    const art = await artifactsOf(m);
    const wrapped = importLayersModel({
      ...art,
      modelTopology: JSON.stringify({ keras_version: '2.15.0', backend: 'tensorflow', model_config: art.modelTopology }),
    });
    expect(wrapped.nodes.map((n) => n.name)).toEqual(g.nodes.map((n) => n.name));
  });

  test('input shapes can be overridden', async () => {
    const x = L.input({ shape: [null, null, 3], name: 'img' });
    const y = L.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', name: 'c' }).apply(x) as tfl.SymbolicTensor;
    const m = L.model({ inputs: x, outputs: L.layers.globalAveragePooling2d({ name: 'gap' }).apply(y) as tfl.SymbolicTensor });
    // 'same' padding needs static spatial sizes.
    expect(() => importLayersModel(m)).toThrow(/auto_pad SAME needs static spatial sizes/);
    const g = importLayersModel(m, { inputShapes: { img: [null, 7, 6, 3] } });
    expect(g.info('c').shape).toEqual([null, 7, 6, 2]);
    expect(() => importLayersModel(m, { inputShapes: { nope: [1] } })).toThrow(/no input layer "nope" \(inputs: img\)/);
  });

  test('unsupported layers are all listed at once, with the way around', () => {
    const m = L.sequential({
      layers: [
        L.layers.conv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, activation: 'elu', name: 'conv_elu' }),
        L.layers.upSampling2d({ size: [2, 2], name: 'up' }),
        L.layers.conv2d({ filters: 4, kernelSize: 3, activation: 'relu', name: 'fine' }),
        L.layers.activation({ activation: 'swish', name: 'swish' }),
        L.layers.reLU({ name: 'relu' }),
        L.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'valid', dataFormat: 'channelsFirst', name: 'cf' }),
      ],
    });
    let err: unknown;
    try {
      importLayersModel(m);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TensorpressError);
    const e = err as TensorpressError;
    expect(e.code).toBe('UNSUPPORTED_LAYER');
    expect(e.message).toMatch(/^4 layers cannot be imported/);
    expect(e.message).toContain('"conv_elu" (Conv2D): activation "elu" is not supported');
    expect(e.message).toContain('"up" (UpSampling2D): layer type not supported');
    expect(e.message).toContain('"swish" (Activation): activation "swish" is not supported');
    expect(e.message).toContain('"cf" (Conv2D): data_format "channels_first" is not supported');
    expect(e.message).not.toContain('"fine"');
    expect(e.message).toMatch(/Way around: .*ONNX/s);
    expect((e.details['layers'] as unknown[]).map((l) => (l as { name: string }).name)).toEqual(['conv_elu', 'up', 'swish', 'cf']);
  });

  test('bad artifacts: truncated, unknown quantization, missing weights, no topology; quantized weights decode', async () => {
    const m = L.sequential({ layers: [L.layers.dense({ inputShape: [4], units: 3, name: 'fc' })] });
    const art = await artifactsOf(m);
    const bytes = art.weightData as ArrayBuffer;
    const truncated: ModelArtifactsLike = { ...art, weightData: bytes.slice(0, 50) };
    expect(() => importLayersModel(truncated)).toThrow(
      expect.objectContaining({ code: 'INPUT_INVALID', message: expect.stringMatching(/weight "fc\/bias" needs bytes 48\.\.60 of weightData, which holds 50/) }),
    );
    // Quantized storage is decoded as tfjs decodes it (it used to be refused: the CLI could not load such models).
    const specs = art.weightSpecs!.map((s) => ({ ...s, quantization: { dtype: 'uint8' as const, scale: 0.5, min: -3 } }));
    const decoded = importLayersModel({ ...art, weightSpecs: specs });
    const want = tf.io.decodeWeights(bytes, specs);
    expect(decoded.param('fc/kernel')!.data).toEqual(want['fc/kernel']!.dataSync());
    expect(decoded.param('fc/bias')!.data).toEqual(want['fc/bias']!.dataSync());
    tf.dispose(Object.values(want));
    const int4: ModelArtifactsLike = { ...art, weightSpecs: art.weightSpecs!.map((s) => ({ ...s, quantization: { dtype: 'int4', scale: 1, min: 0 } })) };
    expect(() => importLayersModel(int4)).toThrow(
      expect.objectContaining({
        code: 'INPUT_INVALID',
        message: expect.stringMatching(/\$\.weightSpecs\[0\]\.quantization\.dtype: weight "fc\/kernel" has quantization dtype "int4"; expected uint8, uint16 or float16/),
      }),
    );
    const renamed: ModelArtifactsLike = { ...art, weightSpecs: art.weightSpecs!.map((s) => ({ ...s, name: s.name.replace('bias', 'b') })) };
    expect(() => importLayersModel(renamed)).toThrow(/layer "fc" \(Dense\) needs weight "fc\/bias".*\(the layer has: fc\/kernel, fc\/b\)/);
    const reshaped: ModelArtifactsLike = {
      ...art,
      weightSpecs: art.weightSpecs!.map((s) => (s.name === 'fc/kernel' ? { ...s, shape: [3, 4] } : s)),
    };
    expect(() => importLayersModel(reshaped)).toThrow(/weight "fc\/kernel" has shape \[3, 4\] but layer "fc" \(Dense\) expects \[4, 3\]/);
    expect(() => importLayersModel({ weightSpecs: [] })).toThrow(/no model topology/);
    expect(() => importLayersModel({ modelTopology: { class_name: 'Sequential', config: { layers: [{ class_name: 'Dense', config: { units: 2 } }] } } })).toThrow(
      /\$\.config\.layers\[0\]\.name: every layer needs a name/,
    );
  });

  test('Keras 3 functional topology (dict inbound nodes, batch_shape, hard_sigmoid semantics)', () => {
    const tensor = (layer: string): unknown => ({ class_name: '__keras_tensor__', config: { shape: [null, 3], dtype: 'float32', keras_history: [layer, 0, 0] } });
    const topology = {
      class_name: 'Functional',
      keras_version: '3.5.0',
      config: {
        name: 'k3',
        layers: [
          { class_name: 'InputLayer', name: 'x', config: { batch_shape: [null, 3], dtype: 'float32', name: 'x' }, inbound_nodes: [] },
          { class_name: 'Dense', name: 'd', config: { name: 'd', units: 3, activation: 'hard_sigmoid', use_bias: true }, inbound_nodes: [{ args: [tensor('x')], kwargs: {} }] },
          { class_name: 'LeakyReLU', name: 'lr', config: { name: 'lr', negative_slope: 0.1 }, inbound_nodes: [{ args: [tensor('d')], kwargs: {} }] },
          { class_name: 'Add', name: 'sum', config: { name: 'sum' }, inbound_nodes: [{ args: [[tensor('lr'), tensor('x')]], kwargs: {} }] },
        ],
        input_layers: ['x', 0, 0],
        output_layers: ['sum', 0, 0],
      },
    };
    const kernel = new Float32Array([1, 0, 0, 0, -2, 0, 0, 0, 3]);
    const bias = new Float32Array([0.5, 0, -9]);
    const weightData = new Uint8Array(48);
    weightData.set(new Uint8Array(kernel.buffer), 0);
    weightData.set(new Uint8Array(bias.buffer), 36);
    const g = importLayersModel({
      modelTopology: topology,
      weightSpecs: [
        { name: 'd/kernel', shape: [3, 3], dtype: 'float32' },
        { name: 'd/bias', shape: [3], dtype: 'float32' },
      ],
      weightData: weightData.buffer,
    });
    expect(g.requireNode('d/activation').attrs).toEqual({ alpha: 1 / 6, beta: 0.5 });
    expect(g.requireNode('lr').attrs).toEqual({ alpha: 0.1 });
    const x = tf.tensor2d([[1, 1, 1]]);
    const [y] = runGraph(g, x);
    // hard_sigmoid(v) = clip(v / 6 + 0.5, 0, 1): (1.5, -2, -6) -> (0.75, 1/6, 0); +x after the leaky relu.
    expectClose(y!, [1.75, 1 + 1 / 6, 1], { atol: 1e-6 });
    tf.dispose([x, y!]);
  });

  test('a live model satisfies LayersModelLike', () => {
    const m: LayersModelLike = L.sequential({ layers: [L.layers.dense({ inputShape: [2], units: 1 })] });
    expect(importLayersModel(m).nodes).toHaveLength(1);
  });
});
